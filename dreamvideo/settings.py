"""Every setting of a render, as frozen dataclasses: the single source of the defaults.

The command line builds its flags from these fields (help text, choices and metavar are in each
field's metadata), the presets check their keys against them, and the jobs take them typed. This
module imports no model framework and no IO library, so ``dreamvideo --help``, ``dreamvideo presets``
and every usage error stay fast.

Error messages name a setting as ``\\`octave_scale\\``` (a field name in backquotes); the command line
shows that as its flag, ``--octave-scale``, and a Python user sees the keyword they would pass.

Convention: step sizes are in unit space ([-1, 1] image units) per step; sizes, tiles and jitter are
in pixels; times are in seconds; frame rates in frames per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from .errors import UserError


def _opt(default, help, **extra):
    return field(default=default, metadata={"help": help, **extra})


#: The named networks (their builders live in :mod:`dreamvideo.models`; a test keeps both in step).
MODEL_NAMES = ("inception_v3", "inception_resnet_v2", "vgg16", "vgg19", "resnet50", "mobilenet_v2",
               "efficientnet_b0", "inception5h")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("tensorflow", "jax", "torch")
BACKEND_CHOICES = ("auto",) + BACKENDS  # auto: see dreamvideo.backends.choose_backend
DEVICES = ("auto", "cpu", "gpu")


def default_backend() -> str:
    """``DREAMVIDEO_BACKEND``, else a set ``KERAS_BACKEND`` that is one of :data:`BACKENDS`, else auto."""
    import os

    env = os.environ.get("DREAMVIDEO_BACKEND", "").strip().lower()
    if env:
        return env
    keras_env = os.environ.get("KERAS_BACKEND", "").strip().lower()
    return keras_env if keras_env in BACKENDS else "auto"


@dataclass(frozen=True)
class ModelSettings:
    """Which network, weights, layers and precision to dream with."""

    model: str = _opt("inception_v3", "model name (see `dreamvideo layers --help`) or a .keras/.h5/.pb model file")
    weights: str = _opt("imagenet", "imagenet (download on first use), random, or a .weights.h5/.h5 file")
    layers: str = _opt("", "objective: LAYER:WEIGHT,... or LAYER:CHANNEL[:WEIGHT] (default: the model's classic set)")
    objective: str = _opt("l2", "how a layer is maximised: l2 (mean square) or mean", choices=("l2", "mean"))
    guide: str = _opt("", "guide image: dream towards this image's features at the chosen layers")
    precision: str = _opt("auto", "compute precision (auto: measured once per machine and cached; see "
                          "`dreamvideo doctor`)", choices=PRECISIONS)
    backend: str = _opt(default_backend(), "Keras backend to dream on (default: $DREAMVIDEO_BACKEND, else a set "
                        "$KERAS_BACKEND, else auto: the one that sees a GPU; see `dreamvideo doctor`)",
                        choices=BACKEND_CHOICES)
    device: str = _opt("auto", "where to compute: auto (the backend's GPU when it sees one), cpu or gpu",
                       choices=DEVICES)


@dataclass(frozen=True)
class DreamSettings:
    """Engine settings: octaves, steps, tiles (the dream of one image)."""

    octaves: int = _opt(3, "number of octaves (image scales) to dream at")
    octave_scale: float = _opt(1.4, "size ratio between successive octaves")
    steps: int = _opt(20, "gradient-ascent steps per octave")
    step_size: float = _opt(0.01, "step size per step, in [-1,1] image units")
    jitter: int = _opt(32, "random roll of the image per step, in pixels (hides tile seams and grid artefacts)")
    tile_size: int = _opt(512, "largest tile, in pixels, the gradient is computed on (bounds memory at any resolution)")
    max_loss: float = _opt(0.0, "stop an octave early once the objective exceeds this (0 = never)")
    reinject: bool = _opt(True, "re-inject the detail lost by downscaling after each octave")

    MAX_STEPS = 100_000  # not a field: the graph takes steps, jitter and tile size as int32
    MAX_PIXELS = 1 << 20

    def check(self) -> "DreamSettings":
        """Return self, or raise a one-line :class:`UserError` naming the first bad field."""
        problems = [
            (self.octaves < 1, "`octaves` must be at least 1"),
            (not 1.0 <= self.octave_scale < math.inf, "`octave_scale` must be a number, 1.0 or more"),
            (not 0 <= self.steps <= self.MAX_STEPS, f"`steps` must be from 0 to {self.MAX_STEPS}"),
            (not math.isfinite(self.step_size) or self.step_size < 0, "`step_size` must be a number >= 0"),
            (not 0 <= self.jitter <= self.MAX_PIXELS, f"`jitter` must be from 0 to {self.MAX_PIXELS} pixels"),
            (not 64 <= self.tile_size <= self.MAX_PIXELS, f"`tile_size` must be from 64 to {self.MAX_PIXELS} pixels"),
        ]
        for bad, msg in problems:
            if bad:
                raise UserError(msg)
        return self


@dataclass(frozen=True)
class VideoSettings:
    """How a clip is read, kept coherent from frame to frame, and written."""

    coherence: str = _opt("flow", "temporal coherence: flow (warp the previous dream by optical flow), "
                          "blend (cross-fade it, the older tools' way) or none", choices=("flow", "blend", "none"))
    flow: str = _opt("dis", "optical flow method", choices=("dis", "farneback"))
    first_steps: int = _opt(0, "steps per octave for the first frame (0 = same as --steps)")
    carry_step: float = _opt(0.005, "flow: step-size factor where the warped dream is carried (it only needs "
                             "upkeep); new content (disoccluded or entering the frame) gets the full step")
    # Reuse is the default since it meets its targets on a pan, a zoom-in, moving objects and a clip with
    # two cuts: 4.4-9.6x faster than none and full frames at 256x144, flicker 1.09-1.25, 96-106% of none's strength
    # (bench/RESULTS.md, "Held frames", 2026-12-02).
    full_frames: bool = _opt(False, "flow: dream every pixel of every frame with all octaves and steps (the "
                             "behaviour before temporal reuse, 5-10x slower); by default only what is new is "
                             "dreamed and the carried dream is kept")
    context: int = _opt(16, "flow: pixels of carried dream around new content that its crop dreams with, "
                        "so the new patterns continue the old ones")
    sliver: int = _opt(3, "flow: new regions thinner than this many pixels, inside the frame, are filled from "
                       "the neighbouring carried dream instead of dreamed (0 = dream them all)")
    enter_every: int = _opt(6, "flow: content entering at the frame's edges, or uncovered by a moving object, is "
                            "dreamed in one band every this many frames (a crop costs about the same however thin "
                            "the strip); the frames in between are shown with the band's dream, so they come out "
                            "with it (1 = dream it every frame)")
    upkeep_steps: int = _opt(0, "flow: steps at the finest octave that re-dream the carried dream, per frame (0: it "
                             "is kept as it is; with a blend below 1 it needs some, or it fades)")
    upkeep_step: float = _opt(0.25, "flow: step-size factor of the upkeep steps (and of a zoom-in's, which restore "
                              "the fine detail that magnifying the carried dream blurs; 0 = none)")
    cut: float = _opt(0.5, "flow: a frame whose new share exceeds this (0..1), or whose colours differ this much "
                      "from the last frame's, is a scene cut and is dreamed afresh")
    start: float = _opt(0.0, "start at this time in the source, in seconds")
    end: float = _opt(0.0, "stop at this time in the source, in seconds (0 = the end)")
    frames: int = _opt(0, "render at most this many frames (0 = all)")
    fps: float = _opt(0.0, "output frame rate (0 = keep the source's)")
    quality: int = _opt(18, "video quality as x264/VP9 CRF: lower is better and larger")
    audio: str = _opt("", "soundtrack file for the output (and audio features) instead of the source's audio")
    no_audio: bool = _opt(False, "write no audio track")


@dataclass(frozen=True)
class ZoomSettings:
    """Infinite zoom: each frame is the previous dream moved, then dreamed again."""

    frames: int = _opt(100, "number of frames to render (0 with --audio: as long as the song)")
    fps: float = _opt(25.0, "output frame rate")
    first_steps: int = _opt(0, "steps per octave for the first frame (0 = same as --steps)")
    color_match: bool = _opt(True, "keep every frame's colour statistics matched to the first frame's (stops drift)")
    full_frames: bool = _opt(False, "dream every frame with all octaves and the full steps (the behaviour before "
                             "temporal reuse: several times slower, for comparison)")
    detail_octaves: int = _opt(1, "octaves dreamed per frame after the first: the finest ones (the magnified "
                                "previous dream carries the coarse structure; 0 = all)")
    detail_steps: float = _opt(0.5, "share of the scheduled steps that frames after the first dream (0..1)")
    from_noise: str = _opt("", "start from smoothed noise of this size, WxH (e.g. 640x360), instead of an image")
    quality: int = _opt(18, "video quality as x264/VP9 CRF: lower is better and larger")
    audio: str = _opt("", "soundtrack to mux into the output and to drive audio-reactive schedules")


# Flow dreaming every pixel carries the dream's residual almost whole (a slow decay bounds it over
# hundreds of frames); reusing the carried dream keeps it whole (it is not re-dreamed, so a decay
# would only fade it); a cross-fade must let the new frame in, or it ghosts. Measured in
# bench/bench_video.py and bench/bench_flicker_regions.py.
BLEND_DEFAULT = {"flow": 0.995, "reuse": 1.0, "blend": 0.5, "none": 0.0}

AUDIO_FEATURES = ("rms", "onset", "beat", "low", "mid", "high")
SCHEDULE_HELP = ("a number, keyframes '0:(1.0), 48:(1.05), 96:(1.0)', or an expression of t (seconds), "
                 "f (frame), fps and the audio features " + " ".join(AUDIO_FEATURES) +
                 " (0..1), e.g. --zoom '1.0 + 0.04*beat'.")
_SCHED = "a number, keyframes or an expression (see the schedules help above)"


@dataclass(frozen=True)
class Schedules:
    """Values that may change per frame (schedules)."""

    step_size: str = _opt(repr(DreamSettings.step_size), f"step size per step: {_SCHED}", metavar="SCHEDULE")
    steps: str = _opt(str(DreamSettings.steps), "steps per octave (rounded)", metavar="SCHEDULE")
    blend: str = _opt("", "video: how much of the previous dream carries into the next frame, 0..1 "
                      f"(default: {BLEND_DEFAULT['reuse']} for flow, {BLEND_DEFAULT['flow']} for flow with "
                      f"--full-frames, {BLEND_DEFAULT['blend']} for blend); in flow's reuse, what fades is "
                      "dreamed back by upkeep steps",
                      metavar="SCHEDULE")
    zoom: str = _opt("1.05", "zoom: scale per frame (>1 zooms in)", metavar="SCHEDULE")
    angle: str = _opt("0", "zoom: rotation per frame, degrees counter-clockwise", metavar="SCHEDULE")
    dx: str = _opt("0", "zoom: shift per frame, pixels to the right", metavar="SCHEDULE")
    dy: str = _opt("0", "zoom: shift per frame, pixels down", metavar="SCHEDULE")
    layer_weights: str = _opt("", "per-layer weight schedules, 'LAYER=SCHEDULE;LAYER=SCHEDULE'", metavar="SPEC")
    interp: str = _opt("linear", "keyframe interpolation", choices=("linear", "cubic", "step"))
    smoothing: float = _opt(0.0, "smooth the audio features over this many seconds")


#: Preset sections: ``[model] [dream] [video] [zoom] [schedules]`` of a preset file.
SECTIONS = {"model": ModelSettings, "dream": DreamSettings, "video": VideoSettings, "zoom": ZoomSettings,
            "schedules": Schedules}
#: Settings outside any section (top level of a preset, keyword arguments of every job).
TOP_LEVEL = ("seed", "max_side")
#: The sections each job takes, in the order keyword options are matched (a name two sections share
#: goes to the first: ``steps`` is a schedule in video and zoom, an engine setting for a still image).
KIND_SECTIONS = {"image": ("model", "dream"),
                 "video": ("model", "schedules", "dream", "video"),
                 "zoom": ("model", "schedules", "dream", "zoom")}
#: Every per-frame curve, in the order a plan plots them (motion first, then the dream's strength).
CURVES = ("zoom", "angle", "dx", "dy", "step_size", "steps", "blend")
#: Engine settings that a moving render takes as schedules instead (so they are no engine flags there).
MOVING = ("step_size", "steps")
#: Per-frame values each moving job evaluates from its schedules.
SCHEDULED = {"video": ("step_size", "steps", "blend"),
             "zoom": ("step_size", "steps", "zoom", "angle", "dx", "dy")}


def field_names(cls) -> set[str]:
    return {f.name for f in fields(cls)}


def split_options(kind: str, options: dict) -> dict:
    """Flat keyword options (``steps=10, coherence="flow"``) of a ``kind`` job into its typed
    sections, ``{"model": ModelSettings(...), ...}``. An unknown name is a :class:`TypeError` (as
    for any Python function); a section may also be passed whole (``dream=DreamSettings(...)``)."""
    if kind not in KIND_SECTIONS:
        raise UserError(f"kind must be one of {', '.join(KIND_SECTIONS)}, not {kind!r}")
    left = dict(options)
    out = {}
    for section in KIND_SECTIONS[kind]:
        cls = SECTIONS[section]
        if isinstance(left.get(section), cls):  # the whole section (``zoom="1.05"`` is the schedule)
            out[section] = left.pop(section)
            continue
        out[section] = cls(**{k: left.pop(k) for k in list(left) if k in field_names(cls)})
    if left:
        raise TypeError(f"unknown option(s) for a {kind} job: {', '.join(left)}")
    return out


def with_blend_default(sched: Schedules, video: VideoSettings) -> Schedules:
    """Fill an empty ``blend`` schedule with the default of the video's coherence mode."""
    from dataclasses import replace

    mode = "reuse" if video.coherence == "flow" and not video.full_frames else video.coherence
    return sched if sched.blend.strip() else replace(sched, blend=repr(BLEND_DEFAULT[mode]))


