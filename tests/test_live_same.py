"""The live restructure changed no picture: a recording from a file source, dreamed in lockstep (a
source slow enough that every frame's dream lands before the next frame), is frame for frame the
recording the code before the restructure made for the same seed (tests/data/live_same.json holds
its frames, 16x12 thumbnails, so a TensorFlow or CPU with other rounding passes within a level)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import ffmpeg
from helpers import tiny_model_file

REFERENCE = Path(__file__).parent / "data" / "live_same.json"
FRAMES = 10


def _thumbs(path) -> list:
    import cv2

    from dreamvideo.io import VideoReader

    with VideoReader(path) as r:
        return [cv2.resize(f, (16, 12), interpolation=cv2.INTER_AREA).astype(int).tolist() for f in r]


def _record(d: Path) -> tuple[list, list]:
    """(the recording's thumbnails, where each dream landed) of one lockstep run."""
    import dreamvideo
    from dreamvideo.realtime import session as S

    rec = d / "same.mp4"
    landed = []
    real = S.LiveSession.__iter__

    def spy(self):  # where each dream was first shown: the lockstep check
        try:
            yield from real(self)
        finally:
            landed[:] = self.landed_at

    S.LiveSession.__iter__ = spy
    try:
        for _ in dreamvideo.live(str(d / "slow.mp4"), record=str(rec), duration=FRAMES / 2, seed=7, deepen=0,
                                 model=str(d / "tiny.keras"), layers="conv2", steps="2", octaves=1,
                                 step_size="0.05"):
            pass
    finally:
        S.LiveSession.__iter__ = real
    return _thumbs(rec), [list(x) for x in landed]


def test_a_lockstep_recording_is_the_one_before_the_restructure(tmp_path):
    tiny_model_file(tmp_path / "tiny.keras")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=2", "-f", "lavfi", "-i", "sine=frequency=440",
           "-t", str(FRAMES / 2 + 1), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           tmp_path / "slow.mp4")
    lockstep = [[k, k - 1] for k in range(1, FRAMES)]
    for _ in range(3):  # a loaded machine may land a dream a frame late: that run says nothing
        thumbs, landed = _record(tmp_path)
        if landed == lockstep:
            break
    else:
        pytest.skip(f"no lockstep run on this machine (dreams landed at {landed})")
    if os.environ.get("DREAMVIDEO_WRITE_LIVE_REFERENCE"):
        REFERENCE.write_text(json.dumps(thumbs))
    want = np.array(json.loads(REFERENCE.read_text()))
    got = np.array(thumbs)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 2, np.abs(got - want).reshape(len(got), -1).max(1)
    # and it was dreamed: the frames after the first differ from the first recording's source
    assert np.abs(got[1:] - got[:1]).mean() > 1
