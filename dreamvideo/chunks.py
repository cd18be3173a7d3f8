"""Cutting a long video into chunks for several workers: where the chunks start and end (at scene
cuts where there are some), how early each starts (its lead-in), and the cross-fade over the lead-in.
No Ray here: plain arithmetic and colour histograms.

Convention: frame indices are 0-based indices of output frames of the whole clip; chunk ranges are
half-open, ``[start, end)``; frames are ``H x W x 3`` uint8 RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .errors import UserError


@dataclass(frozen=True)
class Chunk:
    """A piece of a clip: it dreams frames ``[lead, end)`` and owns (writes) frames ``[start, end)``;
    frames ``[lead, start)`` are its lead-in, cross-faded with the previous chunk's last frames."""

    index: int
    lead: int
    start: int
    end: int

    @property
    def overlap(self) -> int:
        return self.start - self.lead

    @property
    def frames(self) -> int:
        """How many frames its worker dreams (lead-in included)."""
        return self.end - self.lead


def chunk_length(nframes: int, chunk_frames: int, overlap: int, parts: int = 1) -> int:
    """The chunk length for ``parts`` workers: ``chunk_frames`` at most, short enough that every
    worker gets a chunk, but at least 4 overlaps long (shorter chunks would be mostly lead-in)."""
    return max(1, min(chunk_frames, max(math.ceil(nframes / max(1, parts)), 4 * overlap)))


def plan_chunks(nframes: int, chunk_frames: int, overlap: int, cuts: Iterable[int] = (), parts: int = 1) -> list[Chunk]:
    """Cut ``nframes`` frames into chunks of about :func:`chunk_length` frames.

    A boundary moves to the scene cut nearest to it within half a chunk (``cuts``: indices of the
    first frame of each new shot); a chunk that starts at a scene cut has no lead-in (there is no
    dream to carry across a cut), the others start ``overlap`` frames early (never before the previous
    chunk's start, never before a cut). The last chunk is at most 1.5 chunks long.
    """
    if nframes < 1:
        return []
    if chunk_frames < 1 or overlap < 0:
        raise UserError("`chunk_frames` must be at least 1 and `chunk_overlap` 0 or more")
    size = chunk_length(nframes, chunk_frames, overlap, parts)
    half = max(1, size // 2)
    cutset = sorted({int(c) for c in cuts if 0 < int(c) < nframes})
    bounds, s = [0], 0
    while nframes - s > size + size // 2:
        lo, hi = s + half, min(s + size + size // 2, nframes - half)
        near = [c for c in cutset if lo <= c <= hi]
        b = min(near, key=lambda c: (abs(c - (s + size)), c)) if near else s + size
        bounds.append(b)
        s = b
    bounds.append(nframes)
    chunks = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        lead = a
        if k and a not in cutset:
            lead = max(bounds[k - 1], a - overlap, *[c for c in cutset if c < a])
        chunks.append(Chunk(k, lead, a, b))
    return chunks


def frame_histogram(frame: np.ndarray, bins: int = 4) -> np.ndarray:
    """A normalized joint RGB histogram (``bins``^3 values summing to 1) of a (small) frame."""
    q = (frame.reshape(-1, 3).astype(np.int32) * bins) >> 8
    h = np.bincount((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], minlength=bins ** 3).astype(np.float64)
    return h / max(1.0, h.sum())


def histogram_cuts(frames: Iterable[np.ndarray], threshold: float = 0.35, ratio: float = 3.0) -> list[int]:
    """Indices of the frames that start a new shot (a scene cut), from a cheap colour-histogram
    difference: half the L1 distance between consecutive frames' histograms (0 same colours, 1 none
    shared) must be at least ``threshold`` and ``ratio`` times the median of the 8 differences
    before it (a fast pan changes colours steadily, a cut at once). Give small frames (64 px)."""
    cuts, prev, recent = [], None, []
    for i, frame in enumerate(frames):
        h = frame_histogram(frame)
        if prev is not None:
            d = 0.5 * float(np.abs(h - prev).sum())
            base = float(np.median(recent)) if recent else 0.0
            if d >= threshold and d >= ratio * max(base, 0.02):
                cuts.append(i)
            recent = (recent + [d])[-8:]
        prev = h
    return cuts


def crossfade(prev: np.ndarray, new: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * prev + weight * new`` of two uint8 frames, rounded."""
    out = (1.0 - weight) * prev.astype(np.float32) + weight * new.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def fade_weight(chunk: Chunk, i: int) -> float:
    """The weight of ``chunk``'s own dream at lead-in frame ``i`` (``lead <= i < start``): it rises
    linearly from 1/(overlap+1) to overlap/(overlap+1), so no step between frames is larger than
    1/(overlap+1) of the difference between the two chunks' dreams."""
    return (i - chunk.lead + 1) / (chunk.overlap + 1)


# ---------------------------------------------------------------- Ray: import, cluster, workers
