"""PyTorch: the gradient step by autograd, the loop in Python (eager; no compilation to wait for).

Keras places tensors on its torch device (CUDA, ROCm, MPS or CPU; ``KERAS_TORCH_DEVICE``), so this
module has no device-specific code either.
"""

from __future__ import annotations

import os

name = "torch"


def prepare(device: str) -> None:
    if device == "cpu":
        os.environ["KERAS_TORCH_DEVICE"] = "cpu"


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


class Loop:
    pad_multiple = 1  # eager: any shape costs the same

    def __init__(self, model, terms, guides):
        import torch
        from keras import ops

        from ..engine import objective_loss

        self.trace_count = 0
        self._model = model
        for v in model.keras_model.weights:  # gradients are taken w.r.t. the image only
            v.value.requires_grad_(False)
        guides = {k: ops.convert_to_tensor(v) for k, v in guides.items()}
        self._loss = lambda acts, weights: objective_loss(terms, guides, acts, weights)
        self._torch = torch

    def _tensor(self, x):
        from keras import ops

        return ops.convert_to_tensor(x)

    def _tiled(self, img, tile, weights, shift):
        from ..engine import tile_bounds

        torch = self._torch
        h, w = img.shape[:2]
        rolled = torch.roll(img, (int(shift[0]), int(shift[1])), dims=(0, 1))
        g = torch.empty_like(img)
        loss = 0.0
        for y0, y1, x0, x1 in tile_bounds((h, w), tile):
            t = rolled[y0:y1, x0:x1].detach().requires_grad_(True)
            frac = (y1 - y0) * (x1 - x0) / (h * w)
            l = self._loss(self._model(t[None]), weights)
            gt, = torch.autograd.grad(l, t)
            g[y0:y1, x0:x1] = gt * frac
            loss += float(l.detach()) * frac
        return torch.roll(g, (-int(shift[0]), -int(shift[1])), dims=(0, 1)), loss

    def gradient(self, img, tile, weights, shift, hw=None):
        g, loss = self._tiled(self._tensor(img), tile, self._tensor(weights), shift)
        return g.detach().cpu().numpy(), loss

    def ascend(self, img, steps, step_size, tile, shifts, weights, max_loss, step_map, hw=None):
        torch = self._torch
        x, m, wt = self._tensor(img), self._tensor(step_map)[..., None], self._tensor(weights)
        loss = -float("inf")
        for i in range(steps):
            if loss > max_loss:
                break
            g, loss = self._tiled(x, tile, wt, shifts[i])
            with torch.no_grad():
                g = g / torch.clamp(g.abs().mean(), min=1e-6)
                x = torch.clamp(x + step_size * m * g, -1.0, 1.0)
        return x.detach().cpu().numpy(), loss


def building():
    """While Keras builds a model (nothing to change on this backend)."""
    import contextlib

    return contextlib.nullcontext()
