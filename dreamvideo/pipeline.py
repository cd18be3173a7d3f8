"""Jobs: dream an image, a video or a zoom. Joins the engine, flow, IO, schedules and audio.

Convention: frames are ``H x W x 3`` uint8 RGB arrays; times are in seconds; frame indices are
0-based output frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import io as dio
from .backends import BACKENDS, DEVICES, default_backend
from .engine import DreamSettings
from .errors import DreamError, DreamFailure, UserError


def _opt(default, help, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class ModelSettings:
    """Which network, weights, layers and precision to dream with."""

    model: str = _opt("inception_v3", "model name (see `dreamvideo layers --help`) or a .keras/.h5/.pb model file")
    weights: str = _opt("imagenet", "imagenet (download on first use), random, or a .weights.h5/.h5 file")
    layers: str = _opt("", "objective: LAYER:WEIGHT,... or LAYER:CHANNEL[:WEIGHT] (default: the model's classic set)")
    objective: str = _opt("l2", "how a layer is maximised: l2 (mean square) or mean", choices=("l2", "mean"))
    guide: str = _opt("", "guide image: dream towards this image's features at the chosen layers")
    precision: str = _opt("auto", "compute precision (auto: measured once per machine and cached; "
                          "see `dreamvideo doctor`)", choices=("auto", "float32", "bfloat16", "float16"))
    backend: str = _opt(default_backend(), "Keras backend to dream on (default: $DREAMVIDEO_BACKEND, else a set "
                        "$KERAS_BACKEND, else tensorflow)", choices=BACKENDS)
    device: str = _opt("auto", "where to compute: auto (the backend's GPU when it sees one), cpu or gpu",
                       choices=DEVICES)


_MODEL_CACHE: dict = {}


def load_feature_model(ms: ModelSettings):
    from .backends import activate

    activate(ms.backend, ms.device)  # before models.py imports Keras
    from .models import load_model

    key = (ms.model, ms.weights, ms.precision, ms.backend, ms.device)
    if key not in _MODEL_CACHE:
        is_file = Path(ms.model).suffix in (".keras", ".h5", ".pb")
        _MODEL_CACHE.clear()  # one model at a time: they are large
        _MODEL_CACHE[key] = load_model(
            ms.model if not is_file else "file", ms.weights, model_file=ms.model if is_file else None,
            precision=ms.precision)
    return _MODEL_CACHE[key]


def build_dreamer(ms: ModelSettings):
    """A :class:`~dreamvideo.engine.Dreamer` for these settings (validates layers and channels)."""
    from .objectives import guide as guide_objective
    from .objectives import parse_objective

    model = load_feature_model(ms)
    from .engine import Dreamer

    objective = parse_objective(ms.layers or model.default_layers, mode=ms.objective)
    guide_img = None
    if ms.guide:
        guide_img = dio.read_image(ms.guide)
        objective = guide_objective_from(objective, guide_objective)
    return Dreamer(model, objective, guide_image=guide_img)


def guide_objective_from(objective, make_guide):
    """With a guide image every layer term becomes a guide term of the same weight."""
    out = None
    for t in objective.terms:
        g = make_guide(t.layer, t.weight)
        out = g if out is None else out + g
    return out


def fit_max_side(img: np.ndarray, max_side: int | None) -> np.ndarray:
    import cv2

    if not max_side or max(img.shape[:2]) <= max_side:
        return img
    s = max_side / max(img.shape[:2])
    size = (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def dream_image(input, output, model: ModelSettings = ModelSettings(), settings=None, seed: int = 0,
                max_side: int | None = None, quality: int = 95) -> Path:
    """Dream one still image file into ``output`` (png/jpg/webp...). Returns the output path."""
    settings = (settings or DreamSettings()).check()
    if not 1 <= quality <= 100:
        raise UserError(f"--quality must be from 1 to 100, not {quality}")
    dio.check_not_same(input, output)
    if Path(output).suffix.lower() not in dio.IMAGE_EXTS:
        raise UserError(f"cannot write {output}: use an image extension ({', '.join(dio.IMAGE_EXTS)})")
    img = fit_max_side(dio.read_image(input), max_side)
    dreamer = build_dreamer(model)
    out = dreamer.dream(img, settings=settings, seed=seed)
    dio.write_image(output, out, quality=quality)
    return Path(output)


# ---------------------------------------------------------------- video and zoom

@dataclass(frozen=True)
class VideoSettings:
    """How a clip is read, kept coherent from frame to frame, and written."""

    coherence: str = _opt("flow", "temporal coherence: flow (warp the previous dream by optical flow), "
                          "blend (cross-fade it, the older tools' way) or none", choices=("flow", "blend", "none"))
    flow: str = _opt("dis", "optical flow method", choices=("dis", "farneback"))
    first_steps: int = _opt(0, "steps per octave for the first frame (0 = same as --steps)")
    carry_step: float = _opt(0.005, "flow: step-size factor where the warped dream is carried (it only needs "
                             "upkeep); new content (disoccluded or entering the frame) gets the full step")
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

    frames: int = _opt(100, "number of frames to render")
    fps: float = _opt(25.0, "output frame rate")
    first_steps: int = _opt(0, "steps per octave for the first frame (0 = same as --steps)")
    color_match: bool = _opt(True, "keep every frame's colour statistics matched to the first frame's (stops drift)")
    from_noise: str = _opt("", "start from smoothed noise of this size, WxH (e.g. 640x360), instead of an image")
    quality: int = _opt(18, "video quality as x264/VP9 CRF: lower is better and larger")
    audio: str = _opt("", "soundtrack to mux into the output and to drive audio-reactive schedules")


# Flow carries the dream's residual almost whole (a slow decay bounds it over hundreds of frames);
# a cross-fade must let the new frame in, or it ghosts. Measured in bench/bench_video.py.
BLEND_DEFAULT = {"flow": 0.995, "blend": 0.5, "none": 0.0}

_SCHED = "a number, keyframes '0:(1.0), 48:(1.05)' or an expression of t, f, fps, rms, onset, beat, low, mid, high"


@dataclass(frozen=True)
class Schedules:
    """Values that may change per frame (schedules)."""

    step_size: str = _opt(repr(DreamSettings.step_size), f"step size per step: {_SCHED}", metavar="SCHEDULE")
    steps: str = _opt(str(DreamSettings.steps), "steps per octave (rounded)", metavar="SCHEDULE")
    blend: str = _opt("", "video: how much of the previous dream carries into the next frame, 0..1 "
                      f"(default: {BLEND_DEFAULT['flow']} for flow, {BLEND_DEFAULT['blend']} for blend)",
                      metavar="SCHEDULE")
    zoom: str = _opt("1.05", "zoom: scale per frame (>1 zooms in)", metavar="SCHEDULE")
    angle: str = _opt("0", "zoom: rotation per frame, degrees counter-clockwise", metavar="SCHEDULE")
    dx: str = _opt("0", "zoom: shift per frame, pixels to the right", metavar="SCHEDULE")
    dy: str = _opt("0", "zoom: shift per frame, pixels down", metavar="SCHEDULE")
    layer_weights: str = _opt("", "per-layer weight schedules, 'LAYER=SCHEDULE;LAYER=SCHEDULE'", metavar="SPEC")
    interp: str = _opt("linear", "keyframe interpolation", choices=("linear", "cubic", "step"))
    smoothing: float = _opt(0.0, "smooth the audio features over this many seconds")


class Interrupted(DreamError):
    """Ctrl-C during a render: what was done is finalized and can be resumed."""

    exit_code = 130

    def __init__(self, done: int, total: int, output, workdir):
        self.done, self.total, self.output, self.workdir = done, total, output, workdir
        super().__init__(f"interrupted after {done}/{total} frames; {output} holds them, "
                         f"and {workdir} keeps the state to resume")


class Timeline:
    """Per-frame values of the schedules, with the audio features they read.

    ``value(name, f)`` for ``name`` in step_size, steps, blend, zoom, angle, dx, dy; ``weights(f)``
    gives the objective's term weights (scheduled ones replaced).
    """

    NAMES = ("step_size", "steps", "blend", "zoom", "angle", "dx", "dy")

    def __init__(self, schedules: Schedules, fps: float, nframes: int, terms=(), audio_path=None,
                 audio_start: float = 0.0, use=NAMES):
        from .schedule import Schedule

        self.fps, self.n = float(fps), max(1, int(nframes))
        self.sched = {k: Schedule.parse(getattr(schedules, k), k, schedules.interp) for k in use}
        self.term_weights = [t.weight for t in terms]
        self.term_sched = {}
        for item in filter(str.strip, schedules.layer_weights.split(";")):
            name, eq, text = item.partition("=")
            idx = [i for i, t in enumerate(terms) if t.layer == name.strip()]
            if not eq or not idx:
                layers = ", ".join(dict.fromkeys(t.layer for t in terms)) or "none"
                raise UserError(f"--layer-weights item {item.strip()!r} must be LAYER=SCHEDULE with a layer "
                                f"of --layers ({layers})")
            for i in idx:
                self.term_sched[i] = Schedule.parse(text.strip(), f"weight of {name.strip()}", schedules.interp)
        all_sched = list(self.sched.values()) + list(self.term_sched.values())
        self.features = None
        needed = set().union(*(s.names for s in all_sched)) & {"rms", "onset", "beat", "low", "mid", "high"}
        if needed:
            if not audio_path:
                raise UserError("a schedule uses audio features but there is no soundtrack; pass --audio FILE")
            from .audio import features_for

            self.features = features_for(audio_path, self.fps, self.n, start=audio_start,
                                         smoothing=schedules.smoothing, needed=sorted(needed))
        self._cache = {k: s.values(self.n, self.fps, self.features) for k, s in self.sched.items()}
        if "steps" in self._cache and np.max(self._cache["steps"]) > DreamSettings.MAX_STEPS:
            raise UserError(f"the steps schedule {schedules.steps!r} reaches {np.max(self._cache['steps']):g} "
                            f"steps; keep it at most {DreamSettings.MAX_STEPS}")
        self._cache.update({i: s.values(self.n, self.fps, self.features) for i, s in self.term_sched.items()})

    def _get(self, key, sched, f):
        c = self._cache[key]
        return float(c[f]) if f < len(c) else sched.at(f, self.fps, self.features)

    def value(self, name: str, f: int) -> float:
        return self._get(name, self.sched[name], f)

    def weights(self, f: int) -> list[float]:
        return [self._get(i, self.term_sched[i], f) if i in self.term_sched else w
                for i, w in enumerate(self.term_weights)]

    def settings(self, base: DreamSettings, f: int) -> DreamSettings:
        from dataclasses import replace

        return replace(base, step_size=max(0.0, self.value("step_size", f)),
                       steps=max(0, int(round(self.value("steps", f)))))

    def curves(self) -> dict[str, np.ndarray]:
        """Every scheduled curve and audio feature over the timeline (for plots)."""
        out = {k: v for k, v in self._cache.items() if isinstance(k, str)}
        out.update({s.name: self._cache[i] for i, s in self.term_sched.items()})
        out.update({f"audio {k}": np.asarray(v) for k, v in (self.features or {}).items()})
        return out


def frame_seed(seed: int, frame: int) -> int:
    """A 31-bit seed for one frame, so any frame can be re-rendered alone (exact resume)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(frame)]).generate_state(1)[0] & 0x7FFFFFFF)


