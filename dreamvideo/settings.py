"""Every setting of a render, as frozen dataclasses: the single source of the defaults.

The command line builds its flags from these fields (help text, choices and metavar are in each
field's metadata), the presets check their keys against them, and the jobs take them typed. This
module imports no model framework and no IO library, so ``dreamvideo --help``, ``dreamvideo presets``
and every usage error stay fast.

Error messages name a setting as ``\\`octave_scale\\``` (a field name in backquotes); the command line
shows that as its flag, ``--octave-scale``, and a Python user sees the keyword they would pass.

Every numeric setting has its range in its field's metadata, ``range=(lo, hi)`` (both allowed;
``off=0`` where 0 means "off" or "automatic" outside the range), shown in the command line's help and
checked by :func:`check_ranges` before any model loads. A schedule's field holds the range of the
per-frame values (checked frame by frame when the timeline is built).

Convention: step sizes are in unit space ([-1, 1] image units) per step; sizes, tiles and jitter are
in pixels; times are in seconds; frame rates in frames per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from .errors import UserError


def _opt(default, help, **extra):
    return field(default=default, metadata={"help": help, **extra})


# Bounds shared by several settings. Octaves beyond a dozen fall below any model's smallest input at
# the usual 1.4 scale (the engine drops them), and every count is kept far inside int32.
MAX_OCTAVES = 12
MAX_STEPS = 10_000
MAX_FRAMES = 1_000_000  # schedules are evaluated for every frame up front
MAX_FPS = 1000.0
MAX_TILE = 8192
MAX_SHIFT = 4096  # pixels per frame (a zoom's dx/dy) and pixels of jitter
#: Top-level settings (outside any section) and the still image's quality: their ranges.
TOP_RANGES = {"seed": (0, 2 ** 32 - 1), "max_side": (16, 65536), "quality": (1, 100)}


def _num(v) -> str:
    v = float(v)
    if v in (math.inf, -math.inf):
        return "inf" if v > 0 else "-inf"
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:g}"


def range_text(rng, off=None) -> str:
    """``rng = (lo, hi)`` in words: "from 1 to 12", "0 or more" (with ``off``: "... (or 0)")."""
    lo, hi = rng
    text = f"{_num(lo)} or more" if hi == math.inf else f"from {_num(lo)} to {_num(hi)}"
    return text + (f" (or {_num(off)})" if off is not None else "")


def in_range(value, rng, off=None) -> bool:
    """``value`` is a number within ``rng`` (both ends allowed), or ``off``; nan and inf are not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError, OverflowError):
            return False
    if off is not None and value == off:
        return True
    lo, hi = rng
    return (isinstance(value, int) or math.isfinite(value)) and lo <= value <= hi


def check_value(name: str, value, rng, off=None) -> None:
    """A one-line :class:`UserError` naming setting ``name`` and its range unless ``value`` is in it."""
    if not in_range(value, rng, off):
        raise UserError(f"`{name}` must be {range_text(rng, off)}, not {value!r}")


def field_range(cls, name: str):
    """``(range, off)`` of field ``name`` of settings class ``cls`` (``(None, None)`` if it has none)."""
    meta = {f.name: f.metadata for f in fields(cls)}.get(name, {})
    return meta.get("range"), meta.get("off")


def check_ranges(obj):
    """Return ``obj`` (a settings dataclass), or raise a one-line :class:`UserError` naming the first
    field outside its ``range`` (schedules are checked per frame by the timeline instead)."""
    if isinstance(obj, Schedules):
        check_value("smoothing", obj.smoothing, *field_range(Schedules, "smoothing"))
        return obj
    for f in fields(obj):
        if "range" in f.metadata:
            check_value(f.name, getattr(obj, f.name), f.metadata["range"], f.metadata.get("off"))
    return obj


def check_top(**values) -> None:
    """Check top-level values (``seed``, ``max_side``; None means unset) against :data:`TOP_RANGES`."""
    for name, value in values.items():
        if value is not None:
            check_value(name, value, TOP_RANGES[name])


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


