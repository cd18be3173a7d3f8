"""PyTorch: the gradient step by autograd, the loop in Python, the image on the device throughout.

- The named networks are built channels-first (:data:`DATA_FORMAT`), the layout of torch's
  convolutions: on a channels-last model Keras permutes every activation to NCHW and back around
  every convolution and pooling. The loop then holds the image as ``(3, H, W)``
  (:class:`~dreamvideo.backends.common.Layout`); a model file keeps the layout it was saved with.
- No host sync inside an octave's steps: the losses stay on the device and are read once, at the
  end, or after each step only when ``max_loss`` needs them. On a GPU the CPU queues the steps
  while the GPU runs them.
- The tiles of one step that share a shape go through the network as one batch, up to
  :data:`BATCH_PIXELS` pixels a call (a GPU is fed larger calls; the memory stays bounded), in NHWC
  memory (``torch.channels_last``, the kernels too), which cuDNN's tensor-core convolutions and
  oneDNN's CPU ones prefer: NCHW memory costs a reorder at every convolution.
- Channels-first convolutions call ``torch.nn.functional.conv2d`` directly (:func:`_direct_convolutions`):
  the kernel in torch's layout kept between calls instead of permuted per call, the bias added by
  the convolution, "same" padding by the convolution instead of a padded copy of its input.
- On a CPU, OpenMP's threads spin briefly, then sleep while they wait (``OMP_WAIT_POLICY=PASSIVE``,
  ``GOMP_SPINCOUNT=1000``, :func:`prepare`): steady on a machine doing other work too.
- ``DREAMVIDEO_TORCH_COMPILE=1`` runs the tile gradient through ``torch.compile`` (on CUDA in
  ``reduce-overhead`` mode: CUDA graphs, one per tile shape, which a video's fixed frame size
  reuses). Off by default: on this CPU it compiled for minutes and ran no faster (bench/RESULTS.md,
  "Backends"); a failed compile falls back to eager with one line on stderr.

Keras places tensors on its torch device (CUDA, ROCm, MPS or CPU; ``KERAS_TORCH_DEVICE``).
"""

from __future__ import annotations

import os
import sys

name = "torch"
DATA_FORMAT = "channels_first"
BATCH_PIXELS = {"cpu": 512 * 512, "gpu": 4 * 1024 * 1024}  # tile pixels per network call


def prepare(device: str) -> None:
    if device == "cpu":
        os.environ["KERAS_TORCH_DEVICE"] = "cpu"
    if device != "gpu" and os.environ.get("DREAMVIDEO_TORCH_OMP", "1") != "0" and "torch" not in sys.modules:
        # OpenMP threads that spin briefly, then sleep: every op of PyTorch's CPU path ends in a barrier,
        # and on a CPU shared with other work a long-spinning thread holds the core the thread it waits
        # for needs (libgomp's default spins ~300,000 times); sleeping at once wakes too late for the
        # next op on a quiet machine. 1,000 spins: 1.5-1.6x TensorFlow's time under one other busy
        # process (default 2-4.4x) and 1.04x the default's time when quiet (sleeping at once: 1.3x)
        # (bench/RESULTS.md, "Backends"). Read when torch is imported; a value the user set wins;
        # DREAMVIDEO_TORCH_OMP=0 keeps PyTorch's defaults.
        if "OMP_WAIT_POLICY" not in os.environ:
            os.environ.setdefault("GOMP_SPINCOUNT", "1000")
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def start(device: str) -> str:
    from keras.src.backend.torch.core import get_device

    return "cpu" if str(get_device()).startswith("cpu") else "gpu"


def device_name(device: str) -> str:
    import torch

    if device == "gpu":
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
        return "Apple GPU (MPS)" if torch.backends.mps.is_available() else "GPU"
    from .tensorflow import cpu_name

    return cpu_name()


def versions() -> str:
    import keras
    import torch

    return f"torch {torch.__version__}, keras {keras.__version__}"


