"""Frame-to-frame coherence of a dreamed video: each frame's dream starts from the previous one.

``flow`` (default): the previous dream's *residual* (dream - source) is warped onto the new frame
by optical flow and added to it, except where the forward-backward check says the pixel is new
(disoccluded, entering the frame); there the step is full, elsewhere only ``carry_step`` of it
(upkeep). ``blend``: the previous dream cross-faded with the new frame. ``none``: every frame alone.

Temporal reuse (flow, unless ``full_frames``): a frame costs what is new in it. The carried dream
is kept as it is (``blend`` 1 by default): each step of re-dreaming it moves it, and that shows as
shimmer, not as a stronger dream. In a zoom-in it gets steps at the finest octave for the fine
detail that magnifying it blurs, and fades with its growth (see :func:`upkeep_steps`);
``upkeep_steps`` adds steps that re-dream all of it each frame, and a ``blend`` below 1 steps that
dream back what it fades. New regions (the forward-backward check's rejects, less those the flow
around them explains, see :func:`dreamvideo.flow.explained`, and thin interior slivers, given the
carried dream around them mirrored in) are dreamed in crops, with all octaves and steps, inside
``context`` pixels of carried dream, and feathered in; a scene cut (most of the frame new, or its
colours changed) is dreamed afresh.
See :func:`reuse_plan`. Content entering the frame, or uncovered, waits for a band every few
frames; the frames in between are held back and shown with the band's dream
(:meth:`VideoStepper.settle`), so it shows from the frame it appears on and the band does not pop.
The state is the previous source and dream, and what waits for the next band
(:attr:`ReusePlan.pending`): a resumed render rebuilds it exactly by planning again the frames
since the last band (:func:`flow_from`).

Convention: frames are ``H x W x 3`` uint8 RGB; flow is (H, W, 2) float32 pixels from the current
frame to the previous one; masks are (H, W) float32 in 0..1, 1 where the previous frame saw the pixel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
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


#: Above this share of the frame in crops, one whole-frame dream (step-mapped) is cheaper than crops.
CROP_LIMIT = 0.6
#: Pixels over which a dreamed crop fades into the carried dream around it.
FEATHER = 4
#: New content is boxed on a grid of CELL x CELL pixels.
CELL = 8
#: Pixels of flat grey between crops dreamed on one canvas (see :func:`pack_crops`).
CANVAS_GAP = 8
#: Crops share a canvas only if it is at most this many times their area: a dream costs ~0.7 s
#: plus ~0.04 s per 1000 px (MobileNetV2, 2-core Xeon), so a canvas that wastes more costs more.
CANVAS_WASTE = 1.5
#: Full-size steps at the finest octave that a frame's fine detail gets per 1% its content grew
#: (a zoom-in). Each detail step and each bit of fade moves the whole carried dream, which shows as
#: flicker: on the zoom-in clip (bench_flicker_regions.py zoomin, 200 frames) detail / fade 2 / 2
#: flickered 1.41, 1 / 1.5 1.31 at 92% of none's strength, 0.7 / 1 1.25 at ~107%, 0.5 / 0.75 1.21
#: but built up to ~125%.
DETAIL_PER_PCT = 0.7
#: A zoom-in's carried dream fades by this times its growth a frame, on top of ``blend``: the
#: magnified patterns make way for the fine detail dreamed into them (with 1 detail step per 1%: at
#: 1 the dream built up to 122% of none's strength over 200 frames, at 2 it faded to 65%).
GROWTH_FADE = 1.0
#: Growth the flow's own noise shows on a pan (the frame's mean, 0.07%), with a margin: below it, none.
GROWTH_FLOOR = 0.002
#: Pixels: new content is left to the next band (mirror-filled meanwhile, shown with the band's dream
#: by :meth:`VideoStepper.settle`) only if none of it lies farther than this from the carried dream;
#: beyond it the flow back from the band is less sure to find it, and where it does not the mirror
#: shows. (Objects clip, 100 frames at 256x144: with 6 px and a band every 4 frames 38 of 99 frames
#: dreamed, with 18 px and every 6 16 of them, flicker 1.14 both; bench/RESULTS.md, held frames.)
FILL_REACH = 18


def color_change(a: np.ndarray, b: np.ndarray) -> float:
    """How much the colours of two frames differ: half the L1 distance of their 8x8x8 RGB histograms,
    0 (same colours) to 1 (no colour in common)."""
    import cv2

    def hist(img):
        h = cv2.calcHist([np.ascontiguousarray(img)], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3).ravel()
        return h / max(1.0, h.sum())

    return float(0.5 * np.abs(hist(a) - hist(b)).sum())


@dataclass
class ReusePlan:
    """What a reusing frame dreams. ``cut``: the whole frame afresh. ``whole``: one step-mapped
    dream of the whole frame (new content too large for crops). Otherwise ``boxes`` (y0, y1, x0, x1)
    are dreamed in full inside the carried dream; ``new`` (H, W) bool marks the pixels dreamed anew,
    ``fill`` the slivers filled from the carried dream, ``extend`` the entering strips left to the
    next band (the carried dream mirrored into them); ``pending`` the pixels left to a later frame's
    dream (``extend`` and those left by earlier frames); ``waited`` those of ``new`` that earlier
    frames showed mirror-filled; ``share`` is the crops' share of the frame."""

    new: np.ndarray
    fill: np.ndarray
    boxes: list = field(default_factory=list)
    share: float = 0.0
    cut: bool = False
    whole: bool = False
    extend: np.ndarray | None = None  # None: no strip waits (all False)
    pending: np.ndarray | None = None  # None: nothing waits
    waited: np.ndarray | None = None  # None: none

    def __post_init__(self):
        for name in ("extend", "pending", "waited"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros_like(self.new))


