"""Shared test helpers: tiny random models, the offline ImageNet weights, photos, stopping servers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
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


def inception_like_graph(path: Path) -> Path:
    """A small frozen graph with every op of inception5h's feature layers (Conv2D, BiasAdd, Relu, MaxPool,
    LRN, AvgPool, ConcatV2) and a constant division, named like inception5h. Needs TensorFlow."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    rng = np.random.default_rng(1)
    c = lambda *shape: tf.constant(rng.normal(0, 0.3, shape).astype(np.float32))
    w0, b0, w1, w2, b2 = c(3, 3, 3, 8), c(8), c(1, 1, 8, 6), c(3, 3, 8, 4), c(4)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def net(x):
        x = x / 64.0
        a = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w0, 2, "SAME"), b0, name="conv2d0_pre_relu"), name="conv2d0")
        p = tf.nn.max_pool2d(a, 3, 2, "SAME", name="maxpool0")
        n = tf.nn.local_response_normalization(p, depth_radius=2, bias=1.0, alpha=1e-3, beta=0.75,
                                               name="localresponsenorm0")
        m1 = tf.nn.relu(tf.nn.conv2d(n, w1, 1, "SAME"), name="mixed3a_1x1")
        m2 = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(n, w2, 1, "SAME"), b2), name="mixed3a_3x3")
        m = tf.concat([m1, m2], axis=3, name="mixed3a")
        return tf.nn.avg_pool2d(m, 3, 1, "SAME", name="avgpool0")

    gd = convert_variables_to_constants_v2(net.get_concrete_function()).graph.as_graph_def()
    path.write_bytes(gd.SerializeToString())
    return path


GRAPH_LAYERS = ("conv2d0", "maxpool0", "localresponsenorm0", "mixed3a", "avgpool0")


def graph_activations(pb: Path, x: np.ndarray) -> dict:
    """The frozen graph's own activations (TensorFlow) at GRAPH_LAYERS for a batch ``x`` of graph input."""
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(Path(pb).read_bytes())
    inp = next(n.name for n in gd.node if n.op == "Placeholder")

    def imports(t):
        tf.compat.v1.import_graph_def(gd, input_map={inp: t}, name="g")

    f = tf.compat.v1.wrap_function(imports, [tf.TensorSpec([None, None, None, 3], tf.float32)])
    fn = f.prune(feeds=f.inputs[0], fetches=[f.graph.get_tensor_by_name(f"g/{n}:0") for n in GRAPH_LAYERS])
    return dict(zip(GRAPH_LAYERS, (np.asarray(a) for a in fn(tf.constant(x)))))


def ui_media(d: Path, song_seconds: float) -> Path:
    """What the web page's tests upload, in folder ``d``: cat.png (151x100), tiny.keras and a
    220 Hz song.wav of ``song_seconds``."""
    import imageio.v3 as iio

    from conftest import ffmpeg

    iio.imwrite(d / "cat.png", photo("chelsea")[::3, ::3])
    tiny_model_file(d / "tiny.keras")
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=220:duration={song_seconds}", "-c:a", "pcm_s16le", d / "song.wav")
    assert (d / "song.wav").stat().st_size > 0
    return d


def stop_groups(procs, grace: float) -> None:
    """Stop the process group each of ``procs`` (started with ``start_new_session``) leads: SIGTERM,
    up to ``grace`` seconds for all of them together to exit, then SIGKILL to whatever of each group
    is left; each leader reaped."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.0, deadline - time.monotonic()))
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