#: Images that would decode to more pixels than this are refused from their header, before any pixel is
#: decoded (a decompression bomb costs nothing); 100 megapixels take about 0.7 GB while decoded.
MAX_PIXELS = 100_000_000
MAX_PIXELS_HELP = ("refuse an image that would decode to more than N pixels, from its header, before decoding it "
                   "(a JPEG with --max-side decodes reduced and counts reduced; also $DREAMVIDEO_MAX_PIXELS)")


def default_max_pixels() -> int:
    """``DREAMVIDEO_MAX_PIXELS`` (a whole number), else :data:`MAX_PIXELS`."""
    import os

    env = os.environ.get("DREAMVIDEO_MAX_PIXELS", "").strip()
    if not env:
        return MAX_PIXELS
    try:
        value = int(env)
    except ValueError:
        value = 0
    if value <= 0:
        raise UserError(f"DREAMVIDEO_MAX_PIXELS must be a positive whole number of pixels, not {env!r}")
    return value


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

    octaves: int = _opt(3, "number of octaves (image scales) to dream at", range=(1, MAX_OCTAVES))
    octave_scale: float = _opt(1.4, "size ratio between successive octaves", range=(1.0, 4.0))
    steps: int = _opt(20, "gradient-ascent steps per octave", range=(0, MAX_STEPS))
    step_size: float = _opt(0.01, "step size per step, in [-1,1] image units", range=(0.0, 1.0))
    jitter: int = _opt(32, "random roll of the image per step, in pixels (hides tile seams and grid artefacts)",
                       range=(0, MAX_SHIFT))
    tile_size: int = _opt(512, "largest tile, in pixels, the gradient is computed on (bounds memory at any "
                          "resolution)", range=(64, MAX_TILE))
    max_loss: float = _opt(0.0, "stop an octave early once the objective exceeds this (0 = never)",
                           range=(0.0, math.inf))
    reinject: bool = _opt(True, "re-inject the detail lost by downscaling after each octave")

    MAX_STEPS = MAX_STEPS  # not a field (kept for callers of DreamSettings.MAX_STEPS)

    def check(self) -> "DreamSettings":
        """Return self, or raise a one-line :class:`UserError` naming the first field out of its range."""
        return check_ranges(self)


@dataclass(frozen=True)
class VideoSettings:
    """How a clip is read, kept coherent from frame to frame, and written."""

    coherence: str = _opt("flow", "temporal coherence: flow (warp the previous dream by optical flow), "
                          "blend (cross-fade it, the older tools' way) or none", choices=("flow", "blend", "none"))
    flow: str = _opt("dis", "optical flow method", choices=("dis", "farneback"))
    first_steps: int = _opt(0, "steps per octave for the first frame (0 = same as --steps)", range=(0, MAX_STEPS))
    carry_step: float = _opt(0.005, "flow: step-size factor where the warped dream is carried (it only needs "
                             "upkeep); new content (disoccluded or entering the frame) gets the full step",
                             range=(0.0, 1.0))
    # Reuse is the default: its figures against none and full frames are in bench/RESULTS.md, "Temporal reuse".
    full_frames: bool = _opt(False, "flow: dream every pixel of every frame with all octaves and steps (the "
                             "behaviour before temporal reuse, 5-10x slower); by default only what is new is "
                             "dreamed and the carried dream is kept")
    context: int = _opt(16, "flow: pixels of carried dream around new content that its crop dreams with, "
                        "so the new patterns continue the old ones", range=(0, 1024))
    sliver: int = _opt(3, "flow: new regions thinner than this many pixels, inside the frame, are filled from "
                       "the neighbouring carried dream instead of dreamed (0 = dream them all)", range=(0, 256))
    enter_every: int = _opt(10, "flow: content entering at the frame's edges, or uncovered by a moving object, is "
                            "dreamed in one band every this many frames (a crop costs about the same however thin "
                            "the strip); the frames in between are shown with the band's dream, so they come out "
                            "with it (1 = dream it every frame)", range=(1, 60))
    upkeep_steps: int = _opt(0, "flow: steps at the finest octave that re-dream the carried dream, per frame (0: it "
                             "is kept as it is; with a blend below 1 it needs some, or it fades)",
                             range=(0, MAX_STEPS))
    upkeep_step: float = _opt(0.25, "flow: step-size factor of the upkeep steps (and of a zoom-in's, which restore "
                              "the fine detail that magnifying the carried dream blurs; 0 = none)",
                              range=(0.0, 100.0))
    cut: float = _opt(0.5, "flow: a frame whose new share exceeds this (0..1), or whose colours differ this much "
                      "from the last frame's, is a scene cut and is dreamed afresh", range=(0.0, 1.0))
    start: float = _opt(0.0, "start at this time in the source, in seconds")
    end: float = _opt(0.0, "stop at this time in the source, in seconds (0 = the end)")
    frames: int = _opt(0, "render at most this many frames (0 = all)", range=(1, MAX_FRAMES), off=0)
    fps: float = _opt(0.0, "output frame rate (0 = keep the source's)", range=(0.1, MAX_FPS), off=0)
    quality: int = _opt(18, "video quality as x264/VP9 CRF: lower is better and larger", range=(0, 51))
    audio: str = _opt("", "soundtrack file for the output (and audio features) instead of the source's audio")
    no_audio: bool = _opt(False, "write no audio track")

    @property
    def reuses(self) -> bool:
        """Whether this render reuses the carried dream (flow coherence, not ``full_frames``; see
        :mod:`dreamvideo.reuse`). A frame reuses when, besides, it has flow to a kept previous frame."""
        return self.coherence == "flow" and not self.full_frames


