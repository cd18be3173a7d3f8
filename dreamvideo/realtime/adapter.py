"""The one place live mode uses the renderers' pieces (:mod:`dreamvideo.coherence`,
:mod:`dreamvideo.render`, :mod:`dreamvideo.infinite`): :func:`video_engine`, the video stepper
that dreams a frame with temporal reuse; :func:`carry`, a dream moved onto a later frame by optical
flow; :func:`zoom_engine`, :func:`zoom_start`, :func:`zoom_move` and :func:`zoom_warp`, the infinite
zoom's. The rest of :mod:`dreamvideo.realtime` goes through these, so a change of a stepper's API is
a change here only.

Convention: frames are ``H x W x 3`` uint8 RGB; flow (H, W, 2) float32 pixels from the current
frame to the earlier one, mask (H, W) float32 1 where the earlier frame saw the pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


#: Live crop canvases are padded to a multiple of this many pixels a side: live plans new shapes
#: every dream, and a shape's first dream pays the backend's set-up (20-40 ms at 256 px on CPU).
LIVE_CANVAS_ROUND = 32
#: Live dreams the frame whole when its crop canvases would cover more of it than this: at a live
#: dream's few steps a crop's fixed cost dominates, so crops over ~40% cost what the whole frame does
#: (bench/RESULTS.md, "Live"). Offline keeps reuse's own limit.
LIVE_CROP_LIMIT = 0.4


@dataclass(frozen=True)
class VideoEngine:
    """``step(index, image, flow, mask) -> dream``: the next dreamed frame (flow and mask to the
    frame dreamed before, or None; not computed when ``uses_flow`` is false)."""

    step: Callable
    uses_flow: bool = True
    stepper: object = None  # its stepper: a live change of the objective swaps its dreamer


def carry(src, earlier_src, earlier_out, flow, mask) -> np.ndarray:
    """``earlier_out`` (the image shown for ``earlier_src``) moved onto ``src`` by ``flow``/``mask``
    (``src`` -> ``earlier_src``): its residual warped and added, zero where the mask rejects the
    pixel; the carry of ``--coherence flow``."""
    from ..coherence import coherent_start

    start = coherent_start("flow", src, earlier_src, earlier_out, 1.0, flow, mask)
    return src if start is None else np.rint(start).astype(np.uint8)


class FlowCarry:
    """The carry step of live mode, one per run (the command line's show loop and the page's pushed
    frames both use it): ``carry(src, landed) -> shown``, the last dream carried onto source frame
    ``src`` by optical flow. ``landed``: ``(seq, dreamed src, dream)`` when a dream has just landed
    (it is carried from the frame it was made on), else None (from the frame shown before). Before
    the first dream, and when the frame changes size, the frame itself is shown."""

    def __init__(self, method: str = "dis"):
        self.method, self._flows, self._base, self._dreamed = method, None, None, False

    dreams_shown = False  # the next dream starts from the source frame, not from the frame shown

    def __call__(self, src: np.ndarray, landed=None, seq=None) -> np.ndarray:
        from ..flow import FlowEstimator

        if landed is not None and landed[1].shape == src.shape:
            self._base, self._dreamed = (landed[1], landed[2]), True
        if self._base is not None and self._base[0].shape != src.shape:
            self._base, self._dreamed = None, False  # the source changed size
        if not self._dreamed:
            out = src
        else:
            self._flows = self._flows or FlowEstimator(self.method)
            flow, mask = self._flows.pair(self._base[0], src)
            out = carry(src, self._base[0], self._base[1], flow, mask)
        self._base = (src, out)
        return out


def video_engine(dreamer, dream, video, timeline, seed: int, first_index: int, deepen: float = 0.0) -> VideoEngine:
    """A video stepper (:class:`~dreamvideo.coherence.VideoStepper`) driven frame by
    frame, its first frame ``first_index`` (which gets ``video.first_steps``), and the carry.

    Live never holds frames back for a band (``settle``/``drain`` are not called): the caller
    passes ``enter_every=1``, so what enters the frame is dreamed by the next dream, which comes
    every few source frames anyway: the natural band. ``deepen``: where the picture stands still,
    each dream adds its steps to the carried dream up to this many steps per octave (see
    :class:`~dreamvideo.coherence.VideoStepper`)."""
    from ..coherence import VideoStepper
    from ..render import SourceFrame

    stepper = VideoStepper(dreamer, dream, video, timeline, seed, first_index,
                           canvas_round=LIVE_CANVAS_ROUND, crop_limit=LIVE_CROP_LIMIT, deepen=deepen)

    def step(index: int, image: np.ndarray, flow, mask) -> np.ndarray:
        frame = SourceFrame(index, image, flow, mask)
        out = stepper.dream(frame)
        stepper.keep(frame, out)
        return out

    return VideoEngine(step, stepper=stepper)


def zoom_engine(dreamer, dream, zoom, timeline, seed: int, state: dict) -> VideoEngine:
    """The infinite zoom's dream (:class:`~dreamvideo.infinite.ZoomStepper`) of frames it did not
    make: live, each frame is the last dream moved (see :mod:`.zooming`). The first dream has every
    octave, the later ones only the finest ``zoom.detail_octaves`` (unless ``full_frames``), each
    colour-matched to the first dream first. ``state`` carries the first dream's colours across
    engines (the ``--target-fps`` controller makes a new one per level)."""
    from ..infinite import ZoomStepper, color_stats, match_color

    stepper = ZoomStepper(dreamer, dream, zoom, timeline, seed, None)

    def step(index: int, image: np.ndarray, flow=None, mask=None) -> np.ndarray:
        ref = state.get("colours")
        if ref is not None and zoom.color_match:
            image = match_color(image, ref)
        out = stepper.dream_over(index, image, first=ref is None)
        if ref is None:
            state["colours"] = color_stats(out)
        return out

    return VideoEngine(step, uses_flow=False, stepper=stepper)


def zoom_start(target: str, max_side, seed: int) -> np.ndarray:
    """The first image of a live zoom: ``target`` an image's path or ``noise:WxH`` (even sides,
    at most ``max_side`` pixels a side)."""
    from ..images import fit_max_side
    from ..infinite import even_sides, noise_image, zoom_start as start
    from ..settings import ZoomSettings

    if target.startswith("noise:"):
        return even_sides(fit_max_side(noise_image(target[len("noise:"):], seed), max_side))
    return start(target, ZoomSettings(frames=1), max_side, seed)


def zoom_noise_size(spec: str) -> tuple[int, int]:
    """``(width, height)`` of ``zoom:noise:WxH``'s size (:func:`dreamvideo.infinite.noise_size`)."""
    from ..infinite import noise_size

    return noise_size(spec, f"zoom:noise:{spec}")


def zoom_move(shape, zoom: float, angle: float, dx: float, dy: float) -> np.ndarray:
    """One frame's move as a 3x3 matrix (:func:`dreamvideo.infinite.motion`)."""
    from ..infinite import motion

    return motion(shape, zoom, angle, dx, dy)


def zoom_warp(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``img`` moved by the 3x3 matrix ``m`` (:func:`dreamvideo.infinite.warp`)."""
    from ..infinite import warp

    return warp(img, m)
