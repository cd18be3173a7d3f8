"""What a dream costs on this machine: a measured cost curve, for reuse's crop planning.

A step of gradient ascent costs a floor however small the image (op dispatch, per-call set-up)
plus a share per pixel. Reuse chooses between dreaming new content in crops, all crops on one
canvas, or the whole frame (:func:`dreamvideo.reuse.canvases`, :class:`dreamvideo.coherence.VideoStepper`)
by what each costs, so the curve is measured on the machine it runs on, with the model, objective
and precision it dreams with: a few ascent steps at three sizes, least squares of ``seconds per
step = floor + per_pixel * pixels``. It is cached per machine key (:func:`dreamvideo.precision.machine_key`),
model, layers and precision in ``$XDG_CACHE_HOME/dreamvideo/cost.json`` (beside the precision choice),
so a render's plan stays the same from one run to the next on one machine (resume makes the same bytes).

Convention: seconds; ``hw`` is ``(height, width)`` in pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cachefile

#: Square sides the curve is measured at (each at least the model's smallest input).
SIDES = (64, 128, 256)
STEPS = 3
ROUNDS = 3
#: Part of the cache key: raised when the measurement changes.
VERSION = 2  # 2: TensorFlow's narrow runner (a lower floor)


@dataclass(frozen=True)
class CostCurve:
    """Seconds per ascent step: ``floor + per_pixel * height * width``."""

    floor: float
    per_pixel: float

    def step(self, hw) -> float:
        return self.floor + self.per_pixel * int(hw[0]) * int(hw[1])

    def dream(self, hw, settings, min_side: int, steps: int | None = None) -> float:
        """Seconds of one :meth:`~dreamvideo.engine.Dreamer.dream` of an ``hw`` image: every octave
        it dreams (sized as the engine sizes them), ``steps`` (default the settings') each."""
        from .engine import octave_shapes

        h, w = int(hw[0]), int(hw[1])
        steps = settings.steps if steps is None else steps
        grow = max(1.0, min_side / max(1, min(h, w)))
        full = (max(1, round(h * grow)), max(1, round(w * grow)))
        return sum(steps * self.step(s) for s in octave_shapes(full, settings.octaves, settings.octave_scale, min_side))


CACHE = "cost.json"


def cache_path() -> Path:
    return cachefile.path(CACHE)


def key(dreamer) -> str:
    from .precision import machine_key

    m = dreamer.model
    return f"{machine_key()}|{m.name}|{m.precision}|{','.join(m.names)}|cost {VERSION}"


def fit(sizes, seconds) -> CostCurve:
    """Least squares of seconds per step against pixels (``sizes`` (h, w)); never below zero."""
    px = np.array([h * w for h, w in sizes], float)
    t = np.asarray(seconds, float)
    slope, floor = np.polyfit(px, t, 1)
    slope = max(float(slope), 0.0)
    floor = max(float(np.mean(t - slope * px)), 0.0)
    return CostCurve(floor, slope)


def measure(dreamer, sides=SIDES, steps: int = STEPS, rounds: int = ROUNDS) -> CostCurve:
    """The curve of ``dreamer`` (warm: each size is run once first), sizes taking turns round by
    round, each keeping its fastest round (a burst of other load slows one round, not one size)."""
    rng = np.random.default_rng(0)
    sizes = [(max(s, dreamer.model.min_side),) * 2 for s in sides]
    imgs = [rng.uniform(-1, 1, (h, w, 3)).astype(np.float32) for h, w in sizes]
    for img in imgs:
        dreamer.ascend(img, 1, 0.01, 512, 0)
    best = [np.inf] * len(sizes)
    for _ in range(rounds):
        for i, img in enumerate(imgs):
            t = time.perf_counter()
            dreamer.ascend(img, steps, 0.01, 512, 0)
            best[i] = min(best[i], (time.perf_counter() - t) / steps)
    return fit(sizes, best)


def _load() -> dict:
    return cachefile.load(CACHE)


def curve(dreamer) -> CostCurve:
    """``dreamer``'s cost curve: cached on the dreamer and on disk, measured once per key."""
    found = getattr(dreamer, "_cost_curve", None)
    if found is not None:
        return found
    k = key(dreamer)
    entry = _load().get(k)
    try:
        found = CostCurve(float(entry["floor"]), float(entry["per_pixel"]))
    except (TypeError, KeyError, ValueError):
        found = measure(dreamer)
        data = _load()
        data[k] = {"floor": found.floor, "per_pixel": found.per_pixel, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
        cachefile.save(CACHE, data)
    dreamer._cost_curve = found
    return found