def check_moving(ks) -> None:
    """Video or zoom settings that contradict each other or are out of range are usage errors."""
    if getattr(ks, "no_audio", False) and ks.audio:
        raise UserError("`no_audio` and `audio` contradict each other; pass one of them")
    if not 0.0 <= getattr(ks, "carry_step", 0.0) <= 1.0:  # nan too
        raise UserError(f"`carry_step` must be between 0 and 1, not {ks.carry_step}")
    for name, lo, hi in (("upkeep_step", 0.0, 100.0), ("cut", 0.0, 1.0), ("detail_steps", 0.0, 1.0)):
        v = getattr(ks, name, lo)
        if not lo <= v <= hi:  # nan too
            raise UserError(f"`{name}` must be between {lo:g} and {hi:g}, not {v}")
    for name in ("context", "sliver", "upkeep_steps", "detail_octaves"):
        if getattr(ks, name, 0) < 0:
            raise UserError(f"`{name}` must be 0 or more, not {getattr(ks, name)}")
    if getattr(ks, "enter_every", 1) < 1:
        raise UserError(f"`enter_every` must be 1 or more, not {ks.enter_every}")
    if not 0 <= ks.first_steps <= DreamSettings.MAX_STEPS:
        raise UserError(f"`first_steps` must be from 0 to {DreamSettings.MAX_STEPS}")
    if ks.quality < 0:
        raise UserError("`quality` must be 0 or more")


