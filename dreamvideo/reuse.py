"""Temporal reuse of a video's dream: a frame dreams only what is new in it (numpy and OpenCV, no model).

Glossary (one word per idea, here and in the code, docstrings, README and tests):

- **carried**: dream the previous frame had, its residual (dream - source) warped onto this frame by
  optical flow. It is kept as it is: each re-dream moves it, which shows as shimmer.
- **new**: pixels the flow check rejects (disoccluded, entering the frame, after a cut), less those
  the flow around them explains (:func:`dreamvideo.flow.explained`) and thin slivers (*fill*:
  given the carried dream around them mirrored in, :func:`mirror_fill`). New content is dreamed
  in full (every octave and step) in crops with ``context`` pixels of carried dream around it
  (:func:`box_regions`, several crops on one canvas: :func:`pack_crops`), and feathered in.
- **waiting**: new content left for the next band (content entering at the frame's edges, and
  what a moving object uncovers, when it lies within :data:`FILL_REACH` of the carried dream),
  mirror-filled until then.
- **band**: a frame whose index is a multiple of ``enter_every``; it dreams everything waiting in one
  crop (a crop costs about the same however thin the strip). Any frame that dreams crops anyway
  takes what waits along.
- **held**: a frame that shows waiting content is held back (:class:`HeldFrames`) until a frame
  dreams that content; that dream, warped back onto it (:func:`back_fill`), replaces the mirror
  there, so new content shows its dream from the frame it appears on and the band does not pop.
- **upkeep**: steps at the finest octave that re-dream the carried dream (:func:`upkeep_steps`): in a
  zoom-in the fine detail magnifying it blurs, with a blend below 1 what it fades, and the fixed
  ``upkeep_steps``.
- **cut**: most of the frame new, or its colours changed (:func:`color_change`): dreamed afresh.

:func:`plan_frame` is the per-frame planner, used by the render and by ``plan``'s estimate alike; its
result is a :class:`ReusePlan`. What one frame hands the next is a :class:`ReuseState`.

Exact resume: a frame's dream depends on its source, the previous source and kept image, what was
waiting, and its seed. What a frame shows where content waits never reaches the next frame (the
carried residual is mirror-filled there first), so a resumed render needs no held frame; and what
waits is a function of the sources alone, cleared at every band. So a render resumed at frame
``done`` plans again (not dreams) the frames from :func:`rebuild_from` on, and makes the same bytes.

Convention: frames are ``H x W x 3`` uint8 RGB; flow is (H, W, 2) float32 pixels from the current frame
to the previous one; masks are (H, W) float32 in 0..1 (1 where the previous frame saw the pixel) or
bool; boxes are ``(y0, y1, x0, x1)``, half-open, in pixels.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from .settings import DreamSettings, VideoSettings

#: Above this share of the frame in crops, one whole-frame dream (step-mapped) is cheaper than crops.
CROP_LIMIT = 0.6
#: Pixels over which a dreamed crop fades into the carried dream around it.
FEATHER = 4
#: New content is boxed on a grid of CELL x CELL pixels.
CELL = 8
#: Pixels of flat grey between crops dreamed on one canvas (see :func:`pack_crops`).
CANVAS_GAP = 8
#: Crops share a canvas only if it is at most this many times their area (bench/RESULTS.md, "Temporal
#: reuse: its parameters"): a dream's cost has a floor however small the image.
CANVAS_WASTE = 1.5
#: Full-size steps at the finest octave that a zoom-in's carried dream gets per 1% its content grew
#: (bench/RESULTS.md, "Temporal reuse: its parameters").
DETAIL_PER_PCT = 0.7
#: A zoom-in's carried dream fades by this times its growth a frame, on top of ``blend``: the
#: magnified patterns make way for the fine detail dreamed into them.
GROWTH_FADE = 1.0
#: Growth the flow's own noise shows on a pan (the frame's mean, 0.07%), with a margin: below it, none.
GROWTH_FLOOR = 0.002
#: Pixels: new content waits for the band only if none of it lies farther than this from the carried
#: dream; beyond it the flow back from the band is less sure to find it, and where it does not the
#: mirror shows. 30 lets a camera panning 3 px a frame wait the 10 frames to a band (bench/RESULTS.md,
#: "Temporal reuse: its parameters").
FILL_REACH = 30


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
    dream of the whole frame (new content too large for crops). Otherwise ``boxes`` are dreamed in
    full inside the carried dream, ``share`` their share of the frame. Masks, (H, W) bool: ``new``
    the pixels dreamed anew; ``fill`` the slivers mirror-filled from the carried dream;
    ``waiting`` the pixels left waiting for a band after this frame, of which ``starts_waiting``
    started on this frame; ``was_waiting`` those of ``new`` that earlier frames showed mirror-filled
    (held frames get them back-filled from this frame)."""

    new: np.ndarray
    fill: np.ndarray
    boxes: list = field(default_factory=list)
    share: float = 0.0
    cut: bool = False
    whole: bool = False
    starts_waiting: np.ndarray | None = None  # None: all False
    waiting: np.ndarray | None = None  # None: all False
    was_waiting: np.ndarray | None = None  # None: all False

    def __post_init__(self):
        for name in ("starts_waiting", "waiting", "was_waiting"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros_like(self.new))


