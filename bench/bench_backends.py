"""Benchmark: one warm InceptionV3 frame per Keras backend, side by side, the variants taking turns.

    python bench/bench_backends.py                                  # 480x270, 2 octaves x 5 steps, tensorflow vs torch
    python bench/bench_backends.py --variants tensorflow,torch,jax --rounds 5
    python bench/bench_backends.py --variants torch,torch+tf        # torch with TensorFlow imported in the same process
    python bench/bench_backends.py --variants tensorflow,torch,torch@REV   # torch as of git revision REV
    python bench/bench_backends.py --variants tensorflow,tensorflow@REV --size 96x64 --octaves 1 --steps 6 \
        --layers mixed4:1.0,mixed5:1.5 --precision auto --reps 5        # the small-dream floor, before and after

Every variant is a worker process (Keras fixes its backend at import) that builds InceptionV3 with
the very same random weights (saved once by the first worker, loaded by the others), dreams one
frame to warm up (tracing, compiling), then one frame per round when told; the rounds go A B A B,
so a burst of load on a shared machine hits every variant alike. Reported: each variant's frame
seconds per round and, per round, its ratio to the first variant. ``+tf`` imports TensorFlow in the
worker before the model is built; ``+compile`` sets ``DREAMVIDEO_TORCH_COMPILE=1``; ``+nchw`` keeps
torch's batches in NCHW memory; ``+map`` runs JAX's tiles in a ``lax.map``; ``+active`` / ``+passive`` set ``OMP_WAIT_POLICY`` (how PyTorch's
OpenMP threads wait), ``+spinN`` sets ``GOMP_SPINCOUNT=N`` (how long they spin before sleeping),
``+threads1`` gives PyTorch one thread; ``+intraN`` / ``+interN`` size TensorFlow's intra-op / inter-op thread pools; ``+wide`` runs TensorFlow's wide runner only (``DREAMVIDEO_TF_NARROW=0``); ``+default`` clears what dreamvideo's torch backend sets for
OpenMP (PyTorch's own defaults); ``@REV`` runs the engine from ``git archive REV`` (a before/after
comparison in one run). ``--load N`` keeps N other processes computing (``while 1: pass``) during
the timed rounds: a busy machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = "mixed4:1.0,mixed5:1.5,mixed6:2.0,mixed7:2.5"


def worker(a) -> None:
    import numpy as np

    sys.path.insert(0, os.environ["BENCH_ROOT"])
    if "+tf" in a.worker:
        import tensorflow  # noqa: F401  (both runtimes in one process, as a spawned worker of a TF parent)
    from dreamvideo.backends import activate

    activate(a.worker.split("+")[0].split("@")[0], "cpu")
    import keras

    for part in a.worker.split("+"):  # +intraN / +interN: TensorFlow's thread pools
        if part[:5] in ("intra", "inter") and part[5:].isdigit():
            import tensorflow as tf

            getattr(tf.config.threading, f"set_{part[:5]}_op_parallelism_threads")(int(part[5:]))

    if "+threads1" in a.worker:
        import torch

        torch.set_num_threads(1)

    from dreamvideo.engine import Dreamer
    from dreamvideo.models import load_model
    from dreamvideo.objectives import parse_objective
    from dreamvideo.settings import DreamSettings

    weights = Path(a.weights)
    precision = a.precision
    if precision == "auto":
        from dreamvideo.precision import resolve

        precision = resolve(precision)
    if weights.is_file():
        model = load_model(a.model, str(weights), precision=precision)
    else:
        keras.utils.set_random_seed(0)
        model = load_model(a.model, "random", precision=precision)
        model.net.save_weights(str(weights))
    d = Dreamer(model, parse_objective(a.layers))
    w, h = (int(v) for v in a.size.split("x"))
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 7 % 256], -1).astype(np.uint8)
    settings = DreamSettings(octaves=a.octaves, steps=a.steps, step_size=0.01, tile_size=a.tile)
    t = time.perf_counter()
    d.dream(img, settings=settings, seed=0)
    print(json.dumps({"warm_s": time.perf_counter() - t, "precision": precision}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t = time.perf_counter()
        for _ in range(a.reps):
            d.dream(img, settings=settings, seed=0)
        print(json.dumps({"frame_s": (time.perf_counter() - t) / a.reps}), flush=True)


def start(variant: str, a, weights: Path, work: Path):
    root = ROOT
    if "@" in variant:
        rev = variant.split("@")[1].split("+")[0]
        root = work / f"rev-{rev}"
        if not root.is_dir():
            root.mkdir()
            tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(root)], input=tar, check=True)
    backend = variant.split("+")[0].split("@")[0]
    env = dict(os.environ, DREAMVIDEO_BACKEND=backend, KERAS_BACKEND=backend, BENCH_ROOT=str(root),
               PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1", TF_CPP_MIN_LOG_LEVEL="3")
    if "+compile" in variant:
        env["DREAMVIDEO_TORCH_COMPILE"] = "1"
    if "+map" in variant:  # JAX's tiles one after the other in a lax.map (a GPU's default)
        env["DREAMVIDEO_JAX_TILES"] = "map"
    if "+nchw" in variant:  # torch's batches in NCHW memory (before 2026-12-03 on a CPU)
        env["DREAMVIDEO_TORCH_NHWC"] = "0"
    if "+active" in variant:  # OpenMP threads spin while waiting (libgomp's default)
        env["OMP_WAIT_POLICY"] = "ACTIVE"
    if "+passive" in variant:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    for part in variant.split("+"):
        if part.startswith("spin") and part[4:].isdigit():
            env["GOMP_SPINCOUNT"] = part[4:]
    if "+default" in variant:
        env["DREAMVIDEO_TORCH_OMP"] = "0"
    if "+wide" in variant:  # TensorFlow's wide runner only (no one-thread-per-op session)
        env["DREAMVIDEO_TF_NARROW"] = "0"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", variant, "--weights", str(weights),
           "--size", a.size, "--octaves", str(a.octaves), "--steps", str(a.steps), "--tile", str(a.tile),
           "--precision", a.precision, "--model", a.model, "--layers", a.layers, "--reps", str(a.reps)]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    return p


def read(p) -> dict:
    line = p.stdout.readline()
    if not line:
        raise SystemExit(f"a worker exited ({p.wait()})")
    return json.loads(line)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="tensorflow,torch")
    ap.add_argument("--size", default="480x270")
    ap.add_argument("--octaves", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default="inception_v3")
    ap.add_argument("--layers", default=LAYERS)
    ap.add_argument("--reps", type=int, default=1, help="frames per round (their mean is the round's time)")
    ap.add_argument("--load", type=int, default=0, help="other processes kept computing during the rounds")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a)
        return 0
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    work = Path(tempfile.mkdtemp(prefix="dv_backends_"))
    weights = work / f"{a.model}.weights.h5"
    procs, warm, prec = {}, {}, {}
    for v in variants:  # one at a time: the first one saves the weights the others load
        procs[v] = start(v, a, weights, work)
        first = read(procs[v])
        warm[v], prec[v] = first["warm_s"], first["precision"]
    times = {v: [] for v in variants}
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(a.load)]
    try:
        rounds(a, variants, procs, times)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    report(a, argv, variants, warm, times, prec)
    return 0


def rounds(a, variants, procs, times) -> None:
    for _ in range(a.rounds):
        for v in variants:
            procs[v].stdin.write("run\n")
            procs[v].stdin.flush()
            times[v].append(read(procs[v])["frame_s"])
    for p in procs.values():
        p.stdin.close()
        p.wait()


def report(a, argv, variants, warm, times, prec) -> None:
    import statistics

    load = os.getloadavg()[0]
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    cmd = "python bench/bench_backends.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{datetime.date.today()}, {cpu}, {os.cpu_count()} cores; `{cmd}`  ")
    print(f"{a.size}, {a.model} random weights, {a.layers}, {a.octaves} octaves x {a.steps} steps, {a.precision}, "
          f"tile {a.tile}; {a.rounds} rounds taking turns after one warm-up frame each; {a.load} other "
          f"process(es) computing; load average at the end {load:.1f}.\n")
    base = variants[0]
    print(f"| variant | precision | warm-up s | frame s per round | ratio to {base} per round | median ratio |")
    print("|---|---|---:|---|---|---:|")
    for v in variants:
        ratios = [t / b for t, b in zip(times[v], times[base])]
        print(f"| {v} | {prec[v]} | {warm[v]:.1f} | {', '.join(f'{t:.3f}' for t in times[v])} | "
              f"{', '.join(f'{r:.2f}' for r in ratios)} | {statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    sys.exit(main())
