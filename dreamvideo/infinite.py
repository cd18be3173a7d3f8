"""The infinite zoom: each frame is the previous dream moved (zoom, rotation, shift), colour-matched
to the first frame, then dreamed again.

Each frame is the previous dream magnified, so its coarse structure is already dreamed and only
fine detail is new: unless ``full_frames``, frames after the first dream only the finest
``detail_octaves`` octaves with ``detail_steps`` of the scheduled steps (a fraction of a still
dream's cost; bench/bench_reuse.py measures that strength and colour hold over hundreds of frames).

Convention: images are ``H x W x 3`` uint8 RGB; ``zoom`` is a scale per frame (> 1 zooms in) about
the image centre, ``angle`` degrees counter-clockwise, ``dx``/``dy`` pixels right/down.
"""

from __future__ import annotations

import numpy as np

from .errors import UserError
from .render import SourceFrame
from .settings import DreamSettings, ZoomSettings, check_moving
from .timeline import Timeline, frame_seed


def motion(shape, zoom: float, angle: float, dx: float, dy: float) -> np.ndarray:
    """The 3x3 matrix (float64, pixels) of one frame's move of an image of ``shape`` (H, W, ...):
    zoom about the centre by ``zoom``, rotate ``angle`` degrees, shift (dx, dy) pixels. Moves
    compose by matrix product, the later on the left."""
    import cv2

    h, w = shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, zoom)
    m[:, 2] += (dx, dy)
    return np.vstack([m, [0.0, 0.0, 1.0]])


def warp(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``img`` moved by the 3x3 matrix ``m`` (see :func:`motion`), bicubic, edges mirrored."""
    import cv2

    h, w = img.shape[:2]
    return cv2.warpAffine(img, np.ascontiguousarray(m[:2]), (w, h), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT_101)


def move(img: np.ndarray, zoom: float, angle: float, dx: float, dy: float) -> np.ndarray:
    """Zoom about the centre by ``zoom``, rotate ``angle`` degrees, shift (dx, dy) pixels."""
    return warp(img, motion(img.shape, zoom, angle, dx, dy))


def color_stats(img: np.ndarray):
    import cv2

    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
    return lab.mean(0), lab.std(0) + 1e-3


def match_color(img: np.ndarray, stats) -> np.ndarray:
    """Match ``img``'s per-channel Lab mean and spread to ``stats`` (from :func:`color_stats`)."""
    import cv2

    mean, std = color_stats(img)
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab = (lab - mean) / std * stats[1] + stats[0]
    return cv2.cvtColor(np.clip(np.rint(lab), 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


class ZoomStepper:
    """The :class:`~dreamvideo.render.Stepper` of a zoom: frame i is frame i-1 moved by the schedules,
    colour-matched to frame 0, dreamed. Frame 0 is ``init`` dreamed. Its frames carry no image."""

    def __init__(self, dreamer, dream: DreamSettings, zs: ZoomSettings, timeline: Timeline, seed: int, init):
        self.dreamer, self.dream_settings, self.zs, self.tl, self.seed, self.init = \
            dreamer, dream, zs, timeline, seed, init
        self.prev = self.ref = None

    def base(self, i: int) -> np.ndarray:
        """What frame ``i`` dreams over: the start image, or the previous frame moved."""
        if i == 0:
            return self.init
        v = self.tl.value
        img = move(self.prev, v("zoom", i), v("angle", i), v("dx", i), v("dy", i))
        return match_color(img, self.ref) if self.zs.color_match else img

    def settings(self, i: int, first: bool | None = None) -> DreamSettings:
        """The engine settings of frame ``i``: the schedules', and after the first dream (frame 0
        unless ``first`` says) only the finest ``detail_octaves`` with ``detail_steps`` of the
        steps, unless ``full_frames``."""
        from dataclasses import replace

        s = self.tl.settings(self.dream_settings, i)
        if (i == 0 if first is None else first) or self.zs.full_frames:
            return s
        octaves = min(s.octaves, self.zs.detail_octaves or s.octaves)
        steps = max(1, int(round(s.steps * self.zs.detail_steps))) if s.steps and self.zs.detail_steps else 0
        return replace(s, octaves=octaves, steps=steps)

    def dream(self, frame: SourceFrame) -> np.ndarray:
        return self.dream_over(frame.index, self.base(frame.index))

    def dream_over(self, i: int, img: np.ndarray, first: bool | None = None) -> np.ndarray:
        """``img`` dreamed as frame ``i`` (the first dream, with every octave, when ``first``; by
        default frame 0). A live zoom dreams its own frames: the last dream, moved."""
        first = i == 0 if first is None else first
        return self.dreamer.dream(img, None, self.settings(i, first), seed=frame_seed(self.seed, i),
                                  weights=self.tl.weights(i),
                                  steps=self.zs.first_steps if first and self.zs.first_steps else None)

    def keep(self, frame: SourceFrame, out: np.ndarray) -> None:
        self.prev = out
        if frame.index == 0:
            self.ref = color_stats(out)

    def frames(self, n: int):
        """The zoom's first ``n`` frames, made one by one (for callers without a render loop)."""
        for i in range(n):
            f = SourceFrame(i)
            out = self.dream(f)
            self.keep(f, out)
            yield out


def noise_size(spec: str, what: str = None) -> tuple[int, int]:
    """``(width, height)`` of a noise size ``WxH``; anything else is a UserError that names ``what``
    (by default ```from_noise` 'SPEC'``)."""
    import re

    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", spec)
    if not m or not (16 <= int(m[1]) <= 16384 and 16 <= int(m[2]) <= 16384):
        raise UserError(f"{what or f'`from_noise` {spec!r}'}: give a size WxH between 16 and 16384, e.g. 640x360")
    return int(m[1]), int(m[2])


def even_sides(img: np.ndarray) -> np.ndarray:
    """``img`` cropped to even sides: H.264 in yuv420p needs them, and resizing each frame later
    would blur a zoom."""
    return np.ascontiguousarray(img[: img.shape[0] // 2 * 2 or 1, : img.shape[1] // 2 * 2 or 1])


def noise_image(spec: str, seed: int = 0) -> np.ndarray:
    """Smooth colour noise of size ``WxH`` (a soft start that dreams into structure quickly)."""
    import cv2

    w, h = noise_size(spec)
    rng = np.random.default_rng(seed)
    coarse = rng.normal(128, 48, (max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def song_frames(zs: ZoomSettings) -> ZoomSettings:
    """``zs`` with ``frames`` = the soundtrack's duration x fps where ``frames`` is 0 and there is one."""
    from dataclasses import replace

    if zs.frames or not zs.audio:
        return zs
    from .ffmpeg import duration

    return replace(zs, frames=max(1, int(round(duration(zs.audio, "audio source") * zs.fps))))


def zoom_start(input, zs: ZoomSettings, max_side, seed: int) -> np.ndarray:
    """Check a zoom's frame count and start, and return its first image (even sides)."""
    from .images import read_image

    check_moving(zs)
    if not zs.frames:
        raise UserError("a zoom of `frames` 0 is as long as its soundtrack; give a number of frames, or `audio`")
    if input and zs.from_noise:
        raise UserError("give either an input image or `from_noise` WxH, not both")
    if not input and not zs.from_noise:
        raise UserError("give an input image, or `from_noise` WxH to start from noise")
    return even_sides(read_image(input, max_side) if input else noise_image(zs.from_noise, seed))
