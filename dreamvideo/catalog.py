"""The named networks dreamvideo knows and what describes a model's layers, without importing any
model framework (the CLI lists them before the backend is chosen)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass
class LayerInfo:
    """One dreamable layer: its name (the graph's own for inception5h), Keras class or graph op, channels."""

    name: str
    kind: str
    channels: int


def keras_name(name: str) -> str:
    """A layer name as Keras stores it: Keras layer names cannot hold '/', which TensorFlow graph
    names (inception5h) do."""
    return name.replace("/", "__")


@dataclass(frozen=True)
class ModelSpec:
    """A named network: how to build it, its preprocessing, default layers and smallest input side."""

    name: str
    builder: str
    preprocess: str
    default_layers: str
    min_side: int = 32


MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        # The classic keras-io DeepDream settings.
        ModelSpec("inception_v3", "InceptionV3", "tf", "mixed4:1.0,mixed5:1.5,mixed6:2.0,mixed7:2.5", 75),
        ModelSpec("inception_resnet_v2", "InceptionResNetV2", "tf", "mixed_5b:1.0,mixed_6a:1.5,block17_5_ac:2.0", 75),
        ModelSpec("vgg16", "VGG16", "caffe", "block4_conv3:1.0,block5_conv2:1.0"),
        ModelSpec("vgg19", "VGG19", "caffe", "block4_conv4:1.0,block5_conv2:1.0"),
        ModelSpec("resnet50", "ResNet50", "caffe", "conv3_block4_out:1.0,conv4_block3_out:1.5"),
        ModelSpec("mobilenet_v2", "MobileNetV2", "tf", "block_10_expand_relu:1.0,block_13_expand_relu:1.0"),
        ModelSpec("efficientnet_b0", "EfficientNetB0", "raw", "block4a_expand_activation:1.0,block5a_expand_activation:1.0"),
        ModelSpec("inception5h", "", "inception5h", "mixed4c:1.0", 32),
    )
}
DEFAULT_MODEL = "inception_v3"


def suggest(name: str, choices) -> str:
    """``"; did you mean a, b?"`` for the nearest valid names, or ``""``."""
    close = difflib.get_close_matches(str(name), list(choices), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def model_spec(name: str) -> ModelSpec:
    """The named network, or a one-line UserError naming the nearest names."""
    from .errors import UserError

    if name not in MODELS:
        raise UserError(f"unknown model {name!r}{suggest(name, MODELS)}; choose one of {', '.join(MODELS)}")
    return MODELS[name]
