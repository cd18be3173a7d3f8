"""What the web page costs a render: the same zoom run directly (``dreamvideo.zoom``) and through the
page (upload copy, the queue's worker thread, the progress callback), taking turns; and how long the
page takes to answer after ``ui.start``.

    python bench/bench_ui.py [--frames 40] [--rounds 3]

Prints a Markdown block for bench/RESULTS.md. Ratios are the figure: absolute times drift on shared machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import imageio.v3 as iio

    from dreamvideo.jobs import zoom
    from dreamvideo.ui.page import Page
    from helpers import photo

    d = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    iio.imwrite(d / "cat.png", photo("chelsea")[::2, ::2])  # 226x150
    opts = dict(model="mobilenet_v2", weights="random", layers="block_10_expand_relu:1.0", octaves=1, steps="4",
                precision="float32")
    page = Page(d / "page", {k: v for k, v in opts.items() if k != "precision"}, fixed={"precision": "float32"})
    values = {"zoom_frames": args.frames, "fps": 25}

    def direct(i):
        t = time.perf_counter()
        zoom(d / "cat.png", d / f"direct{i}.mp4", quiet=True, frames=args.frames, fps=25.0, **opts)
        return time.perf_counter() - t

    def via_page(i):
        t = time.perf_counter()
        job = page.submit_zoom(d / "cat.png", None, {**values, "seed": i + 1})  # a new output name each round
        job.wait()
        assert job.state == "done", job.message
        return time.perf_counter() - t

    direct(-1)  # warm-up: model load and graph trace
    via_page(-1)
    times = {"direct": [], "page": []}
    loads = []
    for i in range(args.rounds):
        for name, fn in (("direct", direct), ("page", via_page)) if i % 2 == 0 else (("page", via_page),
                                                                                      ("direct", direct)):
            loads.append(load())
            times[name].append(fn(i))
    page.worker.shutdown()

    from dreamvideo import ui

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.perf_counter()
    srv = ui.start("127.0.0.1", port, d / "served", quiet=True)
    urllib.request.urlopen(srv.url, timeout=30).read()
    answer = time.perf_counter() - t
    srv.close()

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"# Web page: what the queue costs a render — {time.strftime('%Y-%m-%d')}")
    print(f"`python bench/bench_ui.py --frames {args.frames} --rounds {args.rounds}`  ")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; zoom of {args.frames} frames "
          f"226x150, MobileNetV2 random weights, block_10_expand_relu, 1 octave x 4 steps, float32")
    print()
    print("| run | median s | runs s | ratio to direct |")
    print("|---|---:|---|---:|")
    for k in ("direct", "page"):
        runs = ", ".join(f"{x:.2f}" for x in times[k])
        print(f"| {k} | {med[k]:.2f} | {runs} | {med[k] / med['direct']:.3f} |")
    print()
    print(f"Load average (1 min) before each run: {', '.join(f'{x:.1f}' for x in loads)} (other agents share "
          f"the machine). The page answered {answer:.1f} s after `ui.start` (Gradio already imported).")


if __name__ == "__main__":
    main()
