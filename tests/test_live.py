"""`dreamvideo live`: a file played at its own rate is dreamed live into a recording, a stream and the
page; a SIGTERM leaves a playable recording; a slow engine drops frames instead of queueing them;
the online audio features agree with the offline ones."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from conftest import FFMPEG, ffmpeg, live_ffmpeg
from helpers import ROOT, tiny_model_file

TINY = ["--layers", "conv2", "--steps", "2", "--octaves", "1", "--step-size", "0.05", "--no-page", "-q"]


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """tiny.keras; clip.mp4: 160x120 testsrc2 at 10 fps, 3 s, with a 440 Hz tone; fast.mp4: 160x120 at 25 fps, 4 s."""
    d = tmp_path_factory.mktemp("live")
    tiny_model_file(d / "tiny.keras")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-f", "lavfi", "-i", "sine=frequency=440",
           "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", d / "clip.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           d / "fast.mp4")
    assert (d / "clip.mp4").stat().st_size and (d / "fast.mp4").stat().st_size
    return d


def _probe(path):
    from dreamvideo.ffmpeg import header, parse_header

    return parse_header(header(path), path)


def _frames(path):
    from dreamvideo.io import VideoReader

    with VideoReader(path) as r:
        return list(r)


def _closing(text: str) -> dict:
    from dreamvideo.realtime.session import parse_line

    return parse_line(text.strip().splitlines()[-1])


def test_closing_line_has_the_documented_form():
    from dreamvideo.realtime.session import Stats, parse_line

    example = "live: shown 25.0 fps, dreamed 3.2 fps, latency 180 ms median / 240 ms p95, 0 source frames dropped"
    assert parse_line(example) == {"shown_fps": 25.0, "dreamed_fps": 3.2, "latency_median_ms": 180,
                                   "latency_p95_ms": 240, "dropped": 0}
    s = Stats(shown=250, dreamed=32, dropped=0, seconds=10.0, latencies=[0.18] * 10)
    assert s.line() == example.replace("240", "180")


def test_live_file_is_recorded_dreamed_at_its_length_and_rate(kit, tmp_path, capsys):
    from dreamvideo.cli import main

    rec = tmp_path / "live.mp4"
    rc = main(["live", str(kit / "clip.mp4"), "--record", str(rec), "--duration", "2", "--model",
               str(kit / "tiny.keras"), *TINY])
    out = capsys.readouterr().out
    assert rc == 0
    figures = _closing(out)
    info = _probe(rec)
    assert info.fps == 10 and (info.width, info.height) == (160, 120) and info.has_audio
    got = _frames(rec)
    assert len(got) == 20  # exactly the run: 2 s at the source's 10 fps, dropped frames repeated
    assert figures["shown_fps"] > 0 and figures["dreamed_fps"] > 0
    src = _frames(kit / "clip.mp4")[:20]
    diff = [np.abs(a.astype(float) - b.astype(float)).mean() for a, b in zip(got[10:], src[10:])]
    # Dreamed (the first frames show the source until the first dream lands, later on a busy machine).
    assert np.median(diff) > 2.0 and sum(d > 1.0 for d in diff) >= 7, diff
    assert not list(tmp_path.glob(".*")), "no temporary file left"


def test_python_api_yields_frames_with_timestamps_and_serves_the_page(kit, socket_port):
    import urllib.request

    import cv2
    import dreamvideo

    got, jpeg = [], None
    for t, frame in dreamvideo.live(str(kit / "clip.mp4"), duration=1.5, page=True, page_port=socket_port,
                                    model=str(kit / "tiny.keras"), layers="conv2", steps="2", octaves=1):
        got.append(t)
        if len(got) == 8:
            with urllib.request.urlopen(f"http://127.0.0.1:{socket_port}/frame.jpg", timeout=10) as r:
                jpeg = r.read()
        assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    assert got == pytest.approx([k / 10 for k in range(15)])
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (120, 160, 3)


@pytest.fixture
def socket_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_mid_run_leaves_a_playable_recording_and_no_ffmpeg(kit, tmp_path):
    rec = tmp_path / "stopped.mkv"
    argv = [sys.executable, "-m", "dreamvideo.cli", "live", str(kit / "clip.mp4"), "--loop", "--record", str(rec),
            "--model", str(kit / "tiny.keras"), *[a for a in TINY if a != "-q"]]
    p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    err = ""
    deadline = time.monotonic() + 120
    while "live: shown" not in err and time.monotonic() < deadline:  # the status line: it is running
        err += os.read(p.stderr.fileno(), 4096).decode()
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    out, rest = p.communicate(timeout=60)
    assert p.returncode == 143, err + rest  # SIGTERM: always 143, the recording finalized
    figures = _closing(out)
    assert figures["shown_fps"] > 0
    got = _frames(rec)
    assert len(got) >= 10 and got[0].shape == (120, 160, 3)
    assert not [c for _, _, c in live_ffmpeg() if str(tmp_path).encode() in c or str(kit).encode() in c]
    assert not list(tmp_path.glob(".*")), "no temporary file left"


class _Slow:
    """A dreamer that takes ``delay`` seconds a dream (an engine slower than the source)."""

    def __init__(self, dreamer, delay):
        self._d, self.delay, self.calls = dreamer, delay, 0

    def __getattr__(self, name):
        return getattr(self._d, name)

    def dream(self, *args, **kwargs):
        self.calls += 1
        time.sleep(self.delay)
        return self._d.dream(*args, **kwargs)


def test_a_slower_engine_drops_frames_instead_of_queueing_them(kit):
    from dreamvideo.build import build_dreamer
    from dreamvideo.realtime.session import LiveSession
    from dreamvideo.settings import LiveSettings, ModelSettings, split_options

    slow = _Slow(build_dreamer(ModelSettings(model=str(kit / "tiny.keras"), layers="conv2", precision="float32")), 0.4)
    session = LiveSession(str(kit / "fast.mp4"), LiveSettings(no_page=True),
                          split_options("video", dict(steps="1", octaves=1)), dreamer=slow)
    tracemalloc.start()
    memory, waiting = {}, []
    try:
        for k, _ in enumerate(session):
            waiting.append(session.worker.slot.pending())
            if k in (25, 95):
                memory[k] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    s = session.stats
    assert s.shown + s.dropped == 100  # every source frame shown (or counted), at the source's rate
    assert s.dropped < 50  # the show loop keeps up (tracemalloc slows it, and the machine may be busy)
    assert s.dreamed <= 4 / 0.4 + 2 and s.skipped >= 60  # the frames that came while it dreamed: not dreamed
    assert max(waiting) <= 1  # never more than the newest frame waits for the engine
    # 70 frames of 160x120 queued would be 4 MB.
    assert memory[95] - memory[25] < 1.5e6, memory


def test_stream_to_udp_is_read_back(kit, socket_port):
    from dreamvideo.cli import main

    url = f"udp://127.0.0.1:{socket_port}"
    reader = subprocess.Popen([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-timeout", "20000000",
                               "-i", url + "?timeout=20000000", "-frames:v", "8", "-f", "rawvideo", "-pix_fmt",
                               "rgb24", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        rc = main(["live", str(kit / "clip.mp4"), "--loop", "--stream", url, "--duration", "3", "--model",
                   str(kit / "tiny.keras"), *TINY])
        out, err = reader.communicate(timeout=30)
    finally:
        reader.kill()
        reader.wait()
    assert rc == 0
    assert len(out) == 8 * 160 * 120 * 3, err
    frames = np.frombuffer(out, np.uint8).reshape(8, 120, 160, 3)
    assert frames.std() > 10  # pictures, not a blank


def test_virtual_camera_without_a_driver_is_one_line(kit, capsys):
    from dreamvideo.cli import main

    if any("loopback" in Path(n).read_text().lower() for n in Path("/sys/class/video4linux").glob("video*/name")):
        pytest.skip("this machine has a v4l2loopback device")
    rc = main(["live", str(kit / "clip.mp4"), "--virtual-camera", "--model", str(kit / "tiny.keras"), *TINY])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "v4l2loopback" in err or 'pip install "dreamvideo[live]"' in err


def test_a_step_size_driven_by_the_files_sound_dreams_live_at_the_sources_rate_under_the_controller(
        kit, tmp_path, capsys):
    from dreamvideo.cli import main

    rec = tmp_path / "rms.mp4"
    rc = main(["live", str(kit / "clip.mp4"), "--duration", "2", "--record", str(rec), "--model",
               str(kit / "tiny.keras"), *TINY, "--step-size", "0.1*rms", "--target-fps", "4"])
    assert rc == 0
    closing = _closing(capsys.readouterr().out)
    assert closing["dreamed_fps"] > 0 and abs(closing["shown_fps"] - 10) < 1.5  # shown at the clip's 10 fps
    info = _probe(rec)
    assert info.has_audio and abs(info.duration - 2.0) < 0.1
    # The step size is 0 without sound: a dream on the recording means the tone's rms reached it.
    shown, source = _frames(rec), _frames(kit / "clip.mp4")
    assert np.mean([np.abs(shown[i].astype(float) - source[i]).mean() for i in range(15, 20)]) > 4.0


def test_audio_in_drives_the_schedules_and_is_recorded(kit, tmp_path, capsys):
    from dreamvideo.cli import main

    song = tmp_path / "song.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=5", song)
    rec = tmp_path / "with-song.mkv"
    rc = main(["live", str(kit / "fast.mp4"), "--duration", "2", "--audio-in", str(song), "--record", str(rec),
               "--model", str(kit / "tiny.keras"), *TINY, "--step-size", "0.01*(1 + 2*rms)"])
    assert rc == 0 and _closing(capsys.readouterr().out)["dreamed_fps"] > 0
    info = _probe(rec)
    assert info.has_audio and abs(info.duration - 2.0) < 0.1


def test_a_source_that_is_not_there_is_one_line(tmp_path, capsys):
    from dreamvideo.cli import main

    rc = main(["live", str(tmp_path / "nothing.mp4"), "--no-page"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "nothing.mp4" in err


def test_the_controller_lowers_then_raises_the_work():
    from dreamvideo.realtime.engine import Controller

    c = Controller(target=5.0, steps=3, octaves=2)
    assert c.level.steps == 3 and c.level.octaves == 2
    for _ in range(40):  # dreams of 0.5 s: too slow for 5 fps
        c.observe(0.5)
    assert c.level.steps == 1 and c.level.octaves == 1
    for _ in range(40):  # now 0.05 s: room to spare
        c.observe(0.05)
    assert c.level.steps == 3 and c.level.octaves == 2


def _song(sr, seconds=8.0):
    """A loud first second, then the volume ramped down and up again, with clicks at 120 bpm."""
    t = np.arange(int(sr * seconds)) / sr
    env = np.interp(t, [0, 1, 4, seconds], [1, 1, 0.15, 0.6])
    y = 0.3 * env * (np.sin(2 * np.pi * 110 * t) + 0.5 * np.sin(2 * np.pi * 880 * t) + 0.3 * np.sin(2 * np.pi * 4000 * t))
    rng = np.random.default_rng(0)
    for b in np.arange(0.25, seconds, 0.5):
        i = int(b * sr)
        y[i:i + 200] += 0.8 * rng.uniform(-1, 1, 200) * np.exp(-np.arange(200) / 40)
    return y.astype(np.float32)


def test_online_audio_features_match_the_offline_ones():
    from dreamvideo.audio import audio_features
    from dreamvideo.realtime.listen import SR, OnlineFeatures

    fps, y = 25, _song(SR)
    n = int(len(y) / SR * fps)
    offline = audio_features(y, SR, fps, n)
    online = OnlineFeatures(fps, None, SR)
    rows, fed = [], 0
    for f in range(n):  # the samples come in as they are played
        end = int(round((f + 1) * SR / fps))
        online.push(y[fed:end])
        fed = end
        rows.append(online.at(f))
    after = slice(fps, n)  # once the loudest second has been heard
    for k in ("rms", "low", "mid", "high", "onset"):
        on = np.array([r[k] for r in rows])[after]
        off = offline[k]
        near = np.min([np.abs(on - np.roll(off, s)[after]) for s in (-1, 0, 1)], axis=0)  # a frame either way
        assert near.mean() < 0.06, (k, near.mean())
    beats_off = set(np.flatnonzero(offline["beat"] > 0.99))
    beats_on = np.flatnonzero(np.array([r["beat"] for r in rows]) > 0.99)
    assert len(beats_on) >= 10
    hits = [b for b in beats_on if {b - 1, b, b + 1} & beats_off]
    assert len(hits) >= 0.9 * len(beats_on), (sorted(beats_off), list(beats_on))


@pytest.mark.slow
def test_a_real_dream_moves_with_the_picture_between_dreams(tmp_path):
    """MobileNetV2 (the offline ImageNet weights) live over a pan of 2 px a frame: the recording is
    dreamed, and each frame's dream is the one before moved with the picture (the carry), not a new
    pattern every frame."""
    from helpers import MOBILENET_WEIGHTS, needs_weights, photo

    if not MOBILENET_WEIGHTS.is_file():
        pytest.skip(needs_weights.kwargs["reason"])
    from dreamvideo import live
    from dreamvideo.io import VideoWriter

    img = photo("astronaut")[100:260, 60:460]
    clip = tmp_path / "pan.mp4"
    with VideoWriter(clip, 10, (160, 96), quality=10) as w:
        for f in range(40):
            w.write(np.ascontiguousarray(img[20:116, 2 * f:2 * f + 160]))
    src = _frames(clip)
    shown = [frame for _, frame in live(str(clip), model="mobilenet_v2", weights=str(MOBILENET_WEIGHTS),
                                        octaves=2, steps="3", step_size="0.02")]
    assert len(shown) == 40
    res = [s.astype(float) - o.astype(float) for s, o in zip(shown, src)]
    assert np.mean([np.abs(r).mean() for r in res[10:]]) > 3  # dreamed
    # The pan moves the picture 2 px left a frame: so does the dream (away from the entering right edge).
    moved = [np.corrcoef(a[8:-8, 10:-20].ravel(), b[8:-8, 8:-22].ravel())[0, 1] for a, b in zip(res[10:], res[11:])]
    still = [np.corrcoef(a[8:-8, 10:-20].ravel(), b[8:-8, 10:-20].ravel())[0, 1] for a, b in zip(res[10:], res[11:])]
    assert np.median(moved) > 0.6 and np.median(moved) > np.median(still) + 0.2, (np.median(moved), np.median(still))


@pytest.mark.parametrize("which", ["source", "audio_in"])
def test_recording_over_the_source_or_its_sound_is_refused_and_leaves_it_whole(kit, tmp_path, capsys, which):
    from dreamvideo.cli import main

    src, song = tmp_path / "mine.mp4", tmp_path / "song.mkv"  # a recording's own extension: only the clash stops it
    src.write_bytes((kit / "clip.mp4").read_bytes())
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=2", song)
    before = src.read_bytes(), song.read_bytes()
    target = src if which == "source" else song
    rc = main(["live", str(src), "--no-page", "--duration", "1", "--record", str(target), "--audio-in", str(song),
               "--model", str(kit / "tiny.keras"), *TINY])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--record file" in err, err
    assert (src.read_bytes(), song.read_bytes()) == before
