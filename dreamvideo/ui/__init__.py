"""``dreamvideo ui``: a local web page for the three jobs, with a render queue.

Layout: :mod:`.page` is what the page does, as plain functions over the settings (no Gradio);
:mod:`.worker` the one background thread that renders, one job at a time; :mod:`.api` the page's
door to the jobs; :mod:`.app` the Gradio layout and wiring. This module starts and stops the
server and registers the command; it imports neither Gradio nor TensorFlow until the page starts.

The page binds 127.0.0.1 unless told otherwise, never makes a public share link, reads only files
uploaded to it, and writes into one outputs folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import UserError

DEFAULT_OUTPUTS = Path("~/dreamvideo-outputs")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
INSTALL = 'pip install "dreamvideo[ui]"'
# Flags of the model panel (settings fields the page shows) and fixed settings passed through to every job.
PAGE_FLAGS = ("model", "weights", "layers", "octaves", "octave_scale", "steps", "step_size")


def _require_gradio():
    import importlib

    try:
        importlib.import_module("gradio")
    except ImportError:
        raise UserError(f"the web page needs Gradio, which is not installed: {INSTALL}") from None


def host_warning(host: str, port: int) -> str:
    """The warning printed when the page listens beyond this machine ("" for localhost)."""
    if host in LOCAL_HOSTS:
        return ""
    return (f"dreamvideo: warning: the page listens on {host}: anyone who can reach this machine on port {port} "
            "can run renders and download them; there is no login")


class Server:
    """A running page: ``url``, ``page`` (:class:`~dreamvideo.ui.page.Page`), ``demo``; ``close()``
    interrupts a running render (its partial output is finalized) and stops the server."""

    def __init__(self, demo, page, url: str):
        self.demo, self.page, self.url = demo, page, url

    def close(self) -> None:
        try:
            self.page.worker.shutdown()
        finally:
            self.demo.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def start(host: str = "127.0.0.1", port: int = 7860, outputs=DEFAULT_OUTPUTS, start_values: dict | None = None,
          preset: str = "", fixed: dict | None = None, quiet: bool = False) -> Server:
    """Start the page in this process (the server runs in background threads) and return it.

    ``start_values``: the controls' starting values (see :data:`~dreamvideo.ui.page.CONTROLS`),
    over ``preset``'s, over the settings' defaults; ``fixed``: other job options (``precision``,
    ``jitter``...) used by every job. A host other than localhost prints a warning.
    """
    _require_gradio()
    from gradio.utils import get_upload_folder

    from .app import CSS, build
    from .page import Page

    warning = host_warning(host, port)
    if warning:
        print(warning, file=sys.stderr)
    start_values = dict(start_values or {})
    models = [start_values["model"]] if start_values.get("model") else []
    weights = [start_values["weights"]] if start_values.get("weights") else []
    page = Page(outputs, start_values, preset=preset, upload_roots=[get_upload_folder()], models=models,
                weights=weights, fixed=fixed)
    demo = build(page)
    try:
        demo.queue(default_concurrency_limit=None)
        import gradio.themes as themes

        theme = themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
        _, url, _ = demo.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=True,
                                inbrowser=False, quiet=True, show_error=True, allowed_paths=[str(page.outputs)],
                                max_file_size="2gb", ssr_mode=False, mcp_server=False, theme=theme, css=CSS)
    except OSError as e:
        page.worker.shutdown()
        raise UserError(f"cannot listen on {host}:{port} ({e}); pass another --port") from None
    except BaseException:
        page.worker.shutdown()
        raise
    if not quiet:
        print(f"dreamvideo: the page is at {url} (outputs in {page.outputs}); Ctrl-C stops it", file=sys.stderr)
    return Server(demo, page, url)


def launch(host: str = "127.0.0.1", port: int = 7860, outputs=DEFAULT_OUTPUTS, start_values: dict | None = None,
           preset: str = "", fixed: dict | None = None) -> int:
    """Serve the page until Ctrl-C or SIGTERM; a render running then is finalized as a playable
    partial that the page resumes later. Returns the exit code (130 Ctrl-C, 143 SIGTERM)."""
    import signal
    import threading

    stop = threading.Event()
    code = {"value": 130}

    def on_term(signum, frame):
        code["value"] = 143
        stop.set()

    # Before the server starts: a SIGTERM as soon as the page answers must still stop it cleanly.
    old = signal.signal(signal.SIGTERM, on_term) if threading.current_thread() is threading.main_thread() else None
    server = None
    try:
        server = start(host, port, outputs, start_values, preset, fixed)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        if server is not None:
            print("dreamvideo: stopping the page (a running render is kept as a partial to resume)", file=sys.stderr)
            # The server waits for open event streams up to 5 s: closed in the background, given a moment.
            closing = threading.Thread(target=server.close, daemon=True)
            closing.start()
            closing.join(1.0)
    if server is not None:  # exit now, not after a render left mid-frame and TensorFlow's teardown
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code["value"])
    return code["value"]


# ---------------------------------------------------------------- the command (its flags: dreamvideo.cli)

def run_ui(given: dict, host: str = "127.0.0.1", port: int = 7860, outputs=DEFAULT_OUTPUTS, preset: str = "",
           seed: int | None = None, max_side: int | None = None) -> int:
    """Run ``dreamvideo ui``: ``given`` the model and dream flags given (field name: value), the ones
    the page has controls for as starting values, the rest applied to every job; returns the exit code."""
    _require_gradio()
    start_values = {k: v for k, v in given.items() if k in PAGE_FLAGS}
    fixed = {k: v for k, v in given.items() if k not in PAGE_FLAGS}
    for k in ("model", "weights"):  # a file named on the command line is offered by its absolute path
        if k in start_values and Path(start_values[k]).suffix and Path(start_values[k]).is_file():
            start_values[k] = str(Path(start_values[k]).resolve())
    if seed is not None:
        start_values["seed"] = seed
    if max_side is not None:
        start_values["max_side"] = max_side
    if not 0 < port < 65536:
        raise UserError(f"--port must be from 1 to 65535, not {port}")
    return launch(host, port, outputs, start_values, preset, fixed)
