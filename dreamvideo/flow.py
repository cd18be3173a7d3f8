"""Dense optical flow, backward warping and occlusion masks for temporally coherent dreaming.

Convention: images are HxWxC arrays, uint8 in [0, 255] or float (in [0, 255], or in [0, 1]
when their maximum is <= 1); frames are HxWx3 RGB. Flow arrays are HxWx2 float32 in pixels,
(dx, dy). ``flow_cur_to_prev[y, x]`` points from pixel (x, y) of the current frame to where it
was in the previous frame, so ``warp(prev, flow_cur_to_prev)`` aligns prev onto cur (backward
warping: bilinear, border pixels replicated). Masks are HxW float32 in [0, 1], 1 where the
flow is trusted and 0 where a pixel is occluded, disoccluded or comes from outside the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from dreamvideo.errors import UserError

METHODS = ("dis", "farneback")


def _grey(img: np.ndarray) -> np.ndarray:
    """HxW uint8 luminance of an RGB or greyscale image (uint8 or float)."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.asarray(img, np.float32)
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY) if img.shape[2] >= 3 else img[..., 0]
    return np.ascontiguousarray(img)


def _dis():
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def _flow(a: np.ndarray, b: np.ndarray, method: str, dis=None) -> np.ndarray:
    ga, gb = _grey(a), _grey(b)
    if method == "dis":
        return (dis or _dis()).calc(ga, gb, None)
    # 5 pyramid levels at 0.5 follow motions of tens of pixels; the 21 px window keeps the flow smooth.
    return cv2.calcOpticalFlowFarneback(ga, gb, None, pyr_scale=0.5, levels=5, winsize=21, iterations=5,
                                        poly_n=7, poly_sigma=1.5, flags=0)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise UserError(f"unknown optical flow method '{method}'; use one of {', '.join(METHODS)}")
    return method


def compute_flow(a: np.ndarray, b: np.ndarray, method: str = "dis") -> np.ndarray:
    """Flow from image a to image b: for each pixel of a, the HxWx2 (dx, dy) offset to it in b.

    method: "dis" (OpenCV DIS, medium preset; fast) or "farneback" (smoother, slower).
    """
    return _flow(a, b, _check_method(method))


def warp(img: np.ndarray, flow: np.ndarray, cubic: bool = False) -> np.ndarray:
    """Backward-warp img by flow: out[y, x] = img[y + dy, x + dx], bilinear (bicubic with ``cubic``)
    with replicated borders.

    Any channel count and dtype; the result has img's shape and dtype. Bicubic blurs less, which
    matters for an image warped again every frame.
    """
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    src = np.asarray(img)
    work = src if src.dtype in (np.uint8, np.uint16, np.int16, np.float32, np.float64) else src.astype(np.float32)

    def remap(x):
        return cv2.remap(x, mx, my, cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    if work.ndim == 2 or work.shape[2] <= 4:
        out = remap(work)
    else:  # cv2.remap handles at most 4 channels
        out = np.concatenate([remap(work[..., i:i + 4]).reshape(h, w, -1) for i in range(0, work.shape[2], 4)], axis=2)
    return out.reshape(src.shape).astype(src.dtype, copy=False)


def lands_inside(flow: np.ndarray, slack: float = 0.0) -> np.ndarray:
    """HxW bool: where x + ``flow`` (HxWx2 pixels) falls inside the frame, widened by ``slack`` px."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = gx + flow[..., 0], gy + flow[..., 1]
    return (tx >= -slack) & (tx <= w - 1 + slack) & (ty >= -slack) & (ty <= h - 1 + slack)


def nearest_known(known: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs): for each True pixel of ``at`` (HxW bool, raster order, as ``np.nonzero``), the
    nearest True pixel of ``known`` (Euclidean distance transform). ``known`` must not be empty."""
    _, labels = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ky, kx = np.nonzero(known)  # label l is the l-th known pixel in raster order
    lab = labels[at] - 1
    return ky[lab], kx[lab]


def consistency_mask(flow_fw: np.ndarray, flow_bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward consistency (Sundaram et al. 2010; Ruder et al. 2016, "Artistic style transfer for videos").

    flow_fw is cur->prev and flow_bw prev->cur. A pixel is consistent (1) when going there and back
    returns to it: |fw + bw(x + fw)|^2 <= alpha * (|fw|^2 + |bw(x + fw)|^2) + beta; it is 0 when
    the test fails (occlusion, disocclusion, bad flow) or its match in prev falls outside the frame.
    Returns HxW float32 in {0, 1}.
    """
    back = warp(flow_bw, flow_fw)
    err = np.sum((flow_fw + back) ** 2, axis=2)
    ok = err <= alpha * (np.sum(flow_fw ** 2, axis=2) + np.sum(back ** 2, axis=2)) + beta
    return (ok & lands_inside(flow_fw)).astype(np.float32)


class FlowEstimator:
    """Flow between consecutive frames, reusing one OpenCV DIS object across calls."""

    def __init__(self, method: str = "dis"):
        self.method = _check_method(method)
        self._dis = _dis() if method == "dis" else None

    def flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow from a to b, as compute_flow."""
        return _flow(a, b, self.method, self._dis)

    def pair(self, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flow_cur_to_prev, mask) for two frames: warp(prev, flow) aligns prev onto cur; mask as consistency_mask."""
        fw, bw = self.flow(cur, prev), self.flow(prev, cur)
        return fw, consistency_mask(fw, bw)


#: Mean absolute difference (0-255 levels, RGB, over a 5x5 window) under which a rejected pixel is
#: explained by the flow around it, plus EXPLAINED_EDGE times the local gradient (levels per pixel):
#: resampling errs more on edges. The x264 noise of a still region is ~1-2 levels; an uncovered
#: background differs from what covered it by tens. (Pan, zoom-in and moving-disc clips, 256x144:
#: the zoom-in's rejected pixels 5.3% -> 0.01%, the discs' uncovered trails 1.2% -> 1.1%.)
EXPLAINED_TOL = 6.0
EXPLAINED_EDGE = 0.25
#: Pixels of flow: a rejected pixel whose nearest trusted flow differs this much from the mean
#: around it lies at a motion boundary (a disocclusion), and is not explained by the flow around it.
FLOW_JUMP = 0.5
#: Pixels of flow per pixel: a flow that changes faster than this around a rejected pixel (DIS
#: smears an object's motion over its edge) marks a motion boundary too. A zoom-in bends ~0.01.
FLOW_BEND = 0.1


def explained(flow: np.ndarray, mask: np.ndarray, prev: np.ndarray, cur: np.ndarray,
              tol: float = EXPLAINED_TOL) -> tuple[np.ndarray, np.ndarray]:
    """(flow, mask) with the pixels the consistency check rejects but the flow around them explains
    trusted again. DIS loses track where there is no texture to follow (a plain wall, a sky): there
    the forward and backward flows disagree although nothing is occluded. Such a pixel gets the flow
    of its nearest trusted pixel (smoothed over 3 px) and is trusted when ``prev`` warped by that
    flow matches ``cur`` within ``tol`` (more on edges: :data:`EXPLAINED_EDGE`) and the trusted
    flows around it agree (:data:`FLOW_JUMP`, :data:`FLOW_BEND`). What an object uncovers lies at a
    motion boundary and differs from what covered it: it stays rejected, and so does content
    entering the frame (its flow leads outside it). The other way too: a trusted pixel that
    ``prev`` warped by its flow does not match (after a gain per channel, for fades) is rejected;
    DIS drags the background an object uncovers along with the object, and the check trusts it.

    flow: HxWx2 cur -> prev as :meth:`FlowEstimator.pair`; mask: HxW in [0, 1]; prev, cur: HxWx3
    uint8. Returns new arrays; the flow changes only where the mask turned 1.
    """
    flow, mask = _retrusted(flow, mask, prev, cur, tol)
    return flow, _mismatched(flow, mask, prev, cur, tol)


def _edges(cur: np.ndarray) -> np.ndarray:
    """HxW float32: the local gradient of ``cur``'s luminance (uint8 RGB), levels per pixel over 5x5."""
    grey = _grey(cur).astype(np.float32)
    return cv2.blur(np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1)), (5, 5)) / 8


