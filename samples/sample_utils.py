"""What the samples share: where the weights come from, and small synthetic inputs.

Weights, in this order:

1. ``--weights FILE`` (and ``--model NAME``), or the environment variables ``DREAMVIDEO_WEIGHTS``
   (and ``DREAMVIDEO_MODEL``);
2. the shared offline MobileNetV2 ImageNet file ``../shared/models/mobilenet_v2_imagenet.weights.h5``
   next to the repository (``$DREAMVIDEO_SHARED/models/...`` if that variable is set), if it exists;
3. otherwise InceptionV3 with ImageNet weights, downloaded (~85 MB) into ``~/.keras/models/`` on first use.

Inputs the samples make when none is given: a pan over ``samples/cat.jpg`` (bundled ffmpeg) and a
120 bpm click-and-bass soundtrack (numpy + scipy).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

CAT = HERE / "cat.jpg"
SHARED = Path(os.environ.get("DREAMVIDEO_SHARED", ROOT.parent / "shared"))
SHARED_WEIGHTS = SHARED / "models" / "mobilenet_v2_imagenet.weights.h5"
OUT = HERE / "out"


def model_options(weights: str | None = None, model: str | None = None) -> dict:
    """``{"model": ..., "weights": ...}`` for the dreamvideo API, chosen as the module doc says."""
    weights = weights or os.environ.get("DREAMVIDEO_WEIGHTS")
    model = model or os.environ.get("DREAMVIDEO_MODEL")
    if weights:
        name = Path(weights).name.lower()
        guess = "mobilenet_v2" if "mobilenet" in name else "inception5h" if name.endswith(".pb") else "inception_v3"
        return {"model": model or guess, "weights": weights}
    if SHARED_WEIGHTS.is_file() and model in (None, "mobilenet_v2"):
        return {"model": "mobilenet_v2", "weights": str(SHARED_WEIGHTS)}
    return {"model": model or "inception_v3", "weights": "imagenet"}


def parser(doc: str, output: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("input", nargs="?", help="your own input (default: a synthetic one)")
    p.add_argument("-o", "--output", default=str(OUT / output), help="output (default: %(default)s)")
    p.add_argument("--weights", help="weights file (default: $DREAMVIDEO_WEIGHTS, the shared MobileNetV2 file, "
                                     "or InceptionV3 ImageNet downloaded)")
    p.add_argument("--model", help="model name for --weights (default: guessed from the file name)")
    p.add_argument("--size", type=int, default=192, help="longer side in pixels (default: %(default)s)")
    return p


def output_path(path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def ffmpeg(*args) -> None:
    """Run the ffmpeg binary that imageio-ffmpeg bundles."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *map(str, args)]
    subprocess.run(cmd, check=True)


def pan_clip(path, seconds: float = 2.0, fps: int = 12, size=(256, 192)) -> Path:
    """A clip that pans slowly across samples/cat.jpg, with a quiet 220 Hz tone as its sound."""
    w, h = size
    path = output_path(path)
    ffmpeg("-loop", "1", "-framerate", fps, "-i", CAT, "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=44100",
           "-vf", f"scale={w * 3 // 2}:-2,crop={w}:{h}:'(iw-{w})*t/{seconds}':'(ih-{h})/2',format=yuv420p",
           "-t", seconds, "-c:v", "libx264", "-c:a", "aac", "-shortest", path)
    return path


def click_track(path, seconds: float = 4.0, bpm: float = 120.0, sr: int = 22050) -> Path:
    """A WAV with a click and a bass thump on every beat at ``bpm`` (an easy song for beat tracking)."""
    import numpy as np
    from scipy.io import wavfile

    t = np.arange(int(seconds * sr)) / sr
    since = np.mod(t, 60.0 / bpm)  # seconds since the last beat
    y = 0.6 * np.sin(2 * np.pi * 1500 * t) * np.exp(-60 * since) + 0.5 * np.sin(2 * np.pi * 55 * t) * np.exp(-8 * since)
    path = output_path(path)
    wavfile.write(path, sr, (np.clip(y, -1, 1) * 32767).astype(np.int16))
    return path
