"""What ``--precision auto``'s first-use measurement adds to a real command, per backend.

Each run is a fresh ``dreamvideo image`` process (MobileNetV2, the shared ImageNet weights, a
96x64 picture, one octave of 2 steps, ``--precision auto``): "first use" with an empty cache
folder (the probe runs), "cached" with only the choice the first run saved (no compiled
programs). The probe's cost is the difference of their medians; the runs take turns, so load
drifts hit both alike.

    python bench/bench_probe.py --backends tensorflow,jax,torch --reps 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "models" / "mobilenet_v2_imagenet.weights.h5"


def run(backend: str, cache: Path, picture: Path, out: Path) -> tuple[float, str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), DREAMVIDEO_BACKEND=backend, KERAS_BACKEND=backend)
    cmd = [sys.executable, "-m", "dreamvideo.cli", "image", str(picture), "-o", str(out), "--model", "mobilenet_v2",
           "--weights", str(WEIGHTS), "--layers", "block_10_expand_relu:1", "--octaves", "1", "--steps", "2",
           "--precision", "auto", "--backend", backend, "--device", "cpu", "--quiet"]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    took = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"{backend}: exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]}")
    said = [ln for ln in r.stderr.splitlines() if "--precision auto =" in ln]
    return took, said[0] if said else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="tensorflow,jax,torch")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="dv_probe_"))
    picture = work / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(picture)
    print(f"# --precision auto: first use vs cached, {datetime.date.today()}\n")
    print(f"`python bench/bench_probe.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n")
    print("| backend | first use s (median) | cached s (median) | probe adds s | chose | probe's own timer s |")
    print("|---|---:|---:|---:|---|---:|")
    try:
        for b in [x.strip() for x in a.backends.split(",") if x.strip()]:
            first, cached, said, own = [], [], "", []
            for k in range(a.reps):
                cache = work / f"cache-{b}-{k}"
                t, line = run(b, cache, picture, work / "out.png")
                first.append(t)
                said = line or said
                entry = next(iter(json.loads((cache / "dreamvideo" / "precision.json").read_text()).values()))
                own.append(entry["measured_s"])
                # Only the choice carries over: JAX's compiled programs (kept in the same folder)
                # would spare the cached run the real model's compile too.
                again = work / f"again-{b}-{k}" / "dreamvideo"
                again.mkdir(parents=True)
                shutil.copy(cache / "dreamvideo" / "precision.json", again)
                cached.append(run(b, again.parent, picture, work / "out.png")[0])
            chose = said.split("auto = ")[1].split(" ")[0] if said else "?"
            print(f"| {b} | {np.median(first):.2f} | {np.median(cached):.2f} | "
                  f"{np.median(first) - np.median(cached):.2f} | {chose} | {np.median(own):.2f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
