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


def consistency_mask(flow_fw: np.ndarray, flow_bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward consistency (Sundaram et al. 2010; Ruder et al. 2016, "Artistic style transfer for videos").

    flow_fw is cur->prev and flow_bw prev->cur. A pixel is consistent (1) when going there and back
    returns to it: |fw + bw(x + fw)|^2 <= alpha * (|fw|^2 + |bw(x + fw)|^2) + beta; it is 0 when
    the test fails (occlusion, disocclusion, bad flow) or its match in prev falls outside the frame.
    Returns HxW float32 in {0, 1}.
    """
    h, w = flow_fw.shape[:2]
    back = warp(flow_bw, flow_fw)
    err = np.sum((flow_fw + back) ** 2, axis=2)
    ok = err <= alpha * (np.sum(flow_fw ** 2, axis=2) + np.sum(back ** 2, axis=2)) + beta
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = gx + flow_fw[..., 0], gy + flow_fw[..., 1]
    ok &= (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return ok.astype(np.float32)


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
