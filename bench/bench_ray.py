"""Ray's fixed and per-frame costs for chunked rendering (``dreamvideo video --workers N``).

    python bench/bench_ray.py [--workers 2] [--frames 30] [--size 1280x720] [--steps 10]

start:    ``ray.init`` of a local cluster (localhost, no dashboard) until it answers, and its shutdown.
workers:  creating N ChunkWorker actors until every one has loaded the model (a new process each:
          Python, Ray, TensorFlow import, then the model); the model load alone as the actor measured it.
transfer: an actor streams ``--frames`` 720p uint8 frames (made beforehand) to the driver through a
          Ray generator, as the chunks do; per frame, the driver's ``ray.get`` until the array is
          usable, and the PNG the driver keeps of it in the work folder (a thread behind the writer).
dream:    one 720p frame dreamed in this process on MobileNetV2 (offline ImageNet weights), 3 octaves,
          ``--steps`` steps per octave (fewer than the default 20: a conservative, short frame), the second
          of two calls (the first traces the graph). Target: transfer <= 5% of it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WEIGHTS = Path(os.environ.get("DREAMVIDEO_SHARED", ROOT.parent / "shared")) / "models" / "mobilenet_v2_imagenet.weights.h5"
LAYERS = "block_10_expand_relu:1.0,block_13_expand_relu:1.0"


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


class Frames:
    """A bench actor: streams prepared frames (no compute), as a chunk worker streams its dreams."""

    def __init__(self, n, h, w):
        rng = np.random.default_rng(0)
        self.frames = [rng.integers(0, 256, (h, w, 3), np.uint8) for _ in range(n)]

    def stream(self):
        for i, f in enumerate(self.frames):
            yield i, f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import ray

    from dreamvideo import distributed as D
    from dreamvideo import io as dio
    from dreamvideo.settings import DreamSettings, ModelSettings

    print(f"load average before: {loadavg()} on {os.cpu_count()} cores; ray {ray.__version__}", flush=True)
    ms = ModelSettings(model="mobilenet_v2", weights=str(WEIGHTS), layers=LAYERS)
    t0 = time.perf_counter()
    with D.cluster() as ray:
        ray.get(ray.remote(num_cpus=0)(lambda: 1).remote())
        start = time.perf_counter() - t0
        n, res = D.worker_resources(ray, a.workers)
        t = time.perf_counter()
        actors = [D.actor_class(ray, res).remote(ms, max(1, int(res["num_cpus"]))) for _ in range(n)]
        loads = ray.get([x.ready.remote() for x in actors])
        ready = time.perf_counter() - t
        del actors
        src = ray.remote(num_cpus=0)(Frames).remote(a.frames, h, w)
        ray.get(src.__ray_ready__.remote())
        gets = []
        keep = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_ray_keep.png"
        pngs = []
        gen = src.stream.options(_generator_backpressure_num_objects=4).remote()
        while True:
            t = time.perf_counter()
            try:
                i, f = ray.get(next(gen))
            except StopIteration:
                break
            gets.append(time.perf_counter() - t)
            t = time.perf_counter()
            dio.write_png(keep, f, fast=True)
            pngs.append(time.perf_counter() - t)
        keep.unlink(missing_ok=True)
        t = time.perf_counter()
    stop = time.perf_counter() - t

    from dreamvideo.build import build_dreamer

    dreamer = build_dreamer(ms)
    img = (np.indices((h, w)).sum(0)[..., None] * [1, 2, 3] % 256).astype(np.uint8)
    settings = DreamSettings(steps=a.steps)
    dreamer.dream(img, settings=settings, seed=0)
    t = time.perf_counter()
    dreamer.dream(img, settings=settings, seed=1)
    dream = time.perf_counter() - t

    get, png = float(np.median(gets)), float(np.median(pngs))
    print("\n| what | seconds |\n|---|---:|")
    print(f"| local cluster start (ray.init until a task answers) | {start:.1f} |")
    print(f"| {n} workers created until each loaded the model (in parallel) | {ready:.1f} |")
    print(f"| model load inside a worker (MobileNetV2, after the imports) | {', '.join(f'{x:.2f}' for x in loads)} |")
    print(f"| cluster shutdown | {stop:.1f} |")
    print(f"| {w}x{h} frame: streamed from a worker to the driver (ray.get, median of {len(gets)}) | {get:.4f} |")
    print(f"| {w}x{h} frame: kept as PNG in the work folder by the driver (median) | {png:.4f} |")
    print(f"| {w}x{h} frame dreamed (MobileNetV2, 3 octaves x {a.steps} steps, this process) | {dream:.2f} |")
    print(f"\ntransfer / dream = {get / dream:.2%}; (transfer + PNG) / dream = {(get + png) / dream:.2%}")
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
