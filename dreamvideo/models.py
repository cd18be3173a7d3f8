"""Models to dream with: keras.applications CNNs by name, saved Keras models, and the classic
GoogLeNet ``inception5h`` frozen graph of the original DeepDream.

Convention: a :class:`FeatureModel` takes a batch of images in *unit space* — float32 RGB in
[-1, 1] (``pixel / 127.5 - 1``) — applies the network's own preprocessing inside the graph, and
returns a dict ``{layer_name: activation}`` for the requested layers only, both in the model's
``data_format``: ``channels_last`` ``(N, H, W, 3)`` -> ``(N, h, w, C)`` on TensorFlow and JAX (and for
model files and inception5h everywhere), ``channels_first`` ``(N, 3, H, W)`` -> ``(N, C, h, w)`` for the
named networks on PyTorch, whose convolutions are channels-first (Keras would permute every
activation around every convolution otherwise). :meth:`FeatureModel.numpy` takes and returns
channels-last arrays whatever the format. Working in one space for every model makes
``--step-size`` mean the same thing for all of them (0.01 is the keras-io DeepDream default).
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import backends
from .catalog import DEFAULT_MODEL, MODELS, LayerInfo, ModelSpec, keras_name, model_spec, suggest  # noqa: F401  (re-exported)
from .errors import DreamFailure, UserError



# Keras fixes its backend on import: choose it first (the default one unless build.py chose already).
_backend = backends.current()
import keras  # noqa: E402
from keras import ops  # noqa: E402

# Preprocessing from unit space [-1, 1] to what each network was trained on, per data format.
# keras.ops only, so that they run inside every backend's graph or tape.
_CAFFE_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
_PREPROCESS = {
    "tf": lambda x, first: x,  # Inception, MobileNet: already [-1, 1]
    "caffe": lambda x, first: (ops.flip(x, axis=1 if first else -1) + 1.0) * 127.5  # VGG, ResNet: BGR, mean
    - (_CAFFE_MEAN[:, None, None] if first else _CAFFE_MEAN),
    "raw": lambda x, first: (x + 1.0) * 127.5,  # EfficientNet rescales inside the model
    "inception5h": lambda x, first: (x + 1.0) * 127.5 - 117.0,  # the original DeepDream graph
}
#: Precision -> the Keras dtype policy a model is built under.
DTYPE_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


INCEPTION5H_URL = "https://storage.googleapis.com/download.tensorflow.org/models/inception5h.zip"
INCEPTION5H_PB = "tensorflow_inception_graph.pb"


@dataclass
class FeatureModel:
    """A callable ``unit-space image batch -> {layer: activation}`` plus what the engine needs to know.

    ``layers`` lists every dreamable layer (name, kind, channels); ``select(names)`` returns a model
    that computes only up to the deepest requested layer.
    """

    name: str
    preprocess: str
    min_side: int
    layers: list[LayerInfo]
    default_layers: str
    precision: str = "float32"
    net: object = field(default=None, repr=False)  # the whole Keras network the layers come from
    names: tuple = ()
    keras_model: object = field(default=None, repr=False)  # after select(): the pruned (folded) Keras model
    data_format: str = "channels_last"
    #: A keras.applications network (not a model file or a frozen graph): the backends' graph
    #: rewrites are checked on these (dreamvideo.backends.tensorflow, _fast_conv_patch).
    applications: bool = False

    @property
    def channels_first(self) -> bool:
        return self.data_format == "channels_first"

    def preprocess_fn(self, x):
        """Unit space -> the network's input space, in keras.ops (``x`` in the model's data format)."""
        return _PREPROCESS[self.preprocess](x, self.channels_first)

    def layer(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        raise UserError(
            f"model {self.name} has no layer {name!r}{suggest(name, [i.name for i in self.layers])}"
            f" (list them with: dreamvideo layers --model {self.name})"
        )

    def select(self, names) -> "FeatureModel":
        """A copy that outputs exactly ``names`` and stops computing at the deepest of them."""
        names = tuple(dict.fromkeys(names))
        for n in names:
            self.layer(n)
        out = FeatureModel(self.name, self.preprocess, self.min_side, self.layers, self.default_layers,
                           self.precision, self.net, names, data_format=self.data_format,
                           applications=self.applications)
        # A functional sub-model is pruned to the ops its outputs need: nothing past the deepest layer.
        sub = keras.Model(self.net.input, [self.net.get_layer(keras_name(n)).output for n in names])
        with _backend.building():
            out.keras_model = _fold_batchnorm(sub, keep={keras_name(n) for n in names})
        return out

    def __call__(self, x):
        """``x``: a unit-space batch in the model's data format (array or backend tensor). Returns
        {layer: activation} in that format, as backend tensors in the compute dtype."""
        if self.keras_model is None:
            raise RuntimeError("call select(layers) first")
        return dict(zip(self.names, _as_list(self.keras_model(self.preprocess_fn(x), training=False))))

    def numpy(self, x) -> dict:
        """``x`` (N, H, W, 3) channels-last, whatever the model's format; float32 NumPy activations
        (N, h, w, C)."""
        x = np.asarray(x, np.float32)
        if self.channels_first:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        acts = {k: ops.convert_to_numpy(ops.cast(v, "float32")) for k, v in self(ops.convert_to_tensor(x)).items()}
        return {k: v.transpose(0, 2, 3, 1) if self.channels_first else v for k, v in acts.items()}


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class _FoldedAway(keras.layers.Layer):
    """Stands in for a BatchNormalization folded into the convolution before it."""

    def call(self, x, training=None, mask=None):
        return x


def _fold_batchnorm(net, keep=()):
    """A copy of ``net`` (same inputs and outputs) with each ``Conv2D -> BatchNormalization`` pair
    folded into one biased convolution.

    The engine only runs inference, where BN is a fixed per-channel affine map; folding it into the
    kernel spares two elementwise passes per layer forward and backward (and, under mixed bf16, the
    casts around BN, which Keras computes in float32), so oneDNN runs conv+bias+relu as one op:
    ~20% less time per bf16 step of InceptionV3 (bench/RESULTS.md). Other layers are shared, not
    copied; a conv in ``keep`` (a dreamed layer) is left alone so its output keeps its meaning.
    Any model this does not fit is returned unchanged.
    """
    pairs = {}
    for bn in net.layers:
        try:
            conv = bn.input._keras_history[0]
            if (isinstance(bn, keras.layers.BatchNormalization) and isinstance(conv, keras.layers.Conv2D)
                    and bn.axis in ((1,) if conv.data_format == "channels_first" else (-1, 3))
                    and conv.get_config()["activation"] == "linear" and conv.name not in keep
                    and len(conv._outbound_nodes) == 1 and len(bn._inbound_nodes) == 1):
                pairs[conv.name] = bn
        except (AttributeError, ValueError, IndexError):
            continue
    if not pairs:
        return net
    folded = {bn.name for bn in pairs.values()}

    def clone(layer):
        if layer.name in pairs:
            return layer.__class__.from_config({**layer.get_config(), "use_bias": True})
        if layer.name in folded:
            return _FoldedAway(name=layer.name, dtype=layer.dtype_policy)
        return layer  # shared, weights and all

    try:
        new = keras.models.clone_model(net, clone_function=clone)
        for name, bn in pairs.items():
            conv = net.get_layer(name)
            mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
            s = (bn.gamma.numpy() if bn.scale else 1.0) / np.sqrt(var + bn.epsilon)
            b = conv.bias.numpy() if conv.use_bias else 0.0
            new.get_layer(name).set_weights([conv.kernel.numpy() * s, (b - mean) * s + (bn.beta.numpy() if bn.center else 0.0)])
        return new
    except Exception:  # an exotic graph: dream unfolded rather than fail
        return net


def dreamable_layers(model, data_format: str = "channels_last") -> list[LayerInfo]:
    """Every layer of the Keras ``model`` with a 4-D (image-like) output, and its channel count."""
    axis = 1 if data_format == "channels_first" else -1
    out = []
    for layer in model.layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4 and shape[axis] and not isinstance(layer, keras.layers.InputLayer):
            out.append(LayerInfo(layer.name, type(layer).__name__, int(shape[axis])))
    return out


def _check_precision(precision: str) -> None:
    if precision == "auto":  # measuring needs the engine, which needs a model: the caller measures first
        raise ValueError("load_model takes a concrete precision; resolve auto first (dreamvideo.precision.resolve)")
    if precision not in DTYPE_POLICY:
        raise UserError(f"unknown precision {precision!r}; use auto, float32, bfloat16 or float16")


def load_model(name: str = DEFAULT_MODEL, weights: str | None = "imagenet", model_file: str | None = None,
               precision: str = "float32") -> FeatureModel:
    """Build a :class:`FeatureModel`.

    ``name``: a key of :data:`MODELS`. ``weights``: ``"imagenet"`` (Keras download and cache),
    ``"random"``/``None`` (untrained, for tests and speed runs), or a ``.weights.h5`` / ``.h5`` file.
    ``model_file``: a whole ``.keras`` / ``.h5`` model (then ``name`` is only a label, preprocessing "tf"),
    or a ``.pb`` frozen graph for inception5h. ``precision``: float32, bfloat16 or float16 (``auto`` is
    measured by :func:`dreamvideo.precision.resolve` before a model is built, in :mod:`dreamvideo.build`).
    """
    _check_precision(precision)
    with _backend.building():
        return _load_model(name, weights, model_file, precision)


def _load_model(name, weights, model_file, precision) -> FeatureModel:
    if model_file is not None and not str(model_file).endswith(".pb"):
        return _load_model_file(model_file, "float32")  # a saved model computes as it was saved
    if model_file is not None:
        return _load_model_file(model_file, precision)
    spec = model_spec(name)
    if spec.name == "inception5h":
        pb = weights if weights not in (None, "imagenet", "random") else _download_inception5h()
        return _load_frozen_graph(pb, spec, precision)
    policy, fmt = keras.config.dtype_policy(), keras.config.image_data_format()
    keras.config.set_dtype_policy(DTYPE_POLICY[precision])
    keras.config.set_image_data_format(_backend.DATA_FORMAT)  # the applications build either format
    try:
        net = _build_keras(spec, weights)
    finally:
        keras.config.set_dtype_policy(policy)
        keras.config.set_image_data_format(fmt)
    return FeatureModel(spec.name, spec.preprocess, spec.min_side, dreamable_layers(net, _backend.DATA_FORMAT),
                        spec.default_layers, precision, net, data_format=_backend.DATA_FORMAT, applications=True)


def _build_keras(spec: ModelSpec, weights):
    build = getattr(keras.applications, spec.builder)
    kw = dict(include_top=False,
              input_shape=(3, None, None) if keras.config.image_data_format() == "channels_first" else (None, None, 3))
    if weights in (None, "random", "none"):
        return build(weights=None, **kw)
    if weights == "imagenet":
        try:
            return build(weights="imagenet", **kw)
        except Exception as e:  # Keras raises a bare Exception on a failed fetch
            m = re.search(r"(https?://\S+?)(?::|\s|$)", str(e))
            fname = m.group(1).rsplit("/", 1)[-1] if m else f"the {spec.builder} notop weights"
            raise DreamFailure(
                f"could not download ImageNet weights for {spec.name} (offline?): put {fname} in "
                f"{Path(os.environ.get('KERAS_HOME', Path.home() / '.keras')) / 'models'}/ or pass a weights file (`weights`)"
            ) from None
    path = Path(weights)
    if not path.is_file():
        raise UserError(f"weights file {weights} not found; pass an existing .weights.h5/.h5 file or imagenet as `weights`")
    net = build(weights=None, **kw)
    try:
        net.load_weights(str(path))
        return net
    except Exception:
        pass
    # A file saved from the full classifier: load it there, then copy layer by layer by name.
    try:
        full = build(weights=None, include_top=True)
        full.load_weights(str(path))
    except Exception as e:
        raise UserError(f"cannot load weights {weights} into {spec.name}: {_first_line(e)}; "
                        f"pass a weights file saved from keras.applications.{spec.builder}") from None
    for layer in net.layers:
        if layer.weights:
            layer.set_weights(full.get_layer(layer.name).get_weights())
    return net


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _load_model_file(path: str, precision: str) -> FeatureModel:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"model file {path} not found; pass a .keras, .h5 or .pb file")
    if p.suffix == ".pb":
        return _load_frozen_graph(str(p), MODELS["inception5h"], precision)
    try:
        net = keras.saving.load_model(str(p), compile=False)
    except Exception as e:
        raise UserError(f"cannot load model {path}: {_first_line(e)}; pass a Keras .keras or .h5 model file") from None
    # Any input size: rebuild the graph on a (None, None, C) input when the saved one is fixed.
    if tuple(net.input_shape[1:3]) != (None, None):
        try:
            net = _resize_input(net)
        except Exception:
            pass
    fmt = "channels_last"
    if _backend.DATA_FORMAT == "channels_first":
        first = _channels_first(net)
        if first is not None:
            net, fmt = first, "channels_first"
    layers = dreamable_layers(net, fmt)
    if not layers:
        raise UserError(f"model {path} has no layer with a 4-D (image-like) output to dream on")
    default = f"{layers[len(layers) // 2].name}:1.0"
    return FeatureModel(p.stem, "tf", 16, layers, default, "float32", net, data_format=fmt)


def _channels_first(net):
    """A channels-first copy of the channels-last functional ``net``, same weights and names, when
    each of its layers is one whose meaning the layout does not change (convolutions, pooling,
    padding, batch norm, concatenation, elementwise); else None (it then runs as saved)."""
    L = keras.layers
    with_format = (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D, L.Conv2DTranspose, L.MaxPooling2D,
                   L.AveragePooling2D, L.GlobalAveragePooling2D, L.GlobalMaxPooling2D, L.ZeroPadding2D,
                   L.Cropping2D, L.UpSampling2D)
    with_axis = (L.BatchNormalization, L.Concatenate)
    free = (L.Activation, L.ReLU, L.LeakyReLU, L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum,
            L.Dropout, L.InputLayer)
    if not isinstance(net, keras.Model) or len(net.inputs) != 1 or len(net.input.shape) != 4:
        return None
    for layer in net.layers:
        cfg = layer.get_config()
        if not (type(layer) in free or (type(layer) in with_format and cfg.get("data_format") == "channels_last")
                or (type(layer) in with_axis and cfg.get("axis") in (-1, 3))):
            return None

    def clone(layer):
        cfg = layer.get_config()
        if type(layer) in with_format:
            cfg["data_format"] = "channels_first"
        elif type(layer) in with_axis:
            cfg["axis"] = 1
        return layer.__class__.from_config(cfg)

    try:
        _, h, w, c = net.input.shape
        new = keras.models.clone_model(net, input_tensors=keras.Input((c, h, w)), clone_function=clone)
        new.set_weights(net.get_weights())
        return new
    except Exception:  # an exotic graph: run it as saved
        return None


def _resize_input(net):
    config = net.get_config()
    config["layers"][0]["config"]["batch_shape"] = (None, None, None, net.input_shape[-1])
    new = net.__class__.from_config(config)
    new.set_weights(net.get_weights())
    return new


# ---- the original DeepDream GoogLeNet (inception5h frozen graph) ----

def _download_inception5h() -> str:
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / "inception5h"
    pb = home / INCEPTION5H_PB
    if pb.is_file():
        return str(pb)
    try:
        zpath = keras.utils.get_file("inception5h.zip", INCEPTION5H_URL, cache_dir=str(home.parent.parent),
                                     cache_subdir="models/inception5h")
        with zipfile.ZipFile(zpath) as z:
            z.extract(INCEPTION5H_PB, home)
    except Exception:
        raise DreamFailure(f"could not download inception5h (offline?): put {INCEPTION5H_PB} in {home}/ "
                           f"or pass PATH/{INCEPTION5H_PB} as `weights`") from None
    return str(pb)


def _load_frozen_graph(pb: str, spec: ModelSpec, precision: str = "float32") -> FeatureModel:
    """The frozen GraphDef rebuilt as a Keras model (weights copied), so it runs on every backend."""
    from .graphdef import keras_from_graph_def, read_graph_def

    gd = read_graph_def(pb)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(DTYPE_POLICY[precision])
    try:
        net, layers = keras_from_graph_def(gd)
    finally:
        keras.config.set_dtype_policy(policy)
    if not layers:
        raise UserError(f"frozen graph {pb} has no convolutional layers to dream on")
    names = {i.name for i in layers}
    default = spec.default_layers if all(t.split(":")[0] in names for t in spec.default_layers.split(",")) \
        else f"{layers[len(layers) // 2].name}:1.0"
    return FeatureModel(spec.name, spec.preprocess, spec.min_side, layers, default, precision, net)
