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