@dataclass(frozen=True)
class ZoomSettings:
    """Infinite zoom: each frame is the previous dream moved, then dreamed again."""

    frames: int = _opt(100, "number of frames to render (0 with --audio: as long as the song)",
                       range=(1, MAX_FRAMES), off=0)
    fps: float = _opt(25.0, "output frame rate", range=(0.1, MAX_FPS))
    first_steps: int = _opt(0, "steps per octave for the first frame (0 = same as --steps)", range=(0, MAX_STEPS))
    color_match: bool = _opt(True, "keep every frame's colour statistics matched to the first frame's (stops drift)")
    full_frames: bool = _opt(False, "dream every frame with all octaves and the full steps (the behaviour before "
                             "temporal reuse: several times slower, for comparison)")
    detail_octaves: int = _opt(1, "octaves dreamed per frame after the first: the finest ones (the magnified "
                                "previous dream carries the coarse structure; 0 = all)", range=(0, MAX_OCTAVES))
    detail_steps: float = _opt(0.5, "share of the scheduled steps that frames after the first dream (0..1)",
                               range=(0.0, 1.0))
    from_noise: str = _opt("", "start from smoothed noise of this size, WxH (e.g. 640x360), instead of an image")
    quality: int = _opt(18, "video quality as x264/VP9 CRF: lower is better and larger", range=(0, 51))
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

    step_size: str = _opt(repr(DreamSettings.step_size), f"step size per step: {_SCHED}", metavar="SCHEDULE",
                          range=field_range(DreamSettings, "step_size")[0])
    steps: str = _opt(str(DreamSettings.steps), "steps per octave (rounded)", metavar="SCHEDULE",
                      range=field_range(DreamSettings, "steps")[0])
    blend: str = _opt("", "video: how much of the previous dream carries into the next frame, 0..1 "
                      f"(default: {BLEND_DEFAULT['reuse']} for flow, {BLEND_DEFAULT['flow']} for flow with "
                      f"--full-frames, {BLEND_DEFAULT['blend']} for blend); in flow's reuse, what fades is "
                      "dreamed back by upkeep steps",
                      metavar="SCHEDULE", range=(0.0, 1.0))
    zoom: str = _opt("1.05", "zoom: scale per frame (>1 zooms in)", metavar="SCHEDULE", range=(0.1, 10.0))
    angle: str = _opt("0", "zoom: rotation per frame, degrees counter-clockwise", metavar="SCHEDULE",
                      range=(-180.0, 180.0))
    dx: str = _opt("0", "zoom: shift per frame, pixels to the right", metavar="SCHEDULE",
                   range=(-MAX_SHIFT, MAX_SHIFT))
    dy: str = _opt("0", "zoom: shift per frame, pixels down", metavar="SCHEDULE", range=(-MAX_SHIFT, MAX_SHIFT))
    layer_weights: str = _opt("", "per-layer weight schedules, 'LAYER=SCHEDULE;LAYER=SCHEDULE'", metavar="SPEC",
                              range=(-1000.0, 1000.0))
    interp: str = _opt("linear", "keyframe interpolation", choices=("linear", "cubic", "step"))
    smoothing: float = _opt(0.0, "smooth the audio features over this many seconds", range=(0.0, 60.0))


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
#: The zoom settings a live ``zoom:`` source takes (``fps`` its frame rate); the source names its
#: start, video's settings give the rest (``full_frames``, ``quality``).
LIVE_ZOOM = ("fps", "color_match", "detail_octaves", "detail_steps")
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
    if "model" in out:
        check_model_name(out["model"].model)
    if left:
        raise TypeError(f"unknown option(s) for a {kind} job: {', '.join(left)}")
    return out


