"""Shared fixtures: small synthetic clips made once per session with the bundled ffmpeg."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import pytest

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

# `--precision auto` caches its measurement (and JAX its compiled programs) in the user's cache
# folder: tests use a fresh one, inherited by the processes they start.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="dreamvideo-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)


def ffmpeg(*args) -> str:
    """Run the bundled ffmpeg; return its stderr (it lists streams and progress there)."""
    r = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-y", *map(str, args)], capture_output=True, text=True)
    return r.stderr


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Synthetic media: 'clip' 160x120 @12 fps 2 s with a 440 Hz tone, 'silent' the same without audio,
    'odd' 161x121 @12 fps 1 s, 'tone' 3 s of audio only (.m4a)."""
    d = tmp_path_factory.mktemp("clips")

    def video(size):
        return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=12"]

    def sine(freq):
        return ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=44100"]

    h264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
    specs = {
        "clip.mp4": [*video("160x120"), *sine(440), "-t", "2", *h264, "-c:a", "aac", "-shortest"],
        "silent.mp4": [*video("160x120"), "-t", "2", *h264],
        "odd.mp4": [*video("161x121"), "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv444p"],
        "tone.m4a": [*sine(660), "-t", "3", "-c:a", "aac"],
    }
    out = {}
    for name, args in specs.items():
        path = out[name.split(".")[0]] = d / name
        ffmpeg(*args, path)
        assert path.stat().st_size > 0, f"could not make test clip {name}"
    return out


def live_ffmpeg():
    """(pid, parent pid, command line) of every live (non-zombie) ffmpeg process on the machine."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():  # /proc/self, /proc/thread-self
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z" and b"ffmpeg" in cmd:
            yield int(d.name), int(ppid), cmd


def ffmpeg_children() -> list[int]:
    """Live ffmpeg processes whose parent is this test process."""
    import os

    return [pid for pid, ppid, _ in live_ffmpeg() if ppid == os.getpid()]


def audio_samples(path, rate: int = 8000):
    """The first audio stream of `path` decoded to mono float samples in [-1, 1] at `rate` Hz (empty if none)."""
    import numpy as np

    r = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0?",
                        "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"], capture_output=True)
    return np.frombuffer(r.stdout, np.int16).astype(np.float64) / 32768.0
