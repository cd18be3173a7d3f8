"""`dreamvideo live zoom:IMAGE|zoom:noise`: a live infinite zoom, each frame the newest dream moved
by the zoom schedules, dreamed as fast as the engine goes, moved by the music."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from conftest import ffmpeg
from helpers import tiny_model_file

TINY = ["--layers", "conv2", "--steps", "2", "--octaves", "1", "--step-size", "0.05", "--no-page", "-q"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("livezoom")
    tiny_model_file(d / "tiny.keras")
    return d / "tiny.keras"


def _frames(path):
    from dreamvideo.io import VideoReader

    with VideoReader(path) as r:
        return list(r)


def test_a_live_zoom_from_noise_is_recorded_with_the_song_it_moves_to(tiny, tmp_path, capsys):
    from dreamvideo.cli import main
    from dreamvideo.ffmpeg import header, parse_header
    from dreamvideo.realtime.session import parse_line

    song = tmp_path / "song.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=200:duration=5", "-af", "volume='t/2':eval=frame", song)
    rec = tmp_path / "zoom.mp4"
    rc = main(["live", "zoom:noise:160x96", "--fps", "10", "--duration", "3", "--zoom", "1 + 0.03*rms",
               "--audio-in", str(song), "--record", str(rec), "--model", str(tiny), *TINY])
    out = capsys.readouterr().out
    assert rc == 0
    figures = parse_line(out.strip().splitlines()[-1])
    assert figures["shown_fps"] > 5 and figures["dreamed_fps"] > 0
    info = parse_header(header(rec), rec)
    assert info.fps == 10 and (info.width, info.height) == (160, 96) and info.has_audio
    got = _frames(rec)
    assert len(got) == 30
    change = [np.abs(a.astype(float) - b.astype(float)).mean() for a, b in zip(got[10:], got[11:])]
    assert min(change) > 0.5, change  # it keeps moving (and dreaming): no frame repeats the one before


def test_the_frames_between_dreams_are_the_last_dream_moved():
    """Each frame is the newest dream moved by every frame's move since that dream's frame, in one
    warp; before the first dream the start image stands still."""
    from dreamvideo.infinite import motion, warp
    from dreamvideo.realtime.zooming import ZoomSource

    rng = np.random.default_rng(0)
    start = rng.integers(0, 256, (64, 96, 3), np.uint8)
    dream = rng.integers(0, 256, (64, 96, 3), np.uint8)
    moves = lambda f: (1.0 + 0.01 * (f % 3), 0.5, 0.0, 0.0)  # noqa: E731
    src = ZoomSource(start, 200.0, moves).start()
    try:
        seq, _, first = src.frames.take(5)
        assert np.array_equal(first, start)  # no dream yet: still
        time.sleep(0.05)
        landed_on = src.received - 1
        src.landed(landed_on, dream)
        k, _, frame = src.frames.take(5)
        while k <= landed_on:  # a frame made before the dream landed
            k, _, frame = src.frames.take(5)
        acc = np.eye(3)
        for f in range(landed_on + 1, k + 1):
            acc = motion(dream.shape, *moves(f)) @ acc
        assert np.array_equal(frame, warp(dream, acc))
    finally:
        src.close()
    assert src.ended


@pytest.mark.parametrize("source, words", [("zoom:nothing.png", "no such image"),
                                           ("zoom:noise:5x5", "between 16 and 16384"),
                                           ("zoom:", "zoom:IMAGE, zoom:noise"),
                                           ("zoom:noise --zoom 1+0.1*beat", "pass --audio-in")])
def test_a_bad_zoom_source_is_one_line(tmp_path, capsys, monkeypatch, source, words):
    from dreamvideo.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("dreamvideo.build.build_dreamer", lambda *a, **k: pytest.fail("a model was loaded"))
    rc = main(["live", *source.split(), "--no-page", "--duration", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and words in err, err


def test_a_zoom_from_a_photo_through_the_python_api(tiny, tmp_path):
    import imageio.v3 as iio

    import dreamvideo
    from helpers import photo

    img = tmp_path / "chelsea.png"
    iio.imwrite(img, photo("chelsea")[::4, ::4])
    shown = [f for _, f in dreamvideo.live(f"zoom:{img}", duration=1.0, fps=10, zoom="1.05", max_side=96,
                                           model=str(tiny), layers="conv2", steps="2", octaves=1)]
    assert len(shown) == 10 and max(shown[0].shape[:2]) == 96 and shown[0].shape[0] % 2 == 0
    assert not np.array_equal(shown[2], shown[-1])  # it moved


#: A Tk window over the whole display: a grey field, a blue disc, a red square crossing at 50 px/s.
PAINTER = """
import tkinter as tk
root = tk.Tk(); root.geometry("320x240+0+0"); root.overrideredirect(True)
c = tk.Canvas(root, width=320, height=240, bg="#707070", highlightthickness=0); c.pack()
c.create_oval(200, 40, 300, 140, fill="#3050c0", width=0)
box = c.create_rectangle(0, 80, 60, 140, fill="#d02020", width=0)
def step():
    c.move(box, 2, 0)
    if c.coords(box)[0] > 250: c.move(box, -250, 0)
    root.after(40, step)
