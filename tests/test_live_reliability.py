"""`dreamvideo live` under hostile conditions, one test per class of the live sweep: a source that
sends nothing, mistakes found before any model loads (exit 2, one line), stopping at any moment
(the closing line, fixed exit codes, a playable recording), one recorder per file, the Python API's
options, sound where there is none, degenerate sources."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ffmpeg, ffmpeg_children
from helpers import ROOT, tiny_model_file

TINY = ["--layers", "conv2", "--steps", "2", "--octaves", "1", "--step-size", "0.05", "--no-page"]


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """tiny.keras; clip.mp4 (160x120, 10 fps, 3 s, a tone); silent.mp4 (no sound); dot.mp4 (1x1); still.png."""
    d = tmp_path_factory.mktemp("hostile")
    tiny_model_file(d / "tiny.keras")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-f", "lavfi", "-i", "sine=frequency=440",
           "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", d / "clip.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "2", "-c:v", "libx264", "-pix_fmt",
           "yuv420p", d / "silent.mp4")
    ffmpeg("-f", "lavfi", "-i", "color=red:size=1x1:rate=10", "-t", "1", "-c:v", "ffv1", d / "dot.mkv")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120", "-frames:v", "1", d / "still.png")
    return d


def _main(capsys, *argv):
    from dreamvideo.cli import main

    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(kit, tmp_path, *extra):
    """A live run in a process of its own, until it prints its status (it is playing)."""
    argv = [sys.executable, "-m", "dreamvideo.cli", "live", str(kit / "clip.mp4"), "--loop", "--model",
            str(kit / "tiny.keras"), *TINY, *map(str, extra)]
    p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return p


def _wait_for(p, text: str, timeout: float = 120) -> str:
    err = ""
    deadline = time.monotonic() + timeout
    while text not in err and time.monotonic() < deadline and p.poll() is None:
        err += os.read(p.stderr.fileno(), 4096).decode()
    assert text in err, err
    return err


def _closing(out: str) -> dict:
    from dreamvideo.realtime.session import parse_line

    return parse_line(out.strip().splitlines()[-1])


def _frames(path):
    from dreamvideo.io import VideoReader

    with VideoReader(path) as r:
        return list(r)


# ---------------------------------------------------------------- a source that sends nothing


def test_a_network_source_that_sends_nothing_gives_up_with_one_line(kit, tmp_path, capsys):
    port = _free_port(socket.SOCK_DGRAM)  # a udp port no one writes to
    t = time.monotonic()
    rc, out, err = _main(capsys, "live", f"udp://127.0.0.1:{port}", "--source-timeout", "2", "--record",
                         tmp_path / "r.mp4", "--model", kit / "tiny.keras", *TINY, "-q")
    assert rc == 1, err
    assert time.monotonic() - t < 30
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "sent no video in 2 s" in lines[0] and "--source-timeout" in lines[0], err
    assert not list(tmp_path.iterdir()) and not ffmpeg_children()


def test_a_stream_with_sound_is_recorded_with_it_and_gives_up_when_it_stops(kit, tmp_path, capsys):
    """One udp stream (picture and sound; its address can be opened once): recorded with its sound,
    driving a schedule; when it stops, the run gives up after --source-timeout, the recording kept."""
    from conftest import FFMPEG, audio_samples

    port = _free_port(socket.SOCK_DGRAM)
    sender = subprocess.Popen([FFMPEG, "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
                               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "16",
                               "-c:v", "mpeg2video", "-c:a", "mp2", "-f", "mpegts", f"udp://127.0.0.1:{port}"])
    try:
        rec = tmp_path / "stopped.mp4"
        rc, out, err = _main(capsys, "live", f"udp://127.0.0.1:{port}", "--source-timeout", "8", "--record", rec,
                             "--model", kit / "tiny.keras", *TINY, "--step-size", "0.05*(0.5+rms)", "-q")
    finally:
        sender.kill()
        sender.wait()
    assert rc == 1, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "sent no frame for 8 s" in lines[0], err
    assert _closing(out)["shown_fps"] > 0
    assert len(_frames(rec)) >= 5  # what came is recorded, playable
    assert np.abs(audio_samples(rec)).max() > 0.1  # with the stream's own sound
    assert not list(tmp_path.glob(".*")) and not ffmpeg_children()


# ---------------------------------------------------------------- mistakes: exit 2, before any model loads

MISSING_MODEL = "not-here.keras"  # loading it would fail: an error about anything else came first


@pytest.mark.parametrize("flags, says", [
    (["--steps", "20000"], "--steps"),
    (["--step-size", "3"], "--step-size"),
    (["--step-size", "0.5*(1+40*rms)"], "--step-size"),
    (["--blend", "2"], "--blend"),
])
def test_ranges_are_refused_before_the_model_loads(kit, tmp_path, capsys, flags, says):
    rc, out, err = _main(capsys, "live", kit / "clip.mp4", "--model", tmp_path / MISSING_MODEL, "--no-page", *flags)
    assert rc == 2 and says in err and MISSING_MODEL not in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags, says", [
    (["--zoom", "50"], "--zoom"), (["--angle", "500"], "--angle"), (["--dx", "99999"], "--dx"),
])
def test_a_zoom_s_moves_are_refused_before_the_model_loads(tmp_path, capsys, flags, says):
    rc, out, err = _main(capsys, "live", "zoom:noise", "--model", tmp_path / MISSING_MODEL, "--no-page", *flags)
    assert rc == 2 and says in err and MISSING_MODEL not in err, err


def test_mistakes_are_one_line_before_the_model_loads(kit, tmp_path, capsys):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    folder = tmp_path / "a-folder.mp4"
    folder.mkdir()
    model = ["--model", tmp_path / MISSING_MODEL]
    cases = [
        (["live", kit / "clip.mp4", "--page-port", busy.getsockname()[1], *model], "--page-port"),
        (["live", kit / "clip.mp4", "--record", folder, "--no-page", *model], "is a folder"),
        (["live", "udp://", "--no-page", *model], "no host"),
        (["live", "rtsp://:554/x", "--no-page", *model], "no host"),
        (["live", "udp://127.0.0.1:notaport", "--no-page", *model], "malformed"),
        (["live", kit / "clip.mp4", "--stream", "udp://:5000", "--no-page", *model], "host"),
        (["live", f"tcp://127.0.0.1:{_free_port()}", "--no-page", *model], "cannot read"),  # refused
        (["live", kit / "dot.mkv", "--no-page", *model], "too small"),
        (["live", kit / "still.png", "--no-page", *model], "zoom:"),
        (["live", kit / "silent.mp4", "--step-size", "0.01*(1+rms)", "--no-page", *model], "no sound"),
        (["live", kit / "clip.mp4", "--audio-in", tmp_path / "gone.wav", "--no-page", *model], "no such file"),
        (["live", kit / "clip.mp4", "--audio-in", kit / "silent.mp4", "--no-page", *model], "no sound"),
    ]
    try:
        for argv, says in cases:
            rc, out, err = _main(capsys, *argv)
            assert rc == 2 and says in err and MISSING_MODEL not in err, (argv, err)
            assert len(err.strip().splitlines()) == 1, (argv, err)
    finally:
        busy.close()
    assert list(tmp_path.iterdir()) == [folder] and not list(folder.iterdir())


# ---------------------------------------------------------------- stopping


def test_an_early_sigterm_prints_the_closing_line_and_exits_143(kit, tmp_path):
    p = _start(kit, tmp_path, "--record", tmp_path / "early.mp4")
    _wait_for(p, "loading the model")  # the model loads: the earliest moment a user would stop it
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "stopped by SIGTERM" in err
    assert _closing(out)["shown_fps"] == 0
    assert not list(tmp_path.glob("*")) and not list(tmp_path.glob(".*"))  # nothing shown, nothing left


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_stop_mid_run_finalizes_the_recording_with_a_fixed_exit_code(kit, tmp_path, sig, code):
    rec = tmp_path / "stopped.mkv"
    p = _start(kit, tmp_path, "--record", rec)
    _wait_for(p, "live: shown")
    time.sleep(1.0)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert _closing(out)["shown_fps"] > 0
    assert len(_frames(rec)) >= 5
    assert not list(tmp_path.glob(".*")), "no temporary file left"


def test_a_second_live_run_recording_to_the_same_file_is_refused(kit, tmp_path, capsys):
    rec = tmp_path / "one.mp4"
    p = _start(kit, tmp_path, "--record", rec)
    try:
        _wait_for(p, "live: shown")
        rc, out, err = _main(capsys, "live", kit / "clip.mp4", "--record", rec, "--model", kit / "tiny.keras",
                             *TINY)
        assert rc == 2 and "being recorded by another live run" in err, err
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
    assert p.returncode == 143
    assert len(_frames(rec)) >= 5  # the first run's recording, untouched by the second


# ---------------------------------------------------------------- the Python API


def test_the_python_api_names_a_wrong_option_and_frees_ffmpeg(kit):
    import dreamvideo
    from dreamvideo.errors import UserError

    opts = dict(model=str(kit / "tiny.keras"), layers="conv2", steps="1", octaves=1)
    for bad, says in ((dict(duration="soon"), "`duration`"), (dict(loop="no"), "`loop`"),
                      (dict(page_port=7.5), "`page_port`"), (dict(record=3), "`record`")):
        with pytest.raises(UserError, match=says):
            next(dreamvideo.live(str(kit / "clip.mp4"), **bad, **opts))
    frames = dreamvideo.live(str(kit / "clip.mp4"), record="", **opts)
    next(frames)
    assert ffmpeg_children()
    del frames  # left unclosed: dropping it closes it
    gc.collect()
    deadline = time.monotonic() + 10
    while ffmpeg_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ffmpeg_children()


def test_live_controls_change_a_running_session(kit):
    """A controller's change applies from the next dream: no carry and step size 0 leave frames undreamed."""
    import dreamvideo
    from dreamvideo.realtime.controls import LiveControls

    controls = LiveControls()
    diffs = []
    from dreamvideo.io import VideoReader

    with VideoReader(kit / "clip.mp4") as r:
        src = list(r)
    for k, (t, frame) in enumerate(dreamvideo.live(str(kit / "clip.mp4"), controls=controls, deepen=0,
                                                   model=str(kit / "tiny.keras"), layers="conv2", steps="2",
                                                   octaves=1, step_size="0.2")):
        if k == 15:
            controls.set("blend", 0)
            controls.set("step_size", 0)
        diffs.append(np.abs(frame.astype(float) - src[k]).mean())
    undreamed = diffs[0]  # the first frame is shown before any dream: what conversions alone differ by
    # (the first dream may land late on a busy machine)
    assert max(diffs[3:15]) > undreamed + 2 and np.median(diffs[-5:]) < undreamed + 1.5, diffs
