"""Per-frame values of a moving render: its schedules evaluated over the frames, and per-frame seeds.

Convention: frame ``f`` is 0-based and shows time ``f / fps`` seconds; audio features are 0..1
per frame (see :mod:`dreamvideo.audio`).
"""

from __future__ import annotations

import numpy as np

from .errors import UserError
from .settings import (AUDIO_FEATURES, CURVES, MAX_FRAMES, DreamSettings, Schedules, check_ranges, field_range,
                       range_text)

__all__ = ["MAX_FRAMES", "Timeline", "check_curve", "frame_seed"]


def check_curve(name: str, text: str, values: np.ndarray, fps: float, label: str | None = None) -> None:
    """A one-line :class:`UserError` at the first frame where schedule ``name``'s per-frame ``values``
    leave the range of its settings field (``Schedules.<name>``), naming the frame and its time."""
    rng, _ = field_range(Schedules, name)
    if rng is None or not len(values):
        return
    lo, hi = rng
    v = np.asarray(values, np.float64)
    slack = 1e-9 * max(1.0, abs(lo), abs(hi))  # 1 - 0.1*9 is 0.0999...: no error at a bound reached exactly
    bad = ~((v >= lo - slack) & (v <= hi + slack))  # nan too
    if not bad.any():
        return
    f = int(np.argmax(bad))
    what = label or f"`{name}`"
    side = f"at most {hi:g}" if v[f] > hi else f"at least {lo:g}"
    if np.all(v == v[0]):
        raise UserError(f"{what} must be {side} ({range_text(rng)}), not {text.strip()}")
    shown = text if len(text) <= 60 else text[:57] + "..."
    raise UserError(f'{what} "{shown}" reaches {v[f]:.4g} at frame {f} (t={f / fps:.2f} s); {what} must be '
                    f'{side} ({range_text(rng)})')


class Timeline:
    """Per-frame values of the schedules, with the audio features they read.

    ``value(name, f)`` for ``name`` in step_size, steps, blend, zoom, angle, dx, dy; ``weights(f)``
    gives the objective's term weights (scheduled ones replaced), or None for the objective's own.
    Every value over the ``nframes`` frames is checked against its range here (a usage error names
    the first frame out of range), so a timeline is built before the model loads: ``terms`` (the
    objective's, :func:`~dreamvideo.build.objective_terms`) may be None while no `layer_weights`
    are scheduled.
    """

    NAMES = CURVES

    def __init__(self, schedules: Schedules, fps: float, nframes: int, terms=(), audio_path=None,
                 audio_start: float = 0.0, use=NAMES):
        from .schedule import Schedule

        check_ranges(schedules)
        self.fps, self.n = float(fps), max(1, int(nframes))
        self.sched = {k: Schedule.parse(getattr(schedules, k), k, schedules.interp) for k in use}
        self.term_sched = {}
        items = list(filter(str.strip, schedules.layer_weights.split(";")))
        if terms is None and items:
            raise ValueError("a timeline with `layer_weights` needs the objective's terms")
        terms = terms or ()
        self.term_weights = [t.weight for t in terms]
        for item in items:
            name, eq, text = item.partition("=")
            idx = [i for i, t in enumerate(terms) if t.layer == name.strip()]
            if not eq or not idx:
                layers = ", ".join(dict.fromkeys(t.layer for t in terms)) or "none"
                raise UserError(f"`layer_weights` item {item.strip()!r} must be LAYER=SCHEDULE with a layer "
                                f"of `layers` ({layers})")
            for i in idx:
                self.term_sched[i] = Schedule.parse(text.strip(), f"weight of {name.strip()}", schedules.interp)
        all_sched = list(self.sched.values()) + list(self.term_sched.values())
        self.features = None
        needed = set().union(*(s.names for s in all_sched)) & set(AUDIO_FEATURES)
        if needed:
            if not audio_path:
                raise UserError("a schedule uses audio features but there is no soundtrack; pass one (`audio`)")
            from .audio import features_for

            self.features = features_for(audio_path, self.fps, self.n, start=audio_start,
                                         smoothing=schedules.smoothing, needed=sorted(needed))
        self._cache = {k: s.values(self.n, self.fps, self.features) for k, s in self.sched.items()}
        for k, v in self._cache.items():
            check_curve(k, getattr(schedules, k), np.round(v) if k == "steps" else v, self.fps)
        self._cache.update({i: s.values(self.n, self.fps, self.features) for i, s in self.term_sched.items()})
        for i, s in self.term_sched.items():
            check_curve("layer_weights", s.text, self._cache[i], self.fps, f"the `layer_weights` of {s.name.split()[-1]}")

    def _get(self, key, sched, f):
        c = self._cache[key]
        return float(c[f]) if f < len(c) else sched.at(f, self.fps, self.features)

    def value(self, name: str, f: int) -> float:
        return self._get(name, self.sched[name], f)

    def weights(self, f: int) -> list[float] | None:
        if not self.term_sched:
            return None
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
