"""SIGTERM taken like Ctrl-C: job schedulers, containers and Ray stop work with SIGTERM, and a
render stopped that way should end as carefully as one stopped by Ctrl-C (a playable partial file,
no temporaries, the resume command printed). No heavy imports: the command line uses this at start.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python is running, so it takes Ctrl-C's careful way out."""


class Hangup(Terminated):
    """SIGHUP (the terminal closed), taken as SIGTERM is: a live recording is finalized."""


#: The exit code of a command stopped by each: 128 + the signal's number, as a shell reports it.
EXIT_CODES = {"Hangup": 129, "KeyboardInterrupt": 130, "Terminated": 143}


def exit_code(e: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return EXIT_CODES.get(type(e).__name__, 130)


def stopped_by(e: KeyboardInterrupt) -> str:
    """How a stop is told: "interrupted", "stopped by SIGTERM", "stopped by SIGHUP"."""
    return {"Hangup": "stopped by SIGHUP", "Terminated": "stopped by SIGTERM"}.get(type(e).__name__, "interrupted")


@contextlib.contextmanager
def sighup_as_interrupt():
    """Within the block, SIGHUP (a closed terminal) raises :class:`Hangup` in the main thread, where
    nobody else handles it (live: the recording is finalized instead of left half-written)."""
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(hup) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise Hangup()

    signal.signal(hup, handler)
    try:
        yield
    finally:
        signal.signal(hup, signal.SIG_DFL)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread.

    Only where nobody else handles SIGTERM (its handler is the default) and only in the main thread
    (Python delivers signals there): a host application's own handler is left alone.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
