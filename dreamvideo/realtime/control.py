"""Playing a live run: the settings a performer changes while it runs, and scenes.

:data:`KNOBS` lists the settings that change live: :data:`dreamvideo.settings.LIVE_PARAMS` (the
numbers, with their ranges; the schedules among them also take a schedule's text), ``layer_weights``
and ``layers`` (text). :class:`Controls` holds their values for the dream thread: OSC (:mod:`.osc`),
MIDI (:mod:`.midi`) and the page (:mod:`.page`) call :meth:`Controls.set`, :meth:`Controls.set_norm`
and :meth:`Controls.scene` from their own threads; the dream thread calls :meth:`Controls.take` before each dream and gets what changed,
stamped with that dream's source frame. So a change applies at the next dream, and the log of
changes (:attr:`Controls.log`) says at which source frame each one did: a performance
(:mod:`.performance`). A wrong value is a one-line :class:`~dreamvideo.errors.UserError` for the
caller to report; nothing is changed by it.

Scenes: named sets of values. Switching crossfades the numeric ones over ``fade`` seconds of the
source (linear from the value at the switch), or waits for the next beat (``on="beat"``); text
values (layers, expressions) switch at the next dream.

Convention: values are kept as text, as a schedule or a flag takes them (``"0.02"``,
``"0:(3), 48:(5)"``, ``"mixed4:1,mixed5:2"``); ``seq`` is a source frame's number since the start
of the run; times in seconds.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from ..errors import UserError
from ..settings import _num, check_value, range_text


@dataclass(frozen=True)
class Knob:
    """A setting that changes live: its field ``name`` in ``section`` (``schedules``, ``model`` or
    ``dream``), its ``range`` (None for text), and whether it is a whole number."""

    name: str
    section: str
    range: tuple | None
    integer: bool = False
    play: tuple | None = None  # the faders' span (norm 0..1, the page's slider, a MIDI map without one)

    @property
    def span(self) -> tuple | None:
        return self.play or self.range

    @property
    def schedule(self) -> bool:
        return self.section == "schedules"


#: Faders span less than a setting allows where its whole range is no use live (10 000 steps, a
#: zoom of 10x per frame); a typed value may still be anywhere in the range.
PLAY = {"steps": (0, 30), "zoom": (0.9, 1.1), "angle": (-10.0, 10.0), "dx": (-32.0, 32.0), "dy": (-32.0, 32.0),
        "octaves": (1, 6)}


def _knobs() -> dict[str, Knob]:
    from ..settings import LIVE_PARAMS

    out = {p.name: Knob(p.name, p.section, (p.lo, p.hi), integer=p.type is int, play=PLAY.get(p.name))
           for p in LIVE_PARAMS}
    # Text a controller may send besides the numbers: per-layer weight schedules, and the objective's
    # layers (the model already built computes them).
    out["layer_weights"] = Knob("layer_weights", "schedules", None)
    out["layers"] = Knob("layers", "model", None)
    return out


#: Every setting that changes live, by field name (the OSC address's last part, the page's sliders).
KNOBS = _knobs()
#: Values that are no setting: ``scene NAME``.
SCENE = "scene"


def knob(name: str) -> Knob:
    """The :class:`Knob` named ``name``, or a one-line UserError naming the nearest one."""
    from ..presets import nearest

    name = str(name).strip()
    if name not in KNOBS:
        raise UserError(f"unknown live setting {name!r}{nearest(name, KNOBS)}; live settings: {', '.join(KNOBS)}")
    return KNOBS[name]


def as_text(value) -> str:
    """A value from OSC, MIDI, the page or a preset as text (numbers as the shortest exact form)."""
    if isinstance(value, bool):
        raise UserError(f"a live setting takes a number or text, not {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise UserError(f"a live setting takes a finite number, not {value!r}")
        return _num(value) if float(value).is_integer() else repr(float(value))
    return str(value).strip()


def number(text: str):
    """``text`` as a float when it is a plain number, else None."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def validate(name: str, value, interp: str = "linear") -> str:
    """``value`` for live setting ``name`` as text, checked: a number within the setting's range, a
    schedule that parses, a layers list that parses. One-line UserError otherwise."""
    k = knob(name)
    text = as_text(value)
    if k.schedule:
        from ..schedule import Schedule

        if k.name == "layer_weights":
            for item in filter(str.strip, text.split(";")):
                layer, eq, sched = item.partition("=")
                if not eq or not layer.strip():
                    raise UserError(f"`layer_weights` item {item.strip()!r} must be LAYER=SCHEDULE")
                Schedule.parse(sched.strip(), f"weight of {layer.strip()}", interp)
            return text
        if not text:
            raise UserError(f"`{k.name}` needs a value: a number in its range ({range_text(k.range)}) or a schedule")
        s = Schedule.parse(text, k.name, interp)
        v = number(text)
        if v is not None or s.is_constant:
            check_value(k.name, v if v is not None else s.at(0, 25.0), k.range)
        return text
    if k.section == "model":
        from ..objectives import parse_objective

        if not text:
            raise UserError("`layers` needs a value: LAYER:WEIGHT,... or LAYER:CHANNEL[:WEIGHT]")
        parse_objective(text)
        return text
    v = number(text)
    if v is None or (k.integer and not v.is_integer()):
        raise UserError(f"`{k.name}` must be {'a whole number' if k.integer else 'a number'} "
                        f"{range_text(k.range)}, not {text!r}")
    check_value(k.name, int(v) if k.integer else v, k.range)
    return _num(v)


