"""JAX: the gradient step and its loop in one ``jax.jit`` (a ``lax.while_loop`` inside).

XLA compiles one program per input shape, so the engine mirror-pads each octave to a multiple of
:attr:`Loop.pad_multiple` pixels and the roll schedule to a power-of-two length: a video's frames
reuse a handful of compiled programs (one per octave), and ``trace_count`` counts them. The
model's weights are arguments of the program (``stateless_call``), not constants baked into it.
"""

from __future__ import annotations

import os

name = "jax"


def prepare(device: str) -> None:
    if device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"


def start(device: str) -> str:
    import jax

    try:
        gpu = jax.default_backend() in ("gpu", "cuda", "rocm", "METAL", "metal", "tpu")
    except RuntimeError:
        gpu = False
    return "gpu" if gpu and device != "cpu" else "cpu"


def device_name(device: str) -> str:
    import jax

    if device == "gpu":
        return jax.devices()[0].device_kind
    from .tensorflow import cpu_name

    return cpu_name()


def versions() -> str:
    import jax
    import jaxlib
    import keras

    return f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, keras {keras.__version__}"


def _bucket(n: int) -> int:
    return max(16, 1 << max(0, int(n) - 1).bit_length())


class Loop:
    pad_multiple = 64

    def __init__(self, model, terms, guides):
        import jax
        import jax.numpy as jnp
        from jax import lax

        from ..engine import objective_loss, tile_bounds

        self.trace_count = 0
        net = model.keras_model
        names = model.names
        pre = model.preprocess_fn
        guides = {k: jnp.asarray(v) for k, v in guides.items()}
        self._vars = ([v.value for v in net.trainable_variables], [v.value for v in net.non_trainable_variables])

        def tile_loss(tile, weights, tv, ntv):
            out, _ = net.stateless_call(tv, ntv, pre(tile[None]), training=False)
            out = out if isinstance(out, (list, tuple)) else [out]
            return objective_loss(terms, guides, dict(zip(names, out)), weights)

        grad = jax.value_and_grad(tile_loss)

        def tiled(img, tile, weights, shift, tv, ntv):
            h, w = img.shape[:2]
            rolled = jnp.roll(img, (shift[0], shift[1]), axis=(0, 1))
            rows, loss, row = [], 0.0, []
            bounds = tile_bounds((h, w), tile)
            for k, (y0, y1, x0, x1) in enumerate(bounds):
                frac = (y1 - y0) * (x1 - x0) / (h * w)
                l, g = grad(rolled[y0:y1, x0:x1], weights, tv, ntv)
                loss = loss + l * frac
                row.append(g * frac)
                if k + 1 == len(bounds) or bounds[k + 1][0] != y0:
                    rows.append(jnp.concatenate(row, axis=1))
                    row = []
            g = jnp.concatenate(rows, axis=0)
            return jnp.roll(g, (-shift[0], -shift[1]), axis=(0, 1)), loss

        def ascend(img, steps, step_size, shifts, weights, max_loss, step_map, tv, ntv, tile):
            self.trace_count += 1  # runs only while tracing: once per compiled program

            def cond(c):
                i, _, loss = c
                return jnp.logical_and(i < steps, loss <= max_loss)

            def body(c):
                i, img, _ = c
                g, loss = tiled(img, tile, weights, shifts[i], tv, ntv)
                g = g / jnp.maximum(jnp.mean(jnp.abs(g)), 1e-6)
                return i + 1, jnp.clip(img + step_size * step_map[..., None] * g, -1.0, 1.0), loss

            _, img, loss = lax.while_loop(cond, body, (jnp.int32(0), img, jnp.float32(-jnp.inf)))
            return img, loss

        self._ascend = jax.jit(ascend, static_argnames=("tile",))
        self._grad = jax.jit(tiled, static_argnames=("tile",))

    def gradient(self, img, tile, weights, shift):
        import numpy as np

        g, loss = self._grad(img, tile, weights, shift, *self._vars)
        return np.asarray(g), float(loss)

    def ascend(self, img, steps, step_size, tile, shifts, weights, max_loss, step_map):
        import numpy as np

        padded = np.zeros((_bucket(len(shifts)), 2), np.int32)
        padded[:len(shifts)] = shifts
        # The tile size is part of the program (tiles are static slices), so it is clamped to the
        # image: a tile larger than the image means one tile, whatever its nominal size.
        tile = min(int(tile), max(img.shape[:2]))
        out, loss = self._ascend(img, np.int32(steps), np.float32(step_size), padded, weights,
                                 np.float32(max_loss), step_map, *self._vars, tile=tile)
        return np.asarray(out), float(loss)