@dataclass(frozen=True)
class DistributedSettings:
    """Rendering across Ray workers (``pip install "dreamvideo[ray]"``): a video in chunks, or a batch of jobs."""

    workers: int = _opt(0, "render across N Ray workers of a local cluster started for this command and stopped "
                        "after it (0: in this process, or one per GPU/node with --ray-address)", metavar="N")
    ray_address: str = _opt("", "join a running Ray cluster instead of starting one: auto or HOST:PORT",
                            metavar="ADDRESS")
    chunk_frames: int = _opt(240, "workers: frames per chunk, at most (a chunk boundary moves to a scene cut "
                             "within half a chunk)", metavar="N")
    chunk_overlap: int = _opt(12, "workers: frames a chunk starts early so its carried dream is built; they are "
                              "cross-faded with the previous chunk's last frames", metavar="N")

    @property
    def enabled(self) -> bool:
        return bool(self.workers or self.ray_address)

    def check(self) -> "DistributedSettings":
        """Return self, or raise a one-line :class:`UserError` naming the first bad field."""
        if self.workers < 0:
            raise UserError(f"`workers` must be 0 or more, not {self.workers}")
        if self.chunk_frames < 1:
            raise UserError(f"`chunk_frames` must be at least 1, not {self.chunk_frames}")
        if not 0 <= self.chunk_overlap < self.chunk_frames:
            raise UserError(f"`chunk_overlap` must be from 0 to `chunk_frames` - 1 ({self.chunk_frames - 1}), "
                            f"not {self.chunk_overlap}")
        return self
