"""JAX: the gradient step in one ``jax.jit``, its loop in Python.

XLA compiles one program per input shape, so the engine mirror-pads each octave to a multiple of
:attr:`Loop.pad_multiple` pixels and the roll schedule to a power-of-two length: a video's frames
reuse a handful of compiled programs (one per octave), and ``trace_count`` counts them. The
model's weights are arguments of the program (``stateless_call``), not constants baked into it.
"""

from __future__ import annotations

import os

name = "jax"
DATA_FORMAT = "channels_last"  # XLA picks its own layouts


def prepare(device: str) -> None:
    if device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"


def start(device: str) -> str:
    import jax

    from ..precision import cache_path

    # Compiled programs persist across runs (a video's octave shapes compile once per machine).
    jax.config.update("jax_compilation_cache_dir", str(cache_path().parent / "jax"))

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

        from .common import objective_loss, tile_bounds

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

        mode = os.environ.get("DREAMVIDEO_JAX_TILES", "")  # "map" / "unroll" override the choice below
        sequential = mode == "map" or (mode != "unroll" and jax.default_backend() != "cpu")

        def finish(g, loss, shift, hw, ry, rx):
            h, w = hw[0], hw[1]
            back = g[(ry + shift[0]) % h][:, (rx + shift[1]) % w]  # valid pixel p came from canvas (p + shift) % hw
            valid = (ry < h)[:, None, None] & (rx < w)[None, :, None]
            return jnp.where(valid, back, 0.0), loss

        def unrolled(canvas, tile, weights, tv, ntv, hw, ry, rx, shift):
            h, w = hw[0], hw[1]
            rows, loss, row = [], 0.0, []
            bounds = tile_bounds(canvas.shape[:2], tile)
            for k, (y0, y1, x0, x1) in enumerate(bounds):
                frac = (y1 - y0) * (x1 - x0) / (h * w).astype(jnp.float32)
                l, g = grad(canvas[y0:y1, x0:x1], weights, tv, ntv)
                loss = loss + l * frac
                row.append(g * frac)
                if k + 1 == len(bounds) or bounds[k + 1][0] != y0:
                    rows.append(jnp.concatenate(row, axis=1))
                    row = []
            return finish(jnp.concatenate(rows, axis=0), loss, shift, hw, ry, rx)

        def tiled(img, tile, weights, shift, tv, ntv, hw):
            """Gradient of the valid ``hw`` corner of the padded ``img`` rolled by ``shift`` within
            that corner; the padding mirrors the rolled image (so the canvas has no seam), and
            its own gradient is dropped. Zero outside the valid corner."""
            hp, wp = img.shape[:2]
            h, w = hw[0], hw[1]
            ry, rx = jnp.arange(hp), jnp.arange(wp)
            sym_y = jnp.where(ry < h, ry, jnp.maximum(2 * h - 1 - ry, 0))
            sym_x = jnp.where(rx < w, rx, jnp.maximum(2 * w - 1 - rx, 0))
            src_y, src_x = (sym_y - shift[0]) % h, (sym_x - shift[1]) % w
            canvas = img[src_y][:, src_x]
            # Where memory is scarce (a GPU), the tiles of one shape (tile_bounds gives at most four
            # shapes) go through the network one after the other in a lax.map: unrolled in the
            # program, XLA keeps many tiles' activations alive at once (a 4K frame in 512 px tiles:
            # 7 GB on CPU, in a map 1.2 GB). On XLA:CPU the map's loop ran 3.3x slower than unrolled
            # (bench/RESULTS.md, "Memory"), and host memory is plentiful, so there they stay unrolled.
            if not sequential:
                return unrolled(canvas, tile, weights, tv, ntv, hw, ry, rx, shift)
            groups: dict = {}
            for y0, y1, x0, x1 in tile_bounds((hp, wp), tile):
                groups.setdefault((y1 - y0, x1 - x0), []).append((y0, x0))
            g, loss = jnp.zeros_like(canvas), 0.0
            for (th, tw), offsets in groups.items():
                # Weighted by the valid area, as the unpadded image's tiles would be: the raw gradient
                # keeps its scale (it matters where the normalisation's floor applies).
                frac = th * tw / (h * w).astype(jnp.float32)

                def one(o, th=th, tw=tw):
                    return grad(jax.lax.dynamic_slice(canvas, (o[0], o[1], 0), (th, tw, canvas.shape[2])),
                                weights, tv, ntv)

                if len(offsets) == 1:  # no loop around a lone tile
                    losses, grads = (v[None] for v in one(jnp.asarray(offsets[0], jnp.int32)))
                else:
                    losses, grads = jax.lax.map(one, jnp.asarray(offsets, jnp.int32))
                loss = loss + jnp.sum(losses) * frac
                for k, (y0, x0) in enumerate(offsets):
                    g = g.at[y0:y0 + th, x0:x0 + tw].set(grads[k] * frac)
            return finish(g, loss, shift, hw, ry, rx)

        def step(img, i, step_size, shifts, weights, step_map, hw, tv, ntv, tile):
            self.trace_count += 1  # runs only while tracing: once per compiled program
            count = (hw[0] * hw[1] * 3).astype(jnp.float32)
            g, loss = tiled(img, tile, weights, shifts[i], tv, ntv, hw)
            g = g / jnp.maximum(jnp.sum(jnp.abs(g)) / count, 1e-6)
            return jnp.clip(img + step_size * step_map[..., None] * g, -1.0, 1.0), loss

        # One step per compiled call, the loop in Python: on XLA:CPU a step inside lax.while_loop
        # ran ~4x slower than the same step jitted alone (96-192 px probe net, 2026-12-02), and the
        # dispatch of one call per step is negligible beside a step's convolutions.
        # The image is donated: each step writes the next image into the buffer of the last one.
        self._step = jax.jit(step, static_argnames=("tile",), donate_argnums=(0,))
        self._grad = jax.jit(tiled, static_argnames=("tile",))

    def gradient(self, img, tile, weights, shift, hw):
        import numpy as np

        tile = min(int(tile), max(img.shape[:2]))
        g, loss = self._grad(img, tile, weights, shift, *self._vars, np.asarray(hw, np.int32))
        return np.asarray(g), float(loss)

    def ascend(self, img, steps, step_size, tile, shifts, weights, max_loss, step_map, hw):
        import numpy as np

        padded = np.zeros((_bucket(len(shifts)), 2), np.int32)
        padded[:len(shifts)] = shifts
        # The tile size is part of the program (tiles are static slices), so it is clamped to the
        # image: a tile larger than the image means one tile, whatever its nominal size.
        tile = min(int(tile), max(img.shape[:2]))
        hw, step_size = np.asarray(hw, np.int32), np.float32(step_size)
        loss = last = -np.inf
        for i in range(int(steps)):
            if loss > max_loss:
                break
            img, last = self._step(img, np.int32(i), step_size, padded, weights, step_map, hw, *self._vars, tile=tile)
            # Reading the loss waits for the step; without an early stop the steps queue up unread.
            loss = float(last) if np.isfinite(max_loss) else loss
        return np.asarray(img), float(last)


