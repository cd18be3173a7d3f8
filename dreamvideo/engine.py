"""The dream engine: octave gradient ascent on an image, tiled, on any Keras backend.

Convention: images enter and leave as ``H x W x 3`` RGB arrays on the 0..255 scale (uint8, or
float32 for a starting image); inside, the engine works in *unit space* ``pixel / 127.5 - 1`` in
[-1, 1], the space of :mod:`dreamvideo.models`. ``step_size`` is in unit space per step, applied to a
gradient normalised to mean absolute value 1 (as keras-io's DeepDream); ``jitter`` and
``tile_size`` are in pixels of the octave being dreamed.

The engine knows nothing of files: it takes arrays and returns arrays. Everything here is shared
by the backends (octaves, re-injection, the jitter/roll schedule, the step map, seeds); the
gradient step and its loop live in :mod:`dreamvideo.backends` (one :class:`Loop` per backend), with
what the loops share (the tile grid, the objective's loss in ``keras.ops``, the image layout of a
channels-first model) in :mod:`dreamvideo.backends.common`.
"""

from __future__ import annotations

import contextlib
import threading

import cv2
import numpy as np

from typing import TYPE_CHECKING

from .errors import UserError
from .objectives import Objective
from .settings import DreamSettings

if TYPE_CHECKING:  # the engine imports Keras only through the model it is given
    from .models import FeatureModel

_between = threading.local()


@contextlib.contextmanager
def between_steps(hook):
    """While in it, every dream of this thread calls ``hook()`` before each octave and each step,
    and takes what it returns: ``(factor, steps_was, steps_now)``, the step size scaled by ``factor``
    from there on, and an octave about to run ``steps_was`` steps runs ``steps_now`` instead (steps
    change between octaves only). Live mode's: a controller's change reaches the dream already running
    (its steps then run one call each, so the change lands between two of them)."""
    old = getattr(_between, "hook", None)
    _between.hook = hook
    try:
        yield
    finally:
        _between.hook = old


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


def _seed_words(seed) -> list[int]:
    return [int(s) & 0xFFFFFFFF for s in np.atleast_1d(np.asarray(seed, dtype=object))]


