"""The schedule language's expressions: a small tokenizer and Pratt parser into a tree that numpy
evaluates over all frames at once (``"1.0 + 0.04*beat"``, ``"1 + 0.02*sin(2*pi*t/4)"``).

Variables ``t f fps rms onset beat low mid high``, the constants ``pi e``, the functions in
:data:`FUNCTIONS`, ``+ - * / % **`` (``^`` is also power, not xor), unary ``-``, comparisons
``< <= > >= == !=`` (1.0 or 0.0) and ``a if cond else b``. Precedence follows Python, so
``-2**2`` is -4. Nothing reaches eval, exec or Python's own parser: an expression can only ever
compute numbers. :mod:`dreamvideo.schedule` builds keyframes and per-frame schedules on it.

Convention: values are float64 arrays over frames; ``x / 0`` and ``x % 0`` are 0, so ``1/rms``
cannot crash a render on a silent frame; any other inf or nan raises :class:`ScheduleError`
naming the frame.
"""

import math
import re
from functools import reduce
from typing import NamedTuple

import numpy as np

from .errors import UserError
from .settings import AUDIO_FEATURES

VARIABLES = ("t", "f", "fps") + AUDIO_FEATURES
CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_LENGTH = 2000
MAX_FRAME = 1_000_000  # a key value that uses variables is evaluated at every frame up to the next key
MAX_DEPTH = 64  # keeps parsing and evaluation far from Python's recursion limit


class ScheduleError(UserError):
    """A schedule that cannot be parsed or evaluated; ``pos`` is the 0-based offending character."""

    def __init__(self, text, pos, problem, name=None):
        self.text, self.pos, self.problem, self.name = text, pos, problem, name
        shown, _ = _excerpt(text, pos)
        label = f"{name} schedule" if name else "schedule"
        super().__init__(f'bad {label} "{shown}" at column {pos + 1}: {problem}')

    def __reduce__(self):  # keeps it picklable across worker processes
        return type(self), (self.text, self.pos, self.problem, self.name)

    def caret(self):
        """The schedule and a ``^`` under the offending character, on two lines."""
        shown, col = _excerpt(self.text, self.pos)
        return f"{shown}\n{' ' * col}^"


def _excerpt(text, pos, width=60):
    """Text fit for a one-line message, and where ``pos`` lands in it."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    if len(clean) <= width:
        return clean, pos
    lo = max(0, min(pos - width // 2, len(clean) - width))
    pre, post = ("..." if lo else ""), ("..." if lo + width < len(clean) else "")
    return pre + clean[lo:lo + width] + post, pos - lo + len(pre)


def _div(a, b):
    out = np.zeros(np.broadcast(a, b).shape)
    return np.divide(a, b, out=out, where=np.asarray(b) != 0)


def _mod(a, b):
    out = np.zeros(np.broadcast(a, b).shape)
    return np.mod(a, b, out=out, where=np.asarray(b) != 0)


def _smoothstep(e0, e1, x):
    u = np.clip(_div(x - e0, e1 - e0), 0.0, 1.0)
    # With e0 == e1 the ramp has no width: a plain step at e1.
    return np.where(np.asarray(e1 - e0) == 0, np.asarray(x >= e1, dtype=np.float64), u * u * (3 - 2 * u))


def _compare(ufunc):
    return lambda a, b: np.asarray(ufunc(a, b), dtype=np.float64)


# name: (fewest arguments, most arguments, numpy implementation)
FUNCTIONS = {
    **{n: (1, 1, getattr(np, n)) for n in ("sin", "cos", "tan", "abs", "floor", "ceil", "sqrt", "exp", "log")},
    "min": (2, math.inf, lambda *a: reduce(np.minimum, a)),
    "max": (2, math.inf, lambda *a: reduce(np.maximum, a)),
    "clamp": (3, 3, lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi)),
    "smoothstep": (3, 3, _smoothstep),
    "pow": (2, 2, np.power),
}
_BINARY = {  # operator: (precedence, implementation); unary minus and ** bind tighter than all
    **{op: (1, _compare(u)) for op, u in (("<", np.less), ("<=", np.less_equal), (">", np.greater),
                                           (">=", np.greater_equal), ("==", np.equal), ("!=", np.not_equal))},
    "+": (2, np.add), "-": (2, np.subtract), "*": (3, np.multiply), "/": (3, _div), "%": (3, _mod),
}
_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<num>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|<=|>=|==|!=|[-+*/%^<>(),:])
""", re.VERBOSE)
_HINTS = {"=": "did you mean '=='?", "!": "did you mean '!='?", "'": "schedules have no strings",
          '"': "schedules have no strings", ".": "schedules have no attributes"}
_TOO_DEEP = f"the expression nests more than {MAX_DEPTH} levels deep; simplify it"


class _Tok(NamedTuple):
    kind: str  # num, name, op or end
    text: str
    pos: int
    value: float = 0.0


class _EvalError(Exception):
    """Raised inside the tree, which does not know the text; :class:`Expr` adds it."""

    def __init__(self, pos, problem):
        super().__init__(problem)
        self.pos, self.problem = pos, problem


