"""Per-frame parameter schedules: plain numbers, keyframes and safe expressions.

A schedule string is one of

* a number: ``"1.05"``;
* keyframes ``"0:(1.0), 48:(1.05), 96:(1.0)"``: ``frame:(value)`` pairs in any order. Values are
  interpolated ``linear`` (default), ``cubic`` or ``step``; before the first key the first value
  holds and after the last key the last one does. As in Deforum, a key whose value uses variables
  (``0:(1 + 0.1*sin(t))``) is evaluated at every frame from its key up to the next key;
* an expression such as ``"1.0 + 0.04*beat"`` or ``"1 + 0.02*sin(2*pi*t/4)"`` over the variables
  ``t f fps rms onset beat low mid high``, the constants ``pi e``, the functions in
  :data:`FUNCTIONS`, ``+ - * / % **`` (``^`` is also power, not xor), unary ``-``, comparisons
  ``< <= > >= == !=`` (1.0 or 0.0) and ``a if cond else b``. Precedence follows Python, so
  ``-2**2`` is -4.

Expressions are :mod:`dreamvideo.expression`'s (a small parser; nothing reaches eval, exec or
Python's own parser: a schedule can only ever compute numbers).

Convention: ``f`` is the 0-based output frame index, ``t = f / fps`` is seconds from the first
output frame, audio features are per-frame floats in 0..1, and schedule values are float64.
``x / 0`` and ``x % 0`` are 0, so a schedule such as ``1/rms`` cannot crash a render on a silent
frame; any other inf or nan (``log(0)``, ``10**400``) raises :class:`ScheduleError` naming the
frame. ``cubic`` is scipy's not-a-knot ``CubicSpline`` through the keys (the curve of Deforum's
pandas ``cubic``; two keys give a line, three a parabola); it is smooth but may overshoot.
"""

import math

import numpy as np

from .errors import UserError
from .expression import FUNCTIONS, MAX_FRAME, VARIABLES, Parser, ScheduleError, parse_expression
from .settings import AUDIO_FEATURES

#: What a schedule user needs, with the expression language's names passed on from :mod:`dreamvideo.expression`.
__all__ = ["Schedule", "ScheduleError", "parse_expression", "FUNCTIONS", "VARIABLES", "AUDIO_FEATURES",
           "INTERPOLATIONS", "MAX_FRAME"]

INTERPOLATIONS = ("linear", "cubic", "step")



def _interpolate(kind, x, y, q):
    if kind == "step" or len(x) == 1:
        return y[np.clip(np.searchsorted(x, q, side="right") - 1, 0, None)]
    if kind == "linear":
        return np.interp(q, x, y)
    from scipy.interpolate import CubicSpline

    return CubicSpline(x, y)(np.clip(q, x[0], x[-1]))


class Schedule:
    """A per-frame value parsed from a number, keyframes or an expression (see the module doc).

    Attributes: ``text``, ``name`` (for messages), ``interp``, ``names`` (variables used),
    ``needs_audio`` and ``is_constant``.
    """

    def __init__(self, text, name, interp, expr=None, keys=None):
        self.text, self.name, self.interp = text, name, interp
        self._expr, self._keys = expr, keys
        exprs = [expr] if expr is not None else [e for _, e in keys]
        self.names = frozenset().union(*(e.names for e in exprs))
        self.needs_audio = bool(self.names & set(AUDIO_FEATURES))
        # Constant parts are evaluated now, so log(0) fails at parse time rather than mid-render.
        consts = {e({}) for e in exprs if not e.names}
        self.is_constant = not self.names and len(consts) == 1

    @classmethod
    def parse(cls, value, name="zoom", interp="linear"):
        if isinstance(value, Schedule):
            return value
        if interp not in INTERPOLATIONS:
            raise UserError(f"unknown interpolation {interp!r} for {name}; use linear, cubic or step")
        if not isinstance(value, str):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ScheduleError(repr(value), 0, "expected a number or a schedule string", name)
            try:
                value = float(value)
            except OverflowError:
                value = math.inf
            if not math.isfinite(value):
                raise ScheduleError(repr(value), 0, "the value must be a finite number", name)
            value = repr(value)
        p = Parser(value, name)
        if any(t.kind == "op" and t.text == ":" for t in p.toks):
            return cls(value, name, interp, keys=p.keyframes())
        return cls(value, name, interp, expr=p.whole())

    def values(self, nframes, fps, features=None):
        """float64 array of the value at frames 0..nframes-1."""
        if isinstance(nframes, bool) or int(nframes) != nframes or nframes < 0:
            raise UserError(f"the number of frames must be a whole number >= 0, not {nframes!r}")
        return self._eval(np.arange(int(nframes), dtype=np.float64), fps, features)

    def at(self, frame, fps, features=None):
        """The value at one frame, equal to ``values(n, ...)[frame]`` for any n > frame."""
        if not math.isfinite(frame):
            raise UserError(f"the frame must be a finite number, not {frame!r}")
        return float(self._eval(np.array([float(frame)]), fps, features)[0])

    def _eval(self, frames, fps, features):
        if not (isinstance(fps, (int, float, np.integer, np.floating)) and math.isfinite(fps) and fps > 0):
            raise UserError(f"fps must be a positive number, not {fps!r}")
        fps = float(fps)
        feats = {}
        for k in sorted(self.names & set(AUDIO_FEATURES)):
            a = None if features is None or k not in features else np.asarray(features[k], dtype=np.float64).ravel()
            if a is None or a.size == 0:
                raise UserError(f"the {self.name} schedule uses '{k}' but no audio features were given; pass a soundtrack (`audio`)")
            if not np.all(np.isfinite(a)):
                raise UserError(f"audio feature '{k}' holds inf or nan; recompute the audio features")
            feats[k] = a

        def env(fr):
            e = {"f": fr, "t": fr / fps, "fps": fps}
            for k, a in feats.items():  # frames past the features hold the last value
                e[k] = a[np.clip(fr, 0, a.size - 1).astype(np.intp)]
            return e

        with np.errstate(all="ignore"):
            if self._expr is not None:
                return np.array(np.broadcast_to(self._expr(env(frames)), frames.shape), dtype=np.float64)
            ends = [k for k, _ in self._keys[1:]] + [math.inf]
            # Knots: one per constant key, every frame of a varying key's span (so cubic sees its shape).
            knots = [np.arange(k, end if e.names and end < math.inf else k + 1, dtype=np.float64)
                     for (k, e), end in zip(self._keys, ends)]
            y = np.concatenate([np.broadcast_to(e(env(x)), x.shape) for (_, e), x in zip(self._keys, knots)])
            try:
                out = np.array(_interpolate(self.interp, np.concatenate(knots), y, frames), dtype=np.float64)
            except ValueError:  # CubicSpline refuses slopes that overflow
                out = np.full(frames.shape, np.nan)
            for (k, e), end in zip(self._keys, ends):
                span = (frames >= k) & (frames < end)
                if e.names and span.any():
                    out[span] = e(env(frames[span]))
            if not np.all(np.isfinite(out)):
                raise ScheduleError(self.text, 0, "interpolating the keyframes overflows; use smaller values", self.name)
        return out

    def __repr__(self):
        return f"Schedule({self.text!r}, name={self.name!r}, interp={self.interp!r})"