# ---------------------------------------------------------------- which pixels are carried, new, waiting

def classify(mask: np.ndarray, video: VideoSettings, change: float = 0.0, flow: np.ndarray | None = None,
             index: int = 0, waiting: np.ndarray | None = None) -> ReusePlan:
    """The pixels of frame ``index``, from its flow ``mask`` and ``flow`` (None: no pixel counts as
    entering the frame), as a :class:`ReusePlan` without boxes: carried, new, fill or waiting.

    New pixels are those the mask rejects. Content entering at an edge (its flow leads outside the
    previous frame) waits for the band (frame indices that are multiples of ``video.enter_every``),
    so one crop serves several frames' strips; mirror-filled frame after frame it would smear into
    streaks, so it never waits longer. New content inside the frame (what a moving object
    uncovers) waits the same way when it lies within :data:`FILL_REACH` of the carried dream.
    ``waiting`` (H, W bool) is what the previous frames left waiting, carried onto this frame
    (:func:`carry_waiting`); a band frame dreams it, and so does any frame that dreams at all (its
    crops are paid for anyway). Of the rest, slivers thinner than ``video.sliver`` (a morphological
    opening; mostly the flow's own noise) are filled, not dreamed. ``change`` (:func:`color_change`)
    or the new share above ``video.cut``: a cut.
    """
    import cv2

    from .flow import lands_inside

    new = mask < 0.5
    h, w = new.shape
    none = np.zeros_like(new)
    if float(new.mean()) > video.cut or change > video.cut:
        return ReusePlan(new, none, [(0, h, 0, w)], 1.0, cut=True)
    entering = none
    if flow is not None:
        # Half a pixel of slack: a still border's flow wobbles by a fraction of a pixel either way.
        entering = new & ~lands_inside(flow, 0.5)
    # Waiting content stays waiting though the mask rejects it again (the flow check is unsure a row
    # or two from the frame's edge): taken for a sliver it was filled and carried, never dreamed.
    waiting = none if waiting is None else waiting
    rejected = new & ~entering & ~waiting
    solid = rejected
    if video.sliver > 1 and rejected.any():
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (video.sliver, video.sliver))
        solid = cv2.morphologyEx(rejected.astype(np.uint8), cv2.MORPH_OPEN, disc, borderType=cv2.BORDER_CONSTANT,
                                 borderValue=0).astype(bool)
    starts = none
    k = max(1, int(video.enter_every))
    if k > 1 and flow is not None and index % k:
        # Left to the next band; unless some of it lies too far from the carried dream to fill (a fast
        # move, a large uncovered area): then all of it is dreamed now, the crops well used anyway.
        wait = entering | solid
        far = cv2.distanceTransform((wait | waiting).astype(np.uint8), cv2.DIST_L2, 3).max()
        if wait.any() and far <= FILL_REACH:
            starts, entering, solid = wait, none, none
    dreamt = entering | solid
    if dreamt.any() or not index % k:
        dreamt = dreamt | waiting  # until now mirror-filled
    return ReusePlan(dreamt, new & ~dreamt & ~starts & ~waiting, starts_waiting=starts,
                     waiting=(starts | waiting) & ~dreamt, was_waiting=waiting & dreamt)


