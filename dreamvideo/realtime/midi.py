"""MIDI control of a live run (``--midi [PORT]``, mido with python-rtmidi).

The map is a preset's ``[midi]`` table, one control a key:

- ``cc21 = "step_size 0 0.05"``: control change 21's 0..127 onto step size 0..0.05 (without the two
  numbers: onto the setting's fader span, :attr:`.control.Knob.span`);
- ``cc64 = "scene calm"``: switch scene when the control goes to 64 or more;
- ``note36 = "scene classic"``: switch scene on note 36 (any velocity above 0);
- ``note37 = "layers conv2:1.0"``: set a setting to a value on a note.

``--midi-learn`` prints each control as it is moved (``midi: cc21 = 64``), so a map can be written.
The port: a name (or part of one) of an input port the machine has, ``virtual`` to open one named
``dreamvideo`` that a controller connects to, or nothing for the first port there is. The MIDI
system is rtmidi's default (ALSA on Linux), else JACK; ``MIDO_BACKEND`` picks another.
"""

from __future__ import annotations

import os
import re

from ..backends import quiet_native_stderr
from ..errors import UserError
from .control import KNOBS, SCENE, as_text, knob, validate

INSTALL = 'MIDI control needs mido and python-rtmidi: pip install "dreamvideo[live]"'
VIRTUAL = "virtual"
_KEY = re.compile(r"(cc|note)(\d{1,3})")


def parse_map(table: dict, label: str = "[midi]") -> dict:
    """A ``[midi]`` table checked: ``{("cc"|"note", number): (action, args)}`` with action ``"scene"``
    (args ``(name,)``), ``"range"`` (``(setting, lo, hi)``: a control change) or ``"set"``
    (``(setting, text)``: a note). A wrong entry is a one-line UserError."""
    out = {}
    for key, value in table.items():
        m = _KEY.fullmatch(str(key).strip().lower())
        if not m or int(m[2]) > 127:
            raise UserError(f"{label}: {key!r} is no control; write ccN or noteN with N from 0 to 127 "
                            '(cc21 = "step_size 0 0.05", note36 = "scene classic")')
        kind, num = m[1], int(m[2])
        words = str(value).split(None, 1)
        if not words:
            raise UserError(f"{label}: {key} is empty; give a setting (and its span) or scene NAME")
        name, rest = words[0], (words[1].strip() if len(words) > 1 else "")
        if name == SCENE:
            if not rest:
                raise UserError(f"{label}: {key} = {value!r} names no scene; write \"scene NAME\"")
            out[(kind, num)] = ("scene", (rest,))
            continue
        try:
            k = knob(name)
        except UserError as e:
            raise UserError(f"{label}: {key}: {e}") from None
        if kind == "note":
            if not rest:
                raise UserError(f"{label}: {key} = {value!r}: a note sets a value; write \"{name} VALUE\"")
            try:
                out[(kind, num)] = ("set", (k.name, validate(k.name, rest)))
            except UserError as e:
                raise UserError(f"{label}: {key}: {e}") from None
            continue
        if k.range is None:
            raise UserError(f"{label}: {key}: `{k.name}` is text; map it to a note (note36 = \"{k.name} VALUE\")")
        if rest:
            parts = rest.split()
            try:
                lo, hi = (float(p) for p in parts)
            except ValueError:
                raise UserError(f"{label}: {key} = {value!r}: write \"{k.name} LOW HIGH\" (two numbers) or just "
                                f"\"{k.name}\"") from None
            for v in (lo, hi):
                try:
                    validate(k.name, v)
                except UserError as e:
                    raise UserError(f"{label}: {key}: {e}") from None
        else:
            lo, hi = k.span
        out[(kind, num)] = ("range", (k.name, lo, hi))
    return out


def describe(msg) -> str | None:
    """A learn line for a mido message (``cc21 = 64 (channel 1)``, ``note36 on``), None for others."""
    if msg.type == "control_change":
        return f"cc{msg.control} = {msg.value} (channel {msg.channel + 1})"
    if msg.type == "note_on" and msg.velocity > 0:
        return f"note{msg.note} on (velocity {msg.velocity}, channel {msg.channel + 1})"
    return None


class MidiMap:
    """Applies mido messages to ``controls`` by ``mapping`` (:func:`parse_map`); ``learn``: a callable
    given each control's learn line. A refused value is in the controls' message; it never raises."""

    def __init__(self, controls, mapping: dict, learn=None):
        self.controls, self.mapping, self.learn = controls, mapping, learn
        self.received = 0

    def __call__(self, msg) -> str | None:
        """Apply one message; returns the line said (None: nothing mapped)."""
        self.received += 1
        if self.learn is not None:
            line = describe(msg)
            if line:
                self.learn(f"midi: {line}")
        if msg.type == "control_change":
            entry, value = self.mapping.get(("cc", msg.control)), msg.value
        elif msg.type == "note_on" and msg.velocity > 0:
            entry, value = self.mapping.get(("note", msg.note)), 127
        else:
            return None
        if entry is None:
            return None
        action, args = entry
        try:
            if action == "scene":
                return self.controls.scene(args[0], via="midi") if value >= 64 else None
            if action == "set":
                return self.controls.set(args[0], args[1], via="midi")
            name, lo, hi = args
            v = lo + (hi - lo) * value / 127.0
            if KNOBS[name].integer:
                v = round(v)
            return self.controls.set(name, as_text(v), via="midi")
        except UserError:
            return None  # said in the controls' message and the status


def _backend():
    try:
        import mido
        import rtmidi  # noqa: F401 - mido's backend needs it
    except ImportError:
        raise UserError(INSTALL) from None
    wanted = os.environ.get("MIDO_BACKEND")
    if wanted:
        return [mido.Backend(wanted)]
    return [mido.Backend("mido.backends.rtmidi"), mido.Backend("mido.backends.rtmidi/UNIX_JACK")]


def open_input(port: str, callback):
    """A mido input port calling ``callback(msg)`` from rtmidi's thread: the named one (a name or
    part of one), ``virtual`` (opens one named ``dreamvideo``), or ``""`` (the first there is). No
    port, or no MIDI system, is a one-line UserError."""
    tried, names = [], []
    for be in _backend():
        try:
            with quiet_native_stderr():  # ALSA's and JACK's own complaints: one line says what failed
                if port == VIRTUAL:
                    return be.open_input("dreamvideo", virtual=True, callback=callback)
                names = be.get_input_names()
        except (OSError, SystemError, RuntimeError) as e:  # rtmidi: no ALSA sequencer, no JACK server
            tried.append(f"{be.name.rsplit('/', 1)[-1] if '/' in be.name else 'default'}: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}")
            continue
        if not names:
            tried.append(f"{be.api or 'default'}: no input ports")
            continue
        match = [n for n in names if port == n] or [n for n in names if port.lower() in n.lower()]
        if not match:
            raise UserError(f"no MIDI input port {port!r}; the ports: {', '.join(names)}")
        return be.open_input(match[0], callback=callback)
    raise UserError("no MIDI input port on this machine (" + "; ".join(tried) + "); connect a controller, or pass "
                    "--midi virtual and connect one to it")
