"""GPU target of live mode: 1280x720 InceptionV3, 3 octaves x 5 steps, played live from a file
(dreamed >= 24 fps on one H200-class GPU). PyTorch backend: keras + torch, no TensorFlow.

    python bench/gpu_live.py                    # 1280x720, 20 s, reuse and --full-frames
    python bench/gpu_live.py --smoke            # 256x144, 3 s, 1 octave: checks the script runs (CPU is fine)

The clip is bench_live.py's street (a fixed camera, four people walking), made here at the size
asked, 25 fps. InceptionV3 with random weights (speed only; no download), the keras-io layers
mixed4..mixed7, bfloat16 on a GPU. Prints one Markdown row per run: shown fps, dreamed fps,
latency median / p95, dropped, ms per dream, and the live closing line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("DREAMVIDEO_BACKEND", "torch")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1280x720")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--octaves", type=int, default=3)
    p.add_argument("--steps", default="5")
    p.add_argument("--precision", default="auto")
    p.add_argument("--out", default="/tmp/gpu_live")
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args(argv)
    if a.smoke:
        a.size, a.seconds, a.octaves, a.steps = "256x144", 3.0, 1, "1"
    w, h = (int(v) for v in a.size.split("x"))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    from bench_live import street

    from dreamvideo.realtime.session import LiveSession
    from dreamvideo.settings import LiveSettings, split_options

    clip = street(out / f"street-{w}x{h}.mp4", (w, h), a.seconds + 1, fps=a.fps)
    print("| run | shown fps | dreamed fps | latency median / p95 ms | dropped | ms per dream |")
    print("| --- | --- | --- | --- | --- | --- |")
    for full in (False, True):
        opts = dict(model="inception_v3", weights="random", backend="torch", device="auto", precision=a.precision,
                    octaves=a.octaves, steps=a.steps, full_frames=full)
        session = LiveSession(str(clip), LiveSettings(record=str(out / f"live-{'full' if full else 'reuse'}.mp4"),
                                                      no_page=True, duration=a.seconds), split_options("video", opts))
        for _ in session:
            pass
        s = session.stats
        each = 1000 * sum(session.worker_timing.values()) / max(1, s.dreamed)
        print(f"| {'full frames' if full else 'reuse'} {w}x{h} | {s.shown / s.seconds:.1f} | "
              f"{s.dreamed / s.seconds:.1f} | {s.latency_ms(50):.0f} / {s.latency_ms(95):.0f} | {s.dropped} | "
              f"{each:.0f} |", flush=True)
        print(s.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