class _Node:
    __slots__ = ("pos", "depth")


class _Num(_Node):
    __slots__ = ("value",)

    def __init__(self, pos, value):
        self.pos, self.depth, self.value = pos, 1, np.float64(value)

    def ev(self, env):
        return self.value


class _Var(_Node):
    __slots__ = ("name",)

    def __init__(self, pos, name):
        self.pos, self.depth, self.name = pos, 1, name

    def ev(self, env):
        if self.name not in env:
            fix = "pass a soundtrack (`audio`) to use audio features" if self.name in AUDIO_FEATURES else "give it a value"
            raise _EvalError(self.pos, f"no value for '{self.name}'; {fix}")
        return env[self.name]


class _Op(_Node):
    """An operator or function call; every result is checked so inf/nan is reported where it arises."""

    __slots__ = ("what", "fn", "args")

    def __init__(self, pos, what, fn, args):
        self.pos, self.what, self.fn, self.args = pos, what, fn, args
        self.depth = 1 + max(a.depth for a in args)

    def ev(self, env):
        v = self.fn(*[a.ev(env) for a in self.args])
        bad = ~np.isfinite(v)
        if np.any(bad):
            i = int(np.argmax(bad.ravel()))
            kind = str(np.ravel(v)[i])  # nan, inf or -inf
            f = env.get("f")
            at = f" at frame {int(np.ravel(f)[i])}" if np.ndim(v) and f is not None and np.shape(f) == np.shape(v) else ""
            raise _EvalError(self.pos, f"{self.what} gives {kind}{at}; keep its inputs in range (clamp() helps)")
        return v


class _Cond(_Node):
    __slots__ = ("body", "cond", "other")

    def __init__(self, pos, body, cond, other):
        self.pos, self.body, self.cond, self.other = pos, body, cond, other
        self.depth = 1 + max(body.depth, cond.depth, other.depth)

    def ev(self, env):
        c = self.cond.ev(env)
        if np.ndim(c) == 0:
            return self.body.ev(env) if c != 0 else self.other.ev(env)
        # Each branch sees only its own frames, so `log(x) if x > 0 else 0` never meets log(0).
        out = np.empty(np.shape(c))
        for mask, branch in ((c != 0, self.body), (c == 0, self.other)):
            if mask.any():
                out[mask] = branch.ev({k: (v[mask] if np.ndim(v) else v) for k, v in env.items()})
        return out


class Expr:
    """A parsed expression; call it with variable values (floats or equal-shaped arrays)."""

    def __init__(self, text, root, names, name=None):
        self.text, self.name, self._root = text, name, root
        self.names = frozenset(names)

    def __call__(self, env):
        # 'f' rides along so that an inf/nan can be reported at its frame.
        vals = {k: np.asarray(env[k], dtype=np.float64) for k in self.names | {"f"} if k in env}
        if len({v.shape for v in vals.values() if v.ndim}) > 1:
            raise ValueError("schedule variables must be scalars or arrays of one shape")
        with np.errstate(all="ignore"):
            try:
                v = self._root.ev(vals)
            except _EvalError as e:
                raise ScheduleError(self.text, e.pos, e.problem, self.name) from None
        return float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64)

    def __repr__(self):
        return f"Expr({self.text!r})"


def _tokenize(text, name):
    if not isinstance(text, str):
        raise ScheduleError(repr(text), 0, "expected a number or a schedule string", name)
    if len(text) > MAX_LENGTH:
        raise ScheduleError(text, MAX_LENGTH, f"the schedule is {len(text)} characters long; keep it under {MAX_LENGTH}", name)
    toks, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            ch = text[pos]
            hint = _HINTS.get(ch, "use numbers, names, + - * / % ** ( ) , and comparisons")
            raise ScheduleError(text, pos, f"unexpected {ch!r}; {hint}", name)
        kind = m.lastgroup
        if kind == "num":
            value = float(m.group())
            if not math.isfinite(value):
                raise ScheduleError(text, pos, f"the number {m.group()} is too large", name)
            toks.append(_Tok("num", m.group(), pos, value))
        elif kind != "ws":
            toks.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    if not toks:
        raise ScheduleError(text, 0, "the schedule is empty; give a number, keyframes like 0:(1.0) or an expression", name)
    return toks + [_Tok("end", "", len(text))]


