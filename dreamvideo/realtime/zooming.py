"""A live infinite zoom as a source (``zoom:IMAGE``, ``zoom:noise``): VJ visuals from a still image
and the music alone.

Offline, zoom frame i is frame i-1's dream moved and dreamed again. Live, dreams come slower than
frames, so each frame shown is the newest dream moved by every frame's move since the frame that
dream was made on (one warp of the composed matrix, not one per frame, so no blur piles up), and the
dream thread dreams the newest such frame: the zoom keeps moving at ``fps`` while the dream's
detail updates at the engine's rate. The moves (``zoom``, ``angle``, ``dx``, ``dy`` schedules,
audio features included) are evaluated per frame as it is made. Until the first dream lands the
start image is shown still: zooming into an undreamed image would only blur it.

It is a :class:`~dreamvideo.realtime.sources.LiveSource`, as a camera's capture is, plus
:meth:`ZoomSource.landed`.

Convention: frames are ``H x W x 3`` uint8 RGB; moves 3x3 float64 pixel matrices, the later on the
left; times :func:`time.monotonic` seconds.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable

import numpy as np

from .adapter import zoom_move, zoom_warp
from .sources import Feed

HISTORY_SECONDS = 30.0  # a dream older than this many seconds of moves is not shown when it lands


class ZoomSource(Feed):
    """Frames of a live zoom at ``fps`` from ``start`` (see the module). ``moves(f)`` gives frame
    ``f``'s ``(zoom, angle, dx, dy)``. Call :meth:`start` to begin."""

    sound = ""  # a zoom has none of its own (``--audio-in`` gives it one)

    def __init__(self, start: np.ndarray, fps: float, moves: Callable[[int], tuple]):
        self.width, self.height, self.fps = int(start.shape[1]), int(start.shape[0]), float(fps)
        self._start_feed("live-zoom")  # convert_seconds: the warps' time (the "capture" of this source)
        self.spec = None
        self._moves = moves
        self._lock = threading.Lock()
        self._ref, self._acc = start, np.eye(3)  # the newest dream, and the moves since its frame
        self._history = collections.deque(maxlen=max(1, int(HISTORY_SECONDS * fps)))  # (frame, move)
        self._moving = False  # no move until the first dream lands
        self._version, self._ref_seq = 0, -1  # which dream the frames are made from, and its frame
        self._made = {}  # frame -> the version of the dream it was made from (the last few frames)

    def start(self) -> "ZoomSource":
        self._thread.start()
        return self

    def motion(self) -> Callable:
        """The composed moves: a zoom's frames are the newest dream moved. A dream that lands is
        handed to the source (:meth:`landed`); a frame the source made from an older dream (it was
        made before this one landed) is made again from this one, so the frame shown, which is the
        frame dreamed next, always carries the newest dream: no dream's detail is lost."""

        def show(src: np.ndarray, landed=None, seq=None) -> np.ndarray:
            if landed is not None:
                self.landed(landed[0], landed[2])
            if seq is None:
                return src
            with self._lock:
                if self._made.get(seq) == self._version or not self._moving:
                    return src
                acc = np.eye(3)
                for f, m in self._history:
                    if self._ref_seq < f <= seq:
                        acc = m @ acc
                ref = self._ref
            return ref if np.array_equal(acc, np.eye(3)) else zoom_warp(ref, acc)

        show.dreams_shown = True  # the frame shown is what the next dream starts from
        return show

    def landed(self, seq: int, dream: np.ndarray) -> None:
        """Dream ``dream`` (of frame ``seq``) is the newest: the next frames are it, moved by the moves
        of the frames after ``seq``."""
        with self._lock:
            acc = np.eye(3)
            for f, m in self._history:
                if f > seq:
                    acc = m @ acc
            if self._history and self._history[0][0] > seq + 1:  # older than the history: not shown
                return
            self._ref, self._acc, self._moving = dream, acc, True
            self._version, self._ref_seq = self._version + 1, seq

    def _run(self):
        start = time.monotonic()
        while not self._stop.is_set():
            k = self.received
            due = start + k / self.fps
            now = time.monotonic()
            if due > now and self._stop.wait(due - now):
                break
            c0 = time.perf_counter()
            with self._lock:
                if self._moving:
                    m = zoom_move(self._ref.shape, *self._moves(k))
                    self._history.append((k, m))
                    self._acc = m @ self._acc
                ref, acc = self._ref, self._acc
                self._made[k] = self._version
                self._made.pop(k - 64, None)
            frame = ref if np.array_equal(acc, np.eye(3)) else zoom_warp(ref, acc)
            self.convert_seconds += time.perf_counter() - c0
            self._publish(max(due, now), frame)

    def close(self) -> None:
        self._end_feed()
