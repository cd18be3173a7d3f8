"""Live mode on this machine: a street-like clip played live, dreamed with and without temporal reuse.

    python bench/bench_live.py [--seconds 20] [--fps 10] [--out /tmp/bench_live] [--only NAME ...]
    python bench/bench_live.py --clip /usr/share/doc/opencv-doc/examples/data/vtest.avi --only mnv2-256-reuse mnv2-256-full

``--clip`` plays a real clip instead (Debian's ``opencv-doc`` ships ``vtest.avi``: a fixed camera on a
street, people walking, 768x576 at 10 fps), scaled to each run's width at its own rate.

The clip is made here: a fixed camera on skimage's ``coffee`` photo (the street) with four
"people" (a quarter of the frame's height) walking across it at 1-2.5 px a frame (crops of ``astronaut``, ``chelsea`` and ``coins``
in ellipses), 10 fps, ``--seconds`` long, at 256x144 and 320x180. Each run plays it through
``dreamvideo.realtime`` as ``dreamvideo live CLIP --record OUT.mp4 --no-page`` would:

- ``mnv2-256-reuse`` / ``mnv2-256-full``: 256x144, MobileNetV2 with the offline ImageNet weights,
  2 octaves x 3 steps, reuse (the default) / ``--full-frames``;
- ``mnv2-320-*`` and ``iv3-320-*``: 320x180, MobileNetV2 and InceptionV3 (random weights: speed
  only), 2 octaves x 3 steps, reuse and full frames;
- ``zoom-256``: a live infinite zoom (``zoom:coffee.png --max-side 256 --fps 10 --zoom 1.01``),
  MobileNetV2 2 octaves x 3 steps for the first dream, the finest octave x 2 steps after (the
  defaults); its "capture" is the warps that make its frames.

Per run: shown fps, dreamed fps, latency median and p95 (source frame released -> every sink has
it), source frames dropped, the recording's length against the run's, and the cost split per
shown frame: capture (the decoding ffmpeg's CPU time and the YUV->RGB conversion), flow (the show
loop's carry: flow and warp), dream (the dream thread: its flow and the stepper), encode (the
recording's x264 CPU time and the pipe write). The machine's load average (``uptime``) is printed
with each run: other jobs on a shared machine make every figure pessimistic.

Writes ``OUT/<run>.mp4`` and ``OUT/sheet-<run>.png`` (8 consecutive recorded frames side by side, a
dream landing marked, then the same 8 as 2x crops).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WEIGHTS = Path(os.environ.get("DREAMVIDEO_SHARED", ROOT.parent / "shared")) / "models" / \
    "mobilenet_v2_imagenet.weights.h5"


def street(path: Path, size: tuple[int, int], seconds: float, fps: int = 10) -> Path:
    """The fixed-camera clip (see the module doc) as a lossless-ish H.264 mp4."""
    import cv2
    from skimage import data

    from dreamvideo.io import VideoWriter

    w, h = size
    bg = cv2.resize(data.coffee(), (w, h), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(3)
    looks = [data.astronaut(), data.chelsea(), np.repeat(data.coins()[..., None], 3, -1), data.rocket()]
    people = []
    for k, img in enumerate(looks):
        ph, pw = int(h * rng.uniform(0.2, 0.3)), int(h * rng.uniform(0.08, 0.12))
        patch = cv2.resize(img, (pw, ph), interpolation=cv2.INTER_AREA)
        mask = np.zeros((ph, pw), np.float32)
        cv2.ellipse(mask, (pw // 2, ph // 2), (pw // 2 - 1, ph // 2 - 1), 0, 0, 360, 1.0, -1)
        speed = rng.uniform(1.0, 2.5) * (1 if k % 2 else -1)
        x0 = rng.uniform(0, w)
        y = int(h * 0.4 + rng.uniform(-0.1, 0.15) * h)
        people.append((patch, cv2.GaussianBlur(mask, (5, 5), 1.0)[..., None], speed, x0, min(y, h - ph)))
    with VideoWriter(path, fps, (w, h), quality=12) as out:
        for f in range(int(seconds * fps)):
            frame = bg.astype(np.float32)
            for patch, mask, speed, x0, y in people:
                ph, pw = patch.shape[:2]
                x = int((x0 + speed * f) % (w + pw)) - pw
                a0, a1 = max(0, x), min(w, x + pw)
                if a1 <= a0:
                    continue
                m = mask[:, a0 - x:a1 - x]
                frame[y:y + ph, a0:a1] = m * patch[:, a0 - x:a1 - x] + (1 - m) * frame[y:y + ph, a0:a1]
            out.write(np.clip(frame, 0, 255).astype(np.uint8))
    return path


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


RUNS = {
    "mnv2-256-reuse": ("mobilenet_v2", str(WEIGHTS), 256, False),
    "mnv2-256-full": ("mobilenet_v2", str(WEIGHTS), 256, True),
    "mnv2-320-reuse": ("mobilenet_v2", str(WEIGHTS), 320, False),
    "mnv2-320-full": ("mobilenet_v2", str(WEIGHTS), 320, True),
    "iv3-256-reuse": ("inception_v3", "random", 256, False),
    "iv3-320-reuse": ("inception_v3", "random", 320, False),
    "iv3-320-full": ("inception_v3", "random", 320, True),
    "zoom-256": ("mobilenet_v2", str(WEIGHTS), 256, False),
}


def real_clip(src: Path, path: Path, side: int, seconds: float) -> Path:
    """``src``'s first ``seconds`` scaled to ``side`` px wide (even height), at its own rate, as H.264."""
    import subprocess

    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-i", str(src), "-t", str(seconds), "-vf", f"scale={side}:-2", "-c:v", "libx264", "-crf", "12",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def run(name: str, clip: Path, out: Path, seconds: float, precision: str = "float32") -> dict:
    from dreamvideo.io import VideoReader
    from dreamvideo.realtime.session import LiveSession
    from dreamvideo.settings import LiveSettings, split_options

    model, weights, side, full = RUNS[name]
    rec = out / f"{name}.mp4"
    opts = dict(model=model, weights=weights, octaves=2, steps="3", full_frames=full, precision=precision)
    source, max_side = str(clip), None
    sections = split_options("video", opts)
    if name.startswith("zoom"):
        from dataclasses import replace

        from dreamvideo.settings import ZoomSettings
        from skimage import data

        from dreamvideo.io import write_image

        source, max_side = "zoom:" + str(write_image(out / "coffee.png", data.coffee())), side
        sections["zoom"] = ZoomSettings(fps=10)
        sections["schedules"] = replace(sections["schedules"], zoom="1.01")
    session = LiveSession(source, LiveSettings(record=str(rec), no_page=True, duration=seconds), sections,
                          max_side=max_side)
    cpu = {"capture": 0.0}
    for k, _ in enumerate(session):
        # Before the loop ends and closes them: the decoder's and the encoder's CPU so far.
        if hasattr(session.source, "_proc"):
            cpu["capture"] = _cpu(session.source._proc.p.pid)
        writer = session.recorder._writer
        cpu["encode"] = _cpu(writer._proc.p.pid) if writer._proc is not None else cpu.get("encode", 0.0)
    s = session.stats
    with VideoReader(rec) as r:
        recorded = sum(1 for _ in r)
    shown = max(1, s.shown)
    w = session.worker_timing
    return dict(run=name, shown_fps=s.shown / s.seconds, dreamed_fps=s.dreamed / s.seconds,
                lat_med=s.latency_ms(50), lat_p95=s.latency_ms(95), dropped=s.dropped,
                recorded_s=recorded / session.fps, run_s=s.seconds,
                capture_ms=1000 * (cpu.get("capture", 0.0) + session.timing["capture"]) / shown,
                flow_ms=1000 * session.timing["flow"] / shown,
                dream_ms=1000 * (w["dream"] + w["flow"]) / shown,
                dream_each_ms=1000 * (w["dream"] + w["flow"]) / max(1, s.dreamed),
                encode_ms=1000 * (cpu.get("encode", 0.0) + session.timing["encode"]) / shown,
                landed=session.landed_at, load=os.getloadavg()[0], rec=rec)