def from_norm(name: str, x) -> str:
    """``x`` in 0..1 mapped linearly onto setting ``name``'s fader span (:attr:`Knob.span`: its
    range, or :data:`PLAY`'s narrower one), rounded for a whole number."""
    k = knob(name)
    if k.range is None:
        raise UserError(f"`{k.name}` is text and has no range; send /dreamvideo/{k.name} TEXT instead")
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise UserError(f"a norm value for `{k.name}` must be a number from 0 to 1, not {x!r}") from None
    if not 0.0 <= x <= 1.0:
        raise UserError(f"a norm value for `{k.name}` must be from 0 to 1, not {_num(x) if math.isfinite(x) else x}")
    lo, hi = k.span
    v = lo + (hi - lo) * x
    return _num(round(v)) if k.integer else as_text(float(f"{v:.10g}"))


def to_norm(name: str, text: str) -> float | None:
    """Where ``text`` lies in setting ``name``'s range, 0..1 (None: no range, or not a number)."""
    k = KNOBS.get(name)
    v = number(text)
    if k is None or k.range is None or v is None:
        return None
    lo, hi = k.span
    return min(1.0, max(0.0, (v - lo) / (hi - lo)))


def scene_values(values: dict, label: str) -> dict[str, str]:
    """A scene's values (setting name -> value) checked; the keys that are no live setting are left
    out (a scene may be any preset)."""
    return {k: validate(k, v) for k, v in values.items() if k in KNOBS}


@dataclass
class _Fade:
    name: str
    start: float
    end: float
    frames: int
    first: int | None = None  # the source frame it started at (stamped by take)


