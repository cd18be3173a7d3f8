"""The one place live mode uses the video renderer's pieces (:mod:`dreamvideo.coherence`,
:mod:`dreamvideo.render`): :func:`video_engine`, the video stepper that dreams a frame with
temporal reuse, and :func:`carry`, a dream moved onto a later frame by optical flow. The rest of
:mod:`dreamvideo.realtime` goes through these two, so a change of the stepper's API is a change here only.

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
    frame dreamed before, or None)."""

    step: Callable


def carry(src, earlier_src, earlier_out, flow, mask) -> np.ndarray:
    """``earlier_out`` (the image shown for ``earlier_src``) moved onto ``src`` by ``flow``/``mask``
    (``src`` -> ``earlier_src``): its residual warped and added, zero where the mask rejects the
    pixel; the carry of ``--coherence flow``."""
    from ..coherence import coherent_start

    start = coherent_start("flow", src, earlier_src, earlier_out, 1.0, flow, mask)
    return src if start is None else np.rint(start).astype(np.uint8)


def video_engine(dreamer, dream, video, timeline, seed: int, first_index: int) -> VideoEngine:
    """A video stepper (:class:`~dreamvideo.coherence.VideoStepper`) driven frame by
    frame, its first frame ``first_index`` (which gets ``video.first_steps``), and the carry.

    Live never holds frames back for a band (``settle``/``drain`` are not called): the caller
    passes ``enter_every=1``, so what enters the frame is dreamed by the next dream, which comes
    every few source frames anyway: the natural band."""
    from ..coherence import VideoStepper
    from ..render import SourceFrame

    stepper = VideoStepper(dreamer, dream, video, timeline, seed, first_index,
                           canvas_round=LIVE_CANVAS_ROUND, crop_limit=LIVE_CROP_LIMIT)

    def step(index: int, image: np.ndarray, flow, mask) -> np.ndarray:
        frame = SourceFrame(index, image, flow, mask)
        out = stepper.dream(frame)
        stepper.keep(frame, out)
        return out

    return VideoEngine(step)
