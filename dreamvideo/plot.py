"""Drawing for `plan`: plot a render's per-frame curves, lay out preview frames.

:func:`plot_curves` draws every scheduled curve and audio feature of a timeline (the dict that
:meth:`dreamvideo.timeline.Timeline.curves` returns) against time in seconds, with the frame index
on a top axis: one panel per curve, a constant curve as a thin panel that states its value.
:func:`contact_sheet` lays a few labelled frames out on a grid. matplotlib is imported only
when a plot is drawn (``pip install "dreamvideo[plot]"``); nothing here knows TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError
from .settings import AUDIO_FEATURES, CURVES

ORDER = CURVES
AUDIO_ORDER = AUDIO_FEATURES
PLOT_EXTS = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".webp")


def ordered(names) -> list[str]:
    """Curve names in plotting order: motion, dream strength, layer weights, then audio features."""
    def key(n):
        if n in ORDER:
            return (0, ORDER.index(n), n)
        if n.startswith("audio "):
            a = n[6:]
            return (2, AUDIO_ORDER.index(a) if a in AUDIO_ORDER else 99, n)
        return (1, 0, n)
    return sorted(names, key=key)


def is_constant(values) -> bool:
    v = np.asarray(values, np.float64)
    return v.size == 0 or bool(np.all(v == v[0]))


def describe(name: str, values) -> str:
    """One line about a curve: ``zoom 1 .. 1.1 (mean 1.02)`` or ``zoom = 1.05 (constant)``."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return f"{name}: no frames"
    if is_constant(v):
        return f"{name} = {v[0]:.4g} (constant)"
    return f"{name} {v.min():.4g} .. {v.max():.4g} (mean {v.mean():.4g})"


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError('plots need matplotlib: pip install "dreamvideo[plot]"') from None
    return Figure, FigureCanvasAgg


def _thinned(x: np.ndarray, v: np.ndarray, bins: int = 2000):
    """At most ``2 * bins`` points that draw like ``(x, v)`` at a plot's width: each bin's lowest and
    highest value, in the order they come (a two-hour song has 180,000 frames; the figure 1000 px)."""
    if v.size <= 2 * bins:
        return x, v
    edges = np.linspace(0, v.size, bins + 1).astype(np.int64)
    lo = np.minimum.reduceat(v, edges[:-1])
    hi = np.maximum.reduceat(v, edges[:-1])
    first = np.array([int(np.argmin(v[a:b])) < int(np.argmax(v[a:b])) for a, b in zip(edges[:-1], edges[1:])])
    ys = np.where(first[:, None], np.stack([lo, hi], 1), np.stack([hi, lo], 1)).ravel()
    xs = np.stack([x[edges[:-1]], x[edges[1:] - 1]], 1).ravel()
    return xs, ys