#: A `model` ending so is a model file (see :mod:`dreamvideo.build`); any other is a name of :data:`MODEL_NAMES`.
MODEL_FILE_SUFFIXES = (".keras", ".h5", ".pb")


def check_model_name(model: str) -> None:
    """A one-line :class:`UserError` for a `model` that is neither a known name nor a model file, before
    any framework loads (a misspelt name must not wait for TensorFlow and the precision probe)."""
    import os

    from .catalog import suggest  # the model names' own module, without Keras

    if os.path.splitext(str(model))[1] in MODEL_FILE_SUFFIXES or model in MODEL_NAMES:
        return
    raise UserError(f"unknown model {model!r}{suggest(model, MODEL_NAMES)}; choose one of "
                    f"{', '.join(MODEL_NAMES)} or a {'/'.join(MODEL_FILE_SUFFIXES)} model file")


def with_blend_default(sched: Schedules, video: VideoSettings) -> Schedules:
    """Fill an empty ``blend`` schedule with the default of the video's coherence mode."""
    from dataclasses import replace

    mode = "reuse" if video.reuses else video.coherence
    return sched if sched.blend.strip() else replace(sched, blend=repr(BLEND_DEFAULT[mode]))


def check_moving(ks) -> None:
    """Video or zoom settings that contradict each other or are out of range are usage errors."""
    if getattr(ks, "no_audio", False) and ks.audio:
        raise UserError("`no_audio` and `audio` contradict each other; pass one of them")
    check_ranges(ks)


@dataclass(frozen=True)
class DistributedSettings:
    """Rendering across Ray workers (``pip install "dreamvideo[ray]"``): a video in chunks, or a batch of jobs."""

    workers: int = _opt(0, "render across N Ray workers of a local cluster started for this command and stopped "
                        "after it (0: in this process, or one per GPU/node with --ray-address)", metavar="N",
                        range=(0, 4096))
    ray_address: str = _opt("", "join a running Ray cluster instead of starting one: auto or HOST:PORT",
                            metavar="ADDRESS")
    chunk_frames: int = _opt(240, "workers: frames per chunk, at most (a chunk boundary moves to a scene cut "
                             "within half a chunk)", metavar="N", range=(1, MAX_FRAMES))
    chunk_overlap: int = _opt(12, "workers: frames a chunk starts early so its carried dream is built; they are "
                              "cross-faded with the previous chunk's last frames", metavar="N",
                              range=(0, MAX_FRAMES - 1))

    @property
    def enabled(self) -> bool:
        return bool(self.workers or self.ray_address)

    def check(self) -> "DistributedSettings":
        """Return self, or raise a one-line :class:`UserError` naming the first bad field."""
        check_ranges(self)
        if not 0 <= self.chunk_overlap < self.chunk_frames:
            raise UserError(f"`chunk_overlap` must be from 0 to `chunk_frames` - 1 ({self.chunk_frames - 1}), "
                            f"not {self.chunk_overlap}")
        return self