# ---- background threads: decode/flow ahead of the dream, encode behind it ----

class _Background:
    """Iterate ``make()`` in a thread through a bounded queue; its errors re-raise in the consumer."""

    _END = object()

    def __init__(self, make, maxsize: int = 4):
        import queue
        import threading

        self._q, self._stop = queue.Queue(maxsize), threading.Event()
        self._t = threading.Thread(target=self._run, args=(make,), daemon=True)
        self._t.start()

    def _put(self, item) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _run(self, make):
        it = make()
        try:
            for item in it:
                if not self._put((item, None)):
                    break
            self._put((self._END, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put((self._END, e))
        finally:
            close = getattr(it, "close", None)
            if close:
                close()  # ends the generator, which closes its reader and so ffmpeg

    def __iter__(self):
        while True:
            item, err = self._q.get()
            if err is not None:
                raise err
            if item is self._END:
                return
            yield item

    def close(self):
        import queue

        self._stop.set()
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        self._t.join()


class _Sink:
    """Call ``fn(item)`` in a thread for each ``put``; an error re-raises on the next put or close."""

    def __init__(self, fn, maxsize: int = 4):
        import queue
        import threading

        self._q, self._fn, self._err = queue.Queue(maxsize), fn, None
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while True:
            item = self._q.get()
            if item is None:
                return
            if self._err is None:
                try:
                    self._fn(item)
                except BaseException as e:  # noqa: BLE001 - handed to the producer
                    self._err = e

    def put(self, item):
        if self._err is not None:
            raise self._err
        self._q.put(item)

    def close(self):
        """Wait until everything put so far is done; re-raise a failure."""
        self._q.put(None)
        self._t.join()
        if self._err is not None:
            raise self._err


# ---- the work directory that makes a render resumable ----

class WorkDir:
    """``.<output>.dreamwork/``: the settings fingerprint and every finished frame as a PNG.

    A frame's dream depends only on its source frame, the previous source and dream frames and a
    per-frame seed, so the saved frames are the whole temporal state: a resumed render re-encodes
    them and continues with output identical to an uninterrupted one.
    """

    def __init__(self, output, fingerprint: dict, resume: bool):
        import json
        import shutil

        out = Path(output)
        self.path = out.with_name(f".{out.name.rstrip('/')}.dreamwork")
        self.frames = self.path / "frames"
        meta = self.path / "settings.json"
        text = json.dumps(fingerprint, sort_keys=True, default=str)
        if resume:
            if not meta.is_file():
                raise UserError(f"nothing to resume for {output}: no work directory {self.path}; "
                                f"run without --resume to start")
            if meta.read_text() != text:
                raise UserError(f"cannot resume: {self.path} was made with other settings or input; "
                                f"use the same arguments, or run without --resume to start over")
        elif self.path.exists():
            shutil.rmtree(self.path)
        try:
            self.frames.mkdir(parents=True, exist_ok=True)
            meta.write_text(text)
        except OSError as e:  # e.g. under /proc, or a read-only mount (root passes the access checks)
            raise DreamFailure(f"cannot write the work folder {self.path}: {e.strerror or e}; "
                               "choose an output folder you can write to") from None
        dio.remove_stale_temporaries(output)  # a killed (SIGKILL) run's half-written output
        self.done = 0
        while (self.frames / f"{self.done:06d}.png").is_file():
            self.done += 1

    def save(self, i: int, frame: np.ndarray) -> None:
        import cv2

        tmp = self.frames / f"{i:06d}.tmp.png"
        if not cv2.imwrite(str(tmp), frame[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise DreamFailure(f"could not save frame {i} in {self.frames}; check free disk space")
        tmp.replace(self.frames / f"{i:06d}.png")  # a killed render never leaves a half-written frame

    def load(self, i: int) -> np.ndarray:
        import cv2

        return np.ascontiguousarray(cv2.imread(str(self.frames / f"{i:06d}.png"), cv2.IMREAD_COLOR)[..., ::-1])

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)


def _fingerprint(kind, input, **parts) -> dict:
    from dataclasses import asdict, is_dataclass

    from . import __version__

    src = Path(str(input))
    fp = {"kind": kind, "version": __version__, "input": str(src.resolve()) if src.exists() else str(input)}
    if src.is_file():
        st = src.stat()
        fp["input_stat"] = [st.st_size, int(st.st_mtime)]
    for k, v in parts.items():
        fp[k] = asdict(v) if is_dataclass(v) else v
    return fp


# ---- per-frame steps, shared by the renders and the frame generators ----

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
    from .flow import warp

    # Bicubic: the residual is re-warped every frame, and bilinear's blur would compound into a smear.
    residual = warp(prev_dream.astype(np.float32) - prev_src.astype(np.float32), flow, cubic=True)
    return np.clip(src_f + blend * mask[..., None] * residual, 0, 255)


def check_video_settings(ks) -> None:
    """Video or zoom settings that contradict each other or are out of range are usage errors."""
    if getattr(ks, "no_audio", False) and ks.audio:
        raise UserError("--no-audio and --audio FILE contradict each other; pass one of them")
    if not 0.0 <= getattr(ks, "carry_step", 0.0) <= 1.0:  # nan too
        raise UserError(f"--carry-step must be between 0 and 1, not {ks.carry_step}")
    if not 0 <= ks.first_steps <= DreamSettings.MAX_STEPS:
        raise UserError(f"--first-steps must be from 0 to {DreamSettings.MAX_STEPS}")


def with_blend_default(sched: Schedules, coherence: str) -> Schedules:
    """Fill an empty ``blend`` schedule with the coherence mode's default."""
    from dataclasses import replace

    return sched if sched.blend.strip() else replace(sched, blend=repr(BLEND_DEFAULT[coherence]))


def _check_video_output(input, output):
    dio.check_not_same(input, output)
    p = str(output)
    if not (p.endswith("/") or Path(p).suffix.lower() in dio.WRITE_VIDEO_EXTS or not Path(p).suffix):
        raise UserError(f"cannot write {output}: use {', '.join(dio.WRITE_VIDEO_EXTS)} or a folder for PNG frames")
    parent = Path(p).absolute().parent  # checked before the work folder is made there (which would create it)
    if not parent.is_dir():
        raise UserError(f"output folder {parent} does not exist; create it or choose another output path")


def _progress(total, initial, quiet, desc):
    from tqdm import tqdm

    return tqdm(total=total or None, initial=initial, unit="frame", desc=desc, disable=quiet, dynamic_ncols=True,
                smoothing=0.1)


def _render(frames_source, step, output, total, fps, size, quality, audio, audio_start, work: WorkDir, quiet,
            desc):
    """The loop both renders share: dream (or reload) each frame, save it, encode it behind.

    ``frames_source()`` makes an iterator of per-frame inputs; ``step(i, item, state)`` returns the
    dream of frame ``i``. On Ctrl-C the frames done so far are finalized as a playable file.
    """
    writer = dio.VideoWriter(output, fps, size, quality=quality, audio=audio or None, audio_start=audio_start)
    resumed = work.done

    def save_and_write(job):  # behind the dream, in the sink's thread: PNG and encode cost no dream time
        i, out = job
        if i >= resumed:
            work.save(i, out)
        writer.write(out)

    import cv2

    # OpenCV (flow, PNG) works behind the dream: one thread, so it takes a little of one core instead of
    # bursts on both that stall TensorFlow's two compute threads at their next barrier.
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    sink = _Sink(save_and_write)
    frames = _Background(frames_source)
    bar = _progress(total, resumed, quiet, desc)
    done = 0
    try:
        try:
            for i, item in enumerate(frames):
                out = work.load(i) if i < resumed else step(i, item)
                if i >= resumed:
                    bar.update(1)
                step.keep(i, item, out)
                sink.put((i, out))
                done = i + 1
        finally:
            frames.close()
            bar.close()
            cv2.setNumThreads(cv_threads)
        sink.close()
    except KeyboardInterrupt:
        try:
            sink.close()
            if writer.count:
                writer.finish()
            else:
                writer.abort()
        except BaseException:  # a second Ctrl-C while finishing too: leave no temporaries (the frames are kept)
            writer.abort()
        raise Interrupted(done, total or done, output, work.path) from None
    except BaseException:
        try:
            sink.close()
        except BaseException:
            pass
        writer.abort()
        raise
    if done == 0:
        writer.abort()
        raise UserError("the input has no frames to render")
    try:
        path = writer.finish()
    except BaseException:  # e.g. Ctrl-C while ffmpeg finalizes: no temporaries left; the work folder can resume
        writer.abort()
        raise
    work.remove()
    return path


class VideoStepper:
    """Dreams video frames in order, carrying the previous frame's dream (see :func:`coherent_start`)."""

    def __init__(self, dreamer, dream: DreamSettings, video: VideoSettings, timeline: Timeline, seed: int):
        self.dreamer, self.dream, self.video, self.tl, self.seed = dreamer, dream, video, timeline, seed
        self.prev_src = self.prev_dream = None

    def __call__(self, i: int, item) -> np.ndarray:
        src, flow, mask = item
        start = coherent_start(self.video.coherence, src, self.prev_src, self.prev_dream,
                               self.tl.value("blend", i), flow, mask)
        step_map = None
        if start is not None and mask is not None:
            # The carried dream only needs upkeep; pixels the previous frame did not show dream afresh.
            step_map = self.video.carry_step + (1.0 - self.video.carry_step) * (1.0 - mask)
        return self.dreamer.dream(src, start, self.tl.settings(self.dream, i), seed=frame_seed(self.seed, i),
                                  weights=self.tl.weights(i), step_map=step_map,
                                  steps=self.video.first_steps if i == 0 and self.video.first_steps else None)

    def keep(self, i: int, item, out: np.ndarray) -> None:
        self.prev_src, self.prev_dream = item[0], out


def move(img: np.ndarray, zoom: float, angle: float, dx: float, dy: float) -> np.ndarray:
    """Zoom about the centre by ``zoom``, rotate ``angle`` degrees, shift (dx, dy) pixels."""
    import cv2

    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, zoom)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


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
    """Dreams an infinite zoom: frame i is frame i-1 moved by the schedules, colour-matched, dreamed."""

    def __init__(self, dreamer, dream: DreamSettings, zs: ZoomSettings, timeline: Timeline, seed: int, init):
        self.dreamer, self.dream, self.zs, self.tl, self.seed, self.init = dreamer, dream, zs, timeline, seed, init
        self.prev = self.ref = None

    def base(self, i: int) -> np.ndarray:
        if i == 0:
            return self.init
        v = self.tl.value
        img = move(self.prev, v("zoom", i), v("angle", i), v("dx", i), v("dy", i))
        return match_color(img, self.ref) if self.zs.color_match else img

    def __call__(self, i: int, item=None) -> np.ndarray:
        return self.dreamer.dream(self.base(i), None, self.tl.settings(self.dream, i), seed=frame_seed(self.seed, i),
                                  weights=self.tl.weights(i),
                                  steps=self.zs.first_steps if i == 0 and self.zs.first_steps else None)

    def keep(self, i: int, item, out: np.ndarray) -> None:
        self.prev = out
        if i == 0:
            self.ref = color_stats(out)


def noise_image(spec: str, seed: int = 0) -> np.ndarray:
    """Smooth colour noise of size ``WxH`` (a soft start that dreams into structure quickly)."""
    import re

    import cv2

    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", spec)
    if not m or not (16 <= int(m[1]) <= 16384 and 16 <= int(m[2]) <= 16384):
        raise UserError(f"--from-noise {spec!r}: give a size WxH between 16 and 16384, e.g. 640x360")
    w, h = int(m[1]), int(m[2])
    rng = np.random.default_rng(seed)
    coarse = rng.normal(128, 48, (max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _split(kwargs: dict, *classes):
    """Flat keyword arguments (``steps=10, coherence="flow"``) into the settings dataclasses; a name
    that two classes share goes to the first (Schedules before DreamSettings: steps may be scheduled)."""
    from dataclasses import fields

    out, left = [], dict(kwargs)
    for cls in classes:
        names = {f.name for f in fields(cls)}
        out.append(cls(**{k: left.pop(k) for k in list(left) if k in names}))
    if left:
        raise TypeError(f"unknown option(s): {', '.join(left)}")
    return out


def soundtrack(input, video: VideoSettings, info) -> tuple[str, float]:
    """The audio a video render uses (``""`` for none) and where in it the render starts, seconds."""
    audio = "" if video.no_audio else (video.audio or (str(input) if info.has_audio else ""))
    return audio, (video.start if audio and not video.audio else 0.0)


def dream_video(input, output, *, seed: int = 0, max_side: int | None = None, resume: bool = False,
                quiet: bool = False, **options) -> Path:
    """Dream over a video clip (or image sequence) into ``output`` (mp4/webm/gif/mov/mkv or a folder).

    ``options`` are the fields of :class:`ModelSettings`, :class:`~dreamvideo.engine.DreamSettings`,
    :class:`VideoSettings` and :class:`Schedules` (e.g. ``layers="mixed4", steps="10", coherence="flow"``).
    Returns the output path; raises :class:`Interrupted` on Ctrl-C after finalizing the frames done.
    """
    model, sched, dream, video = _split(options, ModelSettings, Schedules, DreamSettings, VideoSettings)
    sched = with_blend_default(sched, video.coherence)
    dream = dream.check()
    _check_video_output(input, output)
    if video.first_steps < 0 or video.quality < 0:
        raise UserError("--first-steps and --quality must be 0 or more")
    check_video_settings(video)
    if video.audio:
        dio.require_audio(video.audio)
    reader = dio.VideoReader(input, start=video.start or None, end=video.end or None, frames=video.frames or None,
                             max_side=max_side, fps=video.fps or None)
    info = reader.info
    if video.frames and info.nframes and video.frames > info.nframes + 1:
        reader.close()
        raise UserError(f"--frames {video.frames} is more than the {info.nframes} frames of {input} in that range; "
                        f"use --frames {info.nframes} or fewer")
    audio, audio_start = soundtrack(input, video, info)
    dreamer = build_dreamer(model)
    timeline = Timeline(sched, info.fps, info.nframes, dreamer.objective.terms, audio or None, audio_start,
                        use=("step_size", "steps", "blend"))
    work = WorkDir(output, _fingerprint("video", input, model=model, dream=dream, video=video, sched=sched, seed=seed,
                                        max_side=max_side), resume)
    stepper = VideoStepper(dreamer, dream, video, timeline, seed)
    skip = work.done

    def source():
        from .flow import FlowEstimator

        est = FlowEstimator(video.flow) if video.coherence == "flow" else None
        prev = None
        with reader:
            for i, frame in enumerate(reader):
                flow = mask = None
                if est is not None and prev is not None and i >= skip:
                    flow, mask = est.pair(prev, frame)
                yield frame, flow, mask
                prev = frame

    # The source's own audio goes only where it can (not GIF / PNG frames: no warning for what was never asked).
    carries = video.audio or Path(str(output)).suffix.lower() in (".mp4", ".mov", ".mkv", ".webm")
    return _render(source, stepper, output, info.nframes, info.fps, (info.width, info.height), video.quality or None,
                   audio if carries else "", audio_start, work, quiet, "dreaming")


MAX_FRAMES = 1_000_000  # schedules are evaluated for every frame up front


def zoom_start(input, zs: ZoomSettings, max_side, seed: int) -> np.ndarray:
    """Check a zoom's frame count and start, and return its first image (even sides)."""
    if not (1 <= zs.frames <= MAX_FRAMES) or not 0 < zs.fps <= 1000:
        raise UserError(f"--frames must be from 1 to {MAX_FRAMES} and --fps above 0 (at most 1000)")
    if input and zs.from_noise:
        raise UserError("give either an input image or --from-noise WxH, not both")
    if not input and not zs.from_noise:
        raise UserError("give an input image, or --from-noise WxH to start from noise")
    check_video_settings(zs)
    init = fit_max_side(dio.read_image(input), max_side) if input else noise_image(zs.from_noise, seed)
    # Even sides: H.264 in yuv420p needs them, and resizing each frame later would blur the zoom.
    return np.ascontiguousarray(init[: init.shape[0] // 2 * 2 or 1, : init.shape[1] // 2 * 2 or 1])


def zoom(input, output, *, seed: int = 0, max_side: int | None = None, resume: bool = False, quiet: bool = False,
         **options) -> Path:
    """Grow an infinite-zoom animation from an image (or ``from_noise="WxH"``; ``input`` may then be None).

    ``options``: fields of :class:`ModelSettings`, :class:`~dreamvideo.engine.DreamSettings`,
    :class:`ZoomSettings` and :class:`Schedules` (``zoom="1.0 + 0.04*beat"``, ``frames=240``...).
    """
    model, sched, dream, zs = _split(options, ModelSettings, Schedules, DreamSettings, ZoomSettings)
    dream = dream.check()
    _check_video_output(input or "", output)
    init = zoom_start(input, zs, max_side, seed)
    if zs.audio:
        dio.require_audio(zs.audio)
    dreamer = build_dreamer(model)
    timeline = Timeline(sched, zs.fps, zs.frames, dreamer.objective.terms, zs.audio or None, 0.0,
                        use=("step_size", "steps", "zoom", "angle", "dx", "dy"))
    work = WorkDir(output, _fingerprint("zoom", input or zs.from_noise, model=model, dream=dream, zoom=zs,
                                        sched=sched, seed=seed, max_side=max_side), resume)
    stepper = ZoomStepper(dreamer, dream, zs, timeline, seed, init)
    return _render(lambda: iter(range(zs.frames)), stepper, output, zs.frames, zs.fps,
                   (init.shape[1], init.shape[0]), zs.quality or None, zs.audio, 0.0, work, quiet, "zooming")


def dream_frames(frames, *, seed: int = 0, dreamer=None, fps: float = 25.0, **options):
    """Generator: dream an iterable of uint8 RGB frames coherently, yielding each dream as it is made.

    For plugging in your own source and sink. ``options`` as :func:`dream_video` (model, engine,
    coherence and schedules; audio-reactive schedules need ``audio=FILE``).
    """
    from .flow import FlowEstimator

    model, sched, dream, video = _split(options, ModelSettings, Schedules, DreamSettings, VideoSettings)
    sched = with_blend_default(sched, video.coherence)
    dreamer = dreamer or build_dreamer(model)
    timeline = Timeline(sched, fps, video.frames or 1, dreamer.objective.terms, video.audio or None,
                        use=("step_size", "steps", "blend"))
    stepper = VideoStepper(dreamer, dream.check(), video, timeline, seed)
    est = FlowEstimator(video.flow) if video.coherence == "flow" else None
    for i, frame in enumerate(frames):
        flow = mask = None
        if est is not None and stepper.prev_src is not None:
            flow, mask = est.pair(stepper.prev_src, frame)
        out = stepper(i, (frame, flow, mask))
        stepper.keep(i, (frame,), out)
        yield out


def zoom_frames(image, nframes: int, *, seed: int = 0, dreamer=None, **options):
    """Generator: the frames of an infinite zoom from ``image`` (uint8 RGB), one at a time."""
    model, sched, dream, zs = _split(options, ModelSettings, Schedules, DreamSettings, ZoomSettings)
    dreamer = dreamer or build_dreamer(model)
    timeline = Timeline(sched, zs.fps, nframes, dreamer.objective.terms, zs.audio or None,
                        use=("step_size", "steps", "zoom", "angle", "dx", "dy"))
    stepper = ZoomStepper(dreamer, dream.check(), zs, timeline, seed, np.asarray(image, np.uint8))
    for i in range(nframes):
        out = stepper(i)
        stepper.keep(i, None, out)
        yield out


# ---------------------------------------------------------------- presets

PRESET_SECTIONS = {"model": ModelSettings, "dream": DreamSettings, "video": VideoSettings, "zoom": ZoomSettings,
                   "schedules": Schedules}
_PRESET_TOP = ("seed", "max_side")  # top-level keys besides the settings fields
_KIND_CLASSES = {"image": (ModelSettings, DreamSettings),
                 "video": (ModelSettings, DreamSettings, VideoSettings, Schedules),
                 "zoom": (ModelSettings, DreamSettings, ZoomSettings, Schedules)}


def _preset_value(f, value, label, key):
    """``value`` from a preset converted to field ``f``'s type; raises ValueError if it does not fit."""
    default = f.default if f is not None else 0
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{label}: {key} must be true or false, not {value!r}")
        return value
    if isinstance(value, bool):
        raise UserError(f"{label}: {key} must be a {type(default).__name__}, not {str(value).lower()}")
    parse = (f.metadata.get("parse") if f is not None else None) or type(default)
    out = parse(value if isinstance(value, str) else repr(value))  # 10.5 is no int; 0.01 is the schedule "0.01"
    choices = f.metadata.get("choices") if f is not None else None
    if choices and out not in choices:
        raise UserError(f"{label}: {key} = {value!r} is not one of {', '.join(choices)}")
    return out


def preset_defaults(name_or_path, dests) -> dict:
    """A preset's values for the settings ``dests`` (``"Schedules.zoom"``, ``"DreamSettings.octaves"``,
    ``"seed"``...) that a command has: ``{dest: typed value}``.

    A key applies to the dests with its field name in its section's class (any class when it is at the
    top level); ``steps``/``step_size`` cross between ``[dream]`` and ``[schedules]`` when a command has
    only one of them (a still image has no schedules). Keys of settings the command does not have are
    left out, so one preset serves every command. Unknown keys and values of the wrong type are
    one-line :class:`UserError`\\ s.
    """
    from dataclasses import fields

    from . import presets

    path, data = presets.read(name_or_path)
    label = f"preset {path.stem if path.parent == presets.BUILTIN_DIR else path}"
    schema = {s: {f.name for f in fields(c)} for s, c in PRESET_SECTIONS.items()}
    dests = set(dests)
    out = {}
    for section, key, value in presets.entries(data, schema, set(_PRESET_TOP), label):
        if section is None and key in _PRESET_TOP:
            if key in dests:
                v = _preset_value(None, value, label, key)
                if key == "max_side" and v <= 0:
                    raise UserError(f"{label}: max_side must be a positive whole number")
                if key == "seed" and not 0 <= v < 2 ** 32:
                    raise UserError(f"{label}: seed must be a whole number from 0 to {2 ** 32 - 1}")
                out[key] = v
            continue
        own = [PRESET_SECTIONS[section]] if section else list(PRESET_SECTIONS.values())
        home = [c for c in own if key in {x.name for x in fields(c)}]
        converted, problem = {}, None
        for cls in home:  # checked in its own settings even where this command does not use it
            f = {x.name: x for x in fields(cls)}[key]
            try:
                converted[cls] = _preset_value(f, value, label, key)
            except UserError as e:
                problem = problem or e
            except (ValueError, TypeError):
                want = {"int": "a whole number", "float": "a number"}.get(type(f.default).__name__, "valid")
                problem = problem or UserError(f"{label}: {key} = {value!r} is not {want}")
        if problem and (section or not converted):  # top level: fine if some settings group takes it
            raise problem
        cross = {DreamSettings: Schedules, Schedules: DreamSettings}
        targets = [c for c in converted if f"{c.__name__}.{key}" in dests]
        if not targets and section and own[0] in cross and f"{cross[own[0]].__name__}.{key}" in dests:
            other = cross[own[0]]
            try:
                converted[other] = _preset_value({x.name: x for x in fields(other)}[key], value, label, key)
                targets = [other]
            except (ValueError, TypeError):  # a schedule expression has no meaning for a still image
                pass
        for cls in targets:
            out[f"{cls.__name__}.{key}"] = converted[cls]
    return out


def preset_options(name_or_path, kind: str = "zoom") -> dict:
    """A preset as keyword options for :func:`dream_video` (``kind="video"``), :func:`zoom` or
    ``dream_image`` (``"image"``): ``dreamvideo.zoom("cat.jpg", "z.mp4", **preset_options("pulse"))``."""
    from dataclasses import fields

    if kind not in _KIND_CLASSES:
        raise UserError(f"preset kind must be one of {', '.join(_KIND_CLASSES)}, not {kind!r}")
    classes = _KIND_CLASSES[kind]
    dests = {f"{c.__name__}.{f.name}" for c in classes for f in fields(c)}
    if kind != "image":  # as on the command line, the scheduled steps and step size win
        dests -= {"DreamSettings.steps", "DreamSettings.step_size"}
    return {d.split(".")[-1]: v for d, v in preset_defaults(name_or_path, dests | set(_PRESET_TOP)).items()}


def preset_sections(values: dict, only_changed: bool = True) -> dict:
    """``{dest: value}`` (dests as in :func:`preset_defaults`) grouped into preset sections,
    ``{None: {...top-level}, "model": {...}, ...}``; with ``only_changed`` the defaults are left out."""
    from dataclasses import MISSING, fields

    by_class = {c.__name__: (s, {f.name: f for f in fields(c)}) for s, c in PRESET_SECTIONS.items()}
    out = {None: {}, **{s: {} for s in PRESET_SECTIONS}}
    for dest, value in values.items():
        cls, _, name = dest.rpartition(".")
        if not cls:
            if name in _PRESET_TOP and value is not None and not (only_changed and name == "seed" and value == 0):
                out[None][name] = value
            continue
        if cls not in by_class or name not in by_class[cls][1] or value is None:
            continue
        default = by_class[cls][1][name].default
        if only_changed and default is not MISSING and value == default:
            continue
        if name in ("model", "weights", "guide", "audio") and value and Path(str(value)).is_file():
            value = str(Path(str(value)).resolve())  # a preset may be used from another folder
        out[by_class[cls][0]][name] = value
    return {k: v for k, v in out.items() if v}


# ---------------------------------------------------------------- plan and preview

def plan_output(output) -> Path:
    """Where a plan's plot goes: ``output`` if it names a plot (png/svg/pdf/jpg/webp), else
    ``<output without its suffix>.plan.png`` (so a render's ``-o clip.mp4`` gives ``clip.plan.png``)."""
    from .plan import PLOT_EXTS

    p = Path(str(output))
    return p if p.suffix.lower() in PLOT_EXTS else p.with_name(p.name.rstrip("/").rsplit(".", 1)[0] + ".plan.png")


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


def _plan_terms(model: ModelSettings, sched: Schedules):
    """The objective's terms, for --layer-weights; loads the model only when it has to."""
    from .catalog import MODELS
    from .objectives import parse_objective

    if not sched.layer_weights.strip():
        return ()
    if model.layers or model.model in MODELS:
        return parse_objective(model.layers or MODELS[model.model].default_layers, mode=model.objective).terms
    return build_dreamer(model).objective.terms


def _all_audio_features(timeline: Timeline, audio, fps, n, start, smoothing) -> dict:
    """Every audio feature (the timeline's, plus the rest), without onset/beat if librosa is missing."""
    from .audio import features_for
    from .schedule import AUDIO_FEATURES

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
    "titles", "fps", "frames"}``.
    """
    from dataclasses import replace

    from .plan import contact_sheet, evenly_spaced, plot_curves

    if kind not in ("video", "zoom"):
        raise UserError(f"plan kind must be video or zoom, not {kind!r}")
    if preview_frames < 1 or preview_size < 16 or preview_steps < 0:
        raise UserError("--preview-frames must be at least 1, --preview-size at least 16 and --preview-steps >= 0")
    plot_path = plan_output(output)
    if input:
        dio.check_not_same(input, plot_path)
    classes = (ModelSettings, Schedules, DreamSettings, VideoSettings if kind == "video" else ZoomSettings)
    model, sched, dream, ks = _split(options, *classes)
    dream = dream.check()
    if kind == "video":
        check_video_settings(ks)
        reader = dio.VideoReader(input, start=ks.start or None, end=ks.end or None, frames=ks.frames or None,
                                 max_side=max_side, fps=ks.fps or None)
        reader.close()
        info = reader.info
        fps, n = info.fps, info.nframes
        if n < 1:
            raise UserError(f"cannot tell how many frames {input} has; pass --frames N")
        audio, audio_start = soundtrack(input, ks, info)
        use = ("step_size", "steps", "blend")
        sched = with_blend_default(sched, ks.coherence)
    else:
        init = zoom_start(input, ks, max_side, seed)
        fps, n, audio, audio_start = ks.fps, ks.frames, ks.audio, 0.0
        use = ("step_size", "steps", "zoom", "angle", "dx", "dy")
    dreamer = build_dreamer(model) if preview else None
    terms = dreamer.objective.terms if dreamer else _plan_terms(model, sched)
    timeline = Timeline(sched, fps, n, terms, audio or None, audio_start, use=use)
    curves = {k: np.asarray(v, np.float64) for k, v in timeline.curves().items()}
    for k, v in _all_audio_features(timeline, audio, fps, n, audio_start, sched.smoothing).items():
        curves.setdefault(f"audio {k}", np.asarray(v, np.float64))
    title = f"dreamvideo plan {kind}: {Path(str(input)).name if input else ks.from_noise}"
    drawn = plot_curves(curves, fps, plot_path, title=title)
    result = {"plot": drawn["path"], "preview": None, "curves": curves, "panels": drawn["panels"],
              "titles": drawn["titles"], "fps": float(fps), "frames": int(n)}
    if not preview:
        return result
    sheet = preview_output(plot_path) if preview is True or preview == "" else Path(str(preview))
    if input:
        dio.check_not_same(input, sheet)
    want = evenly_spaced(n, preview_frames)
    tiles = []
    side = min(preview_size, max_side) if max_side else preview_size
    if kind == "video":
        pt = _PreviewTimeline(timeline, 1.0, preview_steps)
        first = _preview_steps(ks.first_steps, preview_steps) if ks.first_steps else None
        reader = dio.VideoReader(input, start=ks.start or None, end=ks.end or None, frames=want[-1] + 1,
                                 max_side=side, fps=ks.fps or None)
        bar = _progress(len(want), 0, quiet, "preview")
        with reader:
            for i, frame in enumerate(reader):
                if i in want:
                    out = dreamer.dream(frame, None, pt.settings(dream, i), seed=frame_seed(seed, i),
                                        weights=pt.weights(i), steps=first if i == 0 else None)
                    tiles.append((f"#{i} {i / fps:.2f}s", out))
                    bar.update(1)
        bar.close()
    else:
        import cv2

        s = min(1.0, side / max(init.shape[:2]))
        size = (max(2, round(init.shape[1] * s / 2) * 2), max(2, round(init.shape[0] * s / 2) * 2))
        small = cv2.resize(init, size, interpolation=cv2.INTER_AREA) if s < 1 else \
            np.ascontiguousarray(init[: init.shape[0] // 2 * 2, : init.shape[1] // 2 * 2])
        zs = replace(ks, first_steps=_preview_steps(ks.first_steps, preview_steps) if ks.first_steps else 0)
        stepper = ZoomStepper(dreamer, dream, zs, _PreviewTimeline(timeline, small.shape[1] / init.shape[1],
                                                                    preview_steps), seed, small)
        bar = _progress(want[-1] + 1, 0, quiet, "preview")
        for i in range(want[-1] + 1):
            out = stepper(i)
            stepper.keep(i, None, out)
            if i in want:
                tiles.append((f"#{i} {i / fps:.2f}s", out))
            bar.update(1)
        bar.close()
    result["preview"] = contact_sheet(tiles, sheet)
    return result
