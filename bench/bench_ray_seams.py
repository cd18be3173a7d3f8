"""Seams of a chunked render with real weights: frame-to-frame jumps and strength, chunked vs one process.

    DREAMVIDEO_SHARED=/work/shared python bench/bench_ray_seams.py [--out /tmp/seams]

A 40-frame 224x128 pan over skimage's astronaut (3 px right, 1 px down per frame), MobileNetV2 ImageNet
(block_10/13_expand_relu), 2 octaves x 6 steps, first frame 12 steps, flow coherence; dreamed in this process and by
2 Ray workers in chunks of 14 with 6 frames of lead-in. Prints the mean |frame i+1 - frame i| of both (the pan
itself is most of it) and the strength, mean |output - source|; writes seam.png: rows source, one process,
chunked, over the frames from 2 before the first seam's lead-in to 2 after it.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/seams")
    a = ap.parse_args()
    import cv2
    from skimage import data

    from dreamvideo import distributed, io, jobs
    from dreamvideo.settings import DistributedSettings

    d = Path(a.out)
    d.mkdir(parents=True, exist_ok=True)
    w, h, n, chunk, overlap = 224, 128, 40, 14, 6
    big = cv2.resize(data.astronaut(), (w * 2, w * 2))
    with io.VideoWriter(d / "pan.mp4", 12, (w, h)) as vw:
        for i in range(n):
            vw.write(np.ascontiguousarray(big[60 + i:60 + i + h, 40 + 3 * i:40 + 3 * i + w]))
    opts = dict(model="mobilenet_v2", weights=str(WEIGHTS), layers="block_10_expand_relu:1.0,block_13_expand_relu:1.0",
                steps="6", octaves=2, first_steps=12)
    t = time.time()
    jobs.dream_video(d / "pan.mp4", d / "single.mp4", quiet=True, **opts)
    print(f"one process {time.time() - t:.0f} s")
    t = time.time()
    distributed.dream_video(d / "pan.mp4", d / "chunked.mp4", quiet=True,
                            distributed=DistributedSettings(workers=2, chunk_frames=chunk, chunk_overlap=overlap), **opts)
    print(f"2 workers {time.time() - t:.0f} s (start-up included)")

    def frames(p):
        with io.VideoReader(p) as r:
            return np.stack(list(r)).astype(np.float32)

    src, one, cut = frames(d / "pan.mp4"), frames(d / "single.mp4"), frames(d / "chunked.mp4")
    chunks = distributed.plan_chunks(n, chunk, overlap, parts=2)
    seam = {i for c in chunks[1:] for i in range(c.lead - 1, c.start)}
    for name, f in (("one process", one), ("chunked", cut)):
        jump = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))
        inside = [jump[i] for i in range(len(jump)) if i not in seam]
        print(f"{name}: worst jump at seams {max(jump[i] for i in seam):.2f}, inside chunks {max(inside):.2f}; "
              f"strength {np.abs(f - src).mean():.2f}")
    c = chunks[1]
    idx = list(range(c.lead - 2, c.start + 2))
    sheet = np.concatenate([np.concatenate([f[i] for i in idx], 1) for f in (src, one, cut)], 0)
    io.write_image(d / "seam.png", sheet.astype(np.uint8))
    print(f"wrote {d / 'seam.png'} (frames {idx[0]}-{idx[-1]}; the lead-in is {c.lead}-{c.start - 1})")


if __name__ == "__main__":
    main()