def roll_schedule(seed, steps: int, jitter: int, hw, tile: int) -> np.ndarray:
    """Per-step roll of the image, ``(steps, 2)`` int32 pixels (dy, dx): a jitter in [-jitter, jitter]
    plus, when the image is tiled, an offset within one tile, so that no tile seam stays in place
    long enough to show. The same ``seed`` gives the same schedule on every backend."""
    h, w = int(hw[0]), int(hw[1])
    rng = np.random.default_rng(_seed_words(seed))
    jit = rng.integers(-jitter, jitter + 1, (steps, 2)) if jitter else np.zeros((steps, 2), np.int64)
    if h > tile or w > tile:
        span = np.array([h // -(-h // tile), w // -(-w // tile)])
        jit = jit + rng.integers(0, span, (steps, 2))
    return jit.astype(np.int32)


def _pad_to(img: np.ndarray, multiple: int) -> np.ndarray:
    """Mirror-pad bottom and right up to a multiple of ``multiple`` pixels (bounds compiled shapes)."""
    if multiple <= 1:
        return img
    h, w = img.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return img
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (img.ndim - 2)
    return np.pad(img, pad, mode="symmetric")


class Dreamer:
    """Gradient ascent of ``objective`` on ``model``, on the active Keras backend.

    ``trace_count`` counts the backend's compilations of the ascent: TensorFlow's graph takes the
    image with unknown height and width, the step count and the rest as tensors, so it stays 1
    across sizes, step counts and scheduled weights; JAX compiles once per padded image shape
    (sides padded to a multiple of ``loop.pad_multiple``); PyTorch runs eagerly (0).
    """

    def __init__(self, model: "FeatureModel", objective: Objective, guide_image: np.ndarray | None = None):
        from .backends import current

        objective.validate(model)
        self.objective = objective
        self.model = model.select(objective.layers)
        backend = current()
        guides = {}
        if any(t.guide for t in objective.terms):
            if guide_image is None:
                raise UserError("a guide objective needs a guide image; pass one (`guide`)")
            g = to_unit(guide_image)
            side = max(g.shape[:2])
            if side > 512:  # guide features only need the guide's content, not its resolution
                g = resize(g, (round(g.shape[0] * 512 / side), round(g.shape[1] * 512 / side)))
            acts = self.model.numpy(g[None])
            for t in objective.terms:
                if t.guide:
                    a = acts[t.layer].astype(np.float32)
                    guides[t.layer] = np.ascontiguousarray(a.reshape(-1, a.shape[-1]).T)
        self.loop = backend.Loop(self.model, self.objective.terms, guides)

    @property
    def trace_count(self) -> int:
        return self.loop.trace_count

    # ---- one octave ----
    def weights_vector(self, weights=None) -> np.ndarray:
        """Term weights: the objective's own, or a same-length sequence (a scheduled override)."""
        w = self.objective.weights if weights is None else list(weights)
        if len(w) != len(self.objective.terms):
            raise ValueError(f"expected {len(self.objective.terms)} weights, got {len(w)}")
        return np.asarray(w, np.float32)

    def gradient(self, img_unit: np.ndarray, tile_size: int, shift=(0, 0), weights=None):
        """Raw (unnormalised) gradient of the objective at ``img_unit`` (H, W, 3) in unit space,
        the image rolled by ``shift`` (dy, dx) pixels. Returns (gradient (H, W, 3), loss)."""
        h, w = img_unit.shape[:2]
        x = _pad_to(np.asarray(img_unit, np.float32), self.loop.pad_multiple)
        g, loss = self.loop.gradient(x, int(tile_size), self.weights_vector(weights), np.asarray(shift, np.int32),
                                     (h, w))
        return np.asarray(g)[:h, :w], float(loss)

    def ascend(self, img_unit: np.ndarray, steps: int, step_size: float, tile_size: int = 512, jitter: int = 32,
               seed=(0, 0), weights=None, max_loss: float = 0.0, step_map=None):
        """Run ``steps`` ascent steps at one size; returns (image in unit space, last loss).

        ``step_map`` (H, W) scales the step per pixel (default 1 everywhere). Each step rolls the
        image by :func:`roll_schedule`, takes the tiled gradient, normalises it to mean absolute
        value 1 and adds ``step_size * step_map * gradient``, clipped to [-1, 1]; the octave stops
        early once the loss exceeds ``max_loss`` (when > 0).
        """
        h, w = img_unit.shape[:2]
        step_map = np.ones((h, w), np.float32) if step_map is None else np.asarray(step_map, np.float32)
        x = _pad_to(np.asarray(img_unit, np.float32), self.loop.pad_multiple)
        m = _pad_to(step_map, self.loop.pad_multiple)
        shifts = roll_schedule(seed, int(steps), int(jitter), (h, w), int(tile_size))
        out, loss = self.loop.ascend(x, int(steps), float(step_size), int(tile_size), shifts,
                                     self.weights_vector(weights),
                                     float(max_loss) if max_loss and max_loss > 0 else np.inf, m, (h, w))
        return np.asarray(out)[:h, :w], float(loss)

    def dream(self, base: np.ndarray, start: np.ndarray | None = None, settings: DreamSettings = DreamSettings(),
              seed: int = 0, weights=None, steps: int | None = None, step_map=None) -> np.ndarray:
        """Dream over ``base`` (H, W, 3, 0..255), the ascent starting from ``start`` (default: ``base``).

        In video, ``base`` is the source frame and ``start`` the previous dream warped onto it. The
        octave pyramid is built from ``start``, and the detail re-injected between octaves is
        ``start``'s own, so the fine patterns a warped dream carries survive the coarse octaves
        instead of being re-invented (which would flicker). ``steps`` overrides the settings' steps
        (e.g. more for a video's first frame); ``step_map`` (H, W) scales the step size per pixel
        (video: small where the warped dream is carried, full where the frame shows new content).
        Returns uint8 (H, W, 3); the same inputs and seed give the same bytes on the same machine
        and backend.
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
        hook = getattr(_between, "hook", None)
        for i, shape in enumerate(shapes):
            if i:
                img = resize(img, shape)
                if settings.reinject:
                    img += resize(full, shape) - resize(resize(full, shapes[i - 1]), shape)
            smap = None if full_map is None else resize(full_map, shape)
            if hook is None:
                img, _ = self.ascend(img, steps, settings.step_size, settings.tile_size, settings.jitter,
                                     (seed, i), weights, settings.max_loss, smap)
            else:
                img = self._ascend_live(hook, img, steps, settings, (seed, i), weights, smap)
        return from_unit(resize(img, (h0, w0)))

    def _ascend_live(self, hook, img, steps, settings, seed, weights, step_map):
        """One octave's :meth:`ascend`, one step a call, asking ``hook`` (see :func:`between_steps`)
        before each: the same steps and rolls as one call, the step size and steps as they are now."""
        factor, was, now = hook()
        if steps == was:
            steps = now
        h, w = img.shape[:2]
        x = _pad_to(np.asarray(img, np.float32), self.loop.pad_multiple)
        m = _pad_to(np.ones((h, w), np.float32) if step_map is None else np.asarray(step_map, np.float32),
                    self.loop.pad_multiple)
        shifts = roll_schedule(seed, int(steps), int(settings.jitter), (h, w), int(settings.tile_size))
        weights = self.weights_vector(weights)
        max_loss = float(settings.max_loss) if settings.max_loss and settings.max_loss > 0 else np.inf
        for k in range(int(steps)):
            if k:
                factor = hook()[0]
            x, loss = self.loop.ascend(x, 1, float(settings.step_size * factor), int(settings.tile_size),
                                       np.asarray(shifts).reshape(-1, 2)[k:k + 1], weights, max_loss, m, (h, w))
            x = np.asarray(x)
            if loss > max_loss:
                break
        return x[:h, :w]