class Controls:
    """The live settings' values, changed from any thread, read by the dream thread.

    ``values``: each live setting's starting text (see :data:`KNOBS`). ``scenes``: name -> values.
    ``fps``: the source's rate (a fade's frames). ``fade``: seconds a scene's numbers crossfade;
    ``on``: ``"now"`` or ``"beat"`` (a switch waits for the next beat :meth:`take` is told of).
    ``check(name, text)``: what only the run can check (layers of its model), raising UserError.
    ``interp``: the run's keyframe interpolation (schedules are parsed with it)."""

    def __init__(self, values: dict, scenes: dict | None = None, *, fps: float = 25.0, fade: float = 0.0,
                 on: str = "now", check=None, interp: str = "linear"):
        if on not in ("now", "beat"):
            raise UserError(f"`scene_on` must be now or beat, not {on!r}")
        if not (0.0 <= fade < math.inf):
            raise UserError(f"`scene_fade` must be 0 or more seconds, not {fade!r}")
        self.values = {k: as_text(v) for k, v in values.items() if k in KNOBS}
        self.start = dict(self.values)
        self.scenes = {str(n): dict(v) for n, v in (scenes or {}).items()}
        self.fps, self.fade, self.on, self.check, self.interp = float(fps), float(fade), on, check, interp
        self.log: list[tuple[int, str, str]] = []  # (seq, name, text) in the order they applied
        self.fades_log: list[tuple[int, int, str, float, float]] = []  # (first, last seq, name, from, to)
        self.scene_name = ""
        self.message = ""  # the last change or refusal, one line (the status shows it)
        self.changes = 0  # how many changes were taken (a counter the page and tests watch)
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}
        self._fades: dict[str, _Fade] = {}
        self._waiting: str | None = None  # a scene waiting for the beat
        self.ready = bool(self.values)  # a controller may connect before the run plays: see begin()

    def begin(self, values: dict, fps: float, interp: str = "linear") -> None:
        """The run plays: its starting values and rate (controls made before the model loaded)."""
        with self._lock:
            self.values = {k: as_text(v) for k, v in values.items() if k in KNOBS}
            self.start = dict(self.values)
            self.fps, self.interp, self.ready = float(fps), interp, True

    # ------------------------------------------------------------------ from the controllers

    def set(self, name, value, via: str = "") -> str:
        """Set live setting ``name`` (its next dream uses it). Returns the line said back; a wrong
        value raises a one-line UserError (and is kept in :attr:`message`)."""
        try:
            if not self.ready:
                raise UserError("the run is starting (its model loads); send it again in a moment")
            name = knob(name).name
            text = validate(name, value, self.interp)
            if self.check is not None:
                self.check(name, text)
        except UserError as e:
            self.message = f"refused: {e}"
            raise
        with self._lock:
            self._pending[name] = text
            self.values[name] = text
            self._fades.pop(name, None)
        self.message = f"{name} = {text}" + (f" ({via})" if via else "")
        return self.message

    def set_norm(self, name, x, via: str = "") -> str:
        """Set ``name`` to ``x`` (0..1) of its range."""
        try:
            text = from_norm(name, x)
        except UserError as e:
            self.message = f"refused: {e}"
            raise
        return self.set(name, text, via)

    def scene(self, name, via: str = "") -> str:
        """Switch to scene ``name``: at once (numbers crossfading over :attr:`fade`), or at the next beat."""
        name = str(name).strip()
        if not self.ready:
            self.message = "refused: the run is starting (its model loads); send it again in a moment"
            raise UserError(self.message[len("refused: "):])
        if name not in self.scenes:
            from ..presets import nearest

            self.message = (f"refused: unknown scene {name!r}{nearest(name, self.scenes)}; scenes: "
                            f"{', '.join(self.scenes) or 'none (pass --scene NAME=PRESET)'}")
            raise UserError(self.message[len("refused: "):])
        with self._lock:
            if self.on == "beat":
                self._waiting = name
            else:
                self._switch(name)
        self.message = f"scene {name}" + (" at the next beat" if self.on == "beat" else "") + \
            (f" ({via})" if via else "")
        return self.message

    def _switch(self, name: str) -> None:
        frames = int(round(self.fade * self.fps))
        for k, text in self.scenes[name].items():
            a, b = number(self.values.get(k, "")), number(text)
            if frames > 0 and a is not None and b is not None and KNOBS[k].section != "model" and a != b:
                self._fades[k] = _Fade(k, a, b, frames)
                self._pending.pop(k, None)
            else:
                self._pending[k] = text
                self._fades.pop(k, None)
            self.values[k] = text
        self.scene_name = name

    # ------------------------------------------------------------------ from the dream thread

    def take(self, seq: int, beat: bool = False) -> dict[str, str]:
        """What changed since the last call, for the dream of source frame ``seq``: name -> text
        (a fading number's value at ``seq``). ``beat``: a beat falls on this frame."""
        with self._lock:
            if beat and self._waiting is not None:
                self._switch(self._waiting)
                self._waiting = None
            out = dict(self._pending)
            self._pending.clear()
            self.log += [(seq, k, text) for k, text in out.items()]  # fades are in fades_log, whole
            for k, fd in list(self._fades.items()):
                if fd.first is None:
                    fd.first = seq
                    self.fades_log.append((seq, seq + fd.frames, k, fd.start, fd.end))
                x = min(1.0, (seq - fd.first) / fd.frames)
                v = fd.start + (fd.end - fd.start) * x
                out[k] = _num(round(v)) if KNOBS[k].integer else as_text(float(f"{v:.10g}"))
                if x >= 1:
                    del self._fades[k]
            if out:
                self.changes += 1
            return out

    @property
    def fading(self) -> bool:
        return bool(self._fades) or self._waiting is not None
