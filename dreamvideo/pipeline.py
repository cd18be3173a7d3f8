"""Jobs: dream an image, a video or a zoom. Joins the engine, flow, IO, schedules and audio.

Convention: frames are ``H x W x 3`` uint8 RGB arrays; times are in seconds; frame indices are
0-based output frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from . import io as dio


def _opt(default, help, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class ModelSettings:
    """Which network, weights, layers and precision to dream with."""

    model: str = _opt("inception_v3", "model name (see `dreamvideo layers --help`) or a .keras/.h5/.pb model file")
    weights: str = _opt("imagenet", "imagenet (download on first use), random, or a .weights.h5/.h5 file")
    layers: str = _opt("", "objective: LAYER:WEIGHT,... or LAYER:CHANNEL[:WEIGHT] (default: the model's classic set)")
    objective: str = _opt("l2", "how a layer is maximised: l2 (mean square) or mean", choices=("l2", "mean"))
    guide: str = _opt("", "guide image: dream towards this image's features at the chosen layers")
    precision: str = _opt("auto", "compute precision", choices=("auto", "float32", "bfloat16", "float16"))


_MODEL_CACHE: dict = {}


def load_feature_model(ms: ModelSettings):
    from .models import load_model

    key = (ms.model, ms.weights, ms.precision)
    if key not in _MODEL_CACHE:
        is_file = Path(ms.model).suffix in (".keras", ".h5", ".pb")
        _MODEL_CACHE.clear()  # one model at a time: they are large
        _MODEL_CACHE[key] = load_model(
            ms.model if not is_file else "file", ms.weights, model_file=ms.model if is_file else None,
            precision=ms.precision)
    return _MODEL_CACHE[key]


def build_dreamer(ms: ModelSettings):
    """A :class:`~dreamvideo.engine.Dreamer` for these settings (validates layers and channels)."""
    from .engine import Dreamer
    from .objectives import guide as guide_objective
    from .objectives import parse_objective

    model = load_feature_model(ms)
    objective = parse_objective(ms.layers or model.default_layers, mode=ms.objective)
    guide_img = None
    if ms.guide:
        guide_img = dio.read_image(ms.guide)
        objective = guide_objective_from(objective, guide_objective)
    return Dreamer(model, objective, guide_image=guide_img)


def guide_objective_from(objective, make_guide):
    """With a guide image every layer term becomes a guide term of the same weight."""
    out = None
    for t in objective.terms:
        g = make_guide(t.layer, t.weight)
        out = g if out is None else out + g
    return out


def fit_max_side(img: np.ndarray, max_side: int | None) -> np.ndarray:
    import cv2

    if not max_side or max(img.shape[:2]) <= max_side:
        return img
    s = max_side / max(img.shape[:2])
    size = (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def dream_image(input, output, model: ModelSettings = ModelSettings(), settings=None, seed: int = 0,
                max_side: int | None = None, quality: int = 95) -> Path:
    """Dream one still image file into ``output`` (png/jpg/webp...). Returns the output path."""
    from .engine import DreamSettings

    settings = (settings or DreamSettings()).check()
    dio.check_not_same(input, output)
    if Path(output).suffix.lower() not in dio.WRITE_IMAGE_EXTS:
        raise UserError(f"cannot write {output}: use an image extension ({', '.join(dio.WRITE_IMAGE_EXTS)})")
    img = fit_max_side(dio.read_image(input), max_side)
    dreamer = build_dreamer(model)
    out = dreamer.dream(img, settings=settings, seed=seed)
    dio.write_image(output, out, quality=quality)
    return Path(output)
