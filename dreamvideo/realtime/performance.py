"""A performance is a render: what a live run played, as a preset an offline render takes.

``--record out.mp4`` also writes ``out.performance.toml``: the source and where the run started in
it, the sound, the seed, the settings the run started with, and every live change at the source
frame its dream took it, as keyframed schedules in the offline syntax (``steps = "0:(3), 311:(3),
312:(5)"``: a change holds from its frame on, so each is written with a key the frame before holding
the old value; a scene's crossfade is a linear ramp between two keys). A change of the layers is
written as one objective with every layer the run used, each weighted by a ``layer_weights``
schedule (0 while it was not in use). ``dreamvideo video SOURCE --preset out.performance.toml -o
master.mp4 --max-side 1080`` renders it (a zoom: ``dreamvideo zoom``).

The ``[performance]`` table says what was played (no setting reads it; ``dreamvideo presets`` shows
it). Convention: frames are source frames from the run's start (offline: output frames from the
clip's start, the same frames for a file played from its start), times in seconds.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ..settings import _num
from .control import KNOBS, number

SECTION = "performance"


def path_for(record) -> Path:
    """``out.mp4`` -> ``out.performance.toml`` (beside the recording)."""
    p = Path(record)
    return p.with_name(p.stem + ".performance.toml")


def split_keys(text: str) -> list[tuple[int, str]] | None:
    """The keys of a keyframes schedule, ``[(frame, value text), ...]``; None when ``text`` is a
    number or an expression."""
    if ":" not in text:
        return None
    out, i, n = [], 0, len(text)
    while i < n:
        m = re.compile(r"\s*,?\s*(\d+)\s*:\s*\(").match(text, i)
        if not m:
            break
        depth, j = 1, m.end()
        while j < n and depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        out.append((int(m[1]), text[m.end():j - 1].strip()))
        i = j
    return out or None


def _is_expression(text: str) -> bool:
    return number(text) is None and split_keys(text) is None


class _Piece:
    """A stretch of one setting's curve from frame ``start``: a value text, or a fade (a -> b ending at ``last``)."""

    def __init__(self, start: int, text: str | None = None, fade=None):
        self.start, self.text, self.fade = start, text, fade

    def value_at(self, f: int, interp: str) -> str | None:
        """Its value at frame ``f`` as a key's text (None: an expression, which holds by itself)."""
        if self.fade is not None:
            a, b, last = self.fade
            x = 1.0 if last <= self.start else min(1.0, max(0.0, (f - self.start) / (last - self.start)))
            return _text(a + (b - a) * x)
        if number(self.text) is not None:
            return self.text
        keys = split_keys(self.text)
        if keys is None:
            return None
        active = [k for k in keys if k[0] <= f] or keys[:1]
        if _is_expression(active[-1][1]):
            return active[-1][1]
        from ..schedule import Schedule

        return _text(Schedule.parse(self.text, "value", interp).at(f, 25.0))

    def keys(self, end: float, interp: str) -> dict[int, str]:
        """Its keys from its start up to (not including) ``end``."""
        if self.fade is not None:
            a, b, last = self.fade
            out = {self.start: _text(a)}
            if last < end:
                out[last] = _text(b)
            return out
        keys = split_keys(self.text)
        if keys is None:
            return {self.start: self.text}
        out = {self.start: self.value_at(self.start, interp)}
        out.update({k: v for k, v in keys if self.start < k < end})
        return out


def _text(v: float) -> str:
    return _num(v) if float(v).is_integer() else repr(round(float(v), 10))


def curve(start: str, events, fades=(), interp: str = "linear") -> str:
    """One setting's schedule: ``start`` (its text at frame 0), ``events`` ``[(frame, text)]`` and
    ``fades`` ``[(first, last, a, b)]``, each from its frame on until the next. Unchanged: ``start``."""
    pieces = [_Piece(0, start)] + [_Piece(int(f), t) for f, t in events] + \
        [_Piece(int(f), fade=(float(a), float(b), int(last))) for f, last, a, b in fades]
    pieces.sort(key=lambda p: p.start)  # stable: at one frame the later change wins
    kept = [p for i, p in enumerate(pieces) if i + 1 == len(pieces) or pieces[i + 1].start != p.start]
    if len(kept) == 1 and kept[0].fade is None:
        return kept[0].text
    keys: dict[int, str] = {}
    for i, p in enumerate(kept):
        end = kept[i + 1].start if i + 1 < len(kept) else math.inf
        if i and p.start > 0:
            hold = kept[i - 1].value_at(p.start - 1, interp)
            if hold is not None:
                keys[p.start - 1] = hold
        keys.update(p.keys(end, interp))
    return ", ".join(f"{f}:({keys[f]})" for f in sorted(keys))


