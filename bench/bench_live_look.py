"""The live look against an offline render: how strong the dream is, and how much it flickers, on a
real clip from a fixed camera.

    python bench/bench_live_look.py [--clip vtest.avi] [--seconds 20] [--out /tmp/live_look] [--deepen N ...]
    python bench/bench_live_look.py --zoom [--seconds 12] [--deepen N ...]

The clip is OpenCV's ``vtest.avi`` (Debian's ``opencv-doc``: people walking on a square, a fixed
camera, 10 fps), its first ``--seconds`` scaled to 256 px wide. It is played live from the file at its
own rate (``dreamvideo live CLIP --record OUT.mp4``: MobileNetV2 with the shared ImageNet weights,
2 octaves x 3 steps, 256 px), once per ``--deepen`` value, and rendered offline (``dreamvideo video``,
the same model at 3 octaves x 10 steps). Over the frames after the first ``--skip`` seconds:

- strength: mean |dream - source| (levels), and its ratio to the offline render's (target >= 0.8);
- flicker: the warping error (flow between consecutive source frames, the output's frame t-1
  warped onto t, occluded pixels masked) over the source's, and its ratio to the offline
  render's (target <= 1.5);
- the strength per second over the whole run and over the still background (pixels whose source
  barely changes over the clip), to see it rise and hold.

Writes ``OUT/live-deepen<N>.mp4``, ``OUT/offline.mp4`` and ``OUT/sheet.png`` (rows: source, each live
run, offline; columns: 1, 3, 6, 10, 15 s... of the clip).

With ``--zoom``: a live zoom (``zoom:coffee.png``, zoom 1.02 a frame, 256 px, 10 fps, MobileNetV2 2
octaves x 3 steps, the later dreams its finest octave) against the offline zoom of the same settings:
fine detail (mean |image - its 2 px blur|) over the frames after ``--skip`` s, ``OUT/zoom-sheet.png``
(first row: the offline zoom); ``--deepen`` does not change a zoom (pass one value), ``--zoom-fps`` its rate.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
WEIGHTS = Path(os.environ.get("DREAMVIDEO_SHARED", ROOT.parent / "shared")) / "models" / \
    "mobilenet_v2_imagenet.weights.h5"
DOC = Path("/usr/share/doc/opencv-doc/examples/data")


def find_clip(given: str | None) -> Path:
    for p in ([Path(given)] if given else [DOC / "vtest.avi", DOC / "vtest.avi.gz"]):
        if p.is_file():
            return p
    raise SystemExit("no vtest.avi: apt-get install opencv-doc, or pass --clip")


def prepare(clip: Path, out: Path, seconds: float, width: int) -> Path:
    """The first ``seconds`` of ``clip`` at ``width`` px wide, near-lossless H.264 (what both renders read)."""
    import imageio_ffmpeg

    if clip.suffix == ".gz":
        plain = out / clip.stem
        with gzip.open(clip) as f, open(plain, "wb") as g:
            shutil.copyfileobj(f, g)
        clip = plain
    dst = out / f"clip-{width}.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-t", str(seconds),
                    "-vf", f"scale={width}:-2:flags=area", "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p",
                    "-an", str(dst)], check=True)
    return dst


MODEL = dict(model="mobilenet_v2", weights=str(WEIGHTS), precision="float32")


def live(clip: Path, rec: Path, seconds: float, deepen: int) -> dict:
    from dreamvideo.realtime.session import LiveSession
    from dreamvideo.settings import LiveSettings, split_options

    sections = split_options("video", dict(MODEL, octaves=2, steps="3"))
    session = LiveSession(str(clip), LiveSettings(record=str(rec), no_page=True, duration=seconds, deepen=deepen),
                          sections)
    for _ in session:
        pass
    s = session.stats
    return dict(dreamed_fps=s.dreamed / max(s.seconds, 1e-9), shown_fps=s.shown / max(s.seconds, 1e-9))


def offline(clip: Path, out: Path) -> float:
    import dreamvideo

    t = time.perf_counter()
    dreamvideo.dream_video(str(clip), str(out), quiet=True, seed=0, octaves=3, steps="10", **MODEL)
    return time.perf_counter() - t


def frames(path) -> list[np.ndarray]:
    from dreamvideo.io import VideoReader

    with VideoReader(path) as r:
        return list(r)


def per_second(src, out, fps: float, still) -> list[tuple[float, float]]:
    """(strength over the frame, strength over the still background) of each second."""
    rows = []
    for a in range(0, len(src), int(fps)):
        d = [np.abs(o.astype(np.float32) - s.astype(np.float32)).mean(-1) for o, s in zip(out[a:a + int(fps)],
                                                                                           src[a:a + int(fps)])]
        rows.append((float(np.mean(d)), float(np.mean([x[still].mean() for x in d]))))
    return rows


def sheet(src, runs: dict, fps: float, path: Path) -> Path:
    import cv2

    from dreamvideo.io import write_image

    n = len(src)
    cols = [k for k in (int(t * fps) for t in (1, 3, 6, 10, 15, 19)) if k < n]
    h, w = src[0].shape[:2]
    rows = []
    for name, fs in [("source", src), *runs.items()]:
        tiles = []
        for k in cols:
            f = np.ascontiguousarray(fs[min(k, len(fs) - 1)])
            f = f.copy()
            cv2.putText(f, f"{name} {k / fps:.0f}s", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
            tiles += [f, np.full((h, 2, 3), 255, np.uint8)]
        rows += [np.concatenate(tiles[:-1], 1), np.full((2, len(cols) * (w + 2) - 2, 3), 255, np.uint8)]
    write_image(path, np.concatenate(rows[:-1], 0))
    return path


def fine_detail(img: np.ndarray) -> float:
    """Mean |image - its 2 px Gaussian blur| (levels): the zoom's fine detail, which magnifying blurs."""
    import cv2

    f = img.astype(np.float32)
    return float(np.abs(f - cv2.GaussianBlur(f, (0, 0), 2.0)).mean())


