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

from ..settings import with_blend_default
from .session import Stats


class PushLive:
    """``frame(img) -> shown`` for each pushed frame; ``stats``; ``stop()``. ``dreamer``: a built
    :class:`~dreamvideo.engine.Dreamer`; ``sections``: a video job's settings (model, dream, video,
    schedules); ``max_side``: frames are dreamed and shown at most this large."""

    def __init__(self, dreamer, sections: dict, fps: float = 10.0, max_side: int = 256, seed: int = 0):
        from .adapter import video_engine
        from .engine import DreamWorker, LiveTimeline

        s = dict(sections)
        s["video"] = replace(s["video"], enter_every=1)
        s["schedules"] = with_blend_default(s["schedules"], s["video"])
        self.sections, self.max_side, self.fps = s, max_side, fps
        self.timeline = LiveTimeline(s["schedules"], fps, dreamer.objective.terms)
        self._dreamer, self._lock, self._fresh = dreamer, threading.Lock(), False

        def make(level, first_index):
            with self._lock:
                self._fresh = False
                return video_engine(self._dreamer, self.sections["dream"], self.sections["video"], self.timeline,
                                    seed, first_index)

        self.worker = DreamWorker(make, fps)
        self.stats = Stats()
        self._flows = None
        self._base, self._seq, self._t0 = None, 0, time.monotonic()

    def update(self, dreamer=None, **options) -> None:
        """New settings for the next dream: ``dreamer`` (other layers), dream fields (``octaves``) or
        schedules (``step_size``, ``steps``). The carried dream starts afresh with them, so the change
        shows at once, still scene or not."""
        with self._lock:
            if dreamer is not None:
                self._dreamer = dreamer
                self.timeline = type(self.timeline)(self.sections["schedules"], self.fps, dreamer.objective.terms)
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
        from ..flow import FlowEstimator
        from .adapter import carry

        if self.worker.error is not None:
            raise self.worker.error
        t = time.monotonic()
        img = np.ascontiguousarray(np.asarray(img, np.uint8)[..., :3])
        h, w = img.shape[:2]
        if max(h, w) > self.max_side:
            k = self.max_side / max(h, w)
            img = cv2.resize(img, (max(2, int(w * k)) // 2 * 2, max(2, int(h * k)) // 2 * 2),
                             interpolation=cv2.INTER_AREA)
        landed = self.worker.landed.take(0) if self.worker.dreams else None
        if landed is not None and landed[1].shape == img.shape:
            self._base = (landed[1], landed[2])
        if self._base is not None and self._base[0].shape != img.shape:
            self._base = None  # the camera changed size
        if self._base is None:
            out = img
        else:
            self._flows = self._flows or FlowEstimator("dis")
            flow, mask = self._flows.pair(self._base[0], img)
            out = carry(img, self._base[0], self._base[1], flow, mask)
        self.worker.offer(self._seq, img)
        self._base = (img, out) if self._base is not None else None
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
