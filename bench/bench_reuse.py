"""Temporal reuse: a video frame costs what is new in it; a zoom frame dreams only fine detail.

    python bench/bench_reuse.py [--frames 200] [--size 256x144] [--none-every 8] [--full-frames 16]
                                [--zoom-frames 300] [--rounds 4] [--out /tmp/bench_reuse]
                                [--clips pan,zoomin,objects,cuts,film,street] [--common steps=10] [--last 60]

Real footage (Debian's ``opencv-doc``, ``--real-dir``): ``film`` Megamind.avi's still shots with an
ffmpeg dissolve in place of one cut (:func:`film_fade_clip`), ``street`` a camera panning over
vtest.avi's street with two hard cuts (:func:`street_pan_clip`). Besides the per-round ratios, the
whole render's ratio (none's mean s/frame x frames over reuse's time all told) and where reuse's
time goes (frames by what they dreamed) are printed.

Video: clips made here (``pan`` over astronaut 3 px right + 1 px down per frame, ``zoomin`` 1.2%
per frame into coffee, ``objects`` two discs moving over a still photo, ``testsrc`` ffmpeg's
testsrc2 (new everywhere), ``cuts``: three pans over three photos joined by two hard cuts), dreamed
on the offline ImageNet MobileNetV2 (block_10/block_13) at the default engine settings, side by
side in one process, three ways:

- ``reuse``: flow coherence with its defaults (new content dreamed in crops, the carried dream kept),
  every frame;
- ``full``: flow with ``full_frames`` (the behaviour before reuse), on the first ``--full-frames`` frames
  (its cost per frame does not depend on the frame's place);
- ``none``: every frame alone, on every ``--none-every``-th frame (no state: those frames are exactly
  what a whole ``none`` render would make of them).

The sides take turns in ``--rounds`` rounds (each round: its share of every side's frames), and the
speed figures are medians over rounds of ratios taken within a round, so load from other jobs on the
shared machine hits all sides alike. Flicker (bench_video's warping error, output over source) is
measured on the lossless frames and again on the frames as played (dream and source both through x264
CRF 18 and decoded); strength is
mean |output - source| over all frames and over the last quarter, over none's on the same frames.

Zoom: 256x144 coffee, today's defaults (``full_frames``) against the reuse defaults, frames interleaved;
strength = the objective's value (the model's own measure of the dream) and the image's fine detail
(mean |img - Gaussian blur(2 px)|), both over the whole zoom and its last quarter; brightness (Lab L)
and saturation (HSV S) drift = last quarter's mean over frame 0's.

Writes contact sheets and 100% crops where dreamed crops meet the carried dream to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_video import MODEL, flicker_and_strength, read_frames  # noqa: E402


def parse_opts(text: str) -> dict:
    """``"a=1,b=0.5"`` -> ``{"a": 1, "b": 0.5}``."""
    return {k: float(v) if "." in v else int(v) for k, v in (kv.split("=") for kv in text.split(",") if kv)}


def cpu_times():
    """(this process's CPU seconds, the whole machine's busy CPU seconds)."""
    with open("/proc/stat") as f:
        vals = list(map(int, f.readline().split()[1:]))
    tick = os.sysconf("SC_CLK_TCK")
    busy = (sum(vals) - vals[3] - vals[4]) / tick
    t = os.times()
    return t.user + t.system, busy


def cuts_clip(d: Path, n: int, w: int, h: int) -> Path:
    import cv2
    from skimage import data

    from dreamvideo.io import VideoWriter

    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    third = -(-n // 3)
    with VideoWriter(d / "cuts.mp4", 12, (w, h)) as vw:
        for i in range(n):
            k, j = divmod(i, third)
            big = cv2.resize(photos[k], (w * 2, h * 2 + third))
            vw.write(np.ascontiguousarray(big[j:j + h, 2 * j:2 * j + w]))  # 2 px right, 1 px down per frame
    return d / "cuts.mp4"


def pan_clip(d: Path, n: int, w: int, h: int) -> Path:
    """3 px right and 1 px down per frame over astronaut (bench_video's pan, on a photo big enough for ``n``)."""
    import cv2
    from skimage import data

    from dreamvideo.io import VideoWriter

    side = max(w + 3 * n + 60, h + n + 40)
    big = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)
    with VideoWriter(d / "pan.mp4", 12, (w, h)) as vw:
        for i in range(n):
            vw.write(np.ascontiguousarray(big[40 + i:40 + i + h, 60 + 3 * i:60 + 3 * i + w]))
    return d / "pan.mp4"