# ---------------------------------------------------------------- boxes around new content

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


def area(box) -> int:
    return (box[1] - box[0]) * (box[3] - box[2])


def merge_boxes(boxes: list) -> list:
    """``boxes`` with any two whose bounding box costs no more than both together merged, until none are."""
    boxes = list(boxes)
    merged = True
    while merged:
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
    return boxes


def box_regions(dreamt: np.ndarray, context: int, min_side: int) -> list:
    """Boxes around the ``dreamt`` pixels (H, W bool), sorted: what is dreamed, grown by
    :data:`FEATHER`, boxed on a grid of :data:`CELL` pixels, each box with ``context`` pixels around
    it and at least ``min_side`` a side (:func:`smallest_crop`), then merged (:func:`merge_boxes`)."""
    import cv2

    h, w = dreamt.shape
    reach = cv2.dilate(dreamt.astype(np.uint8), np.ones((2 * FEATHER + 1,) * 2, np.uint8)).astype(bool)
    # Rectangles of CELL-pixel cells holding new pixels, runs per row of cells stacked while they line
    # up: an L of content entering at two edges becomes two strips, not the box around both.
    ch, cw = -(-h // CELL), -(-w // CELL)
    cells = np.zeros((ch * CELL, cw * CELL), bool)
    cells[:h, :w] = reach
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
    boxes = []
    for r0, r1, c0, c1 in rects:
        y0, y1 = _span(r0 * CELL - context, min(h, r1 * CELL) + context, h, min_side)
        x0, x1 = _span(c0 * CELL - context, min(w, c1 * CELL) + context, w, min_side)
        boxes.append((y0, y1, x0, x1))
    return sorted(merge_boxes(boxes))


def reuse_plan(mask: np.ndarray, video: VideoSettings, min_side: int = 32, change: float = 0.0,
               flow: np.ndarray | None = None, index: int = 0, waiting: np.ndarray | None = None) -> ReusePlan:
    """What frame ``index`` dreams: its pixels classified (:func:`classify`), the new ones boxed
    (:func:`box_regions`); a frame whose boxes cover more than :data:`CROP_LIMIT` of it is dreamed
    whole."""
    plan = classify(mask, video, change, flow, index, waiting)
    if plan.cut or not plan.new.any():
        return plan
    plan.boxes = box_regions(plan.new, video.context, min_side)
    plan.share = sum(area(b) for b in plan.boxes) / float(plan.new.size)
    plan.whole = plan.share > CROP_LIMIT
    return plan


def carry_waiting(waiting: np.ndarray | None, flow: np.ndarray) -> np.ndarray | None:
    """What waited on the previous frame, moved onto this one by ``flow``; None: nothing waits."""
    from .flow import warp

    if waiting is None or not waiting.any():
        return None
    # A quarter's overlap (and where the flow leads outside, the border's, which the warp repeats):
    # optical flow errs a row or two from the frame's edge, and a waiting pixel it lost was carried
    # on as a carried one, its mirror streaking for good.
    return warp(waiting.astype(np.float32), flow) > 0.25


def plan_frame(prev_src: np.ndarray, waiting: np.ndarray | None, src: np.ndarray, flow: np.ndarray,
               mask: np.ndarray, index: int, video: VideoSettings, min_side: int) -> tuple[np.ndarray, ReusePlan]:
    """The per-frame planner: (trusted flow, :class:`ReusePlan`) of frame ``index`` (source ``src``,
    its ``flow`` and ``mask`` to the previous frame, whose source was ``prev_src`` and which left
    ``waiting``), with crops at least ``min_side`` a side (:func:`smallest_crop`). It depends on the
    sources alone, never on a dream."""
    from .flow import explained

    flow, mask = explained(flow, mask, prev_src, src)
    plan = reuse_plan(mask, video, min_side, color_change(prev_src, src), flow, index,
                      carry_waiting(waiting, flow))
    return flow, plan


# ---------------------------------------------------------------- crops, upkeep, fills

def pack_crops(boxes: list[tuple[int, int, int, int]], width: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Places crops side by side on one canvas, in rows at most ``width`` px wide (or the widest
    crop), tallest first, with :data:`CANVAS_GAP` px between them. Returns the canvas ``(height,
    width)`` and each crop's top-left corner on it, in the order given."""
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


def canvases(boxes: list, width: int, cost=None) -> list:
    """The dream calls that dream ``boxes``: ``[((height, width), [(box, (y, x) on the canvas), ...]), ...]``.
    All on one canvas (:func:`pack_crops`) or each alone, whichever costs less: by ``cost`` ((height,
    width) -> seconds of one dream of that size, the measured curve of :mod:`dreamvideo.cost`) when
    given, else by :data:`CANVAS_WASTE` (two crops in one call cost little more than one, unless they
    pack badly: a pan's right and bottom bands)."""
    (ch, cw), spots = pack_crops(boxes, width)
    alone = [((b[1] - b[0], b[3] - b[2]), [(b, (0, 0))]) for b in boxes]
    if cost is not None:
        one = cost((ch, cw))
        return [((ch, cw), list(zip(boxes, spots)))] if len(boxes) == 1 or one <= sum(cost(hw) for hw, _ in alone) \
            else alone
    if ch * cw <= CANVAS_WASTE * sum(area(b) for b in boxes):
        return [((ch, cw), list(zip(boxes, spots)))]
    return alone


def crop_side(min_side: float, settings: DreamSettings) -> int:
    """The smallest side of a crop of new content: room for all its octaves (a crop of fewer octaves
    dreams weakly and in fine stripes: bench/RESULTS.md, "Temporal reuse: its parameters")."""
    return int(np.ceil(min_side * settings.octave_scale ** (settings.octaves - 1)))


def smallest_crop(model_min_side: int, settings: DreamSettings, shape: tuple[int, int]) -> int:
    """The smallest crop of new content in a frame of ``shape`` (H, W) for a model whose input is at
    least ``model_min_side``: room for every octave (:func:`crop_side`; a frame the model upscales,
    its crops too), at most the frame."""
    h, w = shape
    grow = max(1.0, model_min_side / min(h, w))
    return min(crop_side(model_min_side / grow, settings), h, w)


def growth(flow: np.ndarray) -> float:
    """How much a frame's content grew since the previous frame, on average (0.012: 1.2% larger, as
    in a zoom-in; 0 when it shrank or kept its size), from the Jacobian of x -> x + ``flow``
    (smoothed over 4 px)."""
    import cv2

    f = cv2.GaussianBlur(flow, (0, 0), 4.0)
    fx_y, fx_x = np.gradient(f[..., 0])
    fy_y, fy_x = np.gradient(f[..., 1])
    det = (1.0 + fx_x) * (1.0 + fy_y) - fx_y * fy_x
    return max(0.0, float(np.mean(1.0 / np.sqrt(np.clip(det, 0.25, None)) - 1.0)))


def upkeep_steps(video: VideoSettings, grew: float, blend: float = 1.0, steps: int = DreamSettings.steps) -> int:
    """Upkeep steps of a frame whose content grew by ``grew`` (see :func:`growth`): the fixed
    ``video.upkeep_steps``, plus, in a zoom-in, the fine detail that magnifying the carried dream
    blurs (:data:`DETAIL_PER_PCT` full steps per 1%), plus, where ``blend`` < 1 lets the carried
    dream fade (a preset's refresh on the beat), ``1 - blend`` of the frame's ``steps`` per octave
    to dream it back; all at the upkeep's step size."""
    if not video.upkeep_step:
        return 0
    detail = round(max(0.0, grew - GROWTH_FLOOR) * 100 * DETAIL_PER_PCT / video.upkeep_step)
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


def back_fill(est, src: np.ndarray, image: np.ndarray, waiting: np.ndarray, later_src: np.ndarray,
              later: np.ndarray) -> np.ndarray:
    """``image`` (a held frame as first dreamed, of source ``src``) with its ``waiting`` pixels (mirror-
    filled while they waited) taken from the later frame that dreamed them (``later``, of source
    ``later_src``): its residual, warped back by the flow from this frame to it (``est``: a
    :class:`~dreamvideo.flow.FlowEstimator`). Where that flow is not trusted (the content left the
    frame, or was covered, by then) the mirror stays. Only ``waiting`` pixels change."""
    from .flow import explained, warp

    flow, mask = est.pair(later_src, src)
    flow, mask = explained(flow, mask, later_src, src)
    take = waiting & (mask >= 0.5)
    if not take.any():
        return image
    residual = warp(later.astype(np.float32) - later_src.astype(np.float32), flow, cubic=True)
    out = image.copy()
    out[take] = np.clip(np.rint(src.astype(np.float32)[take] + residual[take]), 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------- state, held frames, timing

@dataclass(frozen=True)
class ReuseState:
    """What one frame hands the next: its source ``src``, its image as kept (``dream``, before any
    back-fill) and what it left ``waiting`` for a band ((H, W) bool, or None: nothing, or not a
    reusing frame). Rebuilt on resume from the sources alone: see :func:`rebuild_from`."""

    src: np.ndarray | None = None
    dream: np.ndarray | None = None
    waiting: np.ndarray | None = None

    @property
    def waits(self) -> bool:
        return self.waiting is not None and bool(self.waiting.any())


def last_band(index: int, video: VideoSettings) -> int:
    """The index of the last band frame at or before ``index`` (bands: multiples of ``enter_every``)."""
    k = max(1, int(video.enter_every))
    return index // k * k


def rebuild_from(done: int, video: VideoSettings) -> int:
    """The first frame whose flow a render resumed at frame ``done`` needs to rebuild its
    :class:`ReuseState` exactly: what waits goes back to the last band before ``done``, which cleared
    it, so the frames after that band are planned again (their saved images kept, not dreamed)."""
    if not video.reuses or video.enter_every <= 1 or done <= 0:
        return done
    return last_band(done - 1, video) + 1


@dataclass
class Held:
    """A held frame: its index, source, image as dreamed, and what waits in it."""

    index: int
    src: np.ndarray
    image: np.ndarray
    waiting: np.ndarray


class HeldFrames:
    """The frames held back until what waits in them is dreamed (see the glossary), in order."""

    def __init__(self, flow_method: str):
        self.frames: list[Held] = []
        self._method, self._est = flow_method, None

    def __bool__(self) -> bool:
        return bool(self.frames)

    def hold(self, index: int, src: np.ndarray, image: np.ndarray, waiting: np.ndarray) -> None:
        self.frames.append(Held(index, src, image, waiting))

    def pop_last(self) -> Held:
        return self.frames.pop()

    def release(self, later_src: np.ndarray | None = None, later: np.ndarray | None = None) -> list:
        """``(index, image)`` of every held frame, in order, and none held any more: with what waited
        taken from ``later`` (of source ``later_src``, see :func:`back_fill`), or as they are."""
        held, self.frames = self.frames, []
        if later is None:
            return [(f.index, f.image) for f in held]
        if self._est is None:
            from .flow import FlowEstimator

            self._est = FlowEstimator(self._method)
        return [(f.index, back_fill(self._est, f.src, f.image, f.waiting, later_src, later)) for f in held]


class Timing(dict):
    """Seconds spent per part of the work, summed over frames: ``with timing("new"): ...``."""

    def __init__(self, *parts: str):
        super().__init__({p: 0.0 for p in parts})

    @contextlib.contextmanager
    def __call__(self, part: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self[part] += time.perf_counter() - t
