"""Benchmark: the efficiency curve, what one ascent step costs against the image's size, per model and backend.

    python bench/bench_curve.py                                        # TensorFlow, both models, sides 64..1080
    python bench/bench_curve.py --backends tensorflow,torch,jax --sides 64,128,256,540
    python bench/bench_curve.py --precision float32 --models mobilenet_v2

Each backend runs in its own worker process (Keras fixes its backend at import). For each model
(InceptionV3 ``mixed4:1.0,mixed5:1.5``, MobileNetV2 ``block_10_expand_relu:1.0,block_13_expand_relu:1.0``,
random weights: the cost does not depend on them) and each side, a 16:9 image of that height
(``side x round(side * 16 / 9)``) is dreamed one octave at ``--steps`` and at 1 step, warm (the
first calls are not timed: TensorFlow's runner choice settles in them), the sizes taking turns round by round; the cost of a step is the
difference over the extra steps (so the per-call work around the loop is left out), the fastest
round kept. Reported per row: ms per step, ns per pixel per step, and per pixel against the
largest side (how much more a pixel costs at small sizes: the floor), and ms per call outside
the steps. The table goes in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"inception_v3": "mixed4:1.0,mixed5:1.5", "mobilenet_v2": "block_10_expand_relu:1.0,block_13_expand_relu:1.0"}


def worker(a) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from dreamvideo.backends import activate

    activate(a.worker, "cpu")
    from dreamvideo.engine import Dreamer
    from dreamvideo.models import load_model
    from dreamvideo.objectives import parse_objective
    from dreamvideo.precision import resolve

    precision = resolve(a.precision)
    sides = [int(s) for s in a.sides.split(",")]
    rows = []
    for name in a.models.split(","):
        d = Dreamer(load_model(name, "random", precision=precision), parse_objective(MODELS[name]))
        imgs = {s: np.random.default_rng(s).uniform(-1, 1, (s, round(s * 16 / 9), 3)).astype(np.float32)
                for s in sides}
        for img in imgs.values():  # warm: trace / compile each size; TensorFlow tries both runners on it
            for _ in range(3):
                d.ascend(img, 1, 0.01, 4096, 0)
                d.ascend(img, a.steps, 0.01, 4096, 0)
        one, many = {s: np.inf for s in sides}, {s: np.inf for s in sides}
        for _ in range(a.rounds):
            for s, img in imgs.items():
                t = time.perf_counter()
                d.ascend(img, 1, 0.01, 4096, 0)
                one[s] = min(one[s], time.perf_counter() - t)
                t = time.perf_counter()
                d.ascend(img, a.steps, 0.01, 4096, 0)
                many[s] = min(many[s], time.perf_counter() - t)
        for s in sides:
            step = max(many[s] - one[s], 1e-9) / (a.steps - 1)
            rows.append({"model": name, "side": s, "hw": list(imgs[s].shape[:2]), "step_s": step,
                         "call_s": max(one[s] - step, 0.0), "precision": precision})
    print(json.dumps(rows), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="tensorflow")
    ap.add_argument("--models", default="inception_v3,mobilenet_v2")
    ap.add_argument("--sides", default="64,96,128,180,256,360,540,720,1080")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a)
        return 0
    out = {}
    for b in a.backends.split(","):
        env = dict(os.environ, DREAMVIDEO_BACKEND=b, KERAS_BACKEND=b, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", b, "--models", a.models, "--sides", a.sides,
               "--steps", str(a.steps), "--rounds", str(a.rounds), "--precision", a.precision]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("[")]
        if not lines:
            print(f"{b}: the worker failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
            continue
        out[b] = json.loads(lines[-1])
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    cmd = "python bench/bench_curve.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{datetime.date.today()}, {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; `{cmd}`\n")
    print("| backend | model | precision | size (w x h) | ms per step | ns per pixel per step | per pixel vs the largest | ms per call outside the steps |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for b, rows in out.items():
        for name in a.models.split(","):
            mine = [r for r in rows if r["model"] == name]
            big = max(mine, key=lambda r: r["side"])
            big_px = big["step_s"] / (big["hw"][0] * big["hw"][1])
            for r in mine:
                px = r["step_s"] / (r["hw"][0] * r["hw"][1])
                print(f"| {b} | {name} | {r['precision']} | {r['hw'][1]}x{r['hw'][0]} | {r['step_s'] * 1e3:.1f} | "
                      f"{px * 1e9:.0f} | {px / big_px:.1f}x | {r['call_s'] * 1e3:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
