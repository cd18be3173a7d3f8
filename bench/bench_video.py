"""Video benchmarks: temporal quality (flicker vs strength) and pipeline overlap.

    python bench/bench_video.py quality [--frames 24] [--size 320x180]
    python bench/bench_video.py overlap [--frames 48]
    python bench/bench_video.py memory [--frames 1000]

quality: clips with real motion (a pan and a zoom over photos, ffmpeg's moving testsrc2), each
dreamed with --coherence flow, blend and none on the offline MobileNetV2 ImageNet weights.
Flicker = warping error of the output (flow between consecutive *source* frames, output frame t-1
warped onto t (bicubic), occlusions masked, mean |difference| on 0..255) divided by the same on the source.
Strength = mean |output - source|. Target: flow ratio <= 1.3 with strength >= 80% of none's.

overlap: a 48-frame 640x360 clip; wall time per frame of the full render (decode, flow, dream,
save, encode) over the engine-only time per frame (the same dreams, frames and start images
prepared in memory beforehand). Target: <= 1.05.

memory: resident memory sampled every 0.5 s over a 1,000-frame flow render at 128x72; growth from
10-20% of the frames to the last 10%. Target: flat.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WEIGHTS = Path(os.environ.get("DREAMVIDEO_SHARED", ROOT.parent / "shared")) / "models" / "mobilenet_v2_imagenet.weights.h5"
MODEL = dict(model="mobilenet_v2", weights=str(WEIGHTS), layers="block_10_expand_relu:1.0,block_13_expand_relu:1.0")


def make_clips(d: Path, n: int, w: int, h: int) -> dict[str, Path]:
    import cv2
    import imageio_ffmpeg
    import subprocess
    from skimage import data

    from dreamvideo.io import VideoWriter

    clips = {}
    big = cv2.resize(data.astronaut(), (w * 2, round(w * 2 * 512 / 512)))
    with VideoWriter(d / "pan.mp4", 12, (w, h)) as vw:  # 3 px right, 1 px down per frame
        for i in range(n):
            vw.write(np.ascontiguousarray(big[40 + i:40 + i + h, 60 + 3 * i:60 + 3 * i + w]))
    clips["pan"] = d / "pan.mp4"
    photo = data.coffee()
    with VideoWriter(d / "zoomin.mp4", 12, (w, h)) as vw:  # 1.2% zoom in per frame
        for i in range(n):
            s = 1.012 ** i
            m = cv2.getRotationMatrix2D((photo.shape[1] / 2, photo.shape[0] / 2), 0, s)
            m[:, 2] -= ((photo.shape[1] - w) / 2, (photo.shape[0] - h) / 2)
            vw.write(cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_CUBIC))
    clips["zoomin"] = d / "zoomin.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={w}x{h}:rate=12", "-frames:v", str(n), "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(d / "objects.mp4")], check=True)
    clips["objects"] = d / "objects.mp4"
    return clips


def read_frames(path) -> list[np.ndarray]:
    from dreamvideo.io import VideoReader

    with VideoReader(path) as r:
        return list(r)


def flicker_and_strength(src: list[np.ndarray], out: list[np.ndarray]):
    from dreamvideo.flow import FlowEstimator, warp

    est = FlowEstimator("dis")
    e_out = e_src = 0.0
    for t in range(1, len(src)):
        flow, mask = est.pair(src[t - 1], src[t])
        m = mask[..., None] > 0.5
        # Bicubic for both: bilinear would blur the sharper dreamed frame more than the source and
        # count its own blur as flicker.
        diff = lambda a, b: float(np.abs(a[t].astype(np.float32) - warp(a[t - 1], flow, cubic=True).astype(np.float32))[
            np.broadcast_to(m, a[t].shape)].mean())
        e_out += diff(out, None)
        e_src += diff(src, None)
    strength = float(np.mean([np.abs(o.astype(np.float32) - s).mean() for o, s in zip(out, src)]))
    return e_out / e_src, strength


def quality(args):
    import dreamvideo

    w, h = map(int, args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, clip in make_clips(d, args.frames, w, h).items():
            src = read_frames(clip)
            res = {}
            for mode in ("flow", "blend", "none"):
                out_dir = d / f"{name}-{mode}"
                t = time.perf_counter()
                # Each mode at its own settings: flow and blend carry the dream, so after the first
                # frame they need only a few steps; none dreams every frame from scratch.
                opts = dict(args.opts) if mode != "none" else dict(args.none_opts)
                dreamvideo.dream_video(clip, str(out_dir) + "/", coherence=mode, quiet=True, seed=0,
                                       **MODEL, **opts)
                dt = (time.perf_counter() - t) / len(src)
                out = read_frames(out_dir)
                res[mode] = flicker_and_strength(src, out) + (dt,)
            for mode, (ratio, strength, dt) in res.items():
                rows.append((name, mode, ratio, strength, strength / res["none"][1], dt))
    print(f"\nquality: {args.frames} frames {args.size}, MobileNetV2 ImageNet, flow/blend options "
          f"{dict(args.opts) or 'defaults'}, none options {dict(args.none_opts) or 'defaults'}")
    print("| clip | coherence | flicker ratio | strength | strength / none | s/frame |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.1f} | {r[4]:.0%} | {r[5]:.2f} |")


def overlap(args):
    import dreamvideo
    from dreamvideo.build import build_dreamer
    from dreamvideo.coherence import VideoStepper, frames_with_flow
    from dreamvideo.settings import SCHEDULED, split_options, with_blend_default
    from dreamvideo.timeline import Timeline

    w, h = 640, 360
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clip = make_clips(d, args.frames, w, h)["pan"]
        opts = dict(MODEL, **dict(args.opts))
        s = split_options("video", opts)
        dream, video = s["dream"], s["video"]
        sched = with_blend_default(s["schedules"], video)
        dreamer = build_dreamer(s["model"])
        frames = read_frames(clip)
        tl = Timeline(sched, 12, len(frames), dreamer.objective.terms, use=SCHEDULED["video"])
        # Engine only: the same per-frame work with flows computed beforehand.
        sources = list(frames_with_flow(frames, "dis"))
        VideoStepper(dreamer, dream, video, tl, 0).dream(sources[0])  # warm-up (trace)

        def engine_only():
            step = VideoStepper(dreamer, dream, video, tl, 0)
            for f in sources:
                step.keep(f, step.dream(f))

        def full_render():
            dreamvideo.dream_video(clip, d / "out.mp4", quiet=True, **opts)

        # Rounds alternate the two, and each round's ratio is taken, so load drift on a shared
        # machine hits both sides alike.
        rounds = []
        for _ in range(args.rounds):
            times = []
            for fn in (engine_only, full_render):
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) / len(frames))
            rounds.append(times)
        engine = float(np.median([r[0] for r in rounds]))
        wall = float(np.median([r[1] for r in rounds]))
        ratio = float(np.median([r[1] / r[0] for r in rounds]))
    print(f"\noverlap: {len(frames)} frames {w}x{h}, MobileNetV2, options {dict(args.opts) or 'defaults'}")
    print("| engine-only s/frame (median) | full render s/frame (median) | ratio (median of rounds) |")
    print("| --- | --- | --- |")
    print(f"| {engine:.3f} | {wall:.3f} | {ratio:.3f} |")
    print("rounds (engine-only, full) s/frame:", ", ".join(f"({a:.3f}, {b:.3f})" for a, b in rounds))


def _kv(text):
    k, v = text.split("=", 1)
    for conv in (int, float):
        try:
            return k, conv(v)
        except ValueError:
            pass
    return k, v


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory(args):
    """Resident memory over a long video render (flow coherence, real weights, small frames)."""
    import threading

    import cv2
    from skimage import data

    import dreamvideo
    from dreamvideo.io import VideoWriter

    n, w, h = args.frames, 128, 72
    photo = data.astronaut()
    samples, done = [], threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        with VideoWriter(d / "long.mp4", 25, (w, h)) as vw:  # a slow wandering pan
            for i in range(n):
                x, y = int(200 + 150 * np.sin(i / 40)), int(200 + 100 * np.cos(i / 53))
                vw.write(np.ascontiguousarray(cv2.resize(photo[y:y + 180, x:x + 320], (w, h))))
        count = {"frames": 0}

        def counting(done, total):
            count["frames"] = done

        def sample():
            while not done.wait(0.5):
                samples.append((count["frames"], rss_mb(), time.perf_counter()))

        threading.Thread(target=sample, daemon=True).start()
        dreamvideo.dream_video(d / "long.mp4", d / "out.mp4", progress=counting, steps=5, **MODEL)
        done.set()
    warm = [s for s in samples if s[0] >= n // 10]
    base = np.median([m for f, m, _ in warm if f < n // 5])
    last = np.median([m for f, m, _ in warm if f > n * 9 // 10])
    peak = max(m for _, m, _ in warm)
    per = lambda lo, hi: np.diff([t for f, _, t in samples if lo <= f < hi]).sum() / max(1, hi - lo)
    print(f"\nmemory: {n} frames {w}x{h}, flow coherence, MobileNetV2, steps 5")
    print("| RSS after warm-up (MB) | RSS at the end (MB) | peak (MB) | growth | s/frame 10-20% | s/frame 90-100% |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {base:.0f} | {last:.0f} | {peak:.0f} | {(last - base) / base:+.1%} | {per(n // 10, n // 5):.3f} "
          f"| {per(n * 9 // 10, n):.3f} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("quality", "overlap", "memory"))
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--size", default="320x180")
    p.add_argument("--rounds", type=int, default=2, help="overlap: alternating rounds")
    p.add_argument("--opt", action="append", default=[], help="NAME=VALUE passed to dream_video (flow, blend)")
    p.add_argument("--none-opt", action="append", default=[], help="NAME=VALUE for coherence none")
    args = p.parse_args()
    args.opts = [_kv(o) for o in args.opt]
    args.none_opts = [_kv(o) for o in args.none_opt]
    args.frames = args.frames or {"quality": 24, "overlap": 48, "memory": 1000}[args.what]
    {"quality": quality, "overlap": overlap, "memory": memory}[args.what](args)


if __name__ == "__main__":
    main()
