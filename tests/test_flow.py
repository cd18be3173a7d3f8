"""Optical flow on pans with a known motion: warping, flow accuracy, occlusion masks."""

from __future__ import annotations

import numpy as np
import pytest

from dreamvideo import flow
from dreamvideo.errors import UserError
from helpers import photo

H, W = 120, 160
DX, DY = 3, 2
INNER = (slice(12, -12), slice(12, -12))


# Textured crops: in flat areas (sky) any small flow explains the frames, so no method can recover a pan there.
CROPS = {"astronaut": (60, 160), "chelsea": (80, 150), "coffee": (150, 200)}


def pan(name="astronaut"):
    """(prev, cur): a crop window moved by (DX, DY) px, so cur[y, x] == prev[y + DY, x + DX]."""
    img, (y, x) = photo(name), CROPS[name]
    return (np.ascontiguousarray(img[y:y + H, x:x + W]),
            np.ascontiguousarray(img[y + DY:y + DY + H, x + DX:x + DX + W]))


def mad(a, b):
    return np.abs(a.astype(np.float64) - b.astype(np.float64)).mean()


def test_warp_with_the_true_shift_aligns_prev_onto_cur():
    prev, cur = pan()
    f = np.zeros((H, W, 2), np.float32)
    f[..., 0], f[..., 1] = DX, DY
    warped = flow.warp(prev, f)
    assert warped.dtype == np.uint8 and warped.shape == prev.shape
    assert np.array_equal(warped[:-DY, :-DX], cur[:-DY, :-DX])  # integer shifts are exact
    feats = np.random.default_rng(0).random((H, W, 7), dtype=np.float32)  # > 4 channels
    out = flow.warp(feats, f)
    assert out.dtype == np.float32 and np.array_equal(out[:-DY, :-DX], feats[DY:, DX:])
    assert flow.warp(prev[..., 0], f).shape == (H, W)


@pytest.mark.parametrize("method", flow.METHODS)
@pytest.mark.parametrize("name", CROPS)
def test_flow_recovers_a_known_pan(method, name):
    prev, cur = pan(name)
    f = flow.compute_flow(cur, prev, method)
    assert f.shape == (H, W, 2) and f.dtype == np.float32
    inner = f[INNER]
    assert abs(np.median(inner[..., 0]) - DX) < 0.5 and abs(np.median(inner[..., 1]) - DY) < 0.5
    warped = flow.warp(prev, f)
    assert mad(warped[INNER], cur[INNER]) < 0.25 * mad(prev[INNER], cur[INNER])


def test_flow_accepts_float_frames():
    prev, cur = pan()
    f = flow.compute_flow(cur.astype(np.float32) / 255, prev.astype(np.float32), "dis")
    assert abs(np.median(f[INNER][..., 0]) - DX) < 0.5


def test_mask_zeroes_the_disoccluded_strip():
    prev, cur = pan()
    fw, mask = flow.FlowEstimator("dis").pair(prev, cur)
    assert mask.shape == (H, W) and mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    assert mask[:, -DX:].max() == 0 and mask[-DY:, :].max() == 0  # content that was outside prev
    assert mask[INNER].mean() > 0.95
    assert abs(np.median(fw[INNER][..., 0]) - DX) < 0.5


def test_mask_flags_inconsistent_flow():
    fw = np.zeros((H, W, 2), np.float32)
    fw[..., 0] = 2
    assert flow.consistency_mask(fw, -fw)[:, :-2].min() == 1
    assert flow.consistency_mask(fw, fw).max() == 0  # going there and "back" drifts 4 px


def test_unknown_method_is_a_user_error():
    with pytest.raises(UserError, match="dis, farneback"):
        flow.FlowEstimator("raft")
    with pytest.raises(UserError, match="unknown optical flow method"):
        flow.compute_flow(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), "lk")


def test_pixels_the_flow_around_them_explains_are_trusted_again():
    # A pan (DX, DY) over a photo with a plain wall in it (one colour and a little noise: DIS cannot
    # follow the motion there) and a textured square moving 8 px right over the textured part.
    prev, cur = pan()
    prev, cur = prev.copy(), cur.copy()
    rng = np.random.default_rng(0)
    for img in (prev, cur):
        img[60:110, 30:130] = np.clip(150 + rng.normal(0, 1, (50, 100, 3)), 0, 255).astype(np.uint8)
    sq = np.ascontiguousarray(photo("coffee")[200:220, 200:220])
    prev[10:30, 20:40] = sq
    cur[10:30, 28:48] = sq
    fw = np.zeros((H, W, 2), np.float32)
    fw[..., 0], fw[..., 1] = DX, DY
    fw[10:30, 28:48] = (-8, 0)
    mask = np.ones((H, W), np.float32)
    mask[:, -DX:] = mask[-DY:, :] = 0  # entered the frame
    mask[10:30, 20:28] = 0  # the background the square uncovered
    lost = np.zeros((H, W), bool)
    lost[70:100, 50:110] = True  # DIS lost track on the wall: rejected, its flow wrong
    mask[lost], fw[lost] = 0, (-7, 5)
    fl, m = flow.explained(fw, mask, prev, cur)
    assert m[lost].min() == 1  # the wall follows the pan around it: carried, not dreamed anew
    assert np.abs(fl[lost] - (DX, DY)).max() < 0.01
    # What the square uncovered differs from what covered it: still new. Content entering at the edges too.
    assert m[10:30, 20:28].max() == 0
    assert m[:, -DX:].max() == 0 and m[-DY:, :].max() == 0
    far = mask > 0.5
    far[:40] = False  # the square's neighbours: the pan's flow there points into the square
    assert np.array_equal(fl[far], fw[far])  # trusted pixels keep their flow


def disc_pair(step=3):
    """(prev, cur, trail): a textured disc (from coffee) moving ``step`` px right over a still photo
    (chelsea); ``trail`` marks the background it uncovered (HxW bool)."""
    import cv2

    back = cv2.resize(photo("chelsea"), (W, H), interpolation=cv2.INTER_AREA)
    tex = cv2.resize(photo("coffee"), (W, H), interpolation=cv2.INTER_AREA)
    frames, discs = [], []
    for x in (60, 60 + step):
        d = cv2.circle(np.zeros((H, W), np.uint8), (x, 60), 24, 1, -1).astype(bool)
        img = back.copy()
        img[d] = np.roll(tex, x, axis=1)[d]  # the disc's texture moves with it
        frames.append(img)
        discs.append(d)
    return frames[0], frames[1], discs[0] & ~discs[1], discs[1]


def test_background_a_moving_object_uncovers_is_new_though_the_flow_drags_it_along():
    # DIS smooths the disc's motion over its edge, both ways, so the consistency check trusts the
    # uncovered background behind it: carried, the dream there streaked along the disc's path.
    prev, cur, trail, disc = disc_pair()
    fw, mask = flow.FlowEstimator("dis").pair(prev, cur)
    fl, m = flow.explained(fw, mask, prev, cur)
    assert m[trail].mean() < 0.35  # the uncovered background is dreamed anew (but the crescent's sub-pixel tips)
    inner = disc & ~np.roll(~disc, 4, axis=1) & ~np.roll(~disc, -4, axis=1)
    assert m[inner].mean() > 0.9  # the disc itself is carried
    still = np.ones((H, W), bool)
    still[20:100, 20:110] = False
    still[:, -4:] = still[:, :4] = False
    assert m[still].mean() >= mask[still].mean() - 0.002 > 0.95  # the still background stays as trusted as it was
