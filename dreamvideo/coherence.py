"""Frame-to-frame coherence of a dreamed video: each frame's dream starts from the previous one.

``flow`` (default): the previous dream's *residual* (dream - source) is warped onto the new frame
by optical flow and added to it, except where the forward-backward check says the pixel is new
(disoccluded, entering the frame); there the step is full, elsewhere only ``carry_step`` of it.
``blend``: the previous dream cross-faded with the new frame. ``none``: every frame alone.
With flow, unless ``full_frames`` (:attr:`~dreamvideo.settings.VideoSettings.reuses`), a frame
dreams only what is new in it: temporal reuse, whose pieces and words (carried, new, waiting,
band, held, upkeep) are in :mod:`dreamvideo.reuse`.

The video stepper, for any code that dreams a video frame by frame:

- :func:`video_stepper` builds one from settings (the first frame's index an argument);
- :meth:`VideoStepper.dream` dreams a frame, :meth:`VideoStepper.keep` then records the frame's
  image (dreamed, or loaded when resuming), :meth:`VideoStepper.settle` returns the frames final
  now (it holds back frames that show waiting content), and :meth:`VideoStepper.drain` those still
  held when the frames end;
- :func:`dreamvideo.render.run_stepper` is the loop that calls them in that order;
  :func:`frames_with_flow` makes its input from decoded frames.

Convention: frames are ``H x W x 3`` uint8 RGB; flow is (H, W, 2) float32 pixels from the current
frame to the previous one; masks are (H, W) float32 in 0..1, 1 where the previous frame saw the pixel.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Iterator

import numpy as np

from .render import SourceFrame
from .reuse import (FEATHER, GROWTH_FADE, HeldFrames, ReusePlan, ReuseState, Timing, canvases, growth, mirror_fill,
                    plan_frame, reuse_plan, smallest_crop, upkeep_steps)
from .settings import SCHEDULED, DreamSettings, Schedules, VideoSettings, with_blend_default
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


def video_stepper(dreamer, dream: DreamSettings, video: VideoSettings, sched: Schedules, *, fps: float,
                  nframes: int, seed: int, audio: str | None = None, audio_start: float = 0.0,
                  first_index: int = 0, timeline: Timeline | None = None) -> "VideoStepper":
    """The stepper of a video render: its timeline over ``nframes`` frames at ``fps`` (``audio`` from
    ``audio_start`` seconds for audio-reactive schedules, with the blend default of ``video``'s
    coherence filled in), dreaming with ``dreamer`` and per-frame seeds from ``seed``. Its first
    frame is ``first_index`` (a chunk of a longer clip): that frame starts cold and gets
    ``video.first_steps``. ``timeline``: one already built for these settings (a job builds it
    before the model loads, so that its usage errors come first)."""
    timeline = timeline or Timeline(with_blend_default(sched, video), fps, nframes, dreamer.objective.terms,
                                    audio or None, audio_start, use=SCHEDULED["video"])
    return VideoStepper(dreamer, dream, video, timeline, seed, first_index)


class VideoStepper:
    """The :class:`~dreamvideo.render.Stepper` of a video: dreams frames in order, each starting
    from the previous frame's dream (see :func:`coherent_start`); when reusing, only what is new
    gets the full dream (:mod:`dreamvideo.reuse`). ``state`` is what the last kept frame hands on
    (:class:`~dreamvideo.reuse.ReuseState`), ``held`` the frames held back; ``last`` the
    :class:`~dreamvideo.reuse.ReusePlan` of the last frame dreamed (None for a whole-frame dream);
    ``timing`` sums seconds per part of the work (``new``: new content and cuts, ``upkeep``,
    ``composite``: warping, masks, blending).

    Two knobs for live mode (off by default, so a render's bytes do not depend on them):
    ``canvas_round`` pads each crop canvas up to a multiple of this many pixels a side, so canvases
    take a few shapes again and again (a shape's first dream costs the backend's set-up, 20-40 ms on
    CPU, on top); ``crop_limit`` dreams the frame whole (one step-mapped dream, as a full frame
    costs) when its canvases would cover more than this share of it, where crops cost as much.

    A third, ``deepen`` (steps per octave, 0: off): live dreams a frame with a few steps, and every
    few frames. With it, each dream adds its steps to the carried dream where it is carried (the
    steps add up, as if the first dream had gone on) until a pixel has had ``deepen`` steps; then
    the carried dream is kept as it is. ``depth`` (H x W float32) counts each pixel's steps and
    moves with the carried dream; new content starts at 0, dreamed from its source."""

    def __init__(self, dreamer, dream: DreamSettings, video: VideoSettings, timeline: Timeline, seed: int,
                 first_index: int = 0, *, canvas_round: int = 0, crop_limit: float | None = None,
                 deepen: float = 0.0):
        self.dreamer, self.dream_settings, self.video, self.tl, self.seed = dreamer, dream, video, timeline, seed
        self.first_index = first_index
        self.canvas_round, self.crop_limit = canvas_round, crop_limit
        self.deepen, self.depth = float(deepen), None
        self.state = ReuseState()
        self.held = HeldFrames(video.flow)
        self.timing = Timing("new", "upkeep", "composite")
        self.last: ReusePlan | None = None
        self._plan_of: tuple[int, ReusePlan] | None = None  # (frame index, plan) of the last frame planned

    def reuses(self, frame: SourceFrame) -> bool:
        """Whether ``frame`` is dreamed reusing the carried dream: the render reuses, and the frame
        has flow to a kept previous frame and a blend above 0."""
        return (self.video.reuses and self.state.dream is not None and frame.flow is not None
                and frame.mask is not None and self.tl.value("blend", frame.index) > 0)

    # ------------------------------------------------------------ the four calls of the frame loop

    def dream(self, frame: SourceFrame) -> np.ndarray:
        """The dream of ``frame`` (H x W x 3 uint8), as first dreamed (before any back-fill)."""
        self.last = None
        if not self.reuses(frame):
            if self.deepen:
                first = frame.index == self.first_index and self.video.first_steps
                steps = self.video.first_steps if first else self.tl.settings(self.dream_settings, frame.index).steps
                self.depth = np.full(frame.image.shape[:2], float(steps), np.float32)
            return self._dream_whole(frame)
        i, src = frame.index, frame.image
        settings, weights, seed = self.tl.settings(self.dream_settings, i), self.tl.weights(i), frame_seed(self.seed, i)
        with self.timing("composite"):
            flow, plan = self._plan(frame)
            depth = self._carried_depth(flow, plan) if self.deepen else None
        self.last = plan
        if self.crop_limit is not None and not (plan.cut or plan.whole) and plan.boxes and \
                sum(h * w for (h, w), _ in self._canvases(plan, src.shape[1])) > self.crop_limit * src[..., 0].size:
            plan.whole = True
        if depth is not None and not plan.cut and settings.steps and bool((depth < self.deepen - 0.5).any()):
            plan.whole = True  # some of the frame is still to deepen: one dream of it all, step-mapped
        if plan.cut:
            if depth is not None:
                self.depth = np.full(src.shape[:2], float(settings.steps), np.float32)
            with self.timing("new"):
                return self.dreamer.dream(src, None, settings, seed=seed, weights=weights)
        with self.timing("composite"):
            grew, blend = growth(flow), self.tl.value("blend", i)
            start = self._carried_start(src, flow, plan, blend * max(0.0, 1.0 - GROWTH_FADE * grew))
        if plan.whole:  # as a full frame: new content gets every octave and step, the carried dream upkeep
            step_map = self._step_map(plan.new)
            if depth is not None:  # ... or, while it is shallower than ``deepen``, its steps again
                step_map = np.where(plan.new, 1.0, np.clip((self.deepen - depth) / max(1, settings.steps), 0.0, 1.0))
                self.depth = (depth + settings.steps * step_map).astype(np.float32)
            with self.timing("new"):
                return self.dreamer.dream(src, start, settings, seed=seed, weights=weights,
                                          step_map=step_map.astype(np.float32))
        if depth is not None:
            self.depth = np.where(plan.new, float(settings.steps), depth).astype(np.float32)
        with self.timing("upkeep"):
            upkept = self._upkeep(src, start, upkeep_steps(self.video, grew, blend, settings.steps), settings,
                                  seed, weights)
        if not plan.boxes:
            return upkept.astype(np.uint8)
        return self._dream_new(src, start, upkept, plan, settings, seed, weights)

    def keep(self, frame: SourceFrame, out: np.ndarray) -> None:
        """Record ``out`` as the image of ``frame`` (dreamed, or loaded when resuming) for the next frame."""
        waiting = None
        if self.reuses(frame):
            if self._plan_of is None or self._plan_of[0] != frame.index:
                self._plan(frame)  # a resumed frame: what it left waiting is rebuilt (reuse.rebuild_from)
            waiting = self._plan_of[1].waiting
        self.state = ReuseState(frame.image, out, waiting)

    def settle(self, frame: SourceFrame, out: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """The frames final once ``frame`` (dreamed as ``out``, then kept) is: ``(index, image)`` in
        order, maybe none. A frame that shows waiting content is held until a frame dreams that
        content, whose dream then replaces the mirror there (:func:`~dreamvideo.reuse.back_fill`).
        Only the waiting pixels of the images shown change, and what a frame shows there never
        reaches the next one, so a render resumed from any saved frame makes the same bytes. A cut
        (or a frame dreamed whole) releases the held frames as they are."""
        if self.state.waits:
            self.held.hold(frame.index, frame.image, out, self.state.waiting)
            return []
        plan = self.last  # None: not a reusing frame
        if self.held and plan is not None and not plan.cut and plan.was_waiting.any():
            with self.timing("composite"):
                return self.held.release(frame.image, out) + [(frame.index, out)]
        return self.held.release() + [(frame.index, out)]

    def drain(self) -> list[tuple[int, np.ndarray]]:
        """The frames still held when the frames end: the last of them dreams what waits there, as a
        band would, and the ones before show it."""
        if not self.held:
            return []
        last = self.held.pop_last()
        j, src = last.index, last.src
        settings = self.tl.settings(self.dream_settings, j)
        with self.timing("composite"):
            # Nothing new, nothing entering, the waiting pixels on a band frame (index 0): they alone, boxed.
            plan = reuse_plan(np.ones(last.waiting.shape, np.float32), self.video,
                              self._min_crop(settings, last.waiting.shape), waiting=last.waiting)
            shown = last.image.astype(np.float32)
            start = np.where(plan.new[..., None], src.astype(np.float32), shown)
        dreamt = self._dream_new(src, start, shown, plan, settings, frame_seed(self.seed, j), self.tl.weights(j))
        with self.timing("composite"):
            return self.held.release(src, dreamt) + [(j, dreamt)]

    # ------------------------------------------------------------ the parts

    def _dream_whole(self, frame: SourceFrame) -> np.ndarray:
        """A frame dreamed whole from :func:`coherent_start` (not reusing: first frame, full frames, blend, none)."""
        i, src = frame.index, frame.image
        with self.timing("composite"):
            start = coherent_start(self.video.coherence, src, self.state.src, self.state.dream,
                                   self.tl.value("blend", i), frame.flow, frame.mask)
            step_map = None
            if start is not None and frame.mask is not None:
                # The carried dream only needs upkeep; pixels the previous frame did not show dream afresh.
                step_map = self.video.carry_step + (1.0 - self.video.carry_step) * (1.0 - frame.mask)
        first = i == self.first_index and self.video.first_steps
        with self.timing("new"):
            return self.dreamer.dream(src, start, self.tl.settings(self.dream_settings, i),
                                      seed=frame_seed(self.seed, i), weights=self.tl.weights(i), step_map=step_map,
                                      steps=self.video.first_steps if first else None)

    def _plan(self, frame: SourceFrame) -> tuple[np.ndarray, ReusePlan]:
        """(trusted flow, plan) of a reusing frame (:func:`~dreamvideo.reuse.plan_frame`), remembered for
        :meth:`keep`."""
        src = frame.image
        settings = self.tl.settings(self.dream_settings, frame.index)
        flow, plan = plan_frame(self.state.src, self.state.waiting, src, frame.flow, frame.mask, frame.index,
                                self.video, self._min_crop(settings, src.shape[:2]))
        self._plan_of = (frame.index, plan)
        return flow, plan

    def _carried_depth(self, flow: np.ndarray, plan: ReusePlan) -> np.ndarray:
        """The steps each pixel of this frame has had (see ``deepen``): the last frame's moved by
        ``flow``, 0 on new content; a depth of another size (the frame changed size) counts as deep."""
        from .flow import warp

        if self.depth is None or self.depth.shape != plan.new.shape:
            return np.where(plan.new, 0.0, self.deepen).astype(np.float32)
        return np.where(plan.new, 0.0, warp(self.depth, flow)).astype(np.float32)

    def _min_crop(self, settings: DreamSettings, shape: tuple[int, int]) -> int:
        return smallest_crop(self.dreamer.model.min_side, settings, shape)

    def _step_map(self, new: np.ndarray) -> np.ndarray:
        """Full steps on new pixels, ``carry_step`` of them on the carried dream."""
        return self.video.carry_step + (1.0 - self.video.carry_step) * new.astype(np.float32)

    def _carried_start(self, src: np.ndarray, flow: np.ndarray, plan: ReusePlan, carry: float) -> np.ndarray:
        """Where a reusing frame's dream starts (H x W x 3 float32 0..255): the source plus ``carry``
        times the carried residual on carried pixels, mirror-filled on fills and waiting pixels."""
        from .flow import warp

        before = self.state.dream.astype(np.float32) - self.state.src.astype(np.float32)
        if self.state.waits:
            # What the previous frame shows where content waits (a mirror, or the band's dream that
            # settle puts back) never reaches this frame, not even through the bicubic kernel: a
            # render resumed from any shown frame makes the same bytes.
            before = mirror_fill(before, self.state.waiting, ~self.state.waiting)
        residual = warp(before, flow, cubic=True)
        # Slivers and waiting pixels get the carried dream's own texture; a blur would pale them, and
        # a pale sliver is carried on and paled again. Not from what was filled before: a fill of a
        # fill smears. Waiting pixels get it afresh each frame.
        residual = mirror_fill(residual, plan.fill | plan.waiting, ~(plan.new | plan.fill | plan.waiting))
        # New content, a band's too, is dreamed from its source: started from the dream mirrored
        # into a strip, the band dreamed the mirror's stripes up, stronger each band. Magnified dream
        # is stale detail: it fades faster (``carry`` falls with the growth).
        carried = ~plan.new
        return np.clip(src.astype(np.float32) + carry * carried[..., None] * residual, 0, 255)

    def _upkeep(self, src, start, steps: int, settings, seed, weights) -> np.ndarray:
        """The carried dream after ``steps`` upkeep steps at the finest octave (H x W x 3 float32)."""
        if steps and settings.steps and settings.step_size:
            return self.dreamer.dream(src, start, replace(settings, octaves=1, steps=steps,
                                                          step_size=settings.step_size * self.video.upkeep_step),
                                      seed=seed, weights=weights).astype(np.float32)
        return np.rint(start)

    def _canvases(self, plan: ReusePlan, width: int) -> list:
        """:func:`~dreamvideo.reuse.canvases` of ``plan``'s boxes, each side rounded up to ``canvas_round``."""
        q = self.canvas_round
        found = canvases(plan.boxes, width)
        if not q:
            return found
        return [((-(-ch // q) * q, -(-cw // q) * q), parts) for (ch, cw), parts in found]

    def _dream_new(self, src, start, upkept, plan: ReusePlan, settings, seed, weights) -> np.ndarray:
        """The frame ``upkept`` (H x W x 3 float32: the carried dream after upkeep) with ``plan``'s new
        content dreamed in its boxes from ``start`` (the new pixels' source, the carried dream around
        them) and feathered in."""
        import cv2

        with self.timing("composite"):
            # Crops start from the upkept dream, so the context they continue is the one they are blended into.
            crop_start = np.where(plan.new[..., None], start, upkept)
            step_map = self._step_map(plan.new)
        dreamt = []
        with self.timing("new"):
            for (ch, cw), parts in self._canvases(plan, src.shape[1]):
                canvas = [np.full((ch, cw, 3), 128, np.uint8), np.full((ch, cw, 3), 128.0, np.float32),
                          np.zeros((ch, cw), np.float32)]
                for (y0, y1, x0, x1), (cy, cx) in parts:
                    for c, part in zip(canvas, (src, crop_start, step_map)):
                        c[cy:cy + y1 - y0, cx:cx + x1 - x0] = part[y0:y1, x0:x1]
                whole = self.dreamer.dream(canvas[0], canvas[1], settings, seed=seed, weights=weights,
                                           step_map=canvas[2])
                dreamt += [whole[cy:cy + y1 - y0, cx:cx + x1 - x0] for (y0, y1, x0, x1), (cy, cx) in parts]
        with self.timing("composite"):
            # Feathered: full weight on new pixels, fading to 0 over FEATHER px into the carried dream,
            # content that waited too (faded in from the mirror it showed, the background moving objects
            # uncover lost its dream: bench/RESULTS.md, "Temporal reuse: its parameters").
            dist = cv2.distanceTransform((~plan.new).astype(np.uint8), cv2.DIST_L2, 3)
            alpha = np.clip(1.0 - dist / FEATHER, 0.0, 1.0)
            out = upkept
            for (y0, y1, x0, x1), d in zip(plan.boxes, dreamt):
                a = alpha[y0:y1, x0:x1, None]
                out[y0:y1, x0:x1] = a * d + (1.0 - a) * out[y0:y1, x0:x1]
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