def _span(a0: int, a1: int, n: int, least: int) -> tuple[int, int]:
    """[a0, a1) clipped to [0, n), then widened to ``least`` (or n) within it: a crop at the frame's
    edge grows inwards, so it keeps its octaves."""
    a0, a1 = max(0, int(a0)), min(n, int(a1))
    short = min(least, n) - (a1 - a0)
    if short > 0:
        a0 = max(0, a0 - short // 2)
        a1 = min(n, a0 + min(least, n))
        a0 = max(0, a1 - min(least, n))
    return a0, a1


def reuse_plan(mask: np.ndarray, video: VideoSettings, min_side: int = 32, change: float = 0.0,
               flow: np.ndarray | None = None, index: int = 0, pending: np.ndarray | None = None) -> ReusePlan:
    """Which parts of frame ``index`` to dream, from its flow ``mask`` (1 where the previous frame
    saw the pixel) and ``flow`` (this frame -> previous; None: no pixel counts as entering the frame).

    New pixels are those the mask rejects. Content entering at an edge (its flow leads outside the
    previous frame) is dreamed in a band every ``video.enter_every`` frames (frame indices that are
    multiples of it): the band holds what entered since the last one, so one crop serves several
    frames' strips; in between, the strip (``extend``) gets the carried dream next to it mirrored
    in (a render shows the band's dream there instead, see :meth:`VideoStepper.settle`). Filled
    frame after frame it would smear into streaks, so it is never left longer than that. New
    content inside the frame (what a moving object uncovers) waits for the band the same way when
    it lies within :data:`FILL_REACH` of the carried dream. ``pending`` (H, W bool) marks the
    waiting pixels the previous frames left, carried onto this frame; a band frame dreams them,
    and so does any frame that dreams at all (its crops are paid for anyway). Of the rest, slivers
    thinner than ``video.sliver`` (a morphological opening; mostly the flow's own noise) are filled
    from the carried dream around them, not dreamed.
    What is dreamed, grown by :data:`FEATHER`, is boxed on a grid of :data:`CELL` pixels, each box
    with ``video.context`` pixels around it and at least ``min_side`` a side; two boxes whose union
    costs no more than both are merged.
    """
    import cv2

    from .flow import lands_inside

    new = mask < 0.5
    h, w = new.shape
    share = float(new.mean())
    if share > video.cut or change > video.cut:
        return ReusePlan(new, np.zeros_like(new), [(0, h, 0, w)], 1.0, cut=True)
    entering = np.zeros_like(new)
    if flow is not None:
        # Half a pixel of slack: a still border's flow wobbles by a fraction of a pixel either way.
        entering = new & ~lands_inside(flow, 0.5)
    # Waiting content stays waiting though the mask rejects it again (the flow check is unsure a row
    # or two from the frame's edge): taken for a sliver it was filled and carried, never dreamed.
    waiting = np.zeros_like(new) if pending is None else pending
    rejected = new & ~entering & ~waiting
    kept = rejected
    if video.sliver > 1 and rejected.any():
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (video.sliver, video.sliver))
        kept = cv2.morphologyEx(rejected.astype(np.uint8), cv2.MORPH_OPEN, disc, borderType=cv2.BORDER_CONSTANT,
                                borderValue=0).astype(bool)
    extend = np.zeros_like(new)
    k = max(1, int(getattr(video, "enter_every", 1)))
    if k > 1 and flow is not None:
        if index % k:
            # Filled below, with the slivers, and dreamed in the next band; unless some of it lies too
            # far from the carried dream to fill (a fast move, a large uncovered area): then all of
            # it is dreamed now, the crops well used anyway.
            wait = entering | kept
            far = cv2.distanceTransform((wait | waiting).astype(np.uint8), cv2.DIST_L2, 3).max()
            if wait.any() and far <= FILL_REACH:
                extend, entering, kept = wait, np.zeros_like(new), np.zeros_like(new)
    dreamt = entering | kept
    if dreamt.any() or not index % k:
        dreamt = dreamt | waiting  # until now mirror-filled
    fill = new & ~dreamt & ~extend & ~waiting
    later = (extend | waiting) & ~dreamt
    if not dreamt.any():
        return ReusePlan(dreamt, fill, extend=extend, pending=later)
    grown = cv2.dilate(dreamt.astype(np.uint8), np.ones((2 * FEATHER + 1,) * 2, np.uint8)).astype(bool)
    # Rectangles of CELL-pixel cells holding new pixels, runs per row of cells stacked while they line
    # up: an L of content entering at two edges becomes two strips, not the box around both.
    ch, cw = -(-h // CELL), -(-w // CELL)
    cells = np.zeros((ch * CELL, cw * CELL), bool)
    cells[:h, :w] = grown
    cells = cells.reshape(ch, CELL, cw, CELL).any(axis=(1, 3))
    rects, open_ = [], {}
    for r in range(ch):
        row = np.flatnonzero(np.diff(np.r_[0, cells[r].astype(np.int8), 0]))
        runs = set(zip(row[::2], row[1::2]))
        for span in list(open_):
            if span not in runs:
                rects.append((open_.pop(span), r) + span)
        for span in runs:
            open_.setdefault(span, r)
    rects += [(r0, ch) + span for span, r0 in open_.items()]
    pad, boxes = video.context, []
    for r0, r1, c0, c1 in rects:
        y0, y1 = _span(r0 * CELL - pad, min(h, r1 * CELL) + pad, h, min_side)
        x0, x1 = _span(c0 * CELL - pad, min(w, c1 * CELL) + pad, w, min_side)
        boxes.append((y0, y1, x0, x1))

    def area(b):
        return (b[1] - b[0]) * (b[3] - b[2])

    merged = True
    while merged:  # two crops whose bounding box costs no more than both together become one
        merged = False
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                p, q = boxes[a], boxes[b]
                u = (min(p[0], q[0]), max(p[1], q[1]), min(p[2], q[2]), max(p[3], q[3]))
                if area(u) <= area(p) + area(q):
                    boxes[a] = u
                    del boxes[b]
                    merged = True
                    break
            if merged:
                break
    share = sum(area(b) for b in boxes) / float(h * w)
    return ReusePlan(dreamt, fill, sorted(boxes), share, whole=share > CROP_LIMIT, extend=extend, pending=later,
                     waited=waiting & dreamt)


def pack_crops(boxes: list[tuple[int, int, int, int]], width: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Places crops ``(y0, y1, x0, x1)`` side by side on one canvas, in rows at most ``width`` px
    wide (or the widest crop), tallest first, with :data:`CANVAS_GAP` px between them. Returns the
    canvas ``(height, width)`` and each crop's top-left corner on it, in the order given."""
    order = sorted(range(len(boxes)), key=lambda k: -(boxes[k][1] - boxes[k][0]))
    width = max([width] + [b[3] - b[2] for b in boxes])
    spots: list = [None] * len(boxes)
    y = x = row = cw = 0
    for k in order:
        bh, bw = boxes[k][1] - boxes[k][0], boxes[k][3] - boxes[k][2]
        if x and x + CANVAS_GAP + bw > width:
            y, x, row = y + row + CANVAS_GAP, 0, 0
        x += CANVAS_GAP if x else 0
        spots[k] = (y, x)
        x += bw
        row, cw = max(row, bh), max(cw, x)
    return (y + row, cw), spots


def crop_side(min_side: float, settings: DreamSettings) -> int:
    """The smallest side of a crop of new content: room for all its octaves. A crop of one octave
    dreams about half as strongly as a whole frame there (MobileNetV2 at 192x108, the right edge: a
    32 px wide crop 6.0, 48 px 8.4, 64 px 10.5, the whole frame 10.5 mean |dream - source|), and
    one of two octaves only fine patterns: a pan's entering band, dreamed in a 45 px crop, filled
    the frame with thin stripes where a whole frame dreams eyes and animals."""
    return int(np.ceil(min_side * settings.octave_scale ** (settings.octaves - 1)))


def growth(flow: np.ndarray) -> float:
    """How much a frame's content grew since the previous frame, on average (0.012: 1.2% larger, as
    in a zoom-in; 0 when it shrank or kept its size), from the Jacobian of x -> x + ``flow``
    (HxWx2, this frame -> previous, smoothed over 4 px)."""
    import cv2

    f = cv2.GaussianBlur(flow, (0, 0), 4.0)
    fx_y, fx_x = np.gradient(f[..., 0])
    fy_y, fy_x = np.gradient(f[..., 1])
    det = (1.0 + fx_x) * (1.0 + fy_y) - fx_y * fy_x
    return max(0.0, float(np.mean(1.0 / np.sqrt(np.clip(det, 0.25, None)) - 1.0)))


def upkeep_steps(video: VideoSettings, grown: float, blend: float = 1.0, steps: int = DreamSettings.steps) -> int:
    """Upkeep steps of a frame whose content grew by ``grown`` (see :func:`growth`): the fixed
    ``video.upkeep_steps``, plus, in a zoom-in, the fine detail that magnifying the carried dream
    blurs (:data:`DETAIL_PER_PCT` full steps per 1%), plus, where ``blend`` < 1 lets the carried
    dream fade (a preset's refresh on the beat), ``1 - blend`` of the frame's ``steps`` per octave
    to dream it back; all at the upkeep's step size."""
    if not video.upkeep_step:
        return 0
    detail = round(max(0.0, grown - GROWTH_FLOOR) * 100 * DETAIL_PER_PCT / video.upkeep_step)
    refresh = np.ceil(max(0.0, 1.0 - blend) * steps / video.upkeep_step)  # any fade gets some
    return video.upkeep_steps + int(min(detail + refresh, 4 * DreamSettings.steps))


def mirror_fill(residual: np.ndarray, fill: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``residual`` (H, W, 3 float32) with each ``fill`` pixel p taken from the mirror image of p
    across its nearest ``known`` pixel q (2q - p; q itself where that is not known). Unlike a
    blur, the strip gets the dream's own texture and strength, so it neither pales nor smears."""
    from .flow import nearest_known

    if not fill.any() or not known.any():
        return residual
    h, w = fill.shape
    py, px = np.nonzero(fill)
    qy, qx = nearest_known(known, fill)
    my, mx = np.clip(2 * qy - py, 0, h - 1), np.clip(2 * qx - px, 0, w - 1)
    ok = known[my, mx]
    out = residual.copy()
    out[py, px] = residual[np.where(ok, my, qy), np.where(ok, mx, qx)]
    return out


class VideoStepper:
    """The :class:`~dreamvideo.render.Stepper` of a video: dreams frames in order, each starting
    from the previous frame's dream (see :func:`coherent_start`); in flow mode only what is new
    gets the full dream (see the module's docstring). ``timing`` sums seconds per part of the work
    (``new``: dreaming new content and cuts, ``upkeep``, ``composite``: warping, masks, blending);
    ``last`` is the :class:`ReusePlan` of the last frame (None for a whole-frame dream)."""

    def __init__(self, dreamer, dream: DreamSettings, video: VideoSettings, timeline: Timeline, seed: int):
        self.dreamer, self.dream_settings, self.video, self.tl, self.seed = dreamer, dream, video, timeline, seed
        self.prev_src = self.prev_dream = None
        self.first_index = 0
        self.timing = {"new": 0.0, "upkeep": 0.0, "composite": 0.0}
        self.last = None
        self.pending = None  # (H, W) bool: content waiting for a band (ReusePlan.pending), or None
        self._planned = None  # (frame index, ReusePlan) of the last frame planned
        self._held = []  # (index, source, image, pending) of frames shown before what waits was dreamed
        self._flow = None  # FlowEstimator of the back-fill (see settle)

    def _reuses(self, frame: SourceFrame) -> bool:
        return (self.video.coherence == "flow" and not self.video.full_frames and self.prev_dream is not None
                and frame.flow is not None and frame.mask is not None and self.tl.value("blend", frame.index) > 0)

    def dream(self, frame: SourceFrame) -> np.ndarray:
        i, src = frame.index, frame.image
        self.last = None
        if self._reuses(frame):
            return self._reuse(frame)
        t = time.perf_counter()
        start = coherent_start(self.video.coherence, src, self.prev_src, self.prev_dream,
                               self.tl.value("blend", i), frame.flow, frame.mask)
        step_map = None
        if start is not None and frame.mask is not None:
            # The carried dream only needs upkeep; pixels the previous frame did not show dream afresh.
            step_map = self.video.carry_step + (1.0 - self.video.carry_step) * (1.0 - frame.mask)
        t1 = time.perf_counter()
        first = i == self.first_index and self.video.first_steps
        out = self.dreamer.dream(src, start, self.tl.settings(self.dream_settings, i), seed=frame_seed(self.seed, i),
                                 weights=self.tl.weights(i), step_map=step_map,
                                 steps=self.video.first_steps if first else None)
        self.timing["composite"] += t1 - t
        self.timing["new"] += time.perf_counter() - t1
        return out

    def _plan(self, frame: SourceFrame) -> tuple[np.ndarray, ReusePlan]:
        """(trusted flow, plan) of a reusing frame; remembered for :meth:`keep`."""
        from .flow import explained, warp

        src = frame.image
        flow, mask = explained(frame.flow, frame.mask, self.prev_src, src)
        pending = None
        if self.pending is not None and self.pending.any():
            # A quarter's overlap (and where the flow leads outside, the border's, which the warp
            # repeats): optical flow errs a row or two from the frame's edge, and a waiting pixel it
            # lost was carried on as a known one, its mirror streaking for good.
            pending = warp(self.pending.astype(np.float32), flow) > 0.25
        settings = self.tl.settings(self.dream_settings, frame.index)
        plan = reuse_plan(mask, self.video, self._crop_side(settings, src.shape[:2]),
                          color_change(self.prev_src, src), flow, frame.index, pending)
        self._planned = (frame.index, plan)
        return flow, plan

    def _reuse(self, frame: SourceFrame) -> np.ndarray:
        from .flow import warp

        i, src, v = frame.index, frame.image, self.video
        settings, weights, seed = self.tl.settings(self.dream_settings, i), self.tl.weights(i), frame_seed(self.seed, i)
        t0 = time.perf_counter()
        h, w = src.shape[:2]
        flow, plan = self._plan(frame)
        self.last = plan
        if plan.cut:
            self.timing["composite"] += time.perf_counter() - t0
            t1 = time.perf_counter()
            out = self.dreamer.dream(src, None, settings, seed=seed, weights=weights)
            self.timing["new"] += time.perf_counter() - t1
            return out
        src_f = src.astype(np.float32)
        before = self.prev_dream.astype(np.float32) - self.prev_src.astype(np.float32)
        if self.pending is not None and self.pending.any():
            # What the previous frame shows where content waits (a mirror, or the band's dream that
            # settle puts back) never reaches this frame, not even through the bicubic kernel: a
            # render resumed from any shown frame makes the same bytes.
            before = mirror_fill(before, self.pending, ~self.pending)
        residual = warp(before, flow, cubic=True)
        known = ~(plan.new | plan.fill | plan.pending)
        # Slivers and waiting strips get the carried dream's own texture; a blur would pale them, and
        # a pale sliver is carried on and paled again. Not from what was filled before: a fill of a
        # fill smears. Waiting pixels get it afresh each frame.
        residual = mirror_fill(residual, plan.fill | plan.pending, known)
        # New content, a band's strips too, is dreamed from its source: started from the dream mirrored
        # into a strip, the band dreamed the mirror's stripes up, stronger each band. Magnified dream
        # is stale detail: it fades faster.
        carried = ~plan.new
        grown, blend = growth(flow), self.tl.value("blend", i)
        keep = blend * max(0.0, 1.0 - GROWTH_FADE * grown)
        start = np.clip(src_f + keep * carried[..., None] * residual, 0, 255)
        if plan.whole:  # as a full frame: new content gets every octave and step, the carried dream upkeep
            step_map = v.carry_step + (1.0 - v.carry_step) * plan.new.astype(np.float32)
            self.timing["composite"] += time.perf_counter() - t0
            t1 = time.perf_counter()
            out = self.dreamer.dream(src, start, settings, seed=seed, weights=weights, step_map=step_map)
            self.timing["new"] += time.perf_counter() - t1
            return out
        self.timing["composite"] += time.perf_counter() - t0
        t1 = time.perf_counter()
        ups = upkeep_steps(v, grown, blend, settings.steps)
        if ups and settings.steps and settings.step_size:
            kept = self.dreamer.dream(src, start, replace(settings, octaves=1, steps=ups,
                                                          step_size=settings.step_size * v.upkeep_step),
                                      seed=seed, weights=weights).astype(np.float32)
        else:
            kept = np.rint(start)
        self.timing["upkeep"] += time.perf_counter() - t1
        if not plan.boxes:
            return kept.astype(np.uint8)
        return self._dream_new(src, start, kept, plan, settings, seed, weights)

    def _dream_new(self, src, start, kept, plan: ReusePlan, settings, seed, weights) -> np.ndarray:
        """The frame ``kept`` (H x W x 3 float32: the carried dream after upkeep) with ``plan``'s new
        content dreamed in its boxes from ``start`` (the new pixels' source, the carried dream around
        them) and feathered in."""
        import cv2

        v, w = self.video, src.shape[1]
        t2 = time.perf_counter()
        # Crops start from the upkept dream, so the context they continue is the one they are blended into.
        kept_start = np.where(plan.new[..., None], start, kept)
        step_map = v.carry_step + (1.0 - v.carry_step) * plan.new.astype(np.float32)
        # All crops in one dream, side by side on a canvas: a dream's steps cost a floor however
        # small the image, so two crops in one call cost little more than one; unless they pack
        # badly (a pan's right and bottom bands), then each alone.
        (ch, cw), spots = pack_crops(plan.boxes, w)
        if ch * cw <= CANVAS_WASTE * sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in plan.boxes):
            calls = [((ch, cw), list(zip(plan.boxes, spots)))]
        else:
            calls = [((b[1] - b[0], b[3] - b[2]), [(b, (0, 0))]) for b in plan.boxes]
        dreamt = []
        for (ch, cw), parts in calls:
            canvas = [np.full((ch, cw, 3), 128, np.uint8), np.full((ch, cw, 3), 128.0, np.float32),
                      np.zeros((ch, cw), np.float32)]
            for (y0, y1, x0, x1), (cy, cx) in parts:
                for c, part in zip(canvas, (src, kept_start, step_map)):
                    c[cy:cy + y1 - y0, cx:cx + x1 - x0] = part[y0:y1, x0:x1]
            whole = self.dreamer.dream(canvas[0], canvas[1], settings, seed=seed, weights=weights,
                                       step_map=canvas[2])
            dreamt += [whole[cy:cy + y1 - y0, cx:cx + x1 - x0] for (y0, y1, x0, x1), (cy, cx) in parts]
        t3 = time.perf_counter()
        self.timing["new"] += t3 - t2
        # Feathered: full weight on new pixels, fading to 0 over FEATHER px into the carried dream.
        # Content that waited too: faded in from the mirror it showed instead, the background that
        # moving objects uncover again and again lost its dream (objects clip, 100 frames: strength
        # 11.4 -> 9.6 over the clip against 11.5 -> 10.8).
        dist = cv2.distanceTransform((~plan.new).astype(np.uint8), cv2.DIST_L2, 3)
        alpha = np.clip(1.0 - dist / FEATHER, 0.0, 1.0)
        out = kept
        for (y0, y1, x0, x1), d in zip(plan.boxes, dreamt):
            a = alpha[y0:y1, x0:x1, None]
            out[y0:y1, x0:x1] = a * d + (1.0 - a) * out[y0:y1, x0:x1]
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        self.timing["composite"] += time.perf_counter() - t3
        return out

    def keep(self, frame: SourceFrame, out: np.ndarray) -> None:
        reuses = self._reuses(frame)
        if reuses and (self._planned is None or self._planned[0] != frame.index):
            self._plan(frame)  # a resumed frame: what it left waiting is rebuilt exactly (see flow_from)
        self.pending = self._planned[1].pending if reuses else None
        self.prev_src, self.prev_dream = frame.image, out

    def settle(self, frame: SourceFrame, out: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """The frames final once ``frame`` (dreamed as ``out``, then kept) is: ``(index, image)`` in
        order, maybe none. A frame that shows content waiting for a band (mirror-filled, see
        :func:`reuse_plan`) is held until a frame dreams that content; then that dream, warped back
        onto each held frame, replaces the mirror there (see :func:`back_fill`): new content shows its
        dream from the frame it enters on, and the band does not pop. Only the waiting pixels of the
        images shown change, and what a frame shows there never reaches the next one, so a render
        resumed from any saved frame makes the same bytes. A cut (or a frame dreamed whole, without
        reuse) releases the held frames as they are: nothing the same is dreamed there."""
        if self.pending is not None and self.pending.any():
            self._held.append((frame.index, frame.image, out, self.pending))
            return []
        held, self._held = self._held, []
        plan = self.last  # None: not a reusing frame
        if held and plan is not None and not plan.cut and plan.waited.any():
            return self._back_fill(held, frame.image, out) + [(frame.index, out)]
        return [(j, img) for j, _, img, _ in held] + [(frame.index, out)]

    def _crop_side(self, settings: DreamSettings, shape: tuple[int, int]) -> int:
        """The smallest crop of new content in a frame of ``shape`` (H, W): room for every octave
        (:func:`crop_side`; a frame the model upscales, its crops too), at most the frame."""
        h, w = shape
        grow = max(1.0, self.dreamer.model.min_side / min(h, w))
        return min(crop_side(self.dreamer.model.min_side / grow, settings), h, w)

    def _back_fill(self, held: list, src: np.ndarray, out: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``(index, image)`` of the ``held`` frames with what waited taken from ``out`` (see :func:`back_fill`)."""
        t = time.perf_counter()
        done = [(j, back_fill(self._estimator(), s, img, waits, src, out)) for j, s, img, waits in held]
        self.timing["composite"] += time.perf_counter() - t
        return done

    def _estimator(self):
        if self._flow is None:
            from .flow import FlowEstimator

            self._flow = FlowEstimator(self.video.flow)
        return self._flow

    def drain(self) -> list[tuple[int, np.ndarray]]:
        """The frames still held (see :meth:`settle`) when the frames end: the last of them dreams
        what waits there, as a band would, and the ones before show it."""
        held, self._held = self._held, []
        if not held:
            return []
        t = time.perf_counter()
        j, src, img, waits = held[-1]
        settings = self.tl.settings(self.dream_settings, j)
        # Nothing new, nothing entering, the waiting pixels on a band frame (index 0): they alone, boxed.
        plan = reuse_plan(np.ones(waits.shape, np.float32), self.video, self._crop_side(settings, waits.shape),
                          pending=waits)
        shown = img.astype(np.float32)
        start = np.where(plan.new[..., None], src.astype(np.float32), shown)
        self.timing["composite"] += time.perf_counter() - t
        last = self._dream_new(src, start, shown, plan, settings, frame_seed(self.seed, j),
                               self.tl.weights(j))
        return self._back_fill(held[:-1], src, last) + [(j, last)]


def back_fill(est, src: np.ndarray, image: np.ndarray, waits: np.ndarray, later_src: np.ndarray,
              later: np.ndarray) -> np.ndarray:
    """``image`` (a frame as first dreamed, of source ``src``; H x W x 3 uint8) with its ``waits``
    pixels (H, W bool: mirror-filled while they waited) taken from the later frame that dreamed them
    (``later``, of source ``later_src``): its residual, warped back by the flow from this frame to it
    (``est``: a :class:`~dreamvideo.flow.FlowEstimator`). Where that flow is not trusted (the content
    left the frame, or was covered, by then) the mirror stays. Only ``waits`` pixels change."""
    from .flow import explained, warp

    flow, mask = est.pair(later_src, src)
    flow, mask = explained(flow, mask, later_src, src)
    take = waits & (mask >= 0.5)
    if not take.any():
        return image
    residual = warp(later.astype(np.float32) - later_src.astype(np.float32), flow, cubic=True)
    out = image.copy()
    out[take] = np.clip(np.rint(src.astype(np.float32)[take] + residual[take]), 0, 255).astype(np.uint8)
    return out


def flow_from(done: int, video: VideoSettings) -> int:
    """The first frame whose flow a render resumed at frame ``done`` needs: content left waiting for
    a band (:func:`reuse_plan`'s ``pending``) goes back to the last band frame, whose dream cleared
    it, so the frames since then are planned again (not dreamed) and the resumed render makes the
    same bytes."""
    k = max(1, int(video.enter_every))
    if video.coherence != "flow" or video.full_frames or k == 1 or done <= 0:
        return done
    return (done - 1) // k * k + 1
