"""The Dreamer a job dreams with, built from :class:`~dreamvideo.settings.ModelSettings`.

One model is kept loaded (they are large): a second job with the same model, weights and precision
reuses it, as a preview followed by its render does.
"""

from __future__ import annotations

from pathlib import Path

from .settings import MODEL_FILE_SUFFIXES, ModelSettings

_MODEL_CACHE: dict = {}


def load_feature_model(ms: ModelSettings):
    """The :class:`~dreamvideo.models.FeatureModel` named by ``ms`` (a model name or a model file), on
    ``ms.backend`` and ``ms.device``."""
    from .backends import activate

    activate(ms.backend, ms.device)  # before models.py imports Keras
    from .models import load_model
    from .precision import resolve

    key = (ms.model, ms.weights, ms.precision, ms.backend, ms.device)
    if key not in _MODEL_CACHE:
        is_file = Path(ms.model).suffix in MODEL_FILE_SUFFIXES
        if not is_file:  # a wrong name or weights file is told before anything is measured
            from .catalog import model_spec

            spec = model_spec(ms.model)
            if spec.name != "inception5h":
                _check_weights_file(ms.weights, spec)
        # A saved model computes as it was saved: nothing to measure.
        precision = "float32" if is_file and Path(ms.model).suffix != ".pb" else resolve(ms.precision)
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = load_model(
            ms.model if not is_file else "file", ms.weights, model_file=ms.model if is_file else None,
            precision=precision)
    return _MODEL_CACHE[key]


def _check_weights_file(weights, spec) -> None:
    from .errors import UserError

    if weights in (None, "", "imagenet", "random", "none"):
        return
    path = Path(weights)
    if not path.is_file():
        raise UserError(f"weights file {weights} not found; pass an existing .weights.h5/.h5 file or imagenet as "
                        f"`weights`")
    with open(path, "rb") as f:
        if f.read(8) != b"\x89HDF\r\n\x1a\n":
            raise UserError(f"cannot load weights {weights} into {spec.name}: not an HDF5 file; pass a weights file "
                            f"saved from keras.applications.{spec.builder} as `weights`")


def build_dreamer(ms: ModelSettings):
    """A :class:`~dreamvideo.engine.Dreamer` for these settings (validates layers and channels)."""
    from .images import read_image
    from .objectives import guide, parse_objective

    model = load_feature_model(ms)
    from .engine import Dreamer

    objective = parse_objective(ms.layers or model.default_layers, mode=ms.objective)
    guide_img = None
    if ms.guide:
        guide_img = read_image(ms.guide)
        # With a guide image every layer term becomes a guide term of the same weight.
        terms = [guide(t.layer, t.weight) for t in objective.terms]
        objective = sum(terms[1:], terms[0])
    return Dreamer(model, objective, guide_image=guide_img)


def schedule_terms(ms: ModelSettings, sched):
    """The objective's terms a :class:`~dreamvideo.timeline.Timeline` needs to match `layer_weights` to
    layers (None without any): read from the layers text, so that a timeline, and every usage error
    of its schedules, comes before the model loads (only a model file without `layers` is loaded)."""
    return objective_terms(ms) if sched.layer_weights.strip() else None


def model_min_side(ms: ModelSettings) -> int:
    """The smallest input side of the model ``ms`` names, without loading it: a named model's from
    the catalog; a whole saved model file takes any size from 16 px (as :mod:`dreamvideo.models` loads it)."""
    from .catalog import MODELS

    if ms.model in MODELS:
        return MODELS[ms.model].min_side
    return MODELS["inception5h"].min_side if str(ms.model).endswith(".pb") else 16


def objective_terms(ms: ModelSettings):
    """The objective's terms without loading the model where the layers are known (named models)."""
    from .objectives import parse_objective
    from .settings import MODEL_NAMES

    if ms.layers or ms.model in MODEL_NAMES:
        from .catalog import MODELS  # no Keras: the backend is not chosen yet

        return parse_objective(ms.layers or MODELS[ms.model].default_layers, mode=ms.objective).terms
    return build_dreamer(ms).objective.terms