def objects_clip(d: Path, n: int, w: int, h: int) -> Path:
    """Two textured discs (cut from coffee and rocket) moving over a still photo (chelsea): one
    crosses left to right at 3 px a frame (leaving the frame and coming back in), one bounces off
    the walls at (2, 1.5) px a frame. New content: what they uncover behind them and what enters."""
    import cv2
    from skimage import data

    from dreamvideo.io import VideoWriter

    back = cv2.resize(data.chelsea(), (w, h), interpolation=cv2.INTER_AREA)
    r = max(6, h // 5)
    tex = [cv2.resize(data.coffee(), (2 * r, 2 * r), interpolation=cv2.INTER_AREA),
           cv2.resize(data.rocket(), (2 * r, 2 * r), interpolation=cv2.INTER_AREA)]
    disc = cv2.circle(np.zeros((2 * r, 2 * r), np.uint8), (r, r), r - 1, 1, -1).astype(bool)
    span = w + 2 * r

    def bounce(p, lo, hi):
        p = (p - lo) % (2 * (hi - lo))
        return lo + (p if p <= hi - lo else 2 * (hi - lo) - p)

    with VideoWriter(d / "objects.mp4", 12, (w, h)) as vw:
        for i in range(n):
            img = back.copy()
            centres = [((3 * i) % span - r, h // 3), (bounce(r + 2 * i, r, w - r), bounce(h - r - 1.5 * i, r, h - r))]
            for t, (cx, cy) in zip(tex, centres):
                x0, y0 = int(cx) - r, int(cy) - r
                ys, xs = slice(max(0, y0), min(h, y0 + 2 * r)), slice(max(0, x0), min(w, x0 + 2 * r))
                sub = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
                if ys.stop > ys.start and xs.stop > xs.start:
                    m = disc[sub]
                    img[ys, xs][m] = t[sub][m]
            vw.write(img)
    return d / "objects.mp4"


def other_clips(d: Path, n: int, w: int, h: int) -> dict:
    """bench_video's zoomin (1.2% a frame into coffee), objects (:func:`objects_clip`) and
    testsrc (ffmpeg's testsrc2: colours that change everywhere every frame), ``n`` frames."""
    import cv2
    import imageio_ffmpeg
    from skimage import data

    from dreamvideo.io import VideoWriter

    photo = data.coffee()
    with VideoWriter(d / "zoomin.mp4", 12, (w, h)) as vw:
        for i in range(n):
            m = cv2.getRotationMatrix2D((photo.shape[1] / 2, photo.shape[0] / 2), 0, 1.012 ** i)
            m[:, 2] -= ((photo.shape[1] - w) / 2, (photo.shape[0] - h) / 2)
            vw.write(cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_CUBIC))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={w}x{h}:rate=12", "-frames:v", str(n), "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(d / "testsrc.mp4")], check=True)
    return {"zoomin": d / "zoomin.mp4", "objects": objects_clip(d, n, w, h), "testsrc": d / "testsrc.mp4"}


REAL_DIR = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian's opencv-doc: real clips


def film_fade_clip(d: Path, real_dir: Path, w: int) -> Path:
    """``film``: Megamind.avi (opencv-doc: an animated film's dialogue scene, 720x528 at 23.976 fps,
    270 frames: one black frame, then still shots cut at frames 98, 154 and 200), its first black
    frame dropped and the cut at 154 replaced by ffmpeg's ``xfade`` dissolve of 0.5 s (12 frames),
    ``w`` px wide: 257 frames of mostly still shots with a fade and two cuts."""
    import imageio_ffmpeg

    fps = 24000 / 1001
    a = f"trim=start_frame={{}}:end_frame={{}},setpts=PTS-STARTPTS,scale={w}:-2:flags=area,setsar=1"
    graph = (f"[0:v]{a.format(1, 154)}[a];[0:v]{a.format(154, 100000)}[b];"
             f"[a][b]xfade=transition=fade:duration=0.5:offset={153 / fps - 0.5:.4f},format=yuv420p[v]")
    out = d / "film.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(real_dir / "Megamind.avi"),
                    "-filter_complex", graph, "-map", "[v]", "-an", "-c:v", "libx264", "-crf", "18",
                    str(out)], check=True)
    return out


