"""TensorFlow: the gradient step and its loop in one ``tf.function`` with an in-graph while loop.

The graph takes the image with unknown height and width and every other input as a tensor, so one
trace serves every octave, frame size, step count and scheduled weight (``trace_count`` stays 1).

On a CPU in bfloat16 the frozen graph has two runners that give the same bytes: *wide*, the ``tf.function``
on TensorFlow's own thread pools (every op split over all cores), and *narrow*, the same graph in
a session of its own whose ops run one thread each, independent ops side by side. A small image's
ops are too small to split: each one's fork and join over the cores cost more than it saves (an
InceptionV3 step at 113x64 ran 1.7x faster narrow on a 2-core EPYC, a 640x360 one 1.15x slower;
bench/RESULTS.md). Which runner is faster at which size is measured as the dreams come
(:class:`_Chooser`), not assumed.
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
    # Each TensorFlow device (and so the narrow runner's session) gets thread pools of its own
    # instead of sharing the process's first ones; read when TensorFlow creates its devices.
    os.environ.setdefault("TF_OVERRIDE_GLOBAL_THREADPOOL", "1")


def _runners(precision: str) -> tuple[str, ...]:
    """The runners the chooser may pick from: both on a CPU with several cores in bfloat16;
    ``DREAMVIDEO_TF_NARROW`` ``0`` keeps the wide one only, ``only`` the narrow one only (benchmarks, tests).

    Float32 keeps the wide runner only: oneDNN's float32 convolutions round differently with one
    thread than with several (1 level in 0.007% of a 480x270 MobileNetV2 dream's values), and the
    choice is made by timing, so the same dream could differ between runs. Its bfloat16 ones gave
    the same bytes at every size tried (tests/test_engine.py).
    """
    from . import active

    mode = os.environ.get("DREAMVIDEO_TF_NARROW", "auto")
    if mode == "only":
        return ("narrow",)
    if mode == "0" or precision != "bfloat16" or active()[1] != "cpu" or (os.cpu_count() or 1) < 2:
        return ("wide",)
    return ("wide", "narrow")


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


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(i) for i in v)


def _forward_grad_conv(x, kernel, padding: str, depthwise: bool):
    """A stride-1 2-D convolution (channels-last, odd kernel) whose input gradient is computed as a
    forward convolution with the kernel flipped (and, for a full convolution, its channels swapped).

    Why: oneDNN caches the reordered kernel of a forward convolution whose kernel is a constant
    (the graph's weights are frozen, :meth:`Loop._frozen`), but reorders the kernel of a
    backward-data convolution at every call. On a small image that reorder was ~40% of a step
    (InceptionV3 at 96x64, ``ONEDNN_VERBOSE``; bench/RESULTS.md). The kernel's gradient is never
    asked for (the engine differentiates with respect to the image only).
    """
    import tensorflow as tf

    x, kernel = tf.convert_to_tensor(x), tf.convert_to_tensor(kernel)
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    # The transposed convolution of a stride-1 one: "same" with an odd kernel pads symmetrically, so it
    # is its own transpose; "valid" becomes a "full" convolution (k - 1 pixels of padding each side).
    back_pad = "SAME" if padding == "SAME" else [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]]

    @tf.custom_gradient
    def conv(x, k):
        if depthwise:
            y = tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], padding)
        else:
            y = tf.nn.conv2d(x, k, 1, padding)

        def grad(dy):
            flipped = tf.reverse(k, [0, 1])
            if depthwise:  # a depthwise kernel (kh, kw, C, 1) keeps its layout
                if back_pad != "SAME":
                    dy = tf.pad(dy, back_pad)
                return tf.nn.depthwise_conv2d(dy, flipped, [1, 1, 1, 1], "SAME" if back_pad == "SAME" else "VALID"), \
                    tf.zeros_like(k)
            return tf.nn.conv2d(dy, tf.transpose(flipped, [0, 1, 3, 2]), 1, back_pad), tf.zeros_like(k)

        return y, grad

    return conv(x, kernel)


def _fast_conv_patch():
    """A context in which Keras' TensorFlow convolutions (stride 1, no dilation, channels-last, odd
    kernels, one group) take their input gradient from :func:`_forward_grad_conv`; any other
    convolution, or a Keras whose internals differ, runs as Keras has it."""
    import contextlib

    try:
        from keras.src.backend import nn as knn
        conv0, depthwise0 = knn.conv, knn.depthwise_conv
    except (ImportError, AttributeError):
        return contextlib.nullcontext()

    def fits(inputs, kernel, strides, padding, data_format, dilation_rate, groups_ok):
        return (len(inputs.shape) == 4 and len(kernel.shape) == 4 and data_format in (None, "channels_last")
                and _pair(strides) == (1, 1) and _pair(dilation_rate or 1) == (1, 1)
                and str(padding).upper() in ("SAME", "VALID") and int(kernel.shape[0]) % 2 == 1
                and int(kernel.shape[1]) % 2 == 1 and groups_ok)

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        if fits(inputs, kernel, strides, padding, data_format, dilation_rate,
                inputs.shape[-1] is not None and inputs.shape[-1] == kernel.shape[-2]):
            return _forward_grad_conv(inputs, kernel, str(padding).upper(), False)
        return conv0(inputs, kernel, strides, padding, data_format, dilation_rate)

    def depthwise(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        if fits(inputs, kernel, strides, padding, data_format, dilation_rate, int(kernel.shape[-1]) == 1):
            return _forward_grad_conv(inputs, kernel, str(padding).upper(), True)
        return depthwise0(inputs, kernel, strides, padding, data_format, dilation_rate)

    @contextlib.contextmanager
    def patched():
        knn.conv, knn.depthwise_conv = conv, depthwise
        try:
            yield
        finally:
            knn.conv, knn.depthwise_conv = conv0, depthwise0

    return patched()


class _Chooser:
    """Picks the faster runner for each image size, by measurement.

    Sizes are grouped in buckets of pixel count (a factor of sqrt 2 apart: a bounded table). In a
    bucket each runner is first tried :data:`TRIES` times, the runners taking turns; then the one
    with the lower best time per step runs, and every :data:`RECHECK` calls the other is timed once
    more (the machine's other load changes). Both runners give the same bytes, so the choice
    changes speed only; the first narrow call of each bucket is checked against wide, and a CPU where
    they differ keeps wide alone (:meth:`_Frozen.__call__`).
    """

    TRIES = 2
    RECHECK = 64
    KEEP = 3  # the last timings kept per runner and bucket

    def __init__(self, runners=("wide", "narrow")):
        self.runners = tuple(runners)
        self.table: dict[int, dict] = {}
        self.checked: set[int] = set()  # buckets whose narrow output was compared with the wide one

    def first_narrow(self, pixels: int) -> bool:
        """True once per bucket: the first narrow call there (to be checked against wide)."""
        b = self.bucket(pixels)
        if b in self.checked:
            return False
        self.checked.add(b)
        return True

    @staticmethod
    def bucket(pixels: int) -> int:
        import math

        return int(round(2 * math.log2(max(1, pixels))))

    def pick(self, pixels: int) -> str:
        if len(self.runners) == 1:
            return self.runners[0]
        entry = self.table.setdefault(self.bucket(pixels), {"calls": 0, **{r: [] for r in self.runners}})
        entry["calls"] += 1
        best = self.choice(pixels)
        if best is None:  # the least tried first
            return min(self.runners, key=lambda r: len(entry[r]))
        if entry["calls"] % self.RECHECK == 0:
            return next(r for r in self.runners if r != best)
        return best

    def record(self, pixels: int, runner: str, seconds_per_step: float) -> None:
        if len(self.runners) == 1:
            return
        times = self.table[self.bucket(pixels)][runner]
        times.append(seconds_per_step)
        del times[:-self.KEEP]

    def choice(self, pixels: int) -> str | None:
        """The runner this bucket uses now (None before both were tried)."""
        entry = self.table.get(self.bucket(pixels))
        if not entry or any(len(entry[r]) < self.TRIES for r in self.runners):
            return None
        return min(self.runners, key=lambda r: min(entry[r]))


class _Frozen:
    """A ``tf.function`` with an input signature, traced on first call with :func:`_fast_conv_patch`
    and its variables frozen into constants.

    Constant weights let oneDNN keep each forward convolution's kernel in its own blocked layout
    between calls instead of reordering it at every call, and let the graph optimiser fold the
    kernels' casts (mixed bfloat16) and flips away: at 96x64 InceptionV3 that halved a step
    (bench/RESULTS.md). The weights must not change afterwards (the engine never trains). A graph
    that cannot be frozen runs as traced."""

    def __init__(self, fn, fast_grads: bool = True, runners=("wide",)):
        self._fn, self._call, self._fast = fn, None, fast_grads
        self._session = None
        self.chooser = _Chooser(runners)  # "narrow": the graph in a one-thread-per-op session too

    def _trace(self):
        import contextlib

        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        with _fast_conv_patch() if self._fast else contextlib.nullcontext():
            traced = self._fn.get_concrete_function()
        try:
            self._call = convert_variables_to_constants_v2(traced)
        except Exception:  # an exotic graph: run it with its variables, on the wide runner only
            self._call, self.chooser = traced, _Chooser(("wide",))
        if "narrow" in self.chooser.runners:
            self._narrow_session()  # now, with the trace, not at a later dream (a live show would stall)

    def _narrow_session(self):
        """The frozen graph in a session whose ops run on one thread each (built with the trace)."""
        if self._session is None:
            import tensorflow as tf

            graph = tf.Graph()
            with graph.as_default():
                tf.graph_util.import_graph_def(self._call.graph.as_graph_def(), name="")
            config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1,
                                              inter_op_parallelism_threads=min(2, os.cpu_count() or 1),
                                              use_per_session_threads=True)
            session = tf.compat.v1.Session(graph=graph, config=config)
            names = [t.name for t in self._call.inputs], [t.name for t in self._call.outputs]
            self._session = (session, names)
        return self._session

    def _wide(self, args):
        import tensorflow as tf

        return [t.numpy() for t in self._call(*[tf.constant(a) for a in args])]

    def __call__(self, *args, pixels: int = 0, steps: int = 1):
        """Run the graph on ``args`` (numpy arrays of the signature's dtypes); ``pixels`` (the image's,
        0: unknown) and ``steps`` let the narrow runner be chosen and timed. Returns numpy arrays."""
        import numpy as np

        if self._call is None:
            self._trace()
        if self.chooser.runners == ("wide",) or not pixels:
            return self._wide(args)
        import time

        runner = self.chooser.pick(pixels)
        t = time.perf_counter()
        if runner == "narrow":
            session, (ins, outs) = self._narrow_session()
            out = session.run(outs, dict(zip(ins, args)))
        else:
            out = self._wide(args)
        seconds = time.perf_counter() - t
        if runner == "narrow" and self.chooser.runners == ("wide", "narrow") and self.chooser.first_narrow(pixels):
            # Checked once per size bucket against the wide runner: where this CPU's one-thread
            # convolutions round differently, the choice would change frames, so narrow is dropped.
            wide = self._wide(args)
            if any(not np.array_equal(a, b) for a, b in zip(out, wide)):
                self.chooser = _Chooser(("wide",))
                self.close()
                return wide
        self.chooser.record(pixels, runner, seconds / max(1, steps))
        return out

    def close(self):
        """Free the narrow runner's session (and its copy of the weights)."""
        if self._session is not None:
            self._session[0].close()
            self._session = None


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
        # The forward-convolution gradients only on keras.applications networks, where they were
        # checked: on a small frozen GoogLeNet-like graph (tests/test_models_cli.py) the frozen graph
        # with them aborted inside TensorFlow ("Check failed: size >= 0"); freezing alone is kept.
        fast = bool(getattr(model, "applications", False))
        self._ascend = _Frozen(tf.function(self._ascend_graph, input_signature=spec), fast,
                               _runners(getattr(model, "precision", "float32")))
        self._grad = _Frozen(tf.function(self._tiled_gradient,
                                         input_signature=[spec[0], spec[3], spec[5], tf.TensorSpec([2], tf.int32)]),
                             fast)

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
        import numpy as np

        g, loss = self._grad(np.asarray(img, np.float32), np.int32(tile), np.asarray(weights, np.float32),
                             np.asarray(shift, np.int32))
        return g, float(loss)

    def ascend(self, img, steps, step_size, tile, shifts, weights, max_loss, step_map, hw=None):
        import numpy as np

        out, loss = self._ascend(np.asarray(img, np.float32), np.int32(steps), np.float32(step_size), np.int32(tile),
                                 np.asarray(shifts, np.int32).reshape(-1, 2), np.asarray(weights, np.float32),
                                 np.float32(max_loss), np.asarray(step_map, np.float32),
                                 pixels=int(img.shape[0]) * int(img.shape[1]), steps=int(steps))
        return out, float(loss)


def building():
    """While Keras builds a model (nothing to change on this backend)."""
    import contextlib

    return contextlib.nullcontext()