def sheet(rec: Path, landed: list, path: Path, start: int = 60) -> Path:
    """8 consecutive recorded frames from ``start``, a red bar over the frames where a new dream
    landed, and below them the same frames' centre at 2x."""
    import cv2

    from dreamvideo.io import VideoReader, write_image

    with VideoReader(rec) as r:
        frames = [f for k, f in enumerate(r) if start <= k < start + 8]
    new = {seq for seq, _ in landed}
    h, w = frames[0].shape[:2]
    top = []
    for k, f in enumerate(frames):
        f = f.copy()
        if start + k in new:
            f[:4] = (255, 0, 0)
        top.append(f)
    crops = [cv2.resize(f[h // 4:h // 4 + h // 2, w // 4:w // 4 + w // 2], (w, h), interpolation=cv2.INTER_NEAREST)
             for f in frames]
    gap = np.full((h, 2, 3), 255, np.uint8)
    row = lambda fs: np.concatenate(sum([[f, gap] for f in fs], [])[:-1], axis=1)  # noqa: E731
    write_image(path, np.concatenate([row(top), np.full((2, row(top).shape[1], 3), 255, np.uint8), row(crops)]))
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--fps", type=int, default=10, help="the clip's frame rate (30: the engine's capacity, which "
                                                       "a 10-fps source caps)")
    p.add_argument("--out", default="/tmp/bench_live")
    p.add_argument("--clip", default=None, help="a real clip to play instead of the made one")
    p.add_argument("--precision", default="float32")
    p.add_argument("--only", nargs="*", default=None, help="run only these (names: " + ", ".join(RUNS) + ")")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.clip:
        clips = {side: real_clip(Path(a.clip), out / f"clip-{side}.mp4", side, a.seconds + 1) for side in (256, 320)}
    else:
        clips = {side: street(out / f"street-{side}.mp4", (side, side * 9 // 16), a.seconds + 1, a.fps)
                 for side in (256, 320)}
    rows = []
    print("| run | shown fps | dreamed fps | latency median / p95 ms | dropped | recording / run s | capture / flow / "
          "dream / encode ms per shown frame | ms per dream | load (1 min) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in a.only or RUNS:
        r = run(name, clips[RUNS[name][2]], out, a.seconds, a.precision)
        rows.append(r)
        sheet(r["rec"], r["landed"], out / f"sheet-{name}.png")
        print(f"| {name} | {r['shown_fps']:.1f} | {r['dreamed_fps']:.1f} | {r['lat_med']:.0f} / {r['lat_p95']:.0f} | "
              f"{r['dropped']} | {r['recorded_s']:.1f} / {r['run_s']:.1f} | {r['capture_ms']:.0f} / "
              f"{r['flow_ms']:.0f} / {r['dream_ms']:.0f} / {r['encode_ms']:.0f} | {r['dream_each_ms']:.0f} | "
              f"{r['load']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
