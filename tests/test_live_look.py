"""The live look with the shared weights on a real clip from a fixed camera (OpenCV's vtest.avi,
Debian's opencv-doc): where the picture stands still, the dream's strength rises over the first
seconds (each dream adds its steps) and then holds (no runaway)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import ffmpeg
from helpers import SHARED

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
WEIGHTS = SHARED / "models" / "mobilenet_v2_imagenet.weights.h5"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not VTEST.is_file(), reason="needs vtest.avi: apt-get install -y opencv-doc"),
              pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"needs {WEIGHTS}")]


def _frames(path):
    from dreamvideo.io import VideoReader

    with VideoReader(path) as r:
        return list(r)


def test_a_still_background_deepens_to_a_level_and_holds(tmp_path):
    import dreamvideo

    clip = tmp_path / "street.mp4"
    ffmpeg("-i", VTEST, "-t", "9", "-vf", "scale=192:-2:flags=area", "-c:v", "libx264", "-crf", "10", "-pix_fmt",
           "yuv420p", "-an", clip)
    rec = tmp_path / "live.mp4"
    for _ in dreamvideo.live(str(clip), record=str(rec), model="mobilenet_v2", weights=str(WEIGHTS),
                             precision="float32", octaves=2, steps="3"):
        pass
    src, out = _frames(clip), _frames(rec)
    n = min(len(src), len(out))
    spread = np.std(np.stack([f.astype(np.float32).mean(-1) for f in src[:n]]), 0)
    still = spread < np.percentile(spread, 50)  # the half of the frame that changes least: the background
    each = [float(np.abs(o.astype(np.float32) - s.astype(np.float32)).mean(-1)[still].mean())
            for o, s in zip(out[:n], src[:n])]
    strength = [float(np.mean(each[k:k + 10])) for k in range(0, n - 9, 10)]  # per second
    first, later = float(np.mean(each[:5])), strength[3:]  # the first half second: the first few dreams
    assert min(later) > 1.25 * first, (first, strength)  # it deepened (a dream adds its steps)
    assert max(later) < 1.25 * min(later), strength  # and holds: no runaway
    assert min(later) > 6, strength  # the classic look, not faint swirls (offline 3 x 10 steps: ~8.8 here)
