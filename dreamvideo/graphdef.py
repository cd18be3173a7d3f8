"""A TensorFlow frozen graph (GraphDef ``.pb``, e.g. the original DeepDream ``inception5h``) rebuilt
as a Keras model, so that it runs on every Keras backend.

The file is read with a small Protocol Buffers wire-format reader (no TensorFlow or protobuf
needed): only the fields a frozen convolutional graph uses. The ops of inception5h's feature layers
(Placeholder, Const, Identity, Conv2D, BiasAdd, Relu, Concat/ConcatV2, MaxPool, AvgPool, LRN) and a
few elementwise ones (Add, Sub, Mul, RealDiv with a constant) become Keras layers with the
graph's weights copied in; a node using any other op (the classifier heads: Reshape, MatMul,
Softmax) is left out, with everything that depends on it.

Convention: tensors are NHWC float32 like the graph's; a Keras layer is named after its node with
``/`` replaced by ``__`` (Keras forbids ``/``); :class:`LayerInfo` keeps the graph's own names.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .errors import UserError

DREAMABLE = {"Conv2D", "BiasAdd", "Relu", "Concat", "ConcatV2", "MaxPool", "AvgPool", "LRN"}
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16}


# ---------------------------------------------------------------- wire format

def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
        if shift > 70:
            raise ValueError("bad varint")


def _fields(buf):
    """Yield (field number, value) of one message: int for varint, bytes-like for the rest."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            v, i = buf[i:i + size], i + size
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i > n:
            raise ValueError("truncated message")
        yield num, v


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _packed_ints(v):
    if isinstance(v, int):
        return [_signed(v)]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(_signed(x))
    return out


def _packed_floats(v):
    return list(struct.unpack(f"<{len(v) // 4}f", bytes(v)))


def _shape(buf):
    dims = []
    for num, v in _fields(buf):
        if num == 2:
            size = -1
            for n2, v2 in _fields(v):
                if n2 == 1:
                    size = _signed(v2)
            dims.append(size)
    return dims


def _tensor(buf) -> np.ndarray:
    dtype, shape, content, floats, ints = 1, [], None, [], []
    for num, v in _fields(buf):
        if num == 1:
            dtype = v
        elif num == 2:
            shape = _shape(v)
        elif num == 4:
            content = bytes(v)
        elif num == 5:
            floats += _packed_floats(v) if not isinstance(v, int) else []
        elif num in (7, 10):
            ints += _packed_ints(v)
    np_dtype = _DTYPES.get(dtype)
    if np_dtype is None:
        return None
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        return np.frombuffer(content, np.dtype(np_dtype).newbyteorder("<")).astype(np_dtype).reshape(shape)
    vals = floats if np.issubdtype(np_dtype, np.floating) else ints
    arr = np.array(vals or [0], np_dtype)
    return (np.full(count, arr[-1], np_dtype) if arr.size < count else arr[:count]).reshape(shape)


def attr_value(buf):
    """A node attribute's value (an ``AttrValue`` message's bytes): a number, string, list, shape or array."""
    for num, v in _fields(buf):
        if num == 1:  # list
            out = []
            for n2, v2 in _fields(v):
                if n2 == 2:
                    out.append(bytes(v2).decode("utf-8", "replace"))
                elif n2 == 3:
                    out += _packed_ints(v2)
                elif n2 == 4:
                    out += _packed_floats(v2)
            return out
        if num == 2:
            return bytes(v).decode("utf-8", "replace")
        if num == 3:
            return _signed(v)
        if num == 4:
            return struct.unpack("<f", bytes(v))[0]
        if num in (5, 6):
            return v
        if num == 7:
            return _shape(v)
        if num == 8:
            return _tensor(v)
    return None


class Node:
    __slots__ = ("name", "op", "inputs", "attr")

    def __init__(self, name, op, inputs, attr):
        self.name, self.op, self.inputs, self.attr = name, op, inputs, attr