def _terms(layers: str):
    from ..objectives import parse_objective

    return parse_objective(layers).terms


def layer_curves(layers: str, weights: str, layer_events, weight_events) -> tuple[str, str]:
    """``(layers, layer_weights)`` for the offline render of a run whose ``layers`` (``layer_events``
    ``[(frame, text)]``) or ``layer_weights`` changed: every layer used, each weighted by a schedule
    that follows what was live (0 while its layer was not in use). Unchanged: the texts as they were."""
    if not layer_events and not weight_events:
        return layers, weights
    times = sorted({0, *(f for f, _ in layer_events), *(f for f, _ in weight_events)})
    union: dict[str, str] = {}
    states = []  # per change point: (layers text, weights text)
    lay, wts = layers, weights
    le, we = sorted(layer_events, key=lambda e: e[0]), sorted(weight_events, key=lambda e: e[0])
    for t in times:
        lay = next((x for f, x in reversed(le) if f <= t), layers)
        wts = next((x for f, x in reversed(we) if f <= t), weights)
        states.append((t, lay, wts))
        for term in _terms(lay):
            spec = term.layer if term.channel is None else f"{term.layer}:{term.channel}"
            union.setdefault(term.layer, f"{spec}:1.0")
    out = []
    for name in union:
        events = []
        for t, lay, wts in states:
            given = {a.strip(): b.strip() for a, _, b in (i.partition("=") for i in wts.split(";") if "=" in i)}
            mine = [term for term in _terms(lay) if term.layer == name]
            text = given.get(name) if mine and name in given else (_text(mine[0].weight) if mine else "0")
            events.append((t, text))
        out.append(f"{name}={curve(events[0][1], events[1:])}")
    return ",".join(union.values()), "; ".join(out)


def schedules(start: dict, log, fades_log, interp: str = "linear") -> dict[str, str]:
    """Every live setting's text for the render: ``start`` (name -> text at frame 0), ``log``
    ``[(frame, name, text)]``, ``fades_log`` ``[(first, last, name, a, b)]``."""
    out = {}
    for name, k in KNOBS.items():
        if k.section != "schedules" or name == "layer_weights" or name not in start:
            continue
        events = [(f, t) for f, n, t in log if n == name]
        fades = [(a, b, x, y) for a, b, n, x, y in fades_log if n == name]
        out[name] = curve(start[name], events, fades, interp)
    lay, wts = layer_curves(start.get("layers", ""), start.get("layer_weights", ""),
                            [(f, t) for f, n, t in log if n == "layers"],
                            [(f, t) for f, n, t in log if n == "layer_weights"])
    out["layers"], out["layer_weights"] = lay, wts
    return out


def write(path, *, sections: dict, top: dict, controls, performance: dict, command: str = "") -> Path:
    """Write the performance preset: ``sections`` the run's settings (``{"model": ModelSettings, ...}``,
    as it started), ``top`` its seed and max side, ``controls`` its :class:`.control.Controls`,
    ``performance`` the ``[performance]`` table (source, kind, start, fps, frames, sound...)."""
    from dataclasses import replace

    from .. import presets

    interp = sections["schedules"].interp
    changed = bool(controls.log or controls.fades_log)
    curves = schedules(controls.start, controls.log, controls.fades_log, "linear" if changed else interp)
    sched = {k: v for k, v in curves.items() if k not in ("layers",)}
    if changed:
        sched["interp"] = "linear"  # the keys written hold and ramp as played only when read linearly
    own = dict(sections)
    own["schedules"] = replace(sections["schedules"], **sched)
    if curves.get("layers"):
        own["model"] = replace(sections["model"], layers=curves["layers"])
    out = presets.sections_of(own, top, only_changed=False)
    table = {k: v for k, v in performance.items() if v is not None and v != ""}
    table["changes"] = len(controls.log) + len(controls.fades_log)
    out[SECTION] = table
    header = "dreamvideo performance: a live run as an offline render"
    if command:
        header += f", played with:\n  {command}"
    what = f"performance of {Path(str(performance.get('source', ''))).name or 'a live run'}, {table['changes']} changes"
    return presets.write(path, out, header=header, description=what)
