"""Where reuse's flicker comes from: bench_video's warping error (output over source) split by region
(the last 16 columns, where a pan's content enters; the last 8 rows; the interior) and per frame,
plus strength per 10 frames, for one clip of bench_reuse and any number of settings.

    python bench/bench_flicker_regions.py CLIP FRAMES SETTINGS [SETTINGS ...]

CLIP: pan, zoomin, objects, testsrc or cuts (256x144); SETTINGS: comma-separated video options,
e.g. ``upkeep_steps=1,blend=0.995`` or ``full_frames=True`` (schedules such as ``blend`` as text).
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_video import MODEL, read_frames
from bench_reuse import pan_clip, other_clips, cuts_clip
from dreamvideo.coherence import frames_with_flow, video_stepper
from dreamvideo.render import run_stepper
from dreamvideo.settings import SCHEDULED, split_options
from dreamvideo.build import build_dreamer
from dreamvideo.flow import FlowEstimator, warp
clip = sys.argv[1]; n = int(sys.argv[2]); sides = sys.argv[3:]
w, h = 256, 144
d = Path(tempfile.mkdtemp())
p = pan_clip(d, n, w, h) if clip == "pan" else (cuts_clip(d, n, w, h) if clip == "cuts" else other_clips(d, n, w, h)[clip])
src = read_frames(p)[:n]
sources = list(frames_with_flow(src, "dis"))
dreamer = build_dreamer(split_options("video", dict(MODEL))["model"])
est = FlowEstimator("dis")
pairs = [est.pair(src[t-1], src[t]) for t in range(1, n)]
def errmaps(a):
    out = []
    for t in range(1, n):
        flow, mask = pairs[t-1]
        e = np.abs(a[t].astype(np.float32) - warp(a[t-1], flow, cubic=True).astype(np.float32)).mean(axis=2)
        out.append((e, mask > 0.5))
    return out
E_src = errmaps(src)
regions = {"right16": (slice(None), slice(w-16, w)), "bottom8": (slice(h-8, h), slice(None)), "interior": (slice(16, h-16), slice(16, w-16))}
def report(name, a):
    E = errmaps(a)
    row = [name]
    for rn, rs in regions.items():
        num = sum(e[rs][m[rs]].sum() for e, m in E); den = sum(es[rs][m[rs]].sum() for (es, _), (e, m) in zip(E_src, E))
        row.append(f"{rn} {num/den:.2f}")
    tot = sum(e[m].sum() for e, m in E) / sum(es[m].sum() for (es, m) in E_src)
    per = [np.mean(e[m]) / np.mean(es[m]) for (e, m), (es, _) in zip(E, E_src)]
    row.append(f"all {tot:.2f}")
    print(*row, flush=True)
    print("   per frame:", " ".join(f"{x:.2f}" for x in per), flush=True)
for side in sides:
    opts = dict(kv.split("=") for kv in side.split(",") if "=" in kv)
    opts = {k: v if k in SCHEDULED["video"] else (v == "True") if v in ("True", "False") else
            (float(v) if "." in v else int(v)) for k, v in opts.items()}
    s = split_options("video", dict(MODEL, **opts))
    st = video_stepper(dreamer, s["dream"], s["video"], s["schedules"], fps=12, nframes=n, seed=0)
    t = time.perf_counter()
    outs = [img for _, img in run_stepper(st, sources)]
    print(side, f"{(time.perf_counter()-t)/n:.2f} s/frame")
    report(side, outs)
    st_ = [np.abs(o.astype(np.float32) - s_).mean() for o, s_ in zip(outs, src)]
    print("   strength per 10 frames:", " ".join(f"{np.mean(st_[j:j+10]):.1f}" for j in range(0, n, 10)), flush=True)
