"""Look before a long render: plot its per-frame curves and dream a few preview frames.

:func:`plan_render` takes exactly the input and options of a video or zoom render and, instead of
rendering, writes a plot of every scheduled curve and audio feature over the timeline (drawn by
:mod:`dreamvideo.plot`) and, on request, a contact sheet of a few frames dreamed small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import guard, io as dio
from .build import build_dreamer, model_min_side, schedule_terms
from .errors import UserError
from .plot import PLOT_EXTS as _PLOT_EXTS
from .jobs import open_video, soundtrack
from .render import TqdmProgress
from .settings import SCHEDULED, check_moving, check_top, split_options, with_blend_default
from .timeline import Timeline, frame_seed
from .infinite import ZoomStepper, song_frames, zoom_start


def plan_output(output) -> Path:
    """Where a plan's plot goes: ``output`` if it names a plot (png/svg/pdf/jpg/webp), else
    ``<output without its suffix>.plan.png`` (so a render's ``-o clip.mp4`` gives ``clip.plan.png``)."""
    p = Path(str(output))
    return p if p.suffix.lower() in _PLOT_EXTS else p.with_name(p.name.rstrip("/").rsplit(".", 1)[0] + ".plan.png")


def preview_output(plot) -> Path:
    """The default contact sheet next to a plot: ``plan.png`` -> ``plan.preview.png``."""
    p = Path(str(plot))
    return p.with_name(f"{p.stem}.preview.png")


def _preview_steps(steps: int, preview_steps: int) -> int:
    if preview_steps > 0:
        return preview_steps if steps > 0 else 0
    return max(1, steps // 2) if steps > 0 else 0


class _PreviewTimeline:
    """A timeline for a smaller preview: pixel shifts scaled, steps per octave reduced."""

    def __init__(self, timeline: Timeline, scale: float, preview_steps: int):
        self.tl, self.scale, self.preview_steps = timeline, scale, preview_steps

    def value(self, name, f):
        v = self.tl.value(name, f)
        return v * self.scale if name in ("dx", "dy") else v

    def weights(self, f):
        return self.tl.weights(f)

    def settings(self, base, f):
        from dataclasses import replace

        s = self.tl.settings(base, f)
        return replace(s, steps=_preview_steps(s.steps, self.preview_steps))


def _all_audio_features(timeline: Timeline, audio, fps, n, start, smoothing) -> dict:
    """Every audio feature (the timeline's, plus the rest), without onset/beat if librosa is missing."""
    from .audio import features_for
    from .settings import AUDIO_FEATURES

    have = dict(timeline.features or {})
    missing = [k for k in AUDIO_FEATURES if k not in have]
    if not audio or not missing:
        return have
    try:
        have.update(features_for(audio, fps, n, start=start, smoothing=smoothing, needed=missing))
    except UserError:
        rest = [k for k in missing if k not in ("onset", "beat")]
        if rest:
            have.update(features_for(audio, fps, n, start=start, smoothing=smoothing, needed=rest))
    return have


def dream_cost(octaves: int, scale: float, steps: int) -> float:
    """Compute of a dream in full-size steps: each octave's steps weighted by its share of the pixels."""
    return steps * sum(scale ** (-2 * i) for i in range(octaves))


#: A video plan plans the first this many frames, decoded at most WORK_SIDE px, as the render would.
WORK_FRAMES = 120
WORK_SIDE = 192


def estimate_work(kind: str, dream, ks, input=None, max_side=None, blend: float = 1.0, min_side: int = 32) -> dict:
    """What a render will dream per frame, as a share of dreaming every frame whole.

    Zoom: the detail octaves and steps over the full dream's (exact). Video with reuse: the first
    :data:`WORK_FRAMES` frames, decoded small, planned one after the other by the render's own
    planner (:func:`~dreamvideo.reuse.plan_frame`, crops at least as large as a model of smallest
    side ``min_side`` needs), frame 0 excepted (always dreamed whole): a crop costs its share of a
    full dream, upkeep its finest-octave steps, a cut or a frame dreamed whole a whole dream
    (``blend``: the clip's mean, see :func:`~dreamvideo.reuse.upkeep_steps`); where the planned frames
    reach the clip's end, what still waits for a band is dreamed then, as the render does. Returns ``{"cost",
    "dreamed" (mean share of the frame in crops), "cuts", "pairs" (frames planned), "shares" (each
    one's share in crops), "summary"}``.
    """
    full = dream_cost(dream.octaves, dream.octave_scale, dream.steps)
    whole = {"cost": 1.0, "dreamed": 1.0, "cuts": 0, "pairs": 0, "shares": []}
    if kind == "zoom":
        if ks.full_frames or not full:
            return dict(whole, summary="every frame is dreamed whole (all octaves and steps)")
        octaves = min(dream.octaves, ks.detail_octaves or dream.octaves)
        steps = max(1, round(dream.steps * ks.detail_steps)) if ks.detail_steps else 0
        cost = dream_cost(octaves, dream.octave_scale, steps) / full
        return dict(whole, cost=cost, summary=f"frames after the first dream the finest {octaves} octave(s) at "
                                              f"{steps} steps: ~{cost:.0%} of a whole dream each")
    if not ks.reuses or not full or blend <= 0:
        return dict(whole, summary="every frame is dreamed whole")
    from .flow import FlowEstimator
    from .reuse import growth, plan_frame, reuse_plan, smallest_crop, upkeep_steps

    side = min(WORK_SIDE, max_side) if max_side else WORK_SIDE
    limit = min(WORK_FRAMES, ks.frames or WORK_FRAMES)
    with open_video(input, ks, side, frames=limit) as reader:
        frames = list(reader)
    ended = len(frames) < limit or bool(ks.frames and ks.frames <= WORK_FRAMES)  # the render's last frame planned
    if len(frames) < 2:
        return dict(whole, summary="a single frame: dreamed whole")
    crop = smallest_crop(min_side, dream, frames[0].shape[:2])
    est, costs, shares, cuts, waiting = FlowEstimator(ks.flow), [], [], 0, None
    for k in range(1, len(frames)):
        flow, mask = est.pair(frames[k - 1], frames[k])
        flow, p = plan_frame(frames[k - 1], waiting, frames[k], flow, mask, k, ks, crop)
        waiting = p.waiting
        upkeep = dream_cost(1, dream.octave_scale, upkeep_steps(ks, growth(flow), blend, dream.steps)) / full
        cuts += p.cut
        shares.append(p.share)
        costs.append(1.0 if p.cut or p.whole else upkeep + p.share)
    extra_cost = extra_share = 0.0
    if ended and waiting is not None and waiting.any():
        # What still waits for a band when the frames end is dreamed then (the render's drain).
        end = reuse_plan(np.ones(waiting.shape, np.float32), ks, crop, waiting=waiting)
        extra_cost, extra_share = (1.0 if end.whole else end.share), end.share
    cost = float((np.sum(costs) + extra_cost) / len(costs))
    dreamed = float((np.sum(shares) + extra_share) / len(shares))
    return {"cost": cost, "dreamed": dreamed, "cuts": int(cuts), "pairs": len(costs), "shares": shares,
            "summary": f"flow reuse: ~{dreamed:.0%} of each frame dreamed anew, ~{cost:.0%} of a whole dream per "
                       f"frame (the first {len(frames)} frames planned, {cuts} cut(s))"}


def plan_render(kind: str, input, output, *, seed: int = 0, max_side: int | None = None, preview=None,
         preview_frames: int = 6, preview_size: int = 256, preview_steps: int = 0, quiet: bool = False,
         **options) -> dict:
    """Look before a long render: plot the per-frame curves of a ``kind`` ("video" or "zoom") render.

    ``input`` and ``options`` are those of :func:`dream_video` / :func:`zoom`. Writes a plot of every
    scheduled curve and audio feature over the timeline to ``output`` (see :func:`plan_output`); with
    ``preview`` (a path, or True for :func:`preview_output`) it also dreams ``preview_frames`` evenly
    spaced frames at ``preview_size`` px (longer side) with ``preview_steps`` steps per octave (0 =
    half the render's) into a contact sheet. A video's preview frames are dreamed one by one, without
    the previous frame's dream; a zoom's preview renders every frame up to the last shown, small.

    Returns ``{"plot", "preview" (Path or None), "curves" {name: per-frame values}, "panels",
    "titles", "fps", "frames", "work"}`` (``work``: what each frame will dream, see :func:`estimate_work`).
    """
    from dataclasses import replace

    from .plot import contact_sheet, evenly_spaced, plot_curves

    if kind not in ("video", "zoom"):
        raise UserError(f"plan kind must be video or zoom, not {kind!r}")
    if preview_frames < 1 or preview_size < 16 or preview_steps < 0:
        raise UserError("`preview_frames` must be at least 1, `preview_size` at least 16 and `preview_steps` >= 0")
    plot_path = plan_output(output)
    guard.check(plot_path, guard.reads(input, options), role="the plot")
    s = split_options(kind, options)
    model, sched, dream, ks = s["model"], s["schedules"], s["dream"].check(), s[kind]
    check_top(seed=seed, max_side=max_side)
    check_moving(ks)
    if kind == "video":
        reader = open_video(input, ks, max_side)
        reader.close()
        info = reader.info
        fps, n = info.fps, info.nframes
        if n < 1:
            raise UserError(f"cannot tell how many frames {input} has; pass a frame count (`frames`)")
        audio, audio_start = soundtrack(input, ks, info)
        sched = with_blend_default(sched, ks)
    else:
        ks = song_frames(ks)
        init = zoom_start(input, ks, max_side, seed)
        fps, n, audio, audio_start = ks.fps, ks.frames, ks.audio, 0.0
    dreamer = build_dreamer(model) if preview else None
    terms = dreamer.objective.terms if dreamer else schedule_terms(model, sched)
    timeline = Timeline(sched, fps, n, terms, audio or None, audio_start, use=SCHEDULED[kind])
    curves = {k: np.asarray(v, np.float64) for k, v in timeline.curves().items()}
    for k, v in _all_audio_features(timeline, audio, fps, n, audio_start, sched.smoothing).items():
        curves.setdefault(f"audio {k}", np.asarray(v, np.float64))
    title = f"dreamvideo plan {kind}: {Path(str(input)).name if input else ks.from_noise}"
    drawn = plot_curves(curves, fps, plot_path, title=title)
    result = {"plot": drawn["path"], "preview": None, "curves": curves, "panels": drawn["panels"],
              "titles": drawn["titles"], "fps": float(fps), "frames": int(n),
              # A moving render's steps are a schedule: the work is that of its mean steps.
              "work": estimate_work(kind, replace(dream, steps=int(round(float(np.mean(curves["steps"]))))),
                                    ks, input, max_side,
                                    float(np.mean(curves["blend"])) if "blend" in curves else 1.0,
                                    dreamer.model.min_side if dreamer else model_min_side(model))}
    if not preview:
        return result
    sheet = preview_output(plot_path) if preview is True or preview == "" else Path(str(preview))
    guard.check(sheet, guard.reads(input, options), role="the preview")
    want = evenly_spaced(n, preview_frames)
    tiles = []
    side = min(preview_size, max_side) if max_side else preview_size
    if kind == "video":
        pt = _PreviewTimeline(timeline, 1.0, preview_steps)
        first = _preview_steps(ks.first_steps, preview_steps) if ks.first_steps else None
        bar = TqdmProgress("preview", quiet)
        bar(0, len(want))
        with open_video(input, ks, side, frames=want[-1] + 1) as reader:
            for i, frame in enumerate(reader):
                if i in want:
                    out = dreamer.dream(frame, None, pt.settings(dream, i), seed=frame_seed(seed, i),
                                        weights=pt.weights(i), steps=first if i == 0 else None)
                    tiles.append((f"#{i} {i / fps:.2f}s", out))
                    bar(len(tiles), len(want))
        bar.close()
    else:
        import cv2

        size = dio.even_size(init.shape[1], init.shape[0], side)  # the zoom's start has even sides already
        small = init if size == init.shape[1::-1] else cv2.resize(init, size, interpolation=cv2.INTER_AREA)
        zs = replace(ks, first_steps=_preview_steps(ks.first_steps, preview_steps) if ks.first_steps else 0)
        stepper = ZoomStepper(dreamer, dream, zs, _PreviewTimeline(timeline, small.shape[1] / init.shape[1],
                                                                    preview_steps), seed, small)
        bar = TqdmProgress("preview", quiet)
        bar(0, want[-1] + 1)
        for i, out in enumerate(stepper.frames(want[-1] + 1)):
            if i in want:
                tiles.append((f"#{i} {i / fps:.2f}s", out))
            bar(i + 1, want[-1] + 1)
        bar.close()
    result["preview"] = contact_sheet(tiles, sheet)
    return result
