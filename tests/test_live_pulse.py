"""The microphone path for real: Debian's PulseAudio with a virtual sink whose monitor is the
default source, a song played into it. ``--audio-in default`` drives a schedule and is recorded;
the sound server stopping mid-run ends the run with one line (exit 1) and a playable recording."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np
import pytest

from conftest import audio_samples
from helpers import ROOT, tiny_model_file

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("pulseaudio") or not shutil.which("paplay"),
                                 reason="needs PulseAudio (apt-get install -y pulseaudio pulseaudio-utils)")]

TINY = ["--layers", "conv2", "--steps", "1", "--octaves", "1", "--no-page", "--max-side", "96", "--fps", "10"]


@pytest.fixture
def pulse(tmp_path):
    """A PulseAudio server of its own (a null sink, its monitor the default source); the environment
    its clients need; a song (a loud 440 Hz tone, 60 s) playing into it."""
    home = tempfile.mkdtemp(prefix="pa-")
    env = {**os.environ, "HOME": home, "XDG_RUNTIME_DIR": f"{home}/xdg"}
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
    subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1", "--disallow-exit", "-n",
                    "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=vsink"],
                   env=env, check=True, capture_output=True, timeout=30)
    song = tmp_path / "song.wav"
    t = np.arange(60 * 22050) / 22050
    with wave.open(str(song), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(22050)
        w.writeframes((0.6 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes())
    player = subprocess.Popen(["paplay", "--device=vsink", str(song)], env=env)
    try:
        yield env
    finally:
        player.kill()
        player.wait()
        subprocess.run(["pulseaudio", "-k"], env=env, capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def _live(env, tmp_path, *argv):
    tiny_model_file(tmp_path / "tiny.keras")
    return subprocess.Popen([sys.executable, "-m", "dreamvideo.cli", "live", *map(str, argv), "--model",
                             str(tmp_path / "tiny.keras"), *TINY], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**env, "PYTHONPATH": str(ROOT)})


def _frames(path):
    from dreamvideo.io import VideoReader

    with VideoReader(path) as r:
        return list(r)


def test_the_microphone_drives_a_schedule_and_is_recorded(pulse, tmp_path):
    rec = tmp_path / "mic.mp4"
    # zoom 1 in silence (the frames stand still), 1.05 a frame at full loudness
    p = _live(pulse, tmp_path, "zoom:noise", "--audio-in", "default", "--zoom", "1+0.05*rms", "--duration", "5",
              "--record", rec)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    frames = [f.astype(np.float32) for f in _frames(rec)]
    moved = [np.abs(a - b).mean() for a, b in zip(frames[25:], frames[26:])]
    assert np.median(moved) > 1.0, moved  # the zoom moved with the song's loudness
    sound = audio_samples(rec)
    assert sound.size and np.abs(sound).max() > 0.2  # and the song is in the recording


def test_the_sound_server_stopping_ends_the_run_with_one_line(pulse, tmp_path):
    rec = tmp_path / "cut.mp4"
    p = _live(pulse, tmp_path, "zoom:noise", "--audio-in", "default", "--zoom", "1+0.05*rms", "--record", rec)
    err = ""
    deadline = time.monotonic() + 180
    while "live: shown" not in err and time.monotonic() < deadline and p.poll() is None:
        err += os.read(p.stderr.fileno(), 4096).decode()
    time.sleep(2)
    subprocess.run(["pulseaudio", "-k"], env=pulse, capture_output=True, timeout=30)
    out, rest = p.communicate(timeout=60)
    assert p.returncode == 1, err + rest
    errors = [ln for ln in rest.replace("\r", "\n").splitlines() if ln.startswith("dreamvideo: error")]
    assert len(errors) == 1 and "sound input default stopped" in errors[0], rest
    assert len(_frames(rec)) >= 10  # playable, what was shown
