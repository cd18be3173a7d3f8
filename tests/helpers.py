"""Shared test helpers: tiny random models, the offline ImageNet weights, photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DREAMVIDEO_SHARED", ROOT.parent / "shared"))
MOBILENET_WEIGHTS = SHARED / "models" / "mobilenet_v2_imagenet.weights.h5"

needs_weights = pytest.mark.skipif(not MOBILENET_WEIGHTS.is_file(), reason=f"no offline weights at {MOBILENET_WEIGHTS}")


def photo(name: str = "chelsea") -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    return np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img[..., :3]


def tiny_model_file(path: Path, seed: int = 0) -> Path:
    """A small random conv net saved as .keras: fast, any input size, layers conv1..conv3."""
    import keras

    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((None, None, 3))
    for i, ch in enumerate((8, 16, 24), 1):
        x = keras.layers.Conv2D(ch, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        if i < 3:
            x = keras.layers.AveragePooling2D(2, name=f"pool{i}")(x)
    keras.Model(inp, x).save(path)
    return path
