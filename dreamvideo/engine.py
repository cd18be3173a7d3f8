"""The dream engine: octave gradient ascent on an image, tiled, in one compiled TensorFlow graph.

Convention: images enter and leave as ``H x W x 3`` RGB arrays on the 0..255 scale (uint8, or
float32 for a starting image); inside, the engine works in *unit space* ``pixel / 127.5 - 1`` in
[-1, 1], the space of :mod:`dreamvideo.models`. ``step_size`` is in unit space per step, applied to a
gradient normalised to mean absolute value 1 (as keras-io's DeepDream); ``jitter`` and
``tile_size`` are in pixels of the octave being dreamed.

The engine knows nothing of files: it takes arrays and returns arrays.
"""

from __future__ import annotations

from dataclasses import fields

import cv2
import numpy as np

from .errors import UserError
from .models import FeatureModel
from .objectives import Objective
from .settings import DreamSettings

import tensorflow as tf  # noqa: E402  (after models, which quiets TF's start-up logging)


def setting_fields():
    return fields(DreamSettings)


def to_unit(rgb) -> np.ndarray:
    return np.asarray(rgb, np.float32) / 127.5 - 1.0


def from_unit(x) -> np.ndarray:
    return np.clip(np.rint((np.asarray(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def resize(img: np.ndarray, hw) -> np.ndarray:
    """Resize a float image to ``hw = (H, W)``: area averaging to shrink, bicubic to grow."""
    h, w = int(hw[0]), int(hw[1])
    if img.shape[:2] == (h, w):
        return img
    shrink = h * w < img.shape[0] * img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def octave_shapes(hw, octaves: int, scale: float, min_side: int) -> list[tuple[int, int]]:
    """Smallest first; octaves that would fall below the model's smallest input are dropped."""
    shapes = []
    for i in range(octaves):
        s = tuple(int(d / scale ** i) for d in hw)
        if min(s) >= min_side or i == 0:
            shapes.append(s)
    return shapes[::-1]


class Dreamer:
    """Gradient ascent of ``objective`` on ``model``; one compiled graph for every size and step count.

    The graph takes the image with unknown height and width, the step count, step size, tile size,
    jitter, a stateless seed and the terms' weights as tensors, so changing octave, frame size or a
    scheduled weight never retraces (``trace_count`` stays 1).
    """

    def __init__(self, model: FeatureModel, objective: Objective, guide_image: np.ndarray | None = None):
        objective.validate(model)
        self.objective = objective
        self.model = model.select(objective.layers)
        self.trace_count = 0
        self._guides = {}
        if any(t.guide for t in objective.terms):
            if guide_image is None:
                raise UserError("a guide objective needs a guide image; pass one (`guide`)")
            g = to_unit(guide_image)
            side = max(g.shape[:2])
            if side > 512:  # guide features only need the guide's content, not its resolution
                g = resize(g, (round(g.shape[0] * 512 / side), round(g.shape[1] * 512 / side)))
            acts = self.model(tf.constant(g[None]))
            for t in objective.terms:
                if t.guide:
                    a = tf.cast(acts[t.layer], tf.float32)
                    self._guides[t.layer] = tf.reshape(a, [-1, a.shape[-1]])
        spec = [
            tf.TensorSpec([None, None, 3], tf.float32),  # image, unit space
            tf.TensorSpec([], tf.int32),  # steps
            tf.TensorSpec([], tf.float32),  # step size
            tf.TensorSpec([], tf.int32),  # tile size
            tf.TensorSpec([], tf.int32),  # jitter
            tf.TensorSpec([2], tf.int32),  # stateless seed
            tf.TensorSpec([None], tf.float32),  # term weights
            tf.TensorSpec([], tf.float32),  # max loss (inf = never stop early)
            tf.TensorSpec([None, None], tf.float32),  # per-pixel step scale
        ]
        self._ascend = tf.function(self._ascend_graph, input_signature=spec)
        self._grad = tf.function(self._tiled_gradient, input_signature=[spec[0], spec[3], spec[6], tf.TensorSpec([2], tf.int32)])

    # ---- graph ----
    def _loss(self, acts, weights):
        total = tf.constant(0.0)
        for i, t in enumerate(self.objective.terms):
            a = tf.cast(acts[t.layer], tf.float32)
            if t.guide:
                x = tf.reshape(a, [-1, a.shape[-1]])
                v = tf.reduce_mean(tf.reduce_max(tf.matmul(x, self._guides[t.layer], transpose_b=True), axis=1))
            elif t.channel is not None:
                v = tf.reduce_mean(a[..., t.channel])
            elif t.mode == "l2":
                v = tf.reduce_mean(tf.square(a))
            else:
                v = tf.reduce_mean(a)
            total += weights[i] * v
        return total

    def _tile_grad(self, tile, weights):
        with tf.GradientTape() as tape:
            tape.watch(tile)
            loss = self._loss(self.model(tile[None]), weights)
        return tape.gradient(loss, tile), loss

    def _tiled_gradient(self, img, tile, weights, shift):
        """Gradient of the objective w.r.t. ``img`` rolled by ``shift``, summed over tiles.

        Tiles split each side evenly (every tile between tile/2 and tile pixels), and each tile's
        loss is weighted by its share of the area, so a tiled gradient matches the whole-image one
        away from tile borders. Returns (gradient, loss) in the unrolled frame.
        """
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

    def _ascend_graph(self, img, steps, step_size, tile, jitter, seed, weights, max_loss, step_map):
        self.trace_count += 1  # runs only while tracing
        h, w = tf.shape(img)[0], tf.shape(img)[1]
        tiled = tf.logical_or(h > tile, w > tile)
        # Tile seams move anywhere within a tile each step, so no seam stays in place long enough to show.
        span = tf.where(tiled, tf.stack([h // ((h + tile - 1) // tile), w // ((w + tile - 1) // tile)]), 1)

        def body(i, img, loss):
            s = tf.stack([seed[0], seed[1] + i * 7919])
            jit = tf.random.stateless_uniform([2], s, minval=-jitter, maxval=jitter + 1, dtype=tf.int32)
            off = tf.random.stateless_uniform([2], s + 1, minval=0, maxval=tf.int32.max, dtype=tf.int32) % span
            g, loss = self._tiled_gradient(img, tile, weights, jit + off)
            g /= tf.maximum(tf.reduce_mean(tf.abs(g)), 1e-6)
            return i + 1, tf.clip_by_value(img + step_size * step_map[..., None] * g, -1.0, 1.0), loss

        _, img, loss = tf.while_loop(lambda i, _, loss: tf.logical_and(i < steps, loss <= max_loss),
                                     body, [tf.constant(0), img, tf.constant(-np.inf)])
        return img, loss

    # ---- eager API ----
    def weights_vector(self, weights=None) -> np.ndarray:
        """Term weights: the objective's own, or a same-length sequence (a scheduled override)."""
        w = self.objective.weights if weights is None else list(weights)
        if len(w) != len(self.objective.terms):
            raise ValueError(f"expected {len(self.objective.terms)} weights, got {len(w)}")
        return np.asarray(w, np.float32)

    def gradient(self, img_unit: np.ndarray, tile_size: int, shift=(0, 0), weights=None):
        """Raw (unnormalised) gradient of the objective at ``img_unit`` (H, W, 3) in unit space."""
        g, loss = self._grad(tf.constant(img_unit, tf.float32), tf.constant(int(tile_size)),
                             tf.constant(self.weights_vector(weights)), tf.constant(np.asarray(shift, np.int32)))
        return g.numpy(), float(loss)

    def ascend(self, img_unit: np.ndarray, steps: int, step_size: float, tile_size: int = 512, jitter: int = 32,
               seed=(0, 0), weights=None, max_loss: float = 0.0, step_map=None):
        """Run ``steps`` ascent steps at one size; returns (image in unit space, last loss).

        ``step_map`` (H, W) scales the step per pixel (default 1 everywhere).
        """
        if step_map is None:
            step_map = np.ones(img_unit.shape[:2], np.float32)
        out, loss = self._ascend(
            tf.constant(img_unit, tf.float32), tf.constant(int(steps)), tf.constant(float(step_size)),
            tf.constant(int(tile_size)), tf.constant(int(jitter)),
            tf.constant(np.asarray(seed, np.int64).astype(np.int32)), tf.constant(self.weights_vector(weights)),
            tf.constant(float(max_loss) if max_loss and max_loss > 0 else np.inf, tf.float32),
            tf.constant(step_map, tf.float32))
        return out.numpy(), float(loss)

    def dream(self, base: np.ndarray, start: np.ndarray | None = None, settings: DreamSettings = DreamSettings(),
              seed: int = 0, weights=None, steps: int | None = None, step_map=None) -> np.ndarray:
        """Dream over ``base`` (H, W, 3, 0..255), the ascent starting from ``start`` (default: ``base``).

        In video, ``base`` is the source frame and ``start`` the previous dream warped onto it. The
        octave pyramid is built from ``start``, and the detail re-injected between octaves is
        ``start``'s own, so the fine patterns a warped dream carries survive the coarse octaves
        instead of being re-invented (which would flicker). ``steps`` overrides the settings' steps
        (e.g. more for a video's first frame); ``step_map`` (H, W) scales the step size per pixel
        (video: small where the warped dream is carried, full where the frame shows new content).
        Returns uint8 (H, W, 3); the same inputs and seed give
        the same bytes on the same machine.
        """
        steps = settings.steps if steps is None else steps
        img = to_unit(base if start is None else start)
        if img.shape != np.shape(base):
            raise ValueError(f"start {img.shape} and base {np.shape(base)} differ in shape")
        h0, w0 = img.shape[:2]
        grow = max(1.0, self.model.min_side / min(h0, w0))  # tiny images dream at the model's smallest size
        full = resize(img, (max(1, round(h0 * grow)), max(1, round(w0 * grow))))
        full_map = None if step_map is None else resize(np.asarray(step_map, np.float32), full.shape[:2])
        shapes = octave_shapes(full.shape[:2], settings.octaves, settings.octave_scale, self.model.min_side)
        img = resize(full, shapes[0])
        for i, shape in enumerate(shapes):
            if i:
                img = resize(img, shape)
                if settings.reinject:
                    img += resize(full, shape) - resize(resize(full, shapes[i - 1]), shape)
            img, _ = self.ascend(img, steps, settings.step_size, settings.tile_size, settings.jitter,
                                 (seed, i), weights, settings.max_loss,
                                 None if full_map is None else resize(full_map, shape))
        return from_unit(resize(img, (h0, w0)))
