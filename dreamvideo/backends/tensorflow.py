"""TensorFlow: the gradient step and its loop in one ``tf.function`` with an in-graph while loop.

The graph takes the image with unknown height and width and every other input as a tensor, so one
trace serves every octave, frame size, step count and scheduled weight (``trace_count`` stays 1).
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

name = "tensorflow"
DATA_FORMAT = "channels_last"  # TensorFlow's CPU convolutions are channels-last only


def prepare(device: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def start(device: str) -> str:
    """Import TensorFlow (stderr is quieted by the caller); returns the device used: cpu or gpu."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")  # the CUDA probe prints once, here
    if device == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
        return "cpu"
    return "gpu" if gpus else "cpu"


def device_name(device: str) -> str:
    import tensorflow as tf

    if device == "gpu":
        for gpu in tf.config.list_physical_devices("GPU"):
            return tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
    return cpu_name()


def versions() -> str:
    import keras
    import tensorflow as tf

    return f"tensorflow {tf.__version__}, keras {keras.__version__}"


def cpu_name() -> str:
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


class Loop:
    """Tiled gradient and ascent loop of ``model`` (a selected FeatureModel) for objective ``terms``."""

    pad_multiple = 1  # shapes are dynamic in the graph: no padding needed

    def __init__(self, model, terms, guides):
        import tensorflow as tf

        from .common import objective_loss

        self.trace_count = 0
        self._model = model
        guides = {k: tf.constant(v) for k, v in guides.items()}
        self._loss = lambda acts, weights: objective_loss(terms, guides, acts, weights)
        spec = [
            tf.TensorSpec([None, None, 3], tf.float32),  # image, unit space
            tf.TensorSpec([], tf.int32),  # steps
            tf.TensorSpec([], tf.float32),  # step size
            tf.TensorSpec([], tf.int32),  # tile size
            tf.TensorSpec([None, 2], tf.int32),  # roll per step (engine.roll_schedule)
            tf.TensorSpec([None], tf.float32),  # term weights
            tf.TensorSpec([], tf.float32),  # max loss (inf = never stop early)
            tf.TensorSpec([None, None], tf.float32),  # per-pixel step scale
        ]
        self._ascend = tf.function(self._ascend_graph, input_signature=spec)
        self._grad = tf.function(self._tiled_gradient,
                                 input_signature=[spec[0], spec[3], spec[5], tf.TensorSpec([2], tf.int32)])

    def _tile_grad(self, tile, weights):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(tile)
            loss = self._loss(self._model(tile[None]), weights)
        return tape.gradient(loss, tile), loss

    def _tiled_gradient(self, img, tile, weights, shift):
        """Gradient of the objective w.r.t. ``img`` rolled by ``shift``, over common.tile_bounds' tiles.

        Each tile's loss is weighted by its share of the area, so a tiled gradient matches the
        whole-image one away from tile borders. Returns (gradient, loss) in the unrolled frame.
        """
        import tensorflow as tf

        rolled = tf.roll(img, shift, axis=[0, 1])
        h, w = tf.shape(img)[0], tf.shape(img)[1]
        ny, nx = (h + tile - 1) // tile, (w + tile - 1) // tile
        loss = tf.constant(0.0)
        area = tf.cast(h * w, tf.float32)
        # The tiles partition the image, so their gradients are concatenated (rows of columns), not
        # padded to full size and summed: that cost a full-image buffer per tile (O(tiles x pixels) time,
        # and ~8 GB for an 8K frame as the loop ran iterations in parallel).
        shape = tf.TensorShape([None, None, 3])
        rows = tf.TensorArray(tf.float32, size=ny, infer_shape=False, element_shape=shape)
        for iy in tf.range(ny):
            y0, y1 = iy * h // ny, (iy + 1) * h // ny
            cols = tf.TensorArray(tf.float32, size=nx, infer_shape=False, element_shape=shape)
            for ix in tf.range(nx):
                x0, x1 = ix * w // nx, (ix + 1) * w // nx
                g, l = self._tile_grad(rolled[y0:y1, x0:x1], weights)
                frac = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / area
                cols = cols.write(ix, tf.transpose(g * frac, [1, 0, 2]))  # TensorArray concatenates on axis 0
                loss += l * frac
            rows = rows.write(iy, tf.transpose(cols.concat(), [1, 0, 2]))
        return tf.roll(rows.concat(), -shift, axis=[0, 1]), loss

    def _ascend_graph(self, img, steps, step_size, tile, shifts, weights, max_loss, step_map):
        import tensorflow as tf

        self.trace_count += 1  # runs only while tracing

        def body(i, img, loss):
            g, loss = self._tiled_gradient(img, tile, weights, shifts[i])
            g /= tf.maximum(tf.reduce_mean(tf.abs(g)), 1e-6)
            return i + 1, tf.clip_by_value(img + step_size * step_map[..., None] * g, -1.0, 1.0), loss

        _, img, loss = tf.while_loop(lambda i, _, loss: tf.logical_and(i < steps, loss <= max_loss),
                                     body, [tf.constant(0), img, tf.constant(-float("inf"))])
        return img, loss

    def gradient(self, img, tile, weights, shift, hw=None):
        import tensorflow as tf

        g, loss = self._grad(tf.constant(img), tf.constant(tile), tf.constant(weights), tf.constant(shift))
        return g.numpy(), float(loss)

    def ascend(self, img, steps, step_size, tile, shifts, weights, max_loss, step_map, hw=None):
        import tensorflow as tf

        out, loss = self._ascend(tf.constant(img), tf.constant(steps), tf.constant(step_size, tf.float32),
                                 tf.constant(tile), tf.constant(shifts.reshape(-1, 2)), tf.constant(weights),
                                 tf.constant(max_loss, tf.float32), tf.constant(step_map))
        return out.numpy(), float(loss)


def building():
    """While Keras builds a model (nothing to change on this backend)."""
    import contextlib

    return contextlib.nullcontext()
