"""A live run: the show loop that gives every sink a frame at the source's rate.

Three threads: the source's reader (newest frame only, :mod:`.sources`), the dream thread (newest
shown frame only, :mod:`.engine`), and this loop, which for each source frame it takes carries
the last dream onto it by optical flow (from the frame that dream was made on when it has just
landed, else from the frame shown before) and writes it to every sink. So motion is the source's,
at its rate, and the dream updates at the engine's rate. A source frame that came while this loop
was busy is dropped (counted; the recording repeats the frame before in its place, so it lasts as
long as the run).

Convention: frames are ``H x W x 3`` uint8 RGB; times in seconds; latency is a source frame's
capture (read from ffmpeg's pipe) to the moment every sink has it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import DreamError, DreamFailure, UserError
from ..settings import LiveSettings, ZoomSettings, with_blend_default
from .engine import LIVE_SCHEDULED, MID_DREAM, Controller, DreamWorker, LiveTimeline

STATUS_EVERY = 0.5  # seconds between two status lines


@dataclass
class Stats:
    """What a live run did: frames shown, dreamed, dropped, latencies (seconds) and wall time."""

    shown: int = 0
    dreamed: int = 0
    dropped: int = 0
    skipped: int = 0
    seconds: float = 0.0
    latencies: list = field(default_factory=list)
    level: str = ""

    def latency_ms(self, q: float) -> float:
        return 1000.0 * float(np.percentile(self.latencies, q)) if self.latencies else 0.0

    def line(self) -> str:
        """The closing line, always this form: ``live: shown 25.0 fps, dreamed 3.2 fps, latency 180 ms
        median / 240 ms p95, 0 source frames dropped``."""
        s = max(self.seconds, 1e-9)
        return (f"live: shown {self.shown / s:.1f} fps, dreamed {self.dreamed / s:.1f} fps, latency "
                f"{self.latency_ms(50):.0f} ms median / {self.latency_ms(95):.0f} ms p95, "
                f"{self.dropped} source frames dropped")


def parse_line(text: str) -> dict:
    """The figures of a closing line (see :meth:`Stats.line`), for scripts and tests."""
    import re

    m = re.fullmatch(r"live: shown ([\d.]+) fps, dreamed ([\d.]+) fps, latency (\d+) ms median / (\d+) ms p95, "
                     r"(\d+) source frames dropped", text.strip())
    if not m:
        raise ValueError(f"not a live closing line: {text!r}")
    return {"shown_fps": float(m[1]), "dreamed_fps": float(m[2]), "latency_median_ms": int(m[3]),
            "latency_p95_ms": int(m[4]), "dropped": int(m[5])}


class LiveSession:
    """A live run from ``source`` (see :func:`dreamvideo.realtime.sources.parse_source`) with the
    sinks of ``live`` (:class:`~dreamvideo.settings.LiveSettings`) and the model, dream, video and
    schedule settings ``sections`` (as a video job's). Iterate it for ``(seconds, frame)`` of every
    shown frame; :attr:`stats` says what it did; leaving the loop early (break, Ctrl-C, SIGTERM) or
    ending it finalizes every sink. ``dreamer``: an engine to use instead of building one
    (tests, the page). ``status``: a callable given the status line every half second.
    ``controls`` (a :class:`~.controls.LiveControls`, made when not given): the settings a
    controller changes while it plays (:data:`dreamvideo.settings.LIVE_PARAMS`). ``rig``: a
    :class:`~dreamvideo.realtime.rig.Rig` (OSC, MIDI, the page's controls, scenes, NDI, the
    performance) or None.

    Every mistake is found when it is made (no process started, no model loaded); the source, its
    sound and the page open before the model loads, so an unreadable source or a busy port is
    one line at once. A failure of any thread (source, sound, dream, sink) ends the run: it is
    raised from the loop, once everything is closed."""

    def __init__(self, source, live: LiveSettings, sections: dict, *, seed: int = 0, max_side: int | None = None,
                 dreamer=None, status=None, controls=None, rig=None):
        from .controls import LiveControls
        from .sources import parse_source, read_path

        self.live, self.seed, self.max_side, self.status = live.check(), seed, max_side, status
        self.sections, self._dreamer = live_sections(sections), dreamer
        self.controls = controls if controls is not None else LiveControls()
        self.stats = Stats()
        self.landed_at = []  # (shown seq, seq dreamed): where each dream was first shown
        self.recorded: Path | None = None
        self.timing = {"capture": 0.0, "flow": 0.0, "encode": 0.0}  # seconds: converting, the carry, the sinks
        self.worker_timing = {"flow": 0.0, "dream": 0.0}
        self.spec = parse_source(source, live.loop)
        # user mistakes, all before any process starts or model loads
        zooming = self.spec.kind == "zoom"
        self._needed = check_live_schedules(self.sections["schedules"], zooming,
                                            self.sections["zoom"].fps if zooming else LIVE_CHECK_FPS,
                                            live.duration)
        self.rig, self.performance = rig, None
        if rig is not None:
            rig.needs(self)  # a scene on the beat needs the sound's beat
        if live.audio_in:
            check_audio_in(live.audio_in)
        elif self._needed:
            if self.spec.kind in ("zoom", "camera", "screen"):
                raise UserError(f"a schedule uses {', '.join(sorted(self._needed))} but a {self.spec.kind} source "
                                "has no sound; pass --audio-in default|DEVICE|URL|FILE")
            if self.spec.kind == "file":
                from .. import ffmpeg

                if not ffmpeg.has_audio(ffmpeg.header(self.spec.target)):
                    raise UserError(f"a schedule uses {', '.join(sorted(self._needed))} but {self.spec.target} has "
                                    "no sound; pass --audio-in FILE|default, or a source with sound")
        self._lock = None
        if live.record:
            from .. import guard
            from .sinks import RecordLock

            guard.check(live.record, guard.reads(read_path(source), {**self.sections, "live": live}),
                        role="the `record` file", fix="choose another recording name")
            rec = Path(live.record).absolute()
            if rec.is_dir():
                raise UserError(f"cannot record to {live.record}: it is a folder; pass a .mp4 or .mkv file name")
            if not rec.parent.is_dir():
                raise UserError(f"folder {rec.parent} does not exist; create it or record elsewhere")
            self._lock = RecordLock(rec)  # a second run recording to it: one line now
        self.source = self.worker = self.audio_in = self.recorder = self.page = self.controller = None
        self.features = self.timeline = self.dreamer = None
        self.fps = self.sections["zoom"].fps if self.spec.kind == "zoom" else 25.0
        self.sinks, self._others, self._tmp, self._record_audio, self._file_seconds = [], [], None, None, 0.0
        self.page_url = ""
        if rig is not None:  # last: it opens the control ports (closed again if it fails)
            try:
                rig.check(self)
            except BaseException:
                if self._lock is not None:
                    self._lock.release()
                raise

    # ------------------------------------------------------------------ opening and closing

    def _open(self) -> None:
        from . import sinks
        from .sources import Capture

        live = self.live
        if live.virtual_camera:
            sinks.check_virtual_camera()
        # The source first (an unreadable one is one line before the model loads); a zoom's is made
        # once its moves' timeline is (below).
        if self.spec.kind != "zoom":
            # A stream's sound comes from the same ffmpeg (its address opened once), when it is used.
            sound = self.spec.kind == "url" and not live.audio_in and bool(self._needed or live.record)
            self.source = Capture(self.spec, self.max_side, timeout=live.source_timeout, sound=sound)
            self.fps = self.source.fps
            if sound and self._needed and not self.source.sound:
                raise UserError(f"a schedule uses {', '.join(sorted(self._needed))} but {self.spec.target} has no "
                                "sound; pass --audio-in default|DEVICE|URL|FILE")
        if not live.no_page:  # a busy port: one line now
            self.page = sinks.PageServer(live.page_port)
            self.page_url = self.page.url
        if self.status is not None:
            self.status("live: loading the model")
        self.dreamer = self._load()  # before the source plays: loading the model would drop its first seconds
        from .listen import prepare

        prepare(self._needed)
        self.features = self._audio()  # the sound before the source plays too (a file's is decoded whole)
        s = self.sections
        self.timeline = LiveTimeline(s["schedules"], self.fps, self.dreamer.objective.terms,
                                     _Looped(self.features, self) if self.features else None, self.controls)
        if self.source is None:
            from .adapter import zoom_start
            from .zooming import ZoomSource

            self.source = ZoomSource(zoom_start(self.spec.target, self.max_side, self.seed), self.fps,
                                     self.timeline.moves)
        size, fps = (self.source.width, self.source.height), self.fps
        if live.virtual_camera:
            self._add(sinks.VirtualCamera(fps, size))
        if live.record:
            self.recorder = sinks.Recorder(live.record, fps, size, quality=s["video"].quality or None,
                                           audio=self._record_audio)
            self.sinks.append(self.recorder)
        if live.stream:
            self._add(sinks.Streamer(live.stream, fps, size))
        if self.page is not None:
            self._add(self.page)
        if self.rig is not None:
            self.rig.open(self)
        self.worker = self._start_dreaming()
        self.source.start()

    def _add(self, sink) -> None:
        self.sinks.append(sink)
        self._others.append(sink)

    def _audio(self):
        """The online audio features (None when no schedule reads them), and the recording's sound."""
        from .listen import AudioIn, OnlineFeatures

        needed, sound = self._needed, self.source.sound if self.source is not None else ""
        # A file's sound is all there from the start (kept whole: it may loop); a live one's last seconds.
        whole = self.spec.kind == "file" and not self.live.audio_in
        features = OnlineFeatures(self.fps, needed, smoothing=self.sections["schedules"].smoothing,
                                  **({"keep": 0} if whole else {})) if needed else None
        if self.live.audio_in or (sound and not whole and (features is not None or self.live.record)):
            wav = None
            if self.live.record:
                self._tmp = tempfile.TemporaryDirectory(prefix="dreamvideo-live-")
                wav = self._record_audio = str(Path(self._tmp.name) / "sound.wav")
            feed = None if self.live.audio_in else self.source  # a stream's own sound: from its capture
            self.audio_in = AudioIn(self.live.audio_in or sound, features, wav, feed=feed)
            return features
        if whole:
            from .. import ffmpeg

            if ffmpeg.has_audio(ffmpeg.header(self.spec.target)):
                self._record_audio = self.spec.target
                if features is not None:
                    from ..audio import load_audio

                    y, _ = load_audio(self.spec.target, sr=features.sr)
                    features.push(y)
                    self._file_seconds = y.size / features.sr
                    features.loops = self.live.loop
            return features
        if features is not None:
            raise UserError("a schedule uses audio features but this source has no sound; pass `audio_in`")
        return None

    def _load(self):
        """The dreamer, its step compiled (the first dream compiles it: not on the live clock)."""
        return warm_dreamer(self._dreamer, self.sections)

    def _start_dreaming(self):
        from .adapter import video_engine, zoom_engine

        s, timeline = self.sections, self.timeline
        zoom_state = {}  # the first dream's colours, across engines

        def make(level, first_index):
            dream = s["dream"] if level is None else replace(s["dream"], octaves=level.octaves)
            timeline.steps_cap = None if level is None else level.steps
            if self.spec.kind == "zoom":
                return zoom_engine(self.dreamer, dream, s["zoom"], timeline, self.seed, zoom_state)
            return video_engine(self.dreamer, dream, s["video"], timeline, self.seed, first_index,
                                deepen=self.live.deepen)

        if self.live.target_fps:
            steps = int(round(float(s["schedules"].steps))) if _is_number(s["schedules"].steps) else 20
            # No more dreams than frames: a target above the source's rate is the source's rate.
            self.controller = Controller(min(self.live.target_fps, self.fps), steps, s["dream"].octaves)
        rig = self.rig
        at_start = [0.0, 0]  # the dream's step size and steps when it started

        def before(seq, engine):
            if rig is not None:  # the changes a controller made apply to this dream
                rig.before_dream(seq, engine)
            timeline.refresh()
            now = timeline.settings(s["dream"], seq)
            at_start[:] = [now.step_size, now.steps]

        def between(seq):
            # A new step size or steps reaches the dream running: its next step (its next octave's
            # steps) is dreamed with it, so the frame it makes shows the change.
            if rig is not None:
                rig.between_steps(seq)
            timeline.refresh(only=MID_DREAM)
            now = timeline.settings(s["dream"], seq)
            size, steps = at_start
            return (now.step_size / size if size > 0 else 1.0), steps, now.steps

        return DreamWorker(make, self.fps, self.controller, before=before, between=between)

    def close(self) -> None:
        """Stop dreaming, release the source, finalize the recording (with its sound), end every
        other sink; once. The first failure is raised after everything is closed."""
        errors = []
        if self.worker is not None:
            self.worker_timing = dict(self.worker.timing)
        if self.source is not None:
            self.timing["capture"] = self.source.convert_seconds

        def attempt(fn):
            try:
                return fn()
            except Exception as e:  # noqa: BLE001 - everything gets closed
                errors.append(e)

        for part in (self.worker, self.source, self.audio_in, self.rig):
            if part is not None:
                attempt(part.close)
        if self.recorder is not None:
            self.recorded = attempt(self.recorder.close)
            if self.rig is not None:
                self.performance = attempt(lambda: self.rig.finish(self, self.recorded))
        for sink in self._others:
            attempt(sink.close)
        if self.page is not None and self.page not in self._others:
            attempt(self.page.close)
        if self._tmp is not None:
            attempt(self._tmp.cleanup)
        if self._lock is not None:
            attempt(self._lock.release)
            self._lock = None
        self.worker = self.source = self.audio_in = self.recorder = self._tmp = self.page = None
        self._others = []
        if errors:
            raise errors[0]

    def _failed(self):
        """The first failure of a thread (dream, source, sound), as one line, or None."""
        for part, what in ((self.worker, "the dream"), (self.source, "the source"), (self.audio_in, "the sound")):
            e = getattr(part, "error", None) if part is not None else None
            if e is not None:
                return e if isinstance(e, DreamError) else DreamFailure(f"{what} failed: {one_line(e)}")
        if self.audio_in is not None and self.audio_in.silent_for() > self.live.source_timeout:
            return DreamFailure(f"the sound input {self.audio_in.source} sent nothing for "
                                f"{self.live.source_timeout:g} s; check the device or sound server (or raise "
                                "--source-timeout)")
        return None

    # ------------------------------------------------------------------ the show loop

    def __iter__(self):
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        stats, live, source = self.stats, self.live, self.source
        motion = source.motion()
        dreams_shown = getattr(motion, "dreams_shown", False)  # a zoom dreams the frame it shows
        limit = int(round(live.duration * self.fps)) if live.duration else 0
        last_seq, last_out = -1, None
        t0 = time.monotonic()
        next_status, last_frame_at = t0 + STATUS_EVERY, t0
        try:
            while True:
                failure = self._failed()
                if failure is not None:
                    raise failure
                item = source.frames.take(0.5)
                if item is None:
                    if source.ended:
                        break
                    if time.monotonic() - last_frame_at > live.source_timeout:
                        raise DreamFailure(f"{self.spec.target} sent no frame for {live.source_timeout:g} s; "
                                           "check that the source is up (or raise --source-timeout)")
                    continue
                seq, t_cap, src = item
                last_frame_at = time.monotonic()
                if limit and seq >= limit:
                    break
                t1 = time.monotonic()
                landed = self.worker.landed.take(0) if self.worker.dreams else None
                if landed is not None:
                    self.landed_at.append((seq, landed[0]))
                out = motion(src, landed, seq=seq)
                t2 = time.monotonic()
                self.worker.offer(seq, out if dreams_shown else src)
                self._fill(seq - last_seq - 1, last_out if last_out is not None else out)
                for sink in self.sinks:
                    sink.write(out)
                if self.rig is not None:
                    self.rig.shown(seq, src)
                t3 = time.monotonic()
                last_seq, last_out = seq, out
                stats.shown += 1
                stats.latencies.append(t3 - t_cap)
                del stats.latencies[:-100_000]  # a long run's memory stays flat
                self.timing["flow"] += t2 - t1
                self.timing["encode"] += t3 - t2
                stats.seconds = (seq + 1) / self.fps
                stats.dreamed, stats.skipped = self.worker.dreams, self.worker.skipped
                if t3 >= next_status:
                    next_status = t3 + STATUS_EVERY
                    self._status()
                yield seq / self.fps, out
                if limit and seq + 1 >= limit:
                    break
            failure = self._failed()
            if failure is not None:
                raise failure
            if source.ended:
                # The source ended: the frames it sent after the last one shown were dropped too.
                self._fill(source.received - 1 - last_seq, last_out)
                last_seq = max(last_seq, source.received - 1)
        finally:
            stats.seconds = max(stats.seconds, (last_seq + 1) / self.fps if last_seq >= 0 else 0.0)
            if self.worker is not None:
                stats.dreamed, stats.skipped = self.worker.dreams, self.worker.skipped
            self.close()

    def _fill(self, gap: int, frame) -> None:
        """``gap`` source frames dropped: counted, and the recording repeats ``frame`` in their
        place, so it lasts as long as the run."""
        if gap <= 0:
            return
        self.stats.dropped += gap
        if self.recorder is not None and frame is not None:
            for _ in range(gap):
                self.recorder.write(frame)

    def _status(self) -> None:
        s = self.stats
        line = s.line()
        if self.controller is not None:
            line += f" (target {self.controller.target:g} fps: {self.controller.level.describe()})"
        if self.rig is not None:
            line = self.rig.status(line, s)
        if self.page is not None:
            self.page.status = line
        if self.status is not None:
            self.status(line)


def live_sections(sections: dict) -> dict:
    """A video job's settings as live runs them (the command line's and the page's): the dream
    settings checked, ``enter_every`` 1 (live holds no frame back for a band, see :mod:`.engine`),
    the blend's default filled, and a ``zoom:`` source's settings (``full_frames`` as video's)."""
    sections = dict(sections)
    sections["dream"] = sections["dream"].check()
    sections["video"] = replace(sections["video"], enter_every=1)
    sections["schedules"] = with_blend_default(sections["schedules"], sections["video"])
    sections["zoom"] = replace(sections.get("zoom") or ZoomSettings(), full_frames=sections["video"].full_frames)
    return sections


#: Live schedules are checked over their first :data:`LIVE_CHECK_SECONDS` at this rate when the
#: source's own is not known yet (a device or a URL opens later); a ``zoom:`` source's is its ``fps``.
LIVE_CHECK_FPS = 30.0
LIVE_CHECK_SECONDS = 600.0


def check_live_schedules(sched, zooming: bool, fps: float, seconds: float = 0.0) -> set:
    """The audio features the live schedules of ``sched`` read (a zoom's moves too when ``zooming``,
    the layer weights' too), once their values are checked in their ranges as offline checks them
    (:func:`~dreamvideo.timeline.check_curve`, one line naming the first frame out of range): over
    ``seconds`` (0: the first :data:`LIVE_CHECK_SECONDS`), a schedule that reads the sound with every
    feature at 0 and at 1. Before any model loads."""
    from ..schedule import Schedule
    from ..settings import AUDIO_FEATURES, check_ranges
    from ..timeline import check_curve
    from .engine import MOVES

    check_ranges(sched)
    n = max(1, int((seconds or LIVE_CHECK_SECONDS) * fps))
    used = set()
    for name in LIVE_SCHEDULED:
        if name in MOVES and not zooming:
            continue
        text = getattr(sched, name)
        parsed = Schedule.parse(text, name, sched.interp)
        used |= parsed.names
        for level in ((0.0, 1.0) if parsed.needs_audio else (None,)):
            feats = None if level is None else {k: np.full(n, level) for k in AUDIO_FEATURES}
            check_curve(name, text, parsed.values(n, fps, feats), fps)
    for name, _, text in (item.partition("=") for item in sched.layer_weights.split(";") if "=" in item):
        used |= Schedule.parse(text, f"weight of {name.strip()}", sched.interp).names
    return used & set(AUDIO_FEATURES)


def check_audio_in(text: str) -> None:
    """An ``--audio-in`` that names a file must be one with sound (a device or a URL is opened later)."""
    from .. import ffmpeg

    if "://" in text or text == "default":
        if "://" in text:
            from .sources import check_url

            check_url(text, "`audio_in`")
        return
    path = Path(text)
    looks_like_file = path.suffix != "" or "/" in text or "\\" in text
    if path.is_dir():
        raise UserError(f"`audio_in` {text} is a folder; pass a sound file, default or a device name")
    if path.is_file():
        if not ffmpeg.has_audio(ffmpeg.header(path, "audio source")):
            raise UserError(f"`audio_in` {text} has no sound; pass a file with an audio track")
    elif looks_like_file:
        raise UserError(f"`audio_in` {text}: no such file; check the path, or pass default or a device name")


def warm_dreamer(dreamer, sections: dict):
    """``dreamer`` (or one built from ``sections["model"]``) with its step compiled: the first
    dream compiles it, which must not happen on the live clock."""
    from ..build import build_dreamer

    dreamer = dreamer or build_dreamer(sections["model"])
    dreamer.dream(np.full((64, 64, 3), 128, np.uint8), settings=replace(sections["dream"], steps=1))
    return dreamer


def one_line(e: BaseException) -> str:
    """An exception as one line: its type and its message's first line."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


class _Looped:
    """The online features as the schedules read them: a looping file's frame numbers wrap at its
    end, and no frame is asked for sound that has not come in yet."""

    def __init__(self, features, session):
        self._f, self._s = features, session
        self.names = features.names

    def at(self, f: int):
        seconds = self._s._file_seconds
        if seconds and self._s.live.loop:
            f = f % max(1, int(seconds * self._s.fps))
        # Live sound lags the picture a little: the newest frame's worth of it that has come in.
        return self._f.at(max(0, min(f, int(self._f.heard * self._f.fps) - 1)))


def status_printer(stream=None, quiet: bool = False):
    """A status callable that rewrites one terminal line in place (nothing when ``quiet``)."""
    stream = stream or sys.stderr
    if quiet:
        return None

    def show(line: str) -> None:
        stream.write("\r" + line + "\x1b[K")
        stream.flush()

    return show
