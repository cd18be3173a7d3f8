"""GPU benchmark: frames per second of the dream engine on JAX and PyTorch (no TensorFlow needed).

    python bench/gpu_bench.py                 # 1280x720 and 1920x1080, bf16 and f32, JAX and PyTorch
    python bench/gpu_bench.py --smoke         # tiny frames, 2 steps: checks the script runs (CPU is fine)
    python bench/gpu_bench.py --backends torch+compile --precisions bfloat16   # torch.compile (CUDA graphs)
    python bench/gpu_bench.py --sizes 3840x2160 --tile 1024 --frames 2          # 4K in tiles: memory

Needs no TensorFlow and no network (Keras, PyTorch and/or JAX, NumPy, OpenCV, h5py); on a machine
with the repository and those wheels, from the repository root:
``KERAS_BACKEND=torch python bench/gpu_bench.py --json gpu.json``.

InceptionV3 with random weights (a fixed seed; no download), the keras-io layers
mixed4..mixed7 (1, 1.5, 2, 2.5), 3 octaves x 10 steps at scale 1.4, step 0.01, jitter 32, one tile
per octave (``--tile``). Each (backend, precision) runs in its own process (Keras fixes its backend
at import): it builds the model, dreams one frame to compile/warm up, then times ``--frames``
frames per size. Reported: seconds per frame (median), frames per second, the first frame's time
(compilation included), peak GPU memory (PyTorch: max_memory_allocated; JAX: the device's
peak_bytes_in_use) and the conv TFLOP/s achieved (forward + input gradient, analytic count).
Prints a Markdown table and, with ``--json PATH``, writes the raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LAYERS = "mixed4:1.0,mixed5:1.5,mixed6:2.0,mixed7:2.5"


def synthetic_frame(w: int, h: int):
    """A textured stand-in frame (no file, no decoder), uint8 HxWx3."""
    import numpy as np

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 100 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    g = 127 + 100 * np.sin((xx + yy) / 47.0)
    b = 127 + 100 * np.cos(np.hypot(xx - w / 2, yy - h / 2) / 19.0)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def conv_flops(feature_model, hw) -> float:
    """Forward FLOPs (2 x MACs) of every Conv2D up to the dreamed layers at input size ``hw``."""
    import keras
    import numpy as np

    sub = feature_model.keras_model
    first = feature_model.data_format == "channels_first"
    convs = [l for l in sub.layers if isinstance(l, keras.layers.Conv2D)]
    probe = keras.Model(sub.input, [l.output for l in convs])
    specs = probe.compute_output_spec(keras.KerasTensor((1, 3, hw[0], hw[1]) if first else (1, hw[0], hw[1], 3)))
    return float(sum(2 * np.prod(s.shape[2:4] if first else s.shape[1:3]) * np.prod(l.kernel.shape)
                     for l, s in zip(convs, specs)))


def peak_memory(backend: str):
    """(peak bytes on the accelerator since the last reset, reset function); None where not known."""
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated(), torch.cuda.reset_peak_memory_stats
        return None, lambda: None
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use"), lambda: None  # JAX keeps one peak for the process


def worker(a) -> dict:
    import numpy as np

    from dreamvideo.backends import activate

    mod = activate(a.worker.split("+")[0], a.device)
    import keras

    from dreamvideo import backends
    from dreamvideo.engine import Dreamer, DreamSettings, octave_shapes
    from dreamvideo.models import load_model
    from dreamvideo.objectives import parse_objective

    name, device = backends.active()
    keras.utils.set_random_seed(0)
    model = load_model("inception_v3", "random", precision=a.precision)
    d = Dreamer(model, parse_objective(LAYERS))
    settings = DreamSettings(octaves=a.octaves, octave_scale=1.4, steps=a.steps, step_size=0.01, jitter=32,
                             tile_size=a.tile, max_loss=0.0)
    out = {"backend": a.worker, "device": device, "device_name": mod.device_name(device), "versions": mod.versions(),
           "precision": a.precision, "sizes": []}
    for size in a.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        img = synthetic_frame(w, h)
        shapes = octave_shapes((h, w), a.octaves, 1.4, model.min_side)
        flops = sum(2 * a.steps * conv_flops(d.model, s) for s in shapes)
        _, reset = peak_memory(name)
        reset()
        t0 = time.perf_counter()
        first = d.dream(img, settings=settings, seed=0)
        t_first = time.perf_counter() - t0
        times = []
        for i in range(a.frames):
            t0 = time.perf_counter()
            o = d.dream(img, settings=settings, seed=i + 1)  # returns uint8 on the host: the GPU work is done
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        peak, _ = peak_memory(name)
        out["sizes"].append({"size": size, "first_s": t_first, "frame_s": times, "median_s": med, "fps": 1 / med,
                             "tflops": flops / med / 1e12, "gflop_per_frame": flops / 1e9, "peak_bytes": peak,
                             "changed": float(np.abs(first.astype(float) - img).mean()),
                             "trace_count": d.trace_count, "octave_shapes": shapes})
        print(f"  {name} {a.precision} {size}: first {t_first:.2f} s, {med:.3f} s/frame = {1 / med:.2f} fps, "
              f"{flops / med / 1e12:.1f} TFLOP/s, peak {peak / 2 ** 30 if peak else float('nan'):.1f} GiB",
              file=sys.stderr, flush=True)
        del o
    return out


def table(results) -> str:
    lines = ["| backend | precision | size | first frame s (compile) | s/frame (median) | fps | conv TFLOP/s "
             "| peak GPU memory GiB |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['backend']} | {r['precision']} | - | failed: {r['error']} | | | | |")
            continue
        for s in r["sizes"]:
            peak = f"{s['peak_bytes'] / 2 ** 30:.1f}" if s["peak_bytes"] else "n/a"
            lines.append(f"| {r['backend']} | {r['precision']} | {s['size']} | {s['first_s']:.1f} | "
                         f"{s['median_s']:.3f} | {s['fps']:.1f} | {s['tflops']:.1f} | {peak} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="jax,torch",
                    help="jax, torch, torch+compile (DREAMVIDEO_TORCH_COMPILE=1), comma-separated")
    ap.add_argument("--precisions", default="bfloat16,float32")
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--octaves", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--frames", type=int, default=5, help="timed frames per size after the warm-up frame")
    ap.add_argument("--tile", type=int, default=2048, help="largest tile (2048: one tile per octave up to 1080p)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    ap.add_argument("--smoke", action="store_true", help="tiny run (160x96, 1 octave x 2 steps, 1 frame)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per (backend, precision) worker")
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--precision", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.smoke:
        a.sizes, a.octaves, a.steps, a.frames = "160x96", 1, 2, 1
    if a.worker:
        print(json.dumps(worker(a)))
        return 0
    results = []
    started = time.perf_counter()
    for backend in a.backends.split(","):
        for precision in a.precisions.split(","):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", backend, "--precision", precision,
                   "--sizes", a.sizes, "--octaves", str(a.octaves), "--steps", str(a.steps), "--frames",
                   str(a.frames), "--tile", str(a.tile), "--device", a.device]
            lib = backend.split("+")[0]
            env = dict(os.environ, DREAMVIDEO_BACKEND=lib, KERAS_BACKEND=lib,
                       PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
            if backend.endswith("+compile"):
                env["DREAMVIDEO_TORCH_COMPILE"] = "1"
            try:
                r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, timeout=a.timeout)
                res = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else \
                    {"backend": backend, "precision": precision, "error": f"exit {r.returncode}"}
            except subprocess.TimeoutExpired:
                res = {"backend": backend, "precision": precision, "error": f"over {a.timeout} s"}
            results.append(res)
    head = next((r for r in results if "error" not in r), {})
    print(f"# dreamvideo GPU benchmark, {time.strftime('%Y-%m-%d')}\n")
    print(f"`python bench/gpu_bench.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ")
    print(f"Device: {head.get('device', '?')} ({head.get('device_name', '?')}); "
          + "; ".join(sorted({r['versions'] for r in results if 'versions' in r})))
    print(f"InceptionV3 random weights, {LAYERS}, {a.octaves} octaves x {a.steps} steps, tile {a.tile}, "
          f"{a.frames} timed frames after one warm-up; total {time.perf_counter() - started:.0f} s.\n")
    print(table(results))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