#: street: (first source frame, start (x, y), output px per frame (dx, dy)) of each shot, on vtest
#: scaled to 512x384.
STREET_SHOTS = ((0, (0, 120), (3, 1)), (300, (250, 0), (-3, 2)), (560, (230, 230), (-2, -2)))


def street_pan_clip(d: Path, real_dir: Path, n: int, w: int, h: int) -> Path:
    """``street``: a moving camera over real street footage with hard cuts: vtest.avi (opencv-doc:
    a fixed camera, people walking, 768x576 at 10 fps) scaled to 512x384, a ``w`` x ``h`` window
    panning over it (right, left and down, left and up; 2-3 px a frame, :data:`STREET_SHOTS`), three
    shots from three moments of the clip joined by two hard cuts, ``n`` frames at 10 fps."""
    import cv2

    from dreamvideo.io import VideoWriter

    cap = cv2.VideoCapture(str(real_dir / "vtest.avi"))
    src = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        src.append(f)
    cap.release()
    third = -(-n // 3)
    with VideoWriter(d / "street.mp4", 10, (w, h)) as vw:
        for i in range(n):
            k, j = divmod(i, third)
            first, (x0, y0), (dx, dy) = STREET_SHOTS[k]
            big = cv2.resize(src[(first + j) % len(src)], (512, 384), interpolation=cv2.INTER_AREA)
            x = int(np.clip(x0 + dx * j, 0, 512 - w))
            y = int(np.clip(y0 + dy * j, 0, 384 - h))
            vw.write(np.ascontiguousarray(cv2.cvtColor(big[y:y + h, x:x + w], cv2.COLOR_BGR2RGB)))
    return d / "street.mp4"


def encode_decode(frames, path) -> tuple[list, float]:
    """The frames as played: x264 CRF 18 (the default quality), decoded again; and encode s/frame."""
    from dreamvideo.io import VideoWriter

    t = time.perf_counter()
    with VideoWriter(path, 12, (frames[0].shape[1], frames[0].shape[0]), quality=18) as vw:
        for f in frames:
            vw.write(f)
    dt = (time.perf_counter() - t) / len(frames)
    return read_frames(path), dt


def crops_at_seams(outs, plans, k=4, side=48):
    """100% crops (shown x4) centred on a border between a dreamed crop and the carried dream."""
    import cv2

    tiles = []
    for i, plan in enumerate(plans):
        if plan is None or plan.cut or plan.whole or not plan.boxes or len(tiles) >= k or i < len(outs) // 3:
            continue
        edge = plan.new & ~cv2.erode(plan.new.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        ys, xs = np.nonzero(edge)
        if not len(ys):
            continue
        j = len(ys) // 2
        h, w = plan.new.shape
        y0, x0 = int(np.clip(ys[j] - side // 2, 0, h - side)), int(np.clip(xs[j] - side // 2, 0, w - side))
        crop = outs[i][y0:y0 + side, x0:x0 + side]
        tiles.append((f"#{i} y{y0} x{x0}", cv2.resize(crop, (side * 4, side * 4), interpolation=cv2.INTER_NEAREST)))
    return tiles


def video(args, dreamer, out_dir: Path):
    from dreamvideo.coherence import frames_with_flow, video_stepper
    from dreamvideo.plot import contact_sheet
    from dreamvideo.settings import split_options

    w, h = map(int, args.size.split("x"))
    rows, splits = [], []
    real = Path(args.real_dir)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        n = args.frames
        makers = {"pan": lambda: pan_clip(d, n, w, h), "zoomin": lambda: other_clips(d, n, w, h)["zoomin"],
                  "objects": lambda: objects_clip(d, n, w, h), "testsrc": lambda: other_clips(d, n, w, h)["testsrc"],
                  "cuts": lambda: cuts_clip(d, n, w, h), "film": lambda: film_fade_clip(d, real, w),
                  "street": lambda: street_pan_clip(d, real, n, w, h)}
        rates = {"film": 24000 / 1001, "street": 10}
        common = parse_opts(args.common)
        for name in args.clips.split(","):
            if name not in makers:
                sys.exit(f"bench_reuse: unknown clip {name!r}; use some of {', '.join(makers)}")
            clip = makers[name]()
            src = read_frames(clip)[:args.frames]
            n = len(src)
            fps = rates.get(name, 12)
            t = time.perf_counter()
            sources = list(frames_with_flow(src, "dis"))
            flow_s = (time.perf_counter() - t) / max(1, len(src) - 1)
            steppers = {}
            reuse = dict(full_frames=False, **parse_opts(args.reuse))
            for side, opts in (("reuse", reuse), ("full", {"full_frames": True}), ("none", {"coherence": "none"})):
                s = split_options("video", dict(MODEL, **common, **opts))
                steppers[side] = video_stepper(dreamer, s["dream"], s["video"], s["schedules"], fps=fps, nframes=n,
                                               seed=0)
            which = {"reuse": list(range(n)), "full": list(range(min(n, args.full_frames))),
                     "none": list(range(0, n, args.none_every))}
            outs = {k: {} for k in which}
            plans = [None] * n
            frame_s = [0.0] * n  # reuse: seconds of each frame's dream, keep and settle
            per_round = {k: [] for k in which}
            load0 = cpu_times()
            t_all = time.perf_counter()
            for r in range(args.rounds):
                for side, idx in which.items():
                    part = idx[r * len(idx) // args.rounds:(r + 1) * len(idx) // args.rounds]
                    st = steppers[side]
                    t = time.perf_counter()
                    for i in part:
                        f = sources[i]
                        t1 = time.perf_counter()
                        out = st.dream(f)
                        st.keep(f, out)
                        outs[side].update(st.settle(f, out))  # as a render shows them (see VideoStepper.settle)
                        if side == "reuse":
                            plans[i] = st.last
                            frame_s[i] = time.perf_counter() - t1
                    # frame 0 of a coherent side is a full dream: keep it out of the per-frame cost
                    timed = [i for i in part if i > 0 or side == "none"]
                    per_round[side].append((time.perf_counter() - t, len(part), len(timed)))
            for side, st in steppers.items():
                t1 = time.perf_counter()
                outs[side].update(st.drain())
                if side == "reuse":
                    frame_s[-1] += time.perf_counter() - t1
            wall = time.perf_counter() - t_all
            load1 = cpu_times()
            other = ((load1[1] - load0[1]) - (load1[0] - load0[0])) / wall
            # s/frame per round (the reuse side's first round includes frame 0's full dream: use rounds 2+)
            per = {k: [t / max(1, m) for t, m, _ in v] for k, v in per_round.items()}
            ratio_none = float(np.median([per["none"][r] / per["reuse"][r] for r in range(1, args.rounds)]))
            ratio_full = (float(np.median([per["full"][r] / per["reuse"][r] for r in range(1, args.rounds)]))
                          if which["full"] else float("nan"))
            # The whole render's time, as a user sees it: none's mean s/frame over all rounds x n, over
            # reuse's frames all told (frame 0's full dream and what drain dreams included).
            none_mean = sum(t for t, _, _ in per_round["none"]) / len(which["none"])
            ratio_render = none_mean * n / sum(frame_s)
            re = [outs["reuse"][i] for i in range(n)]
            flick, strength = flicker_and_strength(src, re)
            played, enc_s = encode_decode(re, d / f"{name}-reuse.mp4")
            # As played: both the dream and the source through the same x264, so codec noise is in both terms.
            src_played, _ = encode_decode(src, d / f"{name}-src.mp4")
            flick_played, _ = flicker_and_strength(src_played, played)
            # Reference "as played" flicker of none on its frames is not defined (not consecutive).
            none_idx = which["none"]
            s_reuse = [np.abs(re[i].astype(np.float32) - src[i]).mean() for i in range(n)]
            s_none = {i: np.abs(outs["none"][i].astype(np.float32) - src[i]).mean() for i in none_idx}
            q = n - args.last if args.last else 3 * n // 4
            str_all = np.mean([s_reuse[i] for i in none_idx]) / np.mean(list(s_none.values()))
            str_last = (np.mean([s_reuse[i] for i in none_idx if i >= q]) /
                        np.mean([s_none[i] for i in none_idx if i >= q]))
            st = steppers["reuse"]
            nre = n - 1
            dreamed = [p.share for p in plans[1:] if p is not None]
            cuts = [i for i, p in enumerate(plans) if p is not None and p.cut]
            kinds, every = {}, steppers["reuse"].video.enter_every
            for i, p in enumerate(plans):
                kind = ("first" if i == 0 else "whole, not reusing" if p is None else "cut" if p.cut else
                        "whole (step-mapped)" if p.whole else "crops" if p.boxes else "carried only")
                if p is not None and not p.cut and (p.whole or p.boxes) and i % every == 0:
                    kind += ", band frame"
                c, t, sh = kinds.get(kind, (0, 0.0, 0.0))
                kinds[kind] = (c + 1, t + frame_s[i], sh + (float(p.new.mean()) if p is not None else 1.0))
            new_share = float(np.mean([p.new.mean() if p is not None else 1.0 for p in plans[1:]]))
            stp = steppers["reuse"]
            rows.append(dict(clip=name, frames=n, dream=stp.tl.settings(stp.dream_settings, 1), fps=fps, ratio_render=ratio_render, kinds=kinds,
                             new_share=new_share, size=f"{src[0].shape[1]}x{src[0].shape[0]}", ratio_none=ratio_none, ratio_full=ratio_full, flicker=flick,
                             flicker_played=flick_played, strength=float(np.mean(s_reuse)),
                             str_all=float(str_all), str_last=float(str_last),
                             reuse_s=float(np.median(per["reuse"][1:])), none_s=float(np.median(per["none"][1:])),
                             full_s=float(np.median(per["full"][1:])) if which["full"] else float("nan"),
                             none_mean=none_mean, reuse_mean=sum(frame_s) / n, other=other, cuts=cuts,
                             crop_share=float(np.mean(dreamed)) if dreamed else 0.0))
            splits.append(dict(clip=name, flow=flow_s, new=st.timing["new"] / nre, upkeep=st.timing["upkeep"] / nre,
                               composite=st.timing["composite"] / nre, encode=enc_s))
            from dreamvideo.plot import evenly_spaced

            pick = evenly_spaced(n, 6)
            contact_sheet([(f"reuse #{i}", re[i]) for i in pick] +
                          [(f"none #{i}", outs["none"][i]) for i in pick if i in outs["none"]][:3] +
                          [(f"full #{i}", outs["full"][i]) for i in pick if i in outs["full"]][:3],
                          out_dir / f"{name}-sheet.png")
            # The frames held longest before a band (back-filled from it), their right and bottom edges
            # (where a pan's content enters) at 2x beside the band frame's: where the back-fill's flow
            # misses, the mirror-fill shows here.
            held = [i for i in range(every - 1, n - 1, every)
                    if plans[i] is not None and plans[i + 1] is not None and not plans[i + 1].cut][::3][:6]
            edge = []
            for i in held:
                for j in (i, i + 1):
                    fh, fw = re[j].shape[:2]
                    corner = re[j][fh - 72:, fw - 128:]
                    edge.append((f"{'held' if j == i else 'band'} #{j}",
                                 np.repeat(np.repeat(corner, 2, axis=0), 2, axis=1)))
            if edge:
                contact_sheet(edge, out_dir / f"{name}-held.png", cols=4)
            tiles = crops_at_seams(re, plans)
            if tiles:
                contact_sheet(tiles, out_dir / f"{name}-seams.png", cols=4)
            print(f"  {name}: done in {wall:.0f} s, {rows[-1]}", flush=True)
    return rows, splits


def zoom_bench(args, dreamer, out_dir: Path):
    import cv2
    from skimage import data

    from dreamvideo.engine import to_unit
    from dreamvideo.plot import contact_sheet, evenly_spaced
    from dreamvideo.render import SourceFrame
    from dreamvideo.settings import SCHEDULED, split_options
    from dreamvideo.timeline import Timeline
    from dreamvideo.infinite import ZoomStepper

    w, h = map(int, args.size.split("x"))
    n = args.zoom_frames
    init = cv2.resize(data.coffee(), (w, h), interpolation=cv2.INTER_AREA)
    steppers = {}
    for side, opts in (("reuse", {}), ("full", {"full_frames": True})):
        s = split_options("zoom", dict(MODEL, **opts))
        tl = Timeline(s["schedules"], 25, n, dreamer.objective.terms, use=SCHEDULED["zoom"])
        steppers[side] = ZoomStepper(dreamer, s["dream"], s["zoom"], tl, 0, init)
    outs = {k: [] for k in steppers}
    per_round = {k: [] for k in steppers}
    load0, t_all = cpu_times(), time.perf_counter()
    for r in range(args.rounds):
        for side, st in steppers.items():
            t = time.perf_counter()
            for i in range(r * n // args.rounds, (r + 1) * n // args.rounds):
                f = SourceFrame(i)
                out = st.dream(f)
                st.keep(f, out)
                outs[side].append(out)
            per_round[side].append((time.perf_counter() - t) / max(1, n // args.rounds))
    wall = time.perf_counter() - t_all
    load1 = cpu_times()
    other = ((load1[1] - load0[1]) - (load1[0] - load0[0])) / wall
    ratio = float(np.median([per_round["full"][r] / per_round["reuse"][r] for r in range(1, args.rounds)]))

    def measures(frames):
        every = max(1, len(frames) // 60)
        idx = list(range(0, len(frames), every))
        obj = {i: dreamer.gradient(to_unit(frames[i]), 512)[1] for i in idx}
        detail = {i: float(np.abs(frames[i].astype(np.float32) -
                                  cv2.GaussianBlur(frames[i], (0, 0), 2).astype(np.float32)).mean()) for i in idx}
        lab = {i: cv2.cvtColor(frames[i], cv2.COLOR_RGB2LAB)[..., 0].mean() for i in idx}
        sat = {i: cv2.cvtColor(frames[i], cv2.COLOR_RGB2HSV)[..., 1].mean() for i in idx}
        q = 3 * len(frames) // 4
        last = [i for i in idx if i >= q]
        return dict(obj=np.mean(list(obj.values())), obj_last=np.mean([obj[i] for i in last]),
                    detail=np.mean(list(detail.values())), detail_last=np.mean([detail[i] for i in last]),
                    bright=np.mean([lab[i] for i in last]) / lab[0] - 1, sat=np.mean([sat[i] for i in last]) / sat[0] - 1)

    m = {k: measures(v) for k, v in outs.items()}
    pick = evenly_spaced(n, 6)
    contact_sheet([(f"{k} #{i}", outs[k][i]) for k in outs for i in pick], out_dir / "zoom-sheet.png", cols=6)
    return dict(ratio=ratio, reuse_s=float(np.median(per_round["reuse"][1:])),
                full_s=float(np.median(per_round["full"][1:])), other=other, m=m, frames=n)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--size", default="256x144")
    p.add_argument("--none-every", type=int, default=8)
    p.add_argument("--full-frames", type=int, default=16)
    p.add_argument("--zoom-frames", type=int, default=300)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--only", choices=("video", "zoom"), default=None)
    p.add_argument("--clips", default="pan,zoomin,objects,cuts",
                   help="of pan, zoomin, objects, testsrc, cuts (made here) and film, street (real footage from "
                        "--real-dir: see film_fade_clip, street_pan_clip)")
    p.add_argument("--real-dir", default=str(REAL_DIR), help="folder of Megamind.avi and vtest.avi")
    p.add_argument("--common", default="", help="settings of all three sides, e.g. steps=10,octaves=3")
    p.add_argument("--last", type=int, default=0, help="strength also over the last N frames (0: the last quarter)")
    p.add_argument("--out", default="/tmp/bench_reuse")
    p.add_argument("--reuse", default="", help="reuse settings other than the defaults, e.g. enter_every=1,context=8")
    p.add_argument("--fill-reach", type=int, default=None, help="reuse.FILL_REACH for this run (pixels)")
    args = p.parse_args()
    if args.fill_reach is not None:
        import dreamvideo.reuse

        dreamvideo.reuse.FILL_REACH = args.fill_reach
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    from dreamvideo.build import build_dreamer
    from dreamvideo.settings import split_options

    dreamer = build_dreamer(split_options("video", dict(MODEL))["model"])
    # Warm: the cost curve measured (or read from its cache) and the graph traced before any timing,
    # as on a machine that has rendered before; else the first timed frame carries both.
    from dreamvideo.cost import curve
    from dreamvideo.engine import to_unit  # noqa: F401 (the engine imported before timing too)

    curve(dreamer)
    dreamer.dream(np.full((144, 256, 3), 128, np.uint8), None, split_options("video", dict(MODEL))["dream"], seed=0)
    t0 = time.perf_counter()
    print(f"bench_reuse: {' '.join(sys.argv[1:])}", flush=True)
    if args.only != "zoom":
        rows, splits = video(args, dreamer, out_dir)
        print(f"\nvideo: {args.frames} frames {args.size}, MobileNetV2 ImageNet block_10+block_13, default engine "
              f"settings; none on every {args.none_every}th frame, full_frames on the first {args.full_frames}")
        print("| clip | none s/frame | full s/frame | reuse s/frame | none/reuse | full/reuse | mean crop share "
              "| cuts found | flicker (PNG) | flicker (mp4) | strength | vs none, all | vs none, last quarter "
              "| other load (cores) |")
        print("|" + " --- |" * 14)
        for r in rows:
            print(f"| {r['clip']} | {r['none_s']:.3f} | {r['full_s']:.3f} | {r['reuse_s']:.3f} | {r['ratio_none']:.2f}x "
                  f"| {r['ratio_full']:.2f}x | {r['crop_share']:.1%} | {r['cuts']} | {r['flicker']:.2f} "
                  f"| {r['flicker_played']:.2f} | {r['strength']:.1f} | {r['str_all']:.0%} | {r['str_last']:.0%} "
                  f"| {r['other']:.2f} |")
        last = f"last {args.last}" if args.last else "last quarter"
        print(f"\nwhole render: none's mean s/frame (all rounds) x frames over reuse's frames all told "
              f"(frame 0 and drain included); strength over none's on none's frames; common options {args.common!r}")
        print(f"| clip | frames | size | fps | none s/frame | reuse s/frame | none/reuse (render) | new pixels "
              f"| strength vs none, all | vs none, {last} | flicker (PNG) | other load (cores) |")
        print("|" + " --- |" * 12)
        for r in rows:
            print(f"| {r['clip']} | {r['frames']} | {r['size']} | {r['fps']:.2f} | {r['none_mean']:.3f} "
                  f"| {r['reuse_mean']:.3f} | **{r['ratio_render']:.2f}x** | {r['new_share']:.1%} | {r['str_all']:.0%} "
                  f"| {r['str_last']:.0%} | {r['flicker']:.2f} | {r['other']:.2f} |")
        from dreamvideo.cost import curve

        c = curve(dreamer)
        s = rows[0]["dream"]
        print(f"\ncost curve of this machine: floor {c.floor * 1e3:.1f} ms a step + {c.per_pixel * 1e9:.0f} ns a pixel; "
              f"a dream ({s.octaves} octaves x {s.steps} steps) of 64x64 {c.dream((64, 64), s, dreamer.model.min_side):.3f} s, "
              f"of 256x144 {c.dream((144, 256), s, dreamer.model.min_side):.3f} s")
        print("\nwhere reuse's time goes: frames by what they dreamed")
        print("| clip | kind | frames | s in all | s/frame | share of render | mean new pixels |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            tot = sum(t for _, t, _ in r["kinds"].values())
            for k, (cnt, t, sh) in r["kinds"].items():
                print(f"| {r['clip']} | {k} | {cnt} | {t:.1f} | {t / cnt:.3f} | {t / tot:.0%} | {sh / cnt:.1%} |")
        print("\nreuse: time per frame (s), frames after the first")
        print("| clip | flow (both ways + check) | dream of new content | upkeep | compositing | encode (x264) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for s in splits:
            print(f"| {s['clip']} | {s['flow']:.3f} | {s['new']:.3f} | {s['upkeep']:.3f} | {s['composite']:.3f} "
                  f"| {s['encode']:.3f} |")
    if args.only != "video":
        z = zoom_bench(args, dreamer, out_dir)
        print(f"\nzoom: {z['frames']} frames {args.size} from coffee, zoom 1.05/frame, default schedules")
        print("| side | s/frame | objective (all / last quarter) | fine detail (all / last quarter) "
              "| brightness drift | saturation drift |")
        print("| --- | --- | --- | --- | --- | --- |")
        for k, s in (("full (today)", "full"), ("reuse", "reuse")):
            m = z["m"][s]
            print(f"| {k} | {z[s + '_s']:.3f} | {m['obj']:.3f} / {m['obj_last']:.3f} | {m['detail']:.2f} / "
                  f"{m['detail_last']:.2f} | {m['bright']:+.1%} | {m['sat']:+.1%} |")
        mr, mf = z["m"]["reuse"], z["m"]["full"]
        print(f"full/reuse time {z['ratio']:.2f}x; reuse/full objective {mr['obj'] / mf['obj']:.0%} "
              f"(last quarter {mr['obj_last'] / mf['obj_last']:.0%}), detail {mr['detail'] / mf['detail']:.0%} "
              f"(last quarter {mr['detail_last'] / mf['detail_last']:.0%}); other load {z['other']:.2f} cores")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; machine: {os.cpu_count()} cores; sheets in {out_dir}")


if __name__ == "__main__":
    main()
