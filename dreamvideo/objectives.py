"""What the dream maximises: small composable objectives, built in Python or from strings.

Convention: an :class:`Objective` is a weighted sum of :class:`Term` s. Each term reads one layer's
activation ``(1, h, w, C)`` and reduces it to a scalar that does not depend on the image size
(a mean over positions), so that tiles, octaves and frames of any size weigh the same.

    layer("mixed4") + 1.5 * layer("mixed5")      # == parse_objective("mixed4:1.0,mixed5:1.5")
    channel("mixed4c", 97)                       # == parse_objective("mixed4c:97")

Strings: comma-separated items ``LAYER``, ``LAYER:WEIGHT``, ``LAYER:CHANNEL`` (an integer) or
``LAYER:CHANNEL:WEIGHT``. A weight has a decimal point (``mixed4:1.0``, ``mixed4:2.``); an integer
after the layer is a channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import UserError

MODES = ("l2", "mean")


@dataclass(frozen=True)
class Term:
    """One layer (or one channel of it), reduced by ``mode``; ``guide`` marks a guide-image term."""

    layer: str
    weight: float = 1.0
    channel: int | None = None
    mode: str = "l2"
    guide: bool = False

    def describe(self) -> str:
        what = self.layer if self.channel is None else f"{self.layer}:{self.channel}"
        return f"{what}:{self.weight:g}" + ("" if self.mode == "l2" else f" ({self.mode})") + (" (guide)" if self.guide else "")


@dataclass(frozen=True)
class Objective:
    terms: tuple[Term, ...]

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(self.terms + other.terms)

    def __mul__(self, k: float) -> "Objective":
        return Objective(tuple(replace(t, weight=t.weight * float(k)) for t in self.terms))

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.layer for t in self.terms))

    @property
    def weights(self) -> list[float]:
        return [t.weight for t in self.terms]

    def describe(self) -> str:
        return ", ".join(t.describe() for t in self.terms)

    def validate(self, model) -> None:
        """One-line UserError for an unknown layer or an out-of-range channel of ``model``."""
        for t in self.terms:
            info = model.layer(t.layer)
            if t.channel is not None and not 0 <= t.channel < info.channels:
                raise UserError(f"channel {t.channel} is out of range for layer {t.layer}, "
                                f"which has channels 0..{info.channels - 1}")


def layer(name: str, weight: float = 1.0, mode: str = "l2") -> Objective:
    return Objective((Term(name, float(weight), None, mode),))


def channel(name: str, index: int, weight: float = 1.0) -> Objective:
    return Objective((Term(name, float(weight), int(index), "mean"),))


def guide(name: str, weight: float = 1.0) -> Objective:
    """Match a guide image's features at ``name`` (google/deepdream's ``objective_guide``)."""
    return Objective((Term(name, float(weight), None, "l2", True),))


_ITEM = re.compile(r"^\s*([A-Za-z_][\w/.\-]*)\s*(?::\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))?"
                   r"\s*(?::\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))?\s*$")


def parse_objective(text: str, mode: str = "l2") -> Objective:
    """Parse ``mixed4:1.0,mixed5:1.5`` / ``mixed4c:97`` / ``mixed4c:97:2.0`` into an Objective."""
    items = [s for s in str(text).split(",") if s.strip()]
    if not items:
        raise UserError("`layers` is empty; give e.g. mixed4:1.0,mixed5:1.5 or mixed4c:97")
    obj = Objective(())
    for item in items:
        m = _ITEM.match(item)
        if not m:
            raise UserError(f"cannot read layer item {item.strip()!r}; write LAYER, LAYER:WEIGHT (1.5), "
                            f"LAYER:CHANNEL (97) or LAYER:CHANNEL:WEIGHT")
        name, a, b = m.groups()
        if b is not None:
            if not re.fullmatch(r"-?\d+", a):
                raise UserError(f"in {item.strip()!r} the channel must be a whole number (LAYER:CHANNEL:WEIGHT)")
            obj = obj + channel(name, int(a), float(b))
        elif a is not None and re.fullmatch(r"-?\d+", a):
            obj = obj + channel(name, int(a))
        else:
            obj = obj + layer(name, float(a) if a is not None else 1.0, mode)
    return obj
