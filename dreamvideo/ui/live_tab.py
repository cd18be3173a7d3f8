"""The page's Live tab: the browser's camera dreamed as it films, the dreamed frames sent back.

The camera streams through Gradio's own webcam streaming (``stream_every``; FastRTC, the WebRTC
route, requires gradio < 6, older than this page's). Each frame the browser sends is answered at
once with the last dream carried onto it (:class:`dreamvideo.realtime.push.PushLive`); the dream
thread dreams the newest frame when it is free, so frames that come while it is busy are not
dreamed, never queued. Layers, octaves, steps and step size apply from the next dream while it runs;
Start loads the model panel's model, Stop ends the dreaming and shows its figures. Without a
camera, an uploaded clip plays live on a loop on the server (the same live run as ``dreamvideo
live CLIP --loop``), its frames sent to the page as they are shown.
"""

from __future__ import annotations

import threading

import gradio as gr

from ..errors import DreamError, UserError

STREAM_EVERY = 0.1  # seconds between two frames the browser sends
LIVE_SIDE = 256  # frames are dreamed and shown at most this large


class LiveTab:
    """The one live run of the page (a second Start replaces it)."""

    def __init__(self, page):
        self.page, self.live, self.clip, self._lock = page, None, None, threading.Lock()
        self._settings = None

    def _sections(self, model, weights, layers, octaves, steps, step_size):
        from ..settings import split_options

        fixed = {k: v for k, v in self.page.fixed.items() if k in ("precision", "backend", "device", "jitter",
                                                                     "tile_size", "octave_scale", "objective")}
        return split_options("video", dict(fixed, model=model, weights=weights, layers=layers or "",
                                           octaves=int(octaves or 1), steps=str(steps), step_size=str(step_size)))

    def _dreamer(self, model_settings):
        """The model, built in the page's worker (the one thread that loads models: two threads
        importing Keras at once break it); its first dream compiles the step there too."""
        from pathlib import Path

        def run(progress, resume):
            import numpy as np

            from ..build import build_dreamer

            dreamer = build_dreamer(model_settings)
            dreamer.dream(np.full((64, 64, 3), 128, np.uint8))
            return {"dreamer": dreamer}  # not a tuple: the worker takes one as (output, note)

        job = self.page.worker.submit("layers", "live model", Path(str(model_settings.model)), run)
        job.wait()
        if job.state != "done":
            raise UserError(job.message or "could not load the model")
        return job.value["dreamer"]

    def start(self, model, weights, layers, octaves, steps, step_size):
        from ..realtime.push import PushLive

        self.stop()
        s = self._sections(model, weights, layers, octaves, steps, step_size)
        s["dream"].check()
        dreamer = self._dreamer(s["model"])
        with self._lock:
            self.live = PushLive(dreamer, s, fps=1.0 / STREAM_EVERY, max_side=LIVE_SIDE)
            self._settings = (model, weights, layers, octaves, str(steps), str(step_size))
        return "Running: allow the camera and start it (the button under the camera); the dream follows."

    def stop(self) -> str:
        with self._lock:
            live, self.live = self.live, None
            clip, self.clip = self.clip, None
        if clip is not None:
            clip.set()  # the clip's loop ends at its next frame and reports its figures
            return "Stopping the clip."
        return f"Stopped. {live.stop()}" if live is not None else "Not running."

    def play(self, video, model, weights, layers, octaves, steps, step_size):
        """Generator: (frame, status) of an uploaded clip played live on a loop, until Stop."""
        from ..realtime.session import LiveSession
        from ..settings import LiveSettings

        if not video:
            raise UserError("upload a clip first")
        self.stop()
        path = self.page.check_upload(video, "video", "clip")
        s = self._sections(model, weights, layers, octaves, steps, step_size)
        s["dream"].check()
        dreamer = self._dreamer(s["model"])
        stop = threading.Event()
        with self._lock:
            self.clip = stop
        session = LiveSession(str(path), LiveSettings(loop=True, no_page=True), s, max_side=LIVE_SIDE,
                              dreamer=dreamer)
        frames = iter(session)
        try:
            for _, frame in frames:
                if stop.is_set():
                    break
                yield frame, session.stats.line()
        finally:
            frames.close()
        yield gr.skip(), f"Stopped. {session.stats.line()}"

    def frame(self, image, model, weights, layers, octaves, steps, step_size):
        with self._lock:
            live = self.live
            if live is None or image is None:
                return gr.skip(), gr.skip()
            settings = (model, weights, layers, octaves, str(steps), str(step_size))
            if settings != self._settings:
                changed = {k: v for k, v, old in zip(("octaves", "steps", "step_size"), settings[3:],
                                                     self._settings[3:]) if v != old}
                dreamer = None
                if settings[:3] != self._settings[:3]:
                    dreamer = self._dreamer(self._sections(*settings)["model"])
                if "octaves" in changed:
                    changed["octaves"] = int(changed["octaves"] or 1)
                live.update(dreamer, **changed)
                self._settings = settings
        out = live.frame(image)
        if self.live is not live:  # stopped meanwhile: Stop's figures stay on the page
            return gr.skip(), gr.skip()
        return out, live.stats.line()


def build_live_tab(page, c) -> None:
    """The Live tab inside the page's ``gr.Tabs()``; ``c``: the model panel's components by name."""
    tab = LiveTab(page)
    with gr.Tab("Live", id="live"):
        gr.Markdown("Dream your camera live. Frames that come while the model is busy are not dreamed, never "
                    "queued: each frame shows the last dream carried onto it by optical flow. Layers, octaves, "
                    "steps and step size above apply at the next frame.")
        with gr.Row():
            cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera", elem_id="live-in",
                           height=360)
            out = gr.Image(type="numpy", label="Dream", interactive=False, elem_id="live-out", height=360,
                           streaming=True)
        with gr.Row():
            go = gr.Button("Start", variant="primary", elem_id="live-start")
            halt = gr.Button("Stop", variant="stop", elem_id="live-stop")
        with gr.Accordion("No camera? Loop a clip", open=False):
            with gr.Row():
                clip = gr.Video(sources=["upload"], label="Clip (played live, on a loop)", height=200,
                                elem_id="live-clip")
                loop = gr.Button("Play the clip live", elem_id="live-play")
        status = gr.Markdown("Not running.", elem_id="live-status")
    keys = [c[k] for k in ("model", "weights", "layers", "octaves", "steps", "step_size")]

    def friendly(fn):
        def call(*args):
            try:
                return fn(*args)
            except (DreamError, UserError) as e:
                raise gr.Error(str(e), print_exception=False) from None
        return call

    go.click(friendly(tab.start), keys, status, api_visibility="private", concurrency_limit=1)

    def play(*args):
        try:
            yield from tab.play(*args)
        except (DreamError, UserError) as e:
            raise gr.Error(str(e), print_exception=False) from None

    loop.click(play, [clip, *keys], [out, status], api_visibility="private", concurrency_limit=1,
               show_progress="hidden")
    halt.click(tab.stop, None, status, api_visibility="private")
    cam.stream(friendly(tab.frame), [cam, *keys], [out, status], stream_every=STREAM_EVERY, time_limit=None,
               concurrency_limit=1, api_visibility="private", show_progress="hidden")