def building():
    """While Keras builds a model: draw initial weights with NumPy instead of jax.random.

    Each jax.random call compiles an XLA program per weight shape (seconds each on a CPU; ~25 s
    for three convolutions here), and a loaded or random-weights network only needs *some*
    values before its own are copied in. Seeded from NumPy's global generator, which
    ``keras.utils.set_random_seed`` seeds.
    """
    import contextlib

    import jax.numpy as jnp
    import numpy as np
    from keras.src import backend as kb

    mod = kb.random
    rng = np.random.default_rng(int(np.random.randint(0, 2 ** 31 - 1)))

    def dt(dtype):
        return kb.standardize_dtype(dtype or kb.floatx())

    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        return jnp.asarray(rng.uniform(minval, maxval, shape).astype(np.float32), dt(dtype))

    def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        return jnp.asarray(rng.normal(mean, stddev, shape).astype(np.float32), dt(dtype))

    def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        x = rng.normal(0.0, 1.0, shape)
        bad = np.abs(x) > 2
        while bad.any():
            x[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
            bad = np.abs(x) > 2
        return jnp.asarray((mean + stddev * x).astype(np.float32), dt(dtype))

    @contextlib.contextmanager
    def patched():
        saved = {n: getattr(mod, n) for n in ("uniform", "normal", "truncated_normal")}
        mod.uniform, mod.normal, mod.truncated_normal = uniform, normal, truncated_normal
        try:
            yield
        finally:
            for n, f in saved.items():
                setattr(mod, n, f)

    return patched()
