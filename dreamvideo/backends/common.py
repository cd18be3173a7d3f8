"""What every backend's :class:`Loop` shares: the tile grid, the objective's loss in ``keras.ops``,
and the image layout of a model's data format.

Convention: the engine hands a loop images ``(H, W, 3)`` channels-last in unit space; a loop whose
model is channels-first (PyTorch's named networks) holds the image as ``(3, H, W)`` from the first
step to the last, so its rolls, tiles and step map go through :class:`Layout` and no activation is
ever permuted. Tiles are ``(y0, y1, x0, x1)`` pixels of the image being dreamed.
"""

from __future__ import annotations

import numpy as np


def tile_bounds(hw, tile: int) -> list[tuple[int, int, int, int]]:
    """Tiles ``(y0, y1, x0, x1)`` that split each side evenly (every tile between tile/2 and tile
    pixels), rows of columns. The TensorFlow loop computes the same split inside its graph."""
    h, w = int(hw[0]), int(hw[1])
    ny, nx = -(-h // tile), -(-w // tile)
    return [(iy * h // ny, (iy + 1) * h // ny, ix * w // nx, (ix + 1) * w // nx) for iy in range(ny) for ix in range(nx)]


def objective_loss(terms, guides, acts, weights, data_format: str = "channels_last"):
    """The objective on a batch of tiles' activations, in ``keras.ops`` (so it runs inside every
    backend's graph or tape): ``sum_i weights[i] * term_i``, each term a mean over positions (and
    over the batch: equal tiles batched give the mean of their losses). ``guides[layer]`` is the
    guide's features ``(C, positions)``; ``acts`` are in ``data_format``."""
    from keras import ops

    first = data_format == "channels_first"
    total = 0.0
    for i, t in enumerate(terms):
        a = ops.cast(acts[t.layer], "float32")
        if t.guide:
            if first:  # (N, C, h*w): the guide's (positions, C) times it, no transpose of the activation
                x = ops.reshape(a, (a.shape[0], a.shape[1], -1))
                v = ops.mean(ops.max(ops.matmul(ops.transpose(guides[t.layer]), x), axis=1))
            else:
                x = ops.reshape(a, (-1, a.shape[-1]))
                v = ops.mean(ops.max(ops.matmul(x, guides[t.layer]), axis=1))
        elif t.channel is not None:
            v = ops.mean(a[:, t.channel] if first else a[..., t.channel])
        elif t.mode == "l2":
            v = ops.mean(ops.square(a))
        else:
            v = ops.mean(a)
        total = total + weights[i] * v
    return total


class Layout:
    """Where the spatial and channel axes of an image ``(H, W, 3)`` / ``(3, H, W)`` lie, in one place."""

    def __init__(self, data_format: str = "channels_last"):
        self.first = data_format == "channels_first"
        self.spatial = (1, 2) if self.first else (0, 1)

    def to_model(self, img: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` -> the model's layout (a contiguous copy when it changes)."""
        return np.ascontiguousarray(np.moveaxis(img, -1, 0)) if self.first else img

    def from_model(self, img: np.ndarray) -> np.ndarray:
        return np.moveaxis(img, 0, -1) if self.first else img

    def hw(self, img) -> tuple[int, int]:
        return int(img.shape[self.spatial[0]]), int(img.shape[self.spatial[1]])

    def tile(self, img, y0, y1, x0, x1):
        return img[:, y0:y1, x0:x1] if self.first else img[y0:y1, x0:x1]

    def per_pixel(self, step_map):
        """A per-pixel ``(H, W)`` map shaped to broadcast over the image's channels."""
        return step_map[None] if self.first else step_map[..., None]