def gpus() -> list[str]:
    """The GPUs this PyTorch build can use (without activating Keras)."""
    import torch

    if torch.cuda.is_available():
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    return ["Apple GPU (MPS)"] if mps is not None and mps.is_available() else []


def _groups(bounds, budget: int):
    """The tiles in batches of one shape, each batch at most ``budget`` pixels (at least one tile)."""
    by_shape: dict = {}
    for b in bounds:
        by_shape.setdefault((b[1] - b[0], b[3] - b[2]), []).append(b)
    for (th, tw), tiles in by_shape.items():
        n = max(1, budget // (th * tw))
        for k in range(0, len(tiles), n):
            yield tiles[k:k + n]


def _direct_convolutions(net) -> int:
    """Route ``net``'s plain channels-first Conv2D layers (stride 1 or "valid" padding, odd kernels, no
    groups) straight to torch's conv2d; same arithmetic, fewer passes. Returns how many."""
    import keras
    import torch
    import torch.nn.functional as F

    done = 0
    for layer in net.layers:
        if type(layer) is not keras.layers.Conv2D:
            continue
        cfg = layer.get_config()
        k = tuple(cfg["kernel_size"])
        if (cfg["data_format"] != "channels_first" or cfg["groups"] != 1
                or tuple(cfg["dilation_rate"]) != (1, 1) or not all(d % 2 for d in k)
                or (cfg["padding"] == "same" and tuple(cfg["strides"]) != (1, 1))):
            continue
        pad = (k[0] // 2, k[1] // 2) if cfg["padding"] == "same" else (0, 0)
        cache = {}

        def call(inputs, layer=layer, pad=pad, cache=cache, strides=tuple(cfg["strides"])):
            kernel, bias = layer.kernel.value, layer.bias.value if layer.use_bias else None
            nhwc = inputs.dim() == 4 and not inputs.is_contiguous() and inputs.is_contiguous(memory_format=torch.channels_last)
            key = (inputs.dtype, nhwc, kernel._version, None if bias is None else bias._version)
            if cache.get("key") != key:  # weights are frozen while dreaming: converted once
                # in the input's memory format, or the convolution makes that copy at every call
                fmt = torch.channels_last if nhwc else torch.contiguous_format
                cache["w"] = kernel.to(inputs.dtype).permute(3, 2, 0, 1).contiguous(memory_format=fmt)
                cache["b"] = None if bias is None else bias.to(inputs.dtype)
                cache["key"] = key
            out = F.conv2d(inputs, cache["w"], cache["b"], stride=strides, padding=pad)
            return out if layer.activation is None else layer.activation(out)

        layer.call = call
        done += 1
    return done


class Loop:
    pad_multiple = 1  # eager: any shape costs the same

    def __init__(self, model, terms, guides):
        import torch
        from keras import ops

        from .common import Layout, objective_loss

        self.trace_count = 0
        self._torch = torch
        self._model = model
        self.layout = Layout(model.data_format)
        for v in model.keras_model.weights:  # gradients are taken w.r.t. the image only
            v.value.requires_grad_(False)
        if os.environ.get("DREAMVIDEO_TORCH_DIRECT_CONV", "1") != "0":
            _direct_convolutions(model.keras_model)
        guides = {k: ops.convert_to_tensor(v) for k, v in guides.items()}
        fmt = model.data_format
        self._loss = lambda acts, weights: objective_loss(terms, guides, acts, weights, fmt)
        from keras.src.backend.torch.core import get_device

        self._device = str(get_device())
        self._budget = BATCH_PIXELS["cpu" if self._device.startswith("cpu") else "gpu"]
        # cuDNN (tensor cores) and oneDNN run channels-first convolutions fastest on NHWC memory:
        # on a CPU, NCHW memory costs a reorder into oneDNN's layout and back at every convolution
        # (InceptionV3 480x270: 1.4-1.8x TensorFlow's time, 1.2-1.4x in NHWC; bench/RESULTS.md).
        # The layout the model sees is unchanged. DREAMVIDEO_TORCH_NHWC=0/1 overrides.
        nhwc = os.environ.get("DREAMVIDEO_TORCH_NHWC", "")
        native = self._device.startswith(("cuda", "cpu"))
        self._nhwc = self.layout.first and (nhwc == "1" or (nhwc == "" and native))
        self._batch_grad = self._compiled(self._batch_grad_eager)

    def _compiled(self, fn):
        if os.environ.get("DREAMVIDEO_TORCH_COMPILE", "") in ("", "0"):
            return fn
        torch = self._torch
        mode = "reduce-overhead" if self._device.startswith("cuda") else None  # CUDA graphs per tile shape
        compiled = torch.compile(fn, mode=mode, dynamic=False)

        def run(*args):
            nonlocal compiled
            if compiled is not fn:
                try:
                    self.trace_count = max(self.trace_count, 1)
                    return compiled(*args)
                except Exception as e:  # an op dynamo cannot trace: stay eager
                    print(f"dreamvideo: torch.compile failed ({type(e).__name__}); running eagerly", file=sys.stderr)
                    compiled = fn
            return fn(*args)

        return run

    def _batch_grad_eager(self, batch, weights):
        """Gradient of the loss w.r.t. a batch of equal tiles, and the loss (the mean of the tiles')."""
        torch = self._torch
        batch = batch.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = self._loss(self._model(batch), weights)
            g, = torch.autograd.grad(loss, batch)
        return g, loss.detach()

    def _tiled(self, img, tile, weights, shift):
        """Gradient and loss (a device tensor) of ``img`` (the model's layout) rolled by ``shift``."""
        from .common import tile_bounds

        torch, lay = self._torch, self.layout
        h, w = lay.hw(img)
        dims = lay.spatial
        rolled = torch.roll(img, (int(shift[0]), int(shift[1])), dims=dims)
        g = torch.empty_like(img)
        loss = None
        for group in _groups(tile_bounds((h, w), tile), self._budget):
            y0, y1, x0, x1 = group[0]
            # Each tile's loss weighs its share of the area (a batch's loss is the mean of its tiles').
            scale = len(group) * (y1 - y0) * (x1 - x0) / (h * w)
            batch = torch.stack([lay.tile(rolled, *b) for b in group])
            if self._nhwc:
                batch = batch.contiguous(memory_format=torch.channels_last)
            gb, lb = self._batch_grad(batch, weights)  # the scale outside: a compiled step needs no recompile
            for k, b in enumerate(group):
                lay.tile(g, *b)[...] = gb[k] * scale
            loss = lb * scale if loss is None else loss + lb * scale
        return torch.roll(g, (-int(shift[0]), -int(shift[1])), dims=dims), loss

    def gradient(self, img, tile, weights, shift, hw=None):
        from keras import ops

        lay = self.layout
        g, loss = self._tiled(ops.convert_to_tensor(lay.to_model(img)), tile, ops.convert_to_tensor(weights), shift)
        return lay.from_model(g.cpu().numpy()), loss.item()

    def ascend(self, img, steps, step_size, tile, shifts, weights, max_loss, step_map, hw=None):
        import math

        from keras import ops

        torch, lay = self._torch, self.layout
        x = ops.convert_to_tensor(lay.to_model(img))
        m = lay.per_pixel(ops.convert_to_tensor(step_map))
        wt = ops.convert_to_tensor(weights)
        stop_early = math.isfinite(max_loss)
        loss = None
        for i in range(steps):
            if stop_early and loss is not None and loss.item() > max_loss:  # the only read inside the loop
                break
            g, loss = self._tiled(x, tile, wt, shifts[i])
            with torch.no_grad():
                g = g / torch.clamp(g.abs().mean(), min=1e-6)
                x = torch.clamp(x + step_size * m * g, -1.0, 1.0)
        return lay.from_model(x.cpu().numpy()), (-math.inf if loss is None else loss.item())


def building():
    """While Keras builds a model (nothing to change on this backend)."""
    import contextlib

    return contextlib.nullcontext()
