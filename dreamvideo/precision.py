"""``--precision auto``: measured, not guessed.

On first use for a (backend, device, processor or GPU name, library versions), a few ascent steps
of a small conv net are timed in float32 and bfloat16 (and float16 on a GPU) through the real
engine, the precisions taking turns; the fastest wins if it beats float32 by a clear margin
(:data:`MARGIN`), else float32. A candidate that is clearly slower than float32 after a round
(:data:`GIVE_UP`) is timed no further: bfloat16 emulated on a CPU without native support runs
several times slower and would otherwise cost most of the probe.
The precision is decided before a model is built (:func:`resolve`, called by :mod:`dreamvideo.build`).
The choice is cached in ``$XDG_CACHE_HOME/dreamvideo/precision.json`` (default
``~/.cache/dreamvideo``) and printed once to stderr when measured.

Convention: timings are seconds per ascent step of the probe net (smaller is faster).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cachefile

MARGIN = 1.10  # a lower precision must be at least this many times faster than float32 to be chosen
PROBE_SIDE = 96  # pixels: big enough that convolutions, not per-call overhead, dominate the step
PROBE_STEPS = 1
PROBE_ROUNDS = 4
GIVE_UP = 2.0  # a candidate this many times slower than float32 after a round is out
#: Part of the cache key: raised when the probe or the engine's step changes, so old choices are measured again.
PROBE_VERSION = 4


@dataclass(frozen=True)
class Choice:
    precision: str
    reason: str
    key: str
    timings: dict = field(default_factory=dict)  # precision -> seconds per probe step
    cached: bool = False


CACHE = "precision.json"


def cache_path() -> Path:
    return cachefile.path(CACHE)


def machine_key() -> str:
    from . import backends

    mod = backends.current()
    name, device = backends.active()
    return f"{name}|{device}|{mod.device_name(device)}|{mod.versions()}, probe {PROBE_VERSION}"


def _load() -> dict:
    return cachefile.load(CACHE)


def _save(data: dict) -> None:
    cachefile.save(CACHE, data)


def resolve(precision: str) -> str:
    """``auto`` -> the precision measured fastest on the active backend and device; any other name as given."""
    from .errors import UserError
    from .settings import PRECISIONS

    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)} as `precision`")
    return choose().precision if precision == "auto" else precision


def _probe_model(precision: str):
    import keras

    from . import backends
    from .models import DTYPE_POLICY, FeatureModel, dreamable_layers

    policy, fmt = keras.config.dtype_policy(), keras.config.image_data_format()
    first = backends.current().DATA_FORMAT == "channels_first"  # as the named networks are built
    keras.config.set_dtype_policy(DTYPE_POLICY[precision])
    keras.config.set_image_data_format(backends.current().DATA_FORMAT)
    try:
        # Inside building(): the weights are created when the layers are called, and on JAX
        # jax.random would compile a program per weight shape (~4 s here). Their values do not
        # matter to a timing, so no seed (keras.utils.set_random_seed imports TensorFlow if present).
        with backends.current().building():
            x = inp = keras.Input((3, None, None) if first else (None, None, 3))
            for i, (ch, stride) in enumerate(((64, 2), (128, 1), (128, 1), (192, 2), (192, 1)), 1):
                x = keras.layers.Conv2D(ch, 3, strides=stride, padding="same", activation="relu", name=f"c{i}")(x)
            net = keras.Model(inp, x)
    finally:
        keras.config.set_dtype_policy(policy)
        keras.config.set_image_data_format(fmt)
    data_format = backends.current().DATA_FORMAT
    return FeatureModel("probe", "tf", 16, dreamable_layers(net, data_format), "c5:1.0", precision, net,
                        data_format=data_format)


def _probe(precision: str):
    """A callable running PROBE_STEPS ascent steps of the probe net at ``precision``, warmed up
    (compiled) at the very shape and step count it is timed at."""
    import numpy as np

    from .engine import Dreamer
    from .objectives import layer

    d = Dreamer(_probe_model(precision), layer("c5"))
    img = np.random.default_rng(0).uniform(-1, 1, (PROBE_SIDE, PROBE_SIDE, 3)).astype(np.float32)

    def run():
        d.ascend(img, PROBE_STEPS, 0.01, 512, 0)

    run()
    return run


def _timed(run) -> float:
    """Seconds per probe step of one call of a :func:`_probe` callable."""
    t = time.perf_counter()
    run()
    return (time.perf_counter() - t) / PROBE_STEPS


def measure(device: str) -> tuple[str, str, dict]:
    """(precision, reason, seconds per probe step by precision). The candidates take turns for
    :data:`PROBE_ROUNDS` rounds and each keeps its fastest round: a burst of other load on a shared
    machine slows one round, not one candidate. A candidate :data:`GIVE_UP` times slower than
    float32's best after a round takes no further turns (its timing stays, for the reason)."""
    candidates = ["float32", "bfloat16"] + (["float16"] if device == "gpu" else [])
    runs, timings = {}, {}
    for p in candidates:
        try:
            runs[p] = _probe(p)
        except Exception as e:  # a precision the device cannot run is simply not a candidate
            timings[p] = None
            print(f"dreamvideo: {p} did not run here ({type(e).__name__}); not a candidate", file=sys.stderr)
    for _ in range(PROBE_ROUNDS):
        for p, run in list(runs.items()):
            took = _timed(run)
            timings[p] = min(took, timings.get(p) or took)
            if p != "float32" and "float32" in timings and timings[p] > GIVE_UP * timings["float32"]:
                del runs[p]
    f32 = timings["float32"]
    best = min((p for p in candidates if timings.get(p)), key=lambda p: timings[p])
    speed = {p: f32 / t for p, t in timings.items() if t}
    if best != "float32" and speed[best] >= MARGIN:
        reason = f"{best} ran {speed[best]:.2f}x float32's speed (chosen above {MARGIN:.2f}x)"
    else:
        others = ", ".join(f"{p} {speed[p]:.2f}x" for p in candidates if p != "float32" and p in speed)
        reason = f"no lower precision beat float32 by {MARGIN:.2f}x ({others or 'none ran'})"
        best = "float32"
    return best, reason, timings


def choose(remeasure: bool = False, announce: bool = True) -> Choice:
    """The precision ``auto`` means on the active backend and device (cached per machine key)."""
    from . import backends

    backends.current()
    key = machine_key()
    data = _load()
    entry = data.get(key)
    if entry and not remeasure and entry.get("precision") in ("float32", "bfloat16", "float16"):
        return Choice(entry["precision"], entry.get("reason", ""), key, entry.get("timings", {}), True)
    t = time.perf_counter()
    best, reason, timings = measure(backends.active()[1])
    took = time.perf_counter() - t
    data[key] = {"precision": best, "reason": reason, "timings": timings, "measured_s": round(took, 2),
                 "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    _save(data)
    if announce:
        print(f"dreamvideo: --precision auto = {best} on {key.split('|')[0]}/{key.split('|')[1]}: {reason} "
              f"(measured in {took:.1f} s, cached in {cache_path()})", file=sys.stderr)
    return Choice(best, reason, key, timings, False)