def parse_graph_def(data: bytes) -> list[Node]:
    """The nodes of a serialized GraphDef (raises ValueError on bytes that are not one)."""
    buf = memoryview(data)
    nodes = []
    for num, v in _fields(buf):
        if num != 1 or isinstance(v, int):
            continue
        name, op, inputs, attr = "", "", [], {}
        for n2, v2 in _fields(v):
            if n2 == 1:
                name = bytes(v2).decode()
            elif n2 == 2:
                op = bytes(v2).decode()
            elif n2 == 3:
                inputs.append(bytes(v2).decode())
            elif n2 == 5:
                key, value = "", None
                for n3, v3 in _fields(v2):
                    if n3 == 1:
                        key = bytes(v3).decode()
                    elif n3 == 2:
                        value = v3
                attr[key] = value  # parsed on demand: most are never read
        if not name or not op:
            raise ValueError("a node without name or op")
        nodes.append(Node(name, op, inputs, attr))
    return nodes


def read_graph_def(pb: str) -> list[Node]:
    p = Path(pb)
    if not p.is_file():
        raise UserError(f"frozen graph {pb} not found; pass the path of tensorflow_inception_graph.pb")
    try:
        nodes = parse_graph_def(p.read_bytes())
    except (ValueError, IndexError, UnicodeDecodeError, struct.error):
        nodes = []
    if not nodes:
        raise UserError(f"{pb} is not a TensorFlow frozen graph (.pb); pass tensorflow_inception_graph.pb")
    return nodes


# ---------------------------------------------------------------- to Keras

def _layers():
    import keras
    from keras import ops

    class BiasAdd(keras.layers.Layer):
        def __init__(self, bias, **kw):
            super().__init__(**kw)
            self._init = np.asarray(bias, np.float32)

        def build(self, shape):
            self.bias = self.add_weight(shape=self._init.shape, initializer="zeros", trainable=False, name="bias")
            self.bias.assign(self._init)

        def call(self, x):
            return x + ops.cast(self.bias, x.dtype)

    class LRN(keras.layers.Layer):
        """tf.nn.local_response_normalization: x / (bias + alpha * sum of x^2 over 2r+1 channels) ** beta."""

        def __init__(self, radius, bias, alpha, beta, **kw):
            super().__init__(**kw)
            self.r, self.k, self.alpha, self.beta = int(radius), float(bias), float(alpha), float(beta)

        def build(self, shape):
            c = int(shape[-1])
            idx = np.arange(c)
            band = (np.abs(idx[:, None] - idx[None, :]) <= self.r).astype(np.float32)
            self.band = self.add_weight(shape=(c, c), initializer="zeros", trainable=False, name="band")
            self.band.assign(band)

        def call(self, x):
            xf = ops.cast(x, "float32")  # a power of a sum of squares: float32 even under mixed precision
            s = ops.matmul(ops.square(xf), ops.cast(self.band, "float32"))
            return ops.cast(xf * ops.power(self.k + self.alpha * s, -self.beta), x.dtype)

    class Elementwise(keras.layers.Layer):
        """``x op c`` or ``c op x`` for a constant ``c``."""

        FN = {"Add": ops.add, "AddV2": ops.add, "Sub": ops.subtract, "Mul": ops.multiply, "RealDiv": ops.divide,
              "Maximum": ops.maximum, "Minimum": ops.minimum}

        def __init__(self, op, const, const_first, **kw):
            super().__init__(**kw)
            self.op, self.c, self.first = op, np.asarray(const, np.float32), const_first

        def call(self, x):
            c = ops.cast(ops.convert_to_tensor(self.c), x.dtype)
            f = self.FN[self.op]
            return f(c, x) if self.first else f(x, c)

    class Binary(keras.layers.Layer):
        def __init__(self, op, **kw):
            super().__init__(**kw)
            self.op = op

        def call(self, a, b):
            return Elementwise.FN[self.op](a, b)

    return BiasAdd, LRN, Elementwise, Binary