class Parser:
    def __init__(self, text, name):
        self.text, self.name = text, name
        self.toks, self.i, self.nest, self.names = _tokenize(text, name), 0, 0, set()

    def err(self, pos, problem):
        return ScheduleError(self.text, pos, problem, self.name)

    @property
    def tok(self):
        return self.toks[self.i]

    def is_(self, text):
        return self.tok.kind in ("op", "name") and self.tok.text == text

    def take(self):
        t = self.tok
        self.i += t.kind != "end"
        return t

    def expect(self, text, expected):
        if not self.is_(text):
            raise self.unexpected(expected)
        return self.take()

    def unexpected(self, expected):
        t = self.tok
        return self.err(t.pos, f"unexpected {'end' if t.kind == 'end' else repr(t.text)}; expected {expected}")

    def node(self, cls, *args):
        n = cls(*args)
        if n.depth > MAX_DEPTH:
            raise self.err(n.pos, _TOO_DEEP)
        return n

    def whole(self):
        x = self.expression()
        if self.tok.kind != "end":
            raise self.unexpected("an operator or the end")
        return Expr(self.text, x, self.names, self.name)

    def keyframes(self):
        keys = {}
        while True:
            t = self.tok
            if t.kind != "num":
                raise self.unexpected("a frame number, as in 0:(1.0)")
            self.take()
            if not t.value.is_integer() or t.value > MAX_FRAME:
                raise self.err(t.pos, f"keyframe frames are whole numbers from 0 to {MAX_FRAME}, not {t.text}")
            self.expect(":", "':' after the frame number, as in 0:(1.0)")
            self.names = set()
            x = self.expression()
            if int(t.value) in keys:
                raise self.err(t.pos, f"frame {int(t.value)} has two keyframes; keep one")
            keys[int(t.value)] = Expr(self.text, x, self.names, self.name)
            if self.tok.kind == "end":
                break
            self.expect(",", "',' between keyframes, as in 0:(1.0), 48:(1.05)")
            if self.tok.kind == "end":  # a trailing comma is harmless
                break
        return sorted(keys.items())

    def expression(self):
        body = self.binary(0)
        if not self.is_("if"):
            return body
        pos = self.take().pos
        cond = self.binary(0)
        self.expect("else", "'else', as in a if cond else b")
        self.nest += 1  # `a if c else b if d else ...` recurses here rather than through unary()
        if self.nest > MAX_DEPTH:
            raise self.err(self.tok.pos, _TOO_DEEP)
        other = self.expression()
        self.nest -= 1
        return self.node(_Cond, pos, body, cond, other)

    def binary(self, min_prec):
        left, compared = self.unary(), False
        while True:
            t = self.tok
            prec, fn = _BINARY.get(t.text, (None, None)) if t.kind == "op" else (None, None)
            if prec is None or prec < min_prec:
                return left
            if prec == 1:
                if compared:
                    raise self.err(t.pos, "chained comparisons like a < b < c are not supported; write (a < b) * (b < c)")
                compared = True
            self.take()
            left = self.node(_Op, t.pos, f"'{t.text}'", fn, [left, self.binary(prec + 1)])

    def unary(self):
        self.nest += 1
        if self.nest > MAX_DEPTH:
            raise self.err(self.tok.pos, _TOO_DEEP)
        t = self.tok
        if t.kind == "op" and t.text in ("-", "+"):
            self.take()
            x = self.unary()
            x = x if t.text == "+" else self.node(_Op, t.pos, "'-'", np.negative, [x])
        else:
            x = self.primary()
            t = self.tok
            if t.kind == "op" and t.text in ("**", "^"):  # right-associative; 2**-1 is allowed
                self.take()
                x = self.node(_Op, t.pos, f"'{t.text}'", np.power, [x, self.unary()])
        self.nest -= 1
        return x

    def primary(self):
        t = self.tok
        if t.kind == "num":
            self.take()
            return _Num(t.pos, t.value)
        if self.is_("("):
            self.take()
            x = self.expression()
            self.expect(")", f"')' to close the '(' at column {t.pos + 1}")
            return x
        if t.kind != "name" or t.text in ("if", "else"):
            raise self.unexpected("a number, name or '('")
        self.take()
        if self.is_("("):
            return self.call(t)
        if t.text in CONSTANTS:
            return _Num(t.pos, CONSTANTS[t.text])
        if t.text in VARIABLES:
            self.names.add(t.text)
            return _Var(t.pos, t.text)
        if t.text in FUNCTIONS:
            raise self.err(t.pos, f"'{t.text}' is a function; call it like {t.text}(x)")
        raise self.err(t.pos, f"unknown name {t.text!r}; use one of {', '.join(VARIABLES + tuple(CONSTANTS))}")

    def call(self, t):
        if t.text not in FUNCTIONS:
            raise self.err(t.pos, f"unknown function {t.text!r}; use one of {', '.join(sorted(FUNCTIONS))}")
        lo, hi, fn = FUNCTIONS[t.text]
        self.take()
        args = []
        if not self.is_(")"):
            args.append(self.expression())
            while self.is_(","):
                self.take()
                args.append(self.expression())
        self.expect(")", f"',' or ')' in {t.text}(...)")
        if not lo <= len(args) <= hi:
            want = f"{lo} or more" if hi == math.inf else str(lo)
            raise self.err(t.pos, f"{t.text}() takes {want} argument{'s' * (lo > 1)}, not {len(args)}")
        return self.node(_Op, t.pos, f"{t.text}()", fn, args)


def parse_expression(text, name=None):
    """Parse an expression (no keyframes) into an :class:`Expr`; raises :class:`ScheduleError`."""
    return Parser(text, name).whole()