@dataclass(frozen=True)
class PlaySettings:
    """Playing a live run while it runs (``dreamvideo live``): OSC, MIDI, scenes, NDI out, and what a
    recorded performance keeps (see :mod:`dreamvideo.realtime.control`)."""

    osc: str = _opt("", "listen for OSC on [HOST:]PORT (UDP, 127.0.0.1 unless a host is given): /dreamvideo/SETTING "
                    "VALUE, /dreamvideo/norm/SETTING 0..1, /dreamvideo/scene NAME; the status goes back to the sender",
                    metavar="[HOST:]PORT")
    osc_feedback: str = _opt("", "send the OSC status (/dreamvideo/status, /fps, /latency) and the answers to "
                             "HOST:PORT instead of the sender", metavar="HOST:PORT")
    midi: str = _opt("", "take MIDI from this input port (a name or part of one; virtual: open a port named "
                     "dreamvideo; no name: the first there is), mapped by the preset's [midi] table", metavar="PORT")
    midi_learn: bool = _opt(False, "print each MIDI control as it is moved (to write a [midi] map)")
    scene: tuple = _opt((), "a scene a controller switches to: NAME=PRESET (repeatable; a preset's [scenes] adds "
                        "more)", metavar="NAME=PRESET")
    scene_fade: float = _opt(0.0, "seconds a scene switch crossfades the numeric settings over (layers switch at "
                             "the next dream)", metavar="S", range=(0.0, 600.0))
    scene_on: str = _opt("now", "when a scene switch happens: now, or on the next beat of the sound",
                         choices=("now", "beat"))
    ndi: str = _opt("", "also send the dreamed frames as an NDI source of this name (needs pip install "
                    "\"dreamvideo[live]\")", metavar="NAME")
    record_source: str = _opt("", "also record the undreamed source (a camera's or the screen's capture) to this "
                              ".mp4/.mkv file, to render the performance from", metavar="FILE")

    def check(self) -> "PlaySettings":
        """Return self, or raise a one-line :class:`UserError` naming the first bad field."""
        check_ranges(self)
        if self.record_source and not self.record_source.lower().endswith((".mp4", ".mkv")):
            raise UserError(f"cannot record the source to {self.record_source}: use a .mp4 or .mkv file")
        if self.midi_learn and not self.midi:
            raise UserError("--midi-learn needs --midi [PORT]")
        for item in self.scene:
            if "=" not in item or not item.split("=", 1)[0].strip() or not item.split("=", 1)[1].strip():
                raise UserError(f"--scene takes NAME=PRESET, not {item!r}")
        return self


@dataclass(frozen=True)
class LiveSettings:
    """Live: where the dreamed frames go, how long it runs, and what it holds (``dreamvideo live``)."""

    record: str = _opt("", "also record the dreamed frames (at the source's rate, with its sound or --audio-in's) to "
                       "this .mp4/.mkv file", metavar="FILE")
    stream: str = _opt("", "also stream the dreamed frames (low-latency H.264) to this udp://, srt:// or rtmp:// URL",
                       metavar="URL")
    virtual_camera: bool = _opt(False, "also show the dreamed frames as a virtual camera (OBS, Zoom, Meet); needs "
                                "pip install \"dreamvideo[live]\" and a driver (v4l2loopback on Linux, OBS's camera "
                                "on Windows and macOS)")
    no_page: bool = _opt(False, "do not serve the local page that shows the dreamed frames")
    page_port: int = _opt(7870, "port of the local page (127.0.0.1 only)", metavar="PORT")
    duration: float = _opt(0.0, "stop after this many seconds of the source (0: until it ends, Ctrl-C or SIGTERM)",
                           metavar="S")
    target_fps: float = _opt(0.0, "hold this many dreamed frames per second by lowering (and raising again) the "
                             "steps, then the octaves, then the size dreamed (0: off)", metavar="F")
    loop: bool = _opt(False, "a file source: play it again from the start when it ends")
    audio_in: str = _opt("", "sound that drives the audio features (rms onset beat low mid high) and is recorded: "
                         "default (the system's microphone), an input device name or a URL (default: the source's "
                         "own sound, for a file or URL)", metavar="SOURCE")
    deepen: float = _opt(15.0, "where the picture stands still, each dream adds its steps to the carried dream until "
                         "it has had this many steps per octave, so a still shot reaches an offline render's "
                         "strength in a few seconds (new content starts from its source; 0: each dream keeps the "
                         "carried dream as it is)", metavar="STEPS", range=(0.0, MAX_STEPS))
    source_timeout: float = _opt(10.0, "give up (exit 1, the recording kept) when the source sends no frame for "
                                 "this many seconds", metavar="S")

    def check(self) -> "LiveSettings":
        """Return self, or raise a one-line :class:`UserError` naming the first bad field."""
        if not 0 <= self.duration < math.inf:
            raise UserError(f"`duration` must be 0 or more seconds, not {self.duration}")
        if not 0 <= self.target_fps < math.inf:
            raise UserError(f"`target_fps` must be 0 (off) or more, not {self.target_fps}")
        check_value("deepen", self.deepen, (0.0, MAX_STEPS))
        if not 0 < self.source_timeout < math.inf:
            raise UserError(f"`source_timeout` must be more than 0 seconds, not {self.source_timeout}")
        if not 0 < self.page_port < 65536:
            raise UserError(f"`page_port` must be from 1 to 65535, not {self.page_port}")
        if self.record and not self.record.lower().endswith((".mp4", ".mkv")):
            raise UserError(f"cannot record to {self.record}: use a .mp4 or .mkv file")
        if self.stream and self.stream.split("://")[0].lower() not in ("udp", "srt", "rtmp", "rtmps"):
            raise UserError(f"cannot stream to {self.stream}: use a udp://, srt:// or rtmp:// URL")
        if self.stream:
            from urllib.parse import urlsplit

            try:
                parts = urlsplit(self.stream)
                port = parts.port
            except ValueError as e:
                raise UserError(f"the `stream` URL {self.stream} is malformed ({e}); write it as "
                                "SCHEME://HOST:PORT") from None
            if not parts.hostname or (parts.scheme in ("udp", "srt") and port is None):
                raise UserError(f"the `stream` URL {self.stream} needs a host and a port: "
                                f"{parts.scheme}://HOST:PORT")
        return self