def plot_curves(curves: dict, fps: float, path, title: str = "") -> dict:
    """Plot ``curves`` (name -> per-frame values) at ``fps`` into ``path`` (png/svg/pdf/jpg).

    Returns ``{"path": Path, "panels": [curve names in order], "titles": [panel titles]}``.
    Beats (frames where ``audio beat`` is 1) are marked on every panel as faint vertical lines.
    """
    path = Path(path)
    if path.suffix.lower() not in PLOT_EXTS:
        raise UserError(f"cannot write plot {path}: use one of {', '.join(PLOT_EXTS)}")
    if not fps > 0:
        raise UserError(f"a plot needs fps > 0, not {fps!r}")
    Figure, FigureCanvasAgg = _matplotlib()
    names = ordered(curves)
    if not names:
        raise UserError("nothing to plot: the timeline has no curves")
    n = max(len(np.asarray(curves[k])) for k in names)
    t = np.arange(n) / fps
    heights = [0.45 if is_constant(curves[k]) else 1.3 for k in names]
    fig = Figure(figsize=(10, 0.9 + sum(heights)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": heights})[:, 0]
    beat = np.asarray(curves.get("audio beat", []), np.float64)
    beats = t[: beat.size][beat[: t.size] >= 0.999] if beat.size else []
    titles = []
    for ax, name in zip(axes, names):
        v = np.asarray(curves[name], np.float64)
        x = t[: v.size]
        audio = name.startswith("audio ")
        color = "tab:orange" if audio else ("tab:green" if name.startswith("weight") else "tab:blue")
        style = "steps-post" if name == "steps" else "default"
        marker = "o" if v.size == 1 else None
        xs, vs = _thinned(x, v)
        ax.plot(xs, vs, color=color, drawstyle=style, marker=marker, lw=1.2)
        if audio and v.size > 1:
            ax.fill_between(xs, 0, vs, color=color, alpha=0.25, step=None)
        if len(beats):  # one artist for all of them: a long song has thousands
            ax.vlines(beats, 0, 1, transform=ax.get_xaxis_transform(), color="0.6", lw=0.5, alpha=0.6, zorder=0)
        label = describe(name, v)
        ax.set_title(label, loc="left", fontsize=8 if is_constant(v) else 9, pad=2)
        titles.append(label)
        if is_constant(v):
            ax.set_yticks([])
            for side in ("top", "right", "left"):
                ax.spines[side].set_visible(False)
        else:
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3, lw=0.5)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, max(t[-1], 1.0 / fps) if n > 1 else 1.0 / fps)
    top = axes[0].secondary_xaxis("top", functions=(lambda s: s * fps, lambda f: f / fps))
    top.set_xlabel("frame", fontsize=8)
    top.tick_params(labelsize=7)
    head = f"{n} frames, {n / fps:.2f} s at {fps:g} fps"
    fig.suptitle(f"{title}  ({head})" if title else head, fontsize=10)
    from .io import atomic_output

    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return {"path": path, "panels": names, "titles": titles}


def evenly_spaced(nframes: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``0 .. nframes-1`` (first and last included)."""
    if nframes < 1 or count < 1:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, nframes - 1, min(count, nframes))})


def sheet_size(tile_wh, count: int, cols: int | None = None, gap: int = 4) -> tuple[int, int]:
    """(width, height) of a contact sheet of ``count`` tiles of size ``tile_wh`` = (w, h)."""
    cols = max(1, min(count, cols or 3))
    rows = -(-count // cols)
    return cols * tile_wh[0] + (cols + 1) * gap, rows * tile_wh[1] + (rows + 1) * gap


def contact_sheet(tiles, path, cols: int | None = None, gap: int = 4) -> Path:
    """Write labelled frames ``[(label, HxWx3 uint8), ...]`` on a grid (3 columns by default) to ``path``.

    Tiles are scaled to the first one's size; the sheet is :func:`sheet_size` big, dark grey
    between tiles, each label in the tile's top-left corner.
    """
    import cv2

    from .io import write_image

    tiles = list(tiles)
    if not tiles:
        raise UserError("a contact sheet needs at least one frame")
    h, w = tiles[0][1].shape[:2]
    cols = max(1, min(len(tiles), cols or 3))
    sw, sh = sheet_size((w, h), len(tiles), cols, gap)
    sheet = np.full((sh, sw, 3), 32, np.uint8)
    scale = max(0.3, min(w, h) / 320)
    thick = max(1, int(round(scale * 1.5)))
    for k, (label, img) in enumerate(tiles):
        img = np.ascontiguousarray(img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h),
                                                                                   interpolation=cv2.INTER_AREA))
        if label:
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
            cv2.rectangle(img, (0, 0), (min(w, tw + 6), th + base + 6), (0, 0, 0), -1)
            cv2.putText(img, label, (3, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                        cv2.LINE_AA)
        r, c = divmod(k, cols)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        sheet[y:y + h, x:x + w] = img
    return write_image(path, sheet)
