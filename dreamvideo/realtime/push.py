"""Live dreaming of frames pushed one at a time (the web page's camera): each call returns at once
with the last dream carried onto the frame given; the dream thread dreams the newest frame when it
is free. Settings change between two frames (:meth:`PushLive.update`): the next dream uses them.

Convention: frames are ``H x W x 3`` uint8 RGB; times in seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import cv2
import numpy as np

from .session import Stats, live_sections


class PushLive:
    """``frame(img) -> shown`` for each pushed frame; ``stats``; ``stop()``. ``dreamer``: a built
    :class:`~dreamvideo.engine.Dreamer`; ``sections``: a video job's settings (model, dream, video,
    schedules); ``max_side``: frames are dreamed and shown at most this large."""

    def __init__(self, dreamer, sections: dict, fps: float = 10.0, max_side: int = 256, seed: int = 0,
                 controls=None):
        from .adapter import FlowCarry, video_engine
        from .controls import LiveControls
        from .engine import DreamWorker, LiveTimeline

        s = live_sections(sections)
        self.sections, self.max_side, self.fps = s, max_side, fps
        self.controls = controls if controls is not None else LiveControls()
        self.timeline = LiveTimeline(s["schedules"], fps, dreamer.objective.terms, controls=self.controls)
        self._dreamer, self._lock, self._fresh = dreamer, threading.Lock(), False

        def make(level, first_index):
            with self._lock:
                self._fresh = False
                return video_engine(self._dreamer, self.sections["dream"], self.sections["video"], self.timeline,
                                    seed, first_index)

        self.worker = DreamWorker(make, fps, before=lambda seq, engine: self.timeline.refresh())
        self.stats = Stats()
        self._carry = FlowCarry()
        self._seq, self._t0 = 0, time.monotonic()

    def update(self, dreamer=None, **options) -> None:
        """New settings for the next dream: ``dreamer`` (other layers), dream fields (``octaves``) or
        schedules (``step_size``, ``steps``). The carried dream starts afresh with them, so the change
        shows at once, still scene or not."""
        with self._lock:
            if dreamer is not None:
                self._dreamer = dreamer
                self.timeline = type(self.timeline)(self.sections["schedules"], self.fps, dreamer.objective.terms,
                                                    controls=self.controls)
            # steps and step size are schedules in a moving render (the dream settings' own are not read)
            sched = {k: str(v) for k, v in options.items() if hasattr(self.sections["schedules"], k)}
            dream = {k: v for k, v in options.items() if k not in sched}
            if dream:
                self.sections["dream"] = replace(self.sections["dream"], **dream).check()
            if sched:
                self.timeline.update(**sched)
                self.sections["schedules"] = self.timeline.schedules
            self._fresh = True
        self.worker.restart()

    def frame(self, img: np.ndarray) -> np.ndarray:
        """The frame shown for ``img``: the last dream carried onto it (the frame itself before the first)."""
        if self.worker.error is not None:
            raise self.worker.error
        t = time.monotonic()
        img = np.ascontiguousarray(np.asarray(img, np.uint8)[..., :3])
        h, w = img.shape[:2]
        if max(h, w) > self.max_side:
            k = self.max_side / max(h, w)
            img = cv2.resize(img, (max(2, int(w * k)) // 2 * 2, max(2, int(h * k)) // 2 * 2),
                             interpolation=cv2.INTER_AREA)
        out = self._carry(img, self.worker.landed.take(0) if self.worker.dreams else None)
        self.worker.offer(self._seq, img)
        self._seq += 1
        s = self.stats
        s.shown, s.dreamed, s.skipped = s.shown + 1, self.worker.dreams, self.worker.skipped
        s.seconds = time.monotonic() - self._t0
        s.latencies.append(time.monotonic() - t)
        del s.latencies[:-1000]
        return out

    def stop(self) -> str:
        """Stop dreaming; the closing line of the run."""
        self.worker.close()
        return self.stats.line()
