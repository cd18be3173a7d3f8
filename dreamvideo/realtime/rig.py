"""A performer's rig around a live run: the controls (OSC, MIDI, the page), scenes, NDI out, the
undreamed source's recording, and the performance written beside the recording.

The session calls it at five points: :meth:`Rig.check` (before any model loads: user mistakes),
:meth:`Rig.open` (the run's parts are there), :meth:`Rig.before_dream` (on the dream thread, before
each dream: the changes taken and applied), :meth:`Rig.shown` (each shown frame) and
:meth:`Rig.finish` (after the recording is finalized). A change applies at the next dream; layers or
layer weights of the same network use the model already built (the loaded model is cached,
:func:`dreamvideo.build.load_feature_model`), swapped into the running stepper so the carried dream
is kept.

Convention: frames are ``H x W x 3`` uint8 RGB; ``seq`` a source frame's number since the start.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

from ..errors import UserError
from ..settings import AUDIO_FEATURES, PlaySettings, VideoSettings
from .control import KNOBS, Controls, number, scene_values


def scenes_from(items, preset: str = "") -> dict[str, dict]:
    """The scenes: ``NAME=PRESET`` items, then a preset's ``[scenes]`` (``NAME = "PRESET"``, or a
    table of values). Each scene keeps the live settings its preset sets."""
    from .. import presets

    out = {}
    table = presets.table(preset, "scenes") if preset else {}
    pairs = [(k, v) for k, v in table.items()] + [tuple(s.strip() for s in i.split("=", 1)) for i in items]
    for name, what in pairs:
        if isinstance(what, dict):
            values = what
        else:
            values = {}
            for section in presets.resolve(str(what), "video").values():
                values.update(section)
        out[name] = scene_values(values, f"scene {name}")
    return out


def midi_map(preset: str = "") -> dict:
    from .. import presets
    from .midi import parse_map

    return parse_map(presets.table(preset, "midi") if preset else {}, "[midi]")


class Rig:
    """The rig of ``play`` (:class:`~dreamvideo.settings.PlaySettings`); ``preset``: the preset the
    run was given (its ``[scenes]`` and ``[midi]`` tables); ``say``: a callable given one-line notes
    (MIDI learn lines) for the terminal."""

    def __init__(self, play: PlaySettings, preset: str = "", say=None):
        from .osc import parse_address

        self.play = play.check()
        self.say = say
        self.osc_address = parse_address(play.osc) if play.osc else None
        self.feedback = parse_address(play.osc_feedback, "--osc-feedback") if play.osc_feedback else None
        if self.feedback and not self.osc_address:
            raise UserError("--osc-feedback needs --osc [HOST:]PORT")
        self.scenes = scenes_from(play.scene, preset)
        self.mapping = midi_map(preset) if play.midi else {}
        missing = sorted({a[0] for kind, a in self.mapping.values() if kind == "scene"} - set(self.scenes))
        if missing:
            raise UserError(f"[midi] switches to scene {missing[0]!r}, which is not given; pass --scene "
                            f"{missing[0]}=PRESET or add it to [scenes]")
        if play.ndi:
            from .ndi import check

            check(play.ndi)
        self.controls = self.osc = self.midi_port = self.ndi = self.raw = None
        self.performance: Path | None = None
        self.render = ""  # the command that renders the performance
        self._last_raw, self._raw_seq = None, -1

    # ------------------------------------------------------------------ session hooks

    def needs(self, session) -> None:
        """A beat-quantised switch needs the sound's beat (added to the features the run computes)."""
        if self.play.scene_on == "beat" and self.scenes:
            session._needed = set(session._needed) | {"beat"}
            spec = session.spec
            if not session.live.audio_in and spec.kind == "file":
                from ..ffmpeg import has_audio, header

                if not has_audio(header(spec.target)):
                    raise UserError(f"--scene-on beat needs sound, and {spec.target} has no sound; pass "
                                    "--audio-in default|DEVICE|URL|FILE or --scene-on now")

    def check(self, session) -> None:
        """Before any model loads: a source's recording must be writable and not the source; the
        OSC and MIDI ports open now, so a port in use or no MIDI port is one line at once (a
        controller's messages before the run plays are refused as "starting")."""
        self.session = session
        if self.play.record_source:
            from .. import guard
            from .sources import read_path

            guard.check(self.play.record_source, guard.reads(read_path(session.spec.target), {}),
                        role="the `record_source` file", fix="choose another name")
            if session.live.record and Path(session.live.record).absolute() == Path(self.play.record_source).absolute():
                raise UserError("--record-source and --record name one file; choose two names")
        self.controls = Controls({}, self.scenes, fade=self.play.scene_fade, on=self.play.scene_on, check=self._check)
        try:
            if self.osc_address:
                from .osc import OscControl

                self.osc = OscControl(self.controls, *self.osc_address, feedback=self.feedback)
            if self.play.midi:
                from .midi import MidiMap, open_input

                port = "" if self.play.midi == "default" else self.play.midi
                learn = self.say if self.play.midi_learn else None
                self.midi_port = open_input(port, MidiMap(self.controls, self.mapping, learn=learn))
        except BaseException:
            self.close()
            raise

    def open(self, session) -> None:
        """The run's model, timeline and sinks are there: start the controls and the rig's sinks."""
        from .control import as_text

        s = session.sections
        start = {k: as_text(getattr(s[kn.section], k)) for k, kn in KNOBS.items() if kn.section != "model"}
        start["layers"] = ",".join(_spec(t) for t in session.dreamer.objective.terms)
        self.controls.begin(start, session.fps, s["schedules"].interp)
        size = (session.source.width, session.source.height)
        if self.play.ndi:
            from .ndi import NdiSender

            self.ndi = NdiSender(self.play.ndi, session.fps, size)
            session._add(self.ndi)
        if self.play.record_source:
            from . import sinks

            self.raw = sinks.Recorder(self.play.record_source, session.fps, size)
        if session.page is not None:
            from .page import PageControls

            from ..build import load_feature_model

            # A dreamer handed in (tests, the web page) names no model to list.
            names = [] if session._dreamer is not None else [i.name for i in load_feature_model(s["model"]).layers]
            session.page.extra = PageControls(self.controls, names)

    def _check(self, name: str, text: str) -> None:
        """What only this run can check: audio features it computes, layers of its model."""
        from ..schedule import Schedule

        s = self.session
        if name == "layers":
            from ..build import load_feature_model
            from ..objectives import parse_objective

            parse_objective(text).validate(load_feature_model(s.sections["model"]))  # cached: no load
            return
        if name == "layer_weights":
            layers = {t.layer for t in s.dreamer.objective.terms} | {
                t.layer for t in _terms(self.controls.values.get("layers", ""))}
            texts = []
            for item in filter(str.strip, text.split(";")):
                layer, _, sched = item.partition("=")
                if layer.strip() not in layers:
                    raise UserError(f"`layer_weights` names {layer.strip()!r}, not a layer of `layers` "
                                    f"({', '.join(sorted(layers))})")
                texts.append(sched)
        else:
            texts = [text]
            if KNOBS[name].section == "schedules" and number(text) is None:
                # A schedule's values in range, as offline checks them (this one alone: a fader's
                # hundred numbers a second are checked by validate already).
                from ..settings import Schedules
                from .session import LIVE_CHECK_SECONDS, check_live_schedules

                alone = Schedules(blend="1.0", interp=s.timeline.schedules.interp, **{name: text})
                check_live_schedules(alone, s.spec.kind == "zoom", s.fps, s.stats.seconds + LIVE_CHECK_SECONDS)
        have = s.timeline.features.names if s.timeline.features is not None else set()
        for t in texts:
            uses = Schedule.parse(t.strip(), name, self.controls.interp).names & set(AUDIO_FEATURES)
            if uses - set(have):
                raise UserError(f"`{name}` uses {', '.join(sorted(uses - set(have)))}, which this run does not compute "
                                "(start it with a schedule that uses it)")

    def before_dream(self, seq: int, engine) -> None:
        """On the dream thread, before the dream of source frame ``seq``: apply what changed."""
        from ..build import build_dreamer

        s = self.session
        beat = False
        if self.play.scene_on == "beat" and s.timeline.features is not None:
            beat = float(s.timeline.features.at(seq).get("beat", 0.0)) > 0.5
        changes = self.controls.take(seq, beat=beat)
        if not changes:
            return
        try:
            if "layers" in changes:
                model = replace(s.sections["model"], layers=changes["layers"])
                dreamer = build_dreamer(model)  # the model is cached: only the objective is new
                s.dreamer = dreamer
                s.timeline.terms = list(dreamer.objective.terms)
                if engine is not None and getattr(engine, "stepper", None) is not None:
                    engine.stepper.dreamer = dreamer
            sched = {}
            for k, v in changes.items():
                if KNOBS[k].section == "dream" or (k in _PARAMS and number(v) is not None):
                    s.controls.set(k, v)  # a number: held by the run's controls (timeline.refresh)
                elif KNOBS[k].section == "schedules":
                    s.controls.clear(k)  # a schedule's text: it runs from here
                    sched[k] = v
            if "layers" in changes:
                # weights of layers no longer there are dropped, not refused: a scene may switch both
                names = {t.layer for t in s.timeline.terms}
                text = sched.get("layer_weights", s.timeline.schedules.layer_weights)
                sched["layer_weights"] = ";".join(i for i in text.split(";")
                                                  if i.partition("=")[0].strip() in names)
            if sched:
                s.timeline.update(**sched)
        except UserError as e:  # checked when set; what slips through is said and the run goes on
            self.controls.message = f"refused: {e}"

    def shown(self, seq: int, src) -> None:
        """Each shown source frame: the undreamed recording (a dropped frame repeats the one before)."""
        if self.raw is None:
            return
        for _ in range(max(0, seq - self._raw_seq - 1)):
            if self._last_raw is not None:
                self.raw.write(self._last_raw)
        self.raw.write(src)
        self._last_raw, self._raw_seq = src, seq

    def status(self, line: str, stats) -> str:
        """The status line with the rig's part, sent over OSC too."""
        parts = [line]
        if self.ndi is not None:
            parts.append(self.ndi.describe())
        if self.controls is not None and self.controls.message:
            parts.append(self.controls.message)
        out = "; ".join(parts)
        if self.osc is not None:
            s = max(stats.seconds, 1e-9)
            self.osc.status(out, stats.shown / s, stats.dreamed / s, stats.latency_ms(50))
        return out

    def close(self) -> None:
        """Stop listening; finalize the source's recording."""
        errors = []
        for part in (self.osc, self.midi_port):
            if part is not None:
                try:
                    part.close()
                except Exception as e:  # noqa: BLE001 - everything gets closed
                    errors.append(e)
        self.osc = self.midi_port = None
        if self.raw is not None:
            try:
                self.recorded_source = self.raw.close()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
            self.raw = None
        if errors:
            raise errors[0]

    def finish(self, session, recorded) -> Path | None:
        """The recording is finalized: write the performance beside it (None without a recording)."""
        if recorded is None or self.controls is None:
            return None
        from ..ffmpeg import has_audio, header
        from . import performance

        spec = session.spec
        table = {"kind": spec.kind, "start": 0.0, "fps": float(session.fps),
                 "frames": int(round(session.stats.seconds * session.fps)), "recording": str(Path(recorded).resolve())}
        sections = {k: session.sections[k] for k in ("model", "dream", "video", "schedules")}
        # Offline holds entering content back for its bands, as any offline render (live cannot).
        video = sections["video"] = replace(sections["video"], enter_every=VideoSettings().enter_every)
        if spec.kind == "file":
            table["source"] = str(Path(spec.target).resolve())
            if session.live.audio_in:
                sections["video"] = replace(video, audio=table["recording"])
            table["sound"] = sections["video"].audio or (table["source"] if has_audio(header(spec.target)) else "")
            render = f"dreamvideo video {table['source']} --preset PERFORMANCE -o master.mp4"
        elif spec.kind == "zoom":
            target = spec.target
            if target.startswith("noise:"):
                table["source"] = "zoom:" + target
                size = target[len("noise:"):]
                sections["zoom"] = replace(session.sections["zoom"], frames=table["frames"], from_noise=size)
                render = "dreamvideo zoom --preset PERFORMANCE -o master.mp4"
            else:
                table["source"] = str(Path(target).resolve())
                sections["zoom"] = replace(session.sections["zoom"], frames=table["frames"])
                render = f"dreamvideo zoom {table['source']} --preset PERFORMANCE -o master.mp4"
            if session.live.audio_in:
                sections["zoom"] = replace(sections["zoom"], audio=table["recording"])
            table["sound"] = sections["zoom"].audio
        else:
            table["source"] = spec.target if spec.kind == "url" else spec.kind
            raw = getattr(self, "recorded_source", None)
            if raw is not None:
                table["capture"] = str(Path(raw).resolve())
            if session.live.audio_in or spec.kind == "url":
                sections["video"] = replace(video, audio=table["recording"])
            table["sound"] = sections["video"].audio
            render = (f"dreamvideo video {table.get('capture', 'CAPTURE.mp4')} --preset PERFORMANCE -o master.mp4"
                      + ("" if raw is not None else " (record the capture with --record-source)"))
        fixed = sorted({n for _, n, _ in self.controls.log if KNOBS[n].section == "dream"} |
                       {n for _, _, n, _, _ in self.controls.fades_log if KNOBS[n].section == "dream"})
        if fixed:  # no offline schedule for them: said in the file, not hidden
            table["not_rendered"] = (f"{', '.join(fixed)} changed live; an offline render has no schedule for "
                                     "them and keeps the starting values")
        top = {"seed": session.seed, "max_side": session.max_side}
        path = performance.path_for(recorded)
        table["render"] = self.render = render.replace("PERFORMANCE", shlex.quote(str(path)))
        self.performance = performance.write(path, sections=sections, top=top, controls=self.controls,
                                             performance=table)
        return self.performance


def _params() -> set:
    from ..settings import LIVE_PARAMS

    return {p.name for p in LIVE_PARAMS}


_PARAMS = _params()


def _spec(term) -> str:
    what = term.layer if term.channel is None else f"{term.layer}:{term.channel}"
    return f"{what}:{float(term.weight)!r}"


def _terms(text: str):
    from ..objectives import parse_objective

    try:
        return parse_objective(text).terms if text else ()
    except UserError:
        return ()
