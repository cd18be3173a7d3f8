"""Benchmark: peak memory of one dreamed frame at 1080p and 4K, in tiles and whole, per backend.

    python bench/bench_memory.py                                   # tensorflow,torch,jax; 1920x1080, 3840x2160
    python bench/bench_memory.py --backends torch --sizes 3840x2160 --tile 512

Each (backend, size, tiling) runs in a fresh worker process (Keras fixes its backend at import; a
peak is per process): it builds InceptionV3 (random weights, the keras-io layers mixed4..mixed7),
dreams a 128x128 frame (start-up, compilation), notes its peak resident memory, then dreams one
frame of the size (1 octave x ``--steps`` steps, float32) and reports the new peak and the rise
over the start-up peak: what the frame's size adds. "tiled" is ``--tile`` pixel tiles, "whole"
one tile of the frame (skipped above ``--whole-max`` pixels: it would not fit this machine). On a
GPU the same script reports host memory only; ``bench/gpu_bench.py --sizes 3840x2160`` reports the
device's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = "mixed4:1.0,mixed5:1.5,mixed6:2.0,mixed7:2.5"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def worker(a) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from dreamvideo.backends import activate

    activate(a.backend, "cpu")
    import keras

    from dreamvideo.engine import Dreamer
    from dreamvideo.models import load_model
    from dreamvideo.objectives import parse_objective
    from dreamvideo.settings import DreamSettings

    keras.utils.set_random_seed(0)
    d = Dreamer(load_model("inception_v3", "random", precision="float32"), parse_objective(LAYERS))
    w, h = (int(v) for v in a.size.split("x"))
    tile = a.tile if a.tiling == "tiled" else max(w, h)
    s = DreamSettings(octaves=1, steps=a.steps, step_size=0.01, tile_size=tile)
    d.dream(np.full((128, 128, 3), 128, np.uint8), settings=DreamSettings(octaves=1, steps=1, tile_size=tile), seed=0)
    base = _peak_mib()
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 7 % 256], -1).astype(np.uint8)
    t = time.perf_counter()
    d.dream(img, settings=s, seed=0)
    print(json.dumps({"start_mib": base, "peak_mib": _peak_mib(), "seconds": time.perf_counter() - t}), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="tensorflow,torch,jax")
    ap.add_argument("--sizes", default="1920x1080,3840x2160")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--whole-max", type=int, default=1920 * 1080, help="largest frame also dreamed whole (pixels)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--tiling", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a)
        return 0
    rows = []
    for size in a.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        for tiling in ("tiled", "whole"):
            if tiling == "whole" and w * h > a.whole_max:
                continue
            for backend in a.backends.split(","):
                env = dict(os.environ, DREAMVIDEO_BACKEND=backend, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--backend", backend, "--size", size,
                       "--tiling", tiling, "--tile", str(a.tile), "--steps", str(a.steps)]
                try:
                    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.timeout)
                    line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
                    r = json.loads(line[-1]) if line else {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
                except subprocess.TimeoutExpired:
                    r = {"error": f"over {a.timeout} s"}
                rows.append((size, tiling, backend, r))
                print(size, tiling, backend, r, file=sys.stderr, flush=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    cmd = "python bench/bench_memory.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{datetime.date.today()}, {cpu}, {os.cpu_count()} cores; `{cmd}`  ")
    print(f"InceptionV3 random weights, {LAYERS}, 1 octave x {a.steps} step(s), float32, tiles {a.tile} px.\n")
    print("| frame | tiling | backend | start-up peak MiB | frame peak MiB | the frame adds MiB | seconds |")
    print("|---|---|---|---:|---:|---:|---:|")
    for size, tiling, backend, r in rows:
        if "error" in r:
            print(f"| {size} | {tiling} | {backend} | | | {r['error']} | |")
            continue
        print(f"| {size} | {tiling} | {backend} | {r['start_mib']:.0f} | {r['peak_mib']:.0f} | "
              f"{r['peak_mib'] - r['start_mib']:.0f} | {r['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