step(); root.mainloop()
"""


@pytest.fixture
def x_display():
    """A virtual X display (Xvfb, 320x240) with a moving test pattern on it, stopped after the test."""
    import os
    import shutil
    import subprocess

    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb (apt-get install -y xvfb)")
    n = 90 + os.getpid() % 9
    x = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "320x240x24", "-nolisten", "tcp"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(f"/tmp/.X11-unix/X{n}"):
            assert x.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.1)
        painter = subprocess.Popen([sys.executable, "-c", PAINTER], env=dict(os.environ, DISPLAY=f":{n}"),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        if painter.poll() is not None:
            pytest.skip("no Tk to draw on the display")
        yield f":{n}"
        painter.terminate()
        painter.wait(timeout=10)
    finally:
        x.terminate()
        x.wait(timeout=10)


def test_the_screen_is_dreamed_live(tiny, tmp_path, capsys, x_display, monkeypatch):
    """`live screen` captures the X display (x11grab, the bundled ffmpeg) at its 25 fps into a
    recording: the screen's picture moving as it does, dreamed (against the same capture with 0 steps)."""
    from dreamvideo.cli import main
    from dreamvideo.ffmpeg import header, parse_header
    from dreamvideo.realtime.session import parse_line

    monkeypatch.setenv("DISPLAY", x_display)
    texture = {}
    for steps in ("0", "2"):
        rec = tmp_path / f"screen-{steps}.mp4"
        rc = main(["live", "screen", "--duration", "2", "--record", str(rec), "--model", str(tiny), *TINY,
                   "--steps", steps])
        assert rc == 0
        figures = parse_line(capsys.readouterr().out.strip().splitlines()[-1])
        assert figures["shown_fps"] > 10 and figures["dreamed_fps"] > 0
        info = parse_header(header(rec), rec)
        assert (info.width, info.height) == (320, 240) and info.fps == 25
        got = _frames(rec)
        assert len(got) == 50
        reds = [float(np.nonzero((f[90:130, :, 0].astype(int) - f[90:130, :, 1]).mean(0) > 60)[0].mean())
                for f in got[10::10] if ((f[90:130, :, 0].astype(int) - f[90:130, :, 1]).mean(0) > 60).any()]
        # The red square moves right, as on the screen (50 px/s: 20 px every 10 frames; it may wrap once).
        assert len(reds) >= 3 and sum(5 < d < 60 for d in np.diff(reds)) >= len(reds) - 2, reds
        texture[steps] = np.mean([f[160:230].astype(float).std(axis=(0, 1)).mean() for f in got[20:]])
    # Dreamed: the grey field carries the tiny net's pattern; undreamed it stays flat.
    assert texture["0"] < 0.05 and texture["2"] > 0.2, texture


def test_a_live_zoom_never_writes_its_start_image(tmp_path, capsys):
    import imageio.v3 as iio

    from dreamvideo.cli import main
    from helpers import photo

    img = tmp_path / "mine.png"
    iio.imwrite(img, photo("chelsea")[::4, ::4])
    before = img.read_bytes()
    rc = main(["live", f"zoom:{img}", "--no-page", "--save-preset", str(img)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "is the input" in err
    assert img.read_bytes() == before


@pytest.mark.slow
def test_a_live_zoom_with_the_shared_weights_dreams_deeper_as_it_zooms(tmp_path):
    """MobileNetV2 (the offline ImageNet weights) over a live zoom into a photo: the frames lift the
    dreamed layer's activation well above the photo's, more later than early, and each frame is
    the one before magnified (the zoom shows), not a new picture."""
    import cv2
    import imageio.v3 as iio

    from helpers import MOBILENET_WEIGHTS, needs_weights, photo

    if not MOBILENET_WEIGHTS.is_file():
        pytest.skip(needs_weights.kwargs["reason"])
    import dreamvideo
    from dreamvideo.engine import to_unit
    from dreamvideo.models import load_model

    img = photo("chelsea")[::2, ::2]
    path = tmp_path / "chelsea.png"
    iio.imwrite(path, img)
    shown = [f for _, f in dreamvideo.live(f"zoom:{path}", duration=4.0, fps=10, zoom="1.01", max_side=160,
                                           model="mobilenet_v2", weights=str(MOBILENET_WEIGHTS),
                                           layers="block_10_expand_relu", octaves=2, steps="4", step_size="0.02")]
    assert len(shown) == 40
    m = load_model("mobilenet_v2", weights=str(MOBILENET_WEIGHTS), precision="float32").select(["block_10_expand_relu"])
    act = lambda x: float(np.mean(np.square(m.numpy(to_unit(x)[None])["block_10_expand_relu"])))  # noqa: E731
    start = cv2.resize(img, shown[0].shape[1::-1], interpolation=cv2.INTER_AREA)
    early, late = act(shown[12]), act(shown[-1])
    assert late > 1.3 * act(start) and late >= early, (act(start), early, late)
    # Frame k+1 is frame k zoomed by 1.01 about the centre (and a little more dream): closer to that than to k.
    from dreamvideo.infinite import move

    a, b = shown[-6].astype(float), shown[-5].astype(float)
    zoomed = move(shown[-6], 1.01, 0, 0, 0).astype(float)
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(zoomed - b)[inner].mean() < np.abs(a - b)[inner].mean()


def test_a_preset_zoom_section_applies_to_a_live_zoom(tiny, tmp_path, capsys):
    """A preset's [zoom] (its rate, its detail) applies live as offline, and --save-preset keeps it."""
    from dreamvideo.cli import main
    from dreamvideo.ffmpeg import header, parse_header

    preset = tmp_path / "vj.toml"
    preset.write_text('[zoom]\nfps = 12.0\ndetail_octaves = 2\n\n[schedules]\nzoom = "1.02"\n')
    rec, saved = tmp_path / "vj.mp4", tmp_path / "saved.toml"
    rc = main(["live", "zoom:noise:96x64", "--preset", str(preset), "--duration", "1", "--record", str(rec),
               "--save-preset", str(saved), "--model", str(tiny), *TINY])
    assert rc == 0
    assert parse_header(header(rec), rec).fps == 12
    text = saved.read_text()
    assert "[zoom]" in text and "fps = 12.0" in text and 'zoom = "1.02"' in text
