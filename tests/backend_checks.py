"""Engine checks run on one Keras backend, in this process or (``python tests/backend_checks.py
BACKEND ...``) in a fresh one: Keras fixes its backend at import, so a pytest process can host only
one. Prints one JSON line of results; the assertions live in test_backends.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def engine_checks(model_file: str) -> dict:
    from dreamvideo.engine import Dreamer, to_unit
    from dreamvideo.settings import DreamSettings
    from dreamvideo.models import load_model
    from dreamvideo.objectives import layer
    from helpers import photo

    fast = DreamSettings(octaves=2, steps=3, step_size=0.02, tile_size=512)
    tiny = load_model(model_file=model_file, precision="float32")
    img = photo("chelsea")[::2, ::2].copy()  # 150 x 226
    out = {}

    d = Dreamer(tiny, layer("conv2") + 2.0 * layer("conv3"))
    a = d.dream(img, settings=fast, seed=7)
    counts = [d.trace_count]
    b = d.dream(img, settings=fast, seed=7)
    c = d.dream(img, settings=fast, seed=8)
    d.dream(img[:140, :220], settings=fast)  # a slightly smaller frame
    d.dream(img, settings=DreamSettings(octaves=2, steps=5, step_size=0.02), weights=[0.5, 1.0])
    counts.append(d.trace_count)
    d.dream(img[:101, :77], settings=DreamSettings(octaves=2, steps=2))  # new sizes
    counts.append(d.trace_count)
    out["counts"] = counts
    out["same_seed_same_bytes"] = a.tobytes() == b.tobytes()
    out["other_seed_differs"] = a.tobytes() != c.tobytes()
    out["change"] = float(np.abs(a.astype(float) - img).mean())

    x = to_unit(photo("astronaut")[::4, ::4])  # 128 x 128
    whole, loss_w = d.gradient(x, tile_size=1024)
    tiled, loss_t = d.gradient(x, tile_size=64)  # 2 x 2 tiles
    keep = np.ones(x.shape[:2], bool)
    keep[48:80] = False
    keep[:, 48:80] = False
    out["tile_loss_ratio"] = loss_t / loss_w
    out["tile_corr"] = float(np.corrcoef(whole[keep].ravel(), tiled[keep].ravel())[0, 1])

    # The same dreamer (and on JAX the same compiled programs) for the start image and the step map.
    start = np.full_like(img, 128)
    out["start_kept"] = bool(np.array_equal(d.dream(img, start=start, settings=DreamSettings(octaves=1, steps=0)),
                                            start))
    step_map = np.zeros(img.shape[:2], np.float32)
    step_map[:, 113:] = 1.0
    m = d.dream(img, settings=DreamSettings(octaves=1, steps=4, step_size=0.03), step_map=step_map)
    diff = np.abs(m.astype(float) - img).mean(axis=(0, 2))
    out["step_map_left"] = float(diff[:100].mean())
    out["step_map_right"] = float(diff[130:].mean())
    out["final_count"] = d.trace_count
    out["data_format"] = d.model.data_format
    if type(d.loop).__module__.endswith(".jax"):  # tiles one after the other (a GPU's default) = unrolled
        import os

        os.environ["DREAMVIDEO_JAX_TILES"] = "map"
        try:
            mapped, loss_m = Dreamer(tiny, layer("conv2") + 2.0 * layer("conv3")).gradient(x, tile_size=64)
        finally:
            del os.environ["DREAMVIDEO_JAX_TILES"]
        out["map_max_diff"] = float(np.abs(mapped - tiled).max() / np.abs(tiled).max())
        out["map_loss_ratio"] = loss_m / loss_t
    if hasattr(d.loop, "_nhwc"):  # PyTorch: NHWC memory (the default on CPU and CUDA) computes what NCHW does
        nhwc = d.loop._nhwc
        d.loop._nhwc = not nhwc
        other, _ = d.gradient(x, tile_size=64)
        d.loop._nhwc = nhwc
        out["nhwc_default"] = bool(nhwc)
        out["memory_format_corr"] = float(np.corrcoef(tiled.ravel(), other.ravel())[0, 1])
        out["memory_format_max_diff"] = float(np.abs(tiled - other).max() / np.abs(tiled).max())
    return out


def _count_host_reads(backend: str) -> list:
    """Patch the tensor -> Python/NumPy conversions of ``backend``'s arrays to count calls; returns the
    counter (a one-item list)."""
    count = [0]
    if backend == "torch":
        import torch

        cls, names = torch.Tensor, ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__",
                                    "__array__")
    elif backend == "jax":
        import jax.numpy as jnp

        cls, names = type(jnp.zeros(1)), ("item", "tolist", "__float__", "__int__", "__bool__", "__index__", "__array__")
    else:
        return count

    def counted(f):
        def read(*a, **k):
            count[0] += 1
            return f(*a, **k)
        return read

    for n in names:
        if hasattr(cls, n):
            setattr(cls, n, counted(getattr(cls, n)))
    return count


def host_reads(backend: str, model_file: str) -> dict:
    """Host reads (tensor -> Python or NumPy) of one octave's ascent by step count and early stop."""
    from dreamvideo.engine import Dreamer, to_unit
    from dreamvideo.models import load_model
    from dreamvideo.objectives import layer
    from helpers import photo

    d = Dreamer(load_model(model_file=model_file, precision="float32"), layer("conv2"))
    x = to_unit(photo("astronaut")[::4, ::4])  # 128 x 128: 2 x 2 tiles of 64
    d.ascend(x, 1, 0.01, tile_size=64)  # JAX: compile first
    count = _count_host_reads(backend)
    reads = {}
    for steps, max_loss in ((1, 0.0), (6, 0.0), (6, 1e9)):
        count[0] = 0
        d.ascend(x, steps, 0.01, tile_size=64, max_loss=max_loss)
        reads[f"{steps} steps" + (", max_loss" if max_loss else "")] = count[0]
    return {"reads": reads}


def look(weights: str, out_path: str) -> dict:
    """Dream a small photo with the shared MobileNetV2 weights; save the result for the caller."""
    from dreamvideo.engine import Dreamer
    from dreamvideo.settings import DreamSettings
    from dreamvideo.models import load_model
    from dreamvideo.objectives import layer
    from helpers import photo

    m = load_model("mobilenet_v2", weights=weights, precision="float32")
    img = photo("coffee")[::3, ::3].copy()  # 134 x 200
    out = Dreamer(m, layer("block_10_expand_relu")).dream(img, settings=DreamSettings(octaves=2, steps=6), seed=3)
    np.save(out_path, out)
    return {"saved": out_path}


def graph(pb: str, x_path: str, out_path: str) -> dict:
    """inception5h-style frozen graph rebuilt in Keras: its activations on the saved input."""
    from dreamvideo.models import load_model
    from helpers import GRAPH_LAYERS

    m = load_model("inception5h", weights=pb, precision="float32").select(GRAPH_LAYERS)
    x = np.load(x_path)
    # FeatureModel inputs are in unit space; the graph's own input is pixel - 117 (inception5h's mean).
    acts = m.numpy((x + 117.0) / 127.5 - 1.0)
    np.savez(out_path, **acts)
    return {"layers": sorted(acts)}


if __name__ == "__main__":
    from dreamvideo.backends import activate

    activate(sys.argv[1], "cpu")
    what = {"engine": engine_checks, "look": look, "graph": graph,
            "reads": lambda *a: host_reads(sys.argv[1], *a)}[sys.argv[2]]
    result = what(*sys.argv[3:])
    import keras

    result["keras_backend"] = keras.backend.backend()
    print(json.dumps(result))