def _mismatched(flow: np.ndarray, mask: np.ndarray, prev: np.ndarray, cur: np.ndarray, tol: float) -> np.ndarray:
    """``mask`` with the trusted pixels the flow does not explain rejected: where ``prev`` warped by
    ``flow`` differs from ``cur`` by more than ``tol`` (+ the edge allowance), after one gain per
    channel that a fade explains. Next to a moving object DIS's smooth flow drags the uncovered
    background along with it, both ways, so the consistency check trusts it; carried, the dream
    there streaked along the object's path."""
    ok = mask >= 0.5
    if not ok.any():
        return mask
    warped = warp(prev.astype(np.float32), flow, cubic=True)
    now = cur.astype(np.float32)
    a, b = warped[ok], now[ok]
    gain = np.clip((a * b).sum(axis=0) / np.maximum((a * a).sum(axis=0), 1e-6), 0.5, 2.0)
    diff = cv2.blur(np.abs(warped * gain - now).mean(axis=2), (5, 5))
    # Edges allow for resampling error; those of the warped previous frame too, or the edge of the
    # object itself, a few pixels off, would excuse the background it uncovered.
    # (As uint8: a float image whose maximum is <= 1, a black frame, would read as 0..1.)
    edge = np.minimum(_edges(cur), _edges(np.clip(warped, 0, 255).astype(np.uint8)))
    wrong = ok & (diff > tol + EXPLAINED_EDGE * edge)
    if not wrong.any():
        return mask
    return np.where(wrong, 0.0, mask).astype(np.float32)


def _retrusted(flow, mask, prev, cur, tol):
    """(flow, mask) with the rejected pixels the flow around them explains trusted (see :func:`explained`)."""
    bad = mask < 0.5
    if not bad.any() or bad.all():
        return flow, mask
    filled = flow.copy()
    filled[bad] = flow[nearest_known(~bad, bad)]
    smooth = cv2.GaussianBlur(filled, (0, 0), 3.0)
    # Where the trusted flows around a pixel disagree (an object's edge: what it uncovered), copying
    # the dream from one side frame after frame would streak it behind the object.
    wide = cv2.GaussianBlur(filled, (0, 0), 6.0)
    bend = np.max([np.abs(g) for c in range(2) for g in np.gradient(wide[..., c])], axis=0)
    even = (np.abs(smooth - filled).max(axis=2) < FLOW_JUMP) & (bend < FLOW_BEND)
    filled[bad] = smooth[bad]
    diff = np.abs(warp(prev.astype(np.float32), filled) - cur.astype(np.float32)).mean(axis=2)
    ok = bad & lands_inside(filled) & even & (cv2.blur(diff, (5, 5)) <= tol + EXPLAINED_EDGE * _edges(cur))
    if not ok.any():
        return flow, mask
    out_flow = np.where(ok[..., None], filled, flow).astype(np.float32)
    out_mask = np.where(ok, 1.0, mask).astype(np.float32)
    return out_flow, out_mask