def keras_from_graph_def(nodes: list[Node]):
    """A Keras model ``NHWC image -> every dreamable node's output`` and their :class:`LayerInfo` s."""
    import keras

    from .catalog import LayerInfo, keras_name

    BiasAdd, LRN, Elementwise, Binary = _layers()
    by_name = {n.name: n for n in nodes}
    values: dict[str, object] = {}  # node -> keras tensor, numpy constant, or None (unsupported)
    inp = None

    def attr(node, key, default=None):
        v = node.attr.get(key)
        return default if v is None else attr_value(v)

    def padding(node):
        p = attr(node, "padding", "VALID")
        return p.lower() if p in ("SAME", "VALID") else None

    def value(ref: str):
        if ref.startswith("^"):
            return None
        name = ref.split(":")[0]
        if ref.count(":") and ref.split(":")[1] != "0":
            return None  # a second output: no supported op has one
        if name not in values:
            stack = [name]
            while stack:  # iterative post-order: graphs can be deep
                top = stack[-1]
                pending = [r.split(":")[0] for r in by_name[top].inputs if not r.startswith("^")
                           and r.split(":")[0] not in values and r.split(":")[0] in by_name] if top in by_name else []
                if pending:
                    stack.extend(p for p in pending if p not in stack)
                    continue
                stack.pop()
                if top not in values:
                    values[top] = convert(by_name[top]) if top in by_name else None
        return values[name]

    def is_tensor(v):
        return v is not None and not isinstance(v, np.ndarray)

    def convert(node):
        nonlocal inp
        op, kname = node.op, keras_name(node.name)
        args = [value(r) for r in node.inputs if not r.startswith("^")]
        if op == "Placeholder":
            if inp is not None:
                return None
            inp = keras.Input((None, None, 3), name=kname)
            return inp
        if op == "Const":
            return attr(node, "value")
        if any(a is None for a in args):
            return None
        if op in ("Identity", "StopGradient") and args:
            return args[0]
        if op == "Conv2D" and is_tensor(args[0]) and isinstance(args[1], np.ndarray):
            s = attr(node, "strides", [1, 1, 1, 1])
            d = attr(node, "dilations", [1, 1, 1, 1])
            if attr(node, "data_format", "NHWC") != "NHWC" or padding(node) is None:
                return None
            w = args[1].astype(np.float32)
            layer = keras.layers.Conv2D(w.shape[3], w.shape[:2], strides=tuple(s[1:3]), padding=padding(node),
                                        dilation_rate=tuple(d[1:3]), use_bias=False, name=kname)
            out = layer(args[0])
            layer.set_weights([w])
            return out
        if op == "BiasAdd" and is_tensor(args[0]) and isinstance(args[1], np.ndarray):
            return BiasAdd(args[1], name=kname)(args[0])
        if op in ("Relu", "Relu6") and is_tensor(args[0]):
            return keras.layers.ReLU(max_value=6.0 if op == "Relu6" else None, name=kname)(args[0])
        if op in ("MaxPool", "AvgPool") and is_tensor(args[0]) and padding(node):
            k, s = attr(node, "ksize"), attr(node, "strides")
            cls = keras.layers.MaxPooling2D if op == "MaxPool" else keras.layers.AveragePooling2D
            return cls(tuple(k[1:3]), tuple(s[1:3]), padding=padding(node), name=kname)(args[0])
        if op == "LRN" and is_tensor(args[0]):
            return LRN(attr(node, "depth_radius", 5), attr(node, "bias", 1.0), attr(node, "alpha", 1.0),
                       attr(node, "beta", 0.5), name=kname)(args[0])
        if op in ("Concat", "ConcatV2"):
            axis, parts = (args[0], args[1:]) if op == "Concat" else (args[-1], args[:-1])
            if not isinstance(axis, np.ndarray) or not all(is_tensor(p) for p in parts):
                return None
            axis = int(axis)
            if axis not in (3, -1):
                return None
            return keras.layers.Concatenate(axis=-1, name=kname)(parts) if len(parts) > 1 else parts[0]
        if op in Elementwise.FN and len(args) == 2:
            a, b = args
            if is_tensor(a) and is_tensor(b):
                return Binary(op, name=kname)(a, b)
            if is_tensor(a) or is_tensor(b):
                const = b if is_tensor(a) else a
                if const.ndim <= 1:
                    return Elementwise(op, const, is_tensor(b), name=kname)(a if is_tensor(a) else b)
        return None

    for n in nodes:
        value(n.name)
    if inp is None:
        raise UserError("the frozen graph has no input placeholder")
    infos, outputs = [], []
    for n in nodes:
        v = values.get(n.name)
        if (n.op in DREAMABLE and is_tensor(v) and len(v.shape) == 4 and v.shape[-1]
                and v._keras_history[0].name == keras_name(n.name)):  # its own layer, not a pass-through
            infos.append(LayerInfo(n.name, n.op, int(v.shape[-1])))
            outputs.append(v)
    if not outputs:
        return None, []
    return keras.Model(inp, outputs), infos