@dataclass(frozen=True)
class LiveParam:
    """One setting that can change while a live run plays: ``name`` (the field's, as the command line's
    flag and the Python option name it), ``type`` (int or float), its range ``lo``..``hi`` (both
    allowed) and the ``section`` whose field gives the range (``schedules``: the value replaces that
    schedule with a constant; ``dream``: the engine setting)."""

    name: str
    type: type
    lo: float
    hi: float
    section: str
    help: str = ""

    def parse(self, value):
        """``value`` (a number, or its text: ``"0.02"``, OSC's float, a page slider's string) as this
        parameter's type, or a one-line :class:`UserError` naming it and its range."""
        text = value.strip() if isinstance(value, str) else value
        try:
            if isinstance(text, bool):
                raise ValueError
            number = float(text)
            if self.type is int:
                if not math.isfinite(number) or number != round(number):
                    raise ValueError
                number = int(round(number))
        except (TypeError, ValueError, OverflowError):
            kind = "a whole number" if self.type is int else "a number"
            raise UserError(f"`{self.name}` must be {kind} {range_text((self.lo, self.hi))}, "
                            f"not {value!r}") from None
        check_value(self.name, number, (self.lo, self.hi))
        return number


def _live_params() -> tuple:
    out = []
    for section, name, typ in (("schedules", "step_size", float), ("schedules", "steps", int),
                               ("schedules", "blend", float), ("dream", "octaves", int),
                               ("dream", "octave_scale", float), ("schedules", "zoom", float),
                               ("schedules", "angle", float), ("schedules", "dx", float),
                               ("schedules", "dy", float)):
        cls = SECTIONS[section]
        (lo, hi), _ = field_range(cls, name)
        help_ = {f.name: f.metadata.get("help", "") for f in fields(cls)}[name]
        out.append(LiveParam(name, typ, lo, hi, section, help_))
    return tuple(out)


#: The settings a live run takes while it plays (the page's sliders, OSC, MIDI), with their ranges:
#: read from the settings' own fields, so a range is stated once. ``zoom``, ``angle``, ``dx``, ``dy``
#: move a ``zoom:`` source only. A change applies from the next dream (the moves: the next frame).
LIVE_PARAMS: tuple = _live_params()


def live_param(name: str) -> LiveParam:
    """The :class:`LiveParam` called ``name``, or a one-line :class:`UserError` listing them."""
    for p in LIVE_PARAMS:
        if p.name == name:
            return p
    raise UserError(f"`{name}` cannot change live; live settings: {', '.join(p.name for p in LIVE_PARAMS)}")


def check_live(name: str, value):
    """``(name, text or number)`` as the typed value a live run takes (an int or a float within its
    range), or a one-line :class:`UserError` naming the setting and the fix."""
    return live_param(name).parse(value)
