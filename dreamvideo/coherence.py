"""Frame-to-frame coherence of a dreamed video: each frame's dream starts from the previous one.

``flow`` (default): the previous dream's *residual* (dream - source) is warped onto the new frame
by optical flow and added to it, except where the forward-backward check says the pixel is new
(disoccluded, entering the frame); there the step is full, elsewhere only ``carry_step`` of it
(upkeep). ``blend``: the previous dream cross-faded with the new frame. ``none``: every frame alone.

Convention: frames are ``H x W x 3`` uint8 RGB; flow is (H, W, 2) float32 pixels from the current
frame to the previous one; masks are (H, W) float32 in 0..1, 1 where the previous frame saw the pixel.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from .render import SourceFrame
from .settings import DreamSettings, VideoSettings
from .timeline import Timeline, frame_seed


def coherent_start(coherence: str, src, prev_src, prev_dream, blend: float, flow=None, mask=None):
    """Where frame ``src``'s ascent starts, from the previous frame's dream.

    flow: the previous dream's residual (dream - source), warped onto this frame by ``flow``
    (this frame -> previous) and zeroed where ``mask`` says the pixel was occluded, times ``blend``,
    added to this frame. Carrying only the residual keeps the source's own brightness and motion
    exact, so nothing accumulates but the dream itself. blend: the old cross-fade. Returns float32
    0..255 or None (start from the frame itself).
    """
    if coherence == "none" or prev_dream is None or blend <= 0:
        return None
    src_f = src.astype(np.float32)
    if coherence == "blend":
        return blend * prev_dream.astype(np.float32) + (1.0 - blend) * src_f
    if flow is None or mask is None:  # no flow to this frame (the previous one was not decoded): start afresh
        return None
    from .flow import warp

    # Bicubic: the residual is re-warped every frame, and bilinear's blur would compound into a smear.
    residual = warp(prev_dream.astype(np.float32) - prev_src.astype(np.float32), flow, cubic=True)
    return np.clip(src_f + blend * mask[..., None] * residual, 0, 255)


def frames_with_flow(frames: Iterable[np.ndarray], method: str | None, skip: int = 0,
                     first_index: int = 0) -> Iterator[SourceFrame]:
    """:class:`SourceFrame`\\ s of ``frames`` numbered from ``first_index``, each with the flow and
    mask to the frame before it (``method``: a :data:`dreamvideo.flow.METHODS` name, or None for
    no flow). The first ``skip`` frames (already rendered, when resuming) get no flow: nothing
    dreams them, and the first frame after them gets its flow as usual."""
    est = None
    if method is not None:
        from .flow import FlowEstimator

        est = FlowEstimator(method)
    prev = None
    for k, frame in enumerate(frames):
        flow = mask = None
        if est is not None and prev is not None and k >= skip:
            flow, mask = est.pair(prev, frame)
        yield SourceFrame(first_index + k, frame, flow, mask)
        prev = frame


class VideoStepper:
    """The :class:`~dreamvideo.render.Stepper` of a video: dreams frames in order, each starting
    from the previous frame's dream (see :func:`coherent_start`)."""

    def __init__(self, dreamer, dream: DreamSettings, video: VideoSettings, timeline: Timeline, seed: int):
        self.dreamer, self.dream_settings, self.video, self.tl, self.seed = dreamer, dream, video, timeline, seed
        self.prev_src = self.prev_dream = None
        self.first_index = 0

    def dream(self, frame: SourceFrame) -> np.ndarray:
        i, src = frame.index, frame.image
        start = coherent_start(self.video.coherence, src, self.prev_src, self.prev_dream,
                               self.tl.value("blend", i), frame.flow, frame.mask)
        step_map = None
        if start is not None and frame.mask is not None:
            # The carried dream only needs upkeep; pixels the previous frame did not show dream afresh.
            step_map = self.video.carry_step + (1.0 - self.video.carry_step) * (1.0 - frame.mask)
        first = i == self.first_index and self.video.first_steps
        return self.dreamer.dream(src, start, self.tl.settings(self.dream_settings, i), seed=frame_seed(self.seed, i),
                                  weights=self.tl.weights(i), step_map=step_map,
                                  steps=self.video.first_steps if first else None)

    def keep(self, frame: SourceFrame, out: np.ndarray) -> None:
        self.prev_src, self.prev_dream = frame.image, out