def zoom_look(out: Path, seconds: float, skip: float, deepens: list, fps: float = 10.0) -> None:
    """A live zoom (``zoom:coffee.png --max-side 256 --fps 10 --zoom 1.02``, MobileNetV2 2 octaves x 3
    steps, the detail its finest octave) against the offline zoom of the same settings: fine detail
    over the frames after ``skip`` s."""
    from skimage import data

    import dreamvideo
    from dreamvideo.io import write_image
    from dreamvideo.realtime.session import LiveSession
    from dreamvideo.settings import LiveSettings, ZoomSettings, split_options

    photo = write_image(out / "coffee.png", data.coffee())
    opts = dict(MODEL, octaves=2, steps="3", zoom="1.02")
    runs = {}
    for d in deepens:
        sections = split_options("video", {k: v for k, v in opts.items() if k != "zoom"})
        from dataclasses import replace

        sections["schedules"] = replace(sections["schedules"], zoom="1.02")
        sections["zoom"] = ZoomSettings(fps=fps)
        rec = out / f"zoom-live-deepen{d}.mp4"
        session = LiveSession(f"zoom:{photo}", LiveSettings(record=str(rec), no_page=True, duration=seconds,
                                                            deepen=d), sections, max_side=256)
        for _ in session:
            pass
        s = session.stats
        runs[f"live deepen {d}"] = (frames(rec), s.dreamed / max(s.seconds, 1e-9))
    dreamvideo.zoom(str(photo), str(out / "zoom-offline.mp4"), max_side=256, quiet=True, fps=fps,
                    frames=int(seconds * fps), **opts)
    runs["offline"] = (frames(out / "zoom-offline.mp4"), float("nan"))
    k0 = int(skip * fps)
    ref = np.mean([fine_detail(f) for f in runs["offline"][0][k0:]])
    print(f"\nzoom: {seconds:g} s of zoom:coffee.png at 256 px, {fps:g} fps, zoom 1.02 a frame, frames from {k0}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| run | fine detail | x offline | dreamed fps |")
    print("| --- | --- | --- | --- |")
    for name, (fs, rate) in runs.items():
        det = np.mean([fine_detail(f) for f in fs[k0:]])
        print(f"| {name} | {det:.2f} | {det / ref:.2f} | {rate:.1f} |")
    live = {k: v[0] for k, v in runs.items() if k != "offline"}
    print(f"zoom sheet: {sheet(runs['offline'][0], live, fps, out / 'zoom-sheet.png')}")


def main(argv=None) -> int:
    from bench_video import flicker_and_strength

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=None)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--skip", type=float, default=6.0, help="seconds at the start left out of the figures")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--deepen", type=int, nargs="*", default=[0, 30], help="live runs: --deepen values")
    p.add_argument("--out", default="/tmp/live_look")
    p.add_argument("--no-offline", action="store_true", help="reuse OUT/offline.mp4 from an earlier run")
    p.add_argument("--zoom", action="store_true", help="the live zoom's detail against an offline zoom instead")
    p.add_argument("--zoom-fps", type=float, default=10.0, help="the zoom's frame rate")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.zoom:
        zoom_look(out, a.seconds, a.skip, a.deepen, a.zoom_fps)
        return 0
    clip = prepare(find_clip(a.clip), out, a.seconds, a.width)
    src = frames(clip)
    fps = 10.0
    runs, info = {}, {}
    for d in a.deepen:
        rec = out / f"live-deepen{d}.mp4"
        info[f"live deepen {d}"] = live(clip, rec, a.seconds, d)
        runs[f"live deepen {d}"] = frames(rec)
    if not a.no_offline or not (out / "offline.mp4").is_file():
        info["offline"] = {"seconds": offline(clip, out / "offline.mp4")}
    runs["offline"] = frames(out / "offline.mp4")
    k0 = int(a.skip * fps)
    n = min(len(src), *(len(f) for f in runs.values()))
    spread = np.std(np.stack([f.astype(np.float32).mean(-1) for f in src[:n]]), 0)
    still = spread < np.percentile(spread, 50)  # the half of the frame that changes least
    figs = {name: flicker_and_strength(src[k0:n], fs[k0:n]) for name, fs in runs.items()}
    flick_off, strength_off = figs["offline"]
    print(f"\n{a.seconds:g} s of {find_clip(a.clip).name} at {src[0].shape[1]}x{src[0].shape[0]}, frames "
          f"{k0}-{n - 1}; load average {os.getloadavg()[0]:.2f}")
    print("| run | strength | x offline | flicker ratio | x offline | dreamed fps |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (flick, strength) in figs.items():
        print(f"| {name} | {strength:.1f} | {strength / strength_off:.2f} | {flick:.2f} | {flick / flick_off:.2f} | "
              f"{info.get(name, {}).get('dreamed_fps', float('nan')):.1f} |")
    print("\nstrength per second (whole frame / still background):")
    for name, fs in runs.items():
        rows = per_second(src[:n], fs[:n], fps, still)
        print(f"  {name:16s} " + " ".join(f"{x:.1f}/{y:.1f}" for x, y in rows))
    print(f"\nsheet: {sheet(src[:n], runs, fps, out / 'sheet.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
