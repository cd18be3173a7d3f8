"""A render's life as a process: fast start for help and mistakes, SIGTERM, one render per output, full disks.

Real subprocesses, a tiny random model and a small photo: what a job scheduler, a container or a
second terminal does to a render.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import live_ffmpeg
from dreamvideo import io
from dreamvideo.errors import DreamFailure
from helpers import ROOT, photo, tiny_model_file


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("kit")
    tiny_model_file(d / "tiny.keras")
    Image.fromarray(np.ascontiguousarray(photo("chelsea")[::4, ::4][:64, :96])).save(d / "cat.png")
    return d


def zoom_argv(kit, out, frames=400, *extra) -> list[str]:
    """A zoom that takes several seconds: long enough to be stopped or raced while it runs."""
    return [sys.executable, "-m", "dreamvideo.cli", "zoom", str(kit / "cat.png"), "-o", str(out), "--frames",
            str(frames), "--model", str(kit / "tiny.keras"), "--layers", "conv2", "--octaves", "1", "--steps", "3",
            "-q", *extra]


def start(argv) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def saved_frames(out: Path) -> int:
    d = out.parent / f".{out.name}.dreamwork" / "frames"
    return len(list(d.glob("[0-9]*[0-9].png"))) if d.is_dir() else 0


def wait_for_frames(p, out, k, timeout=120):
    deadline = time.monotonic() + timeout
    while p.poll() is None and saved_frames(out) < k and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, f"the render ended before frame {k}: {p.communicate()}"


def stop_at_frame(argv, out, k, sig, timeout=120) -> tuple[subprocess.Popen, str]:
    """Start a render, send ``sig`` once it has saved ``k`` frames; returns the ended process and its stderr."""
    p = start(argv)
    wait_for_frames(p, out, k)
    p.send_signal(sig)
    _, err = p.communicate(timeout=timeout)
    return p, err


def ffmpeg_of(pid: int) -> list[int]:
    return [p for p, ppid, _ in live_ffmpeg() if ppid == pid]


def frame_count(path) -> int:
    with io.VideoReader(path) as r:
        return sum(1 for _ in r)


# ----------------------------------------------------------------------------- fast start


@pytest.mark.parametrize("argv", [["--help"], ["presets"], ["zoom", "--help"], ["video", "in.mp4"],
                                  ["image", "a.png", "-o", "b.png", "--octaves", "0"], ["frobnicate"]])
def test_help_presets_and_usage_errors_do_not_load_tensorflow(argv):
    code = ("import sys; from dreamvideo import cli; rc = cli.main(sys.argv[1:]); "
            "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules, rc)")
    r = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("TF False False"), (last, r.stderr)
    rc = int(last.split()[-1])
    assert rc in (0, 2)
    if rc == 2:  # a usage error: one line, no traceback
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("dreamvideo: error: "), r.stderr


# ----------------------------------------------------------------------------- SIGTERM


def test_sigterm_finalizes_a_playable_partial_and_resume_finishes(kit, tmp_path):
    out = tmp_path / "zoom.mp4"
    argv = zoom_argv(kit, out, 60)
    p, err = stop_at_frame(argv, out, 4, signal.SIGTERM)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert p.returncode == 143, err
    assert len(lines) == 1 and lines[0].startswith("dreamvideo: stopped by SIGTERM after "), err
    assert lines[0].endswith("--resume") and "resume with: dreamvideo zoom" in lines[0]
    done = int(re.search(r"after (\d+)/60", lines[0])[1])
    assert done >= 4 and frame_count(out) == done  # playable, holding what was done
    assert sorted(x.name for x in tmp_path.iterdir()) == [".zoom.mp4.dreamwork", "zoom.mp4"]  # no temporaries
    assert ffmpeg_of(p.pid) == []
    r = subprocess.run(argv + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert frame_count(out) == 60 and sorted(x.name for x in tmp_path.iterdir()) == ["zoom.mp4"]


# ----------------------------------------------------------------------------- one render per output


def test_a_second_render_of_the_same_output_stops_at_once_and_the_first_completes(kit, tmp_path):
    out = tmp_path / "zoom.mp4"
    first = start(zoom_argv(kit, out, 400))
    wait_for_frames(first, out, 2)
    t = time.monotonic()
    second = subprocess.run(zoom_argv(kit, out, 400), cwd=ROOT, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t
    assert first.poll() is None, "the first render ended before the second started: make it longer"
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1
    assert f"another render (process {first.pid}) is writing {out}" in second.stderr, second.stderr
    resumed = subprocess.run(zoom_argv(kit, out, 400, "--resume"), cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 2 and f"process {first.pid}" in resumed.stderr  # --resume waits its turn too
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err  # untouched by the others
    assert frame_count(out) == 400 and sorted(x.name for x in tmp_path.iterdir()) == ["zoom.mp4"]
    assert took < 30  # stopped before loading any model, not after a render's worth of work


def test_a_lock_left_by_a_killed_render_does_not_block_its_resume(kit, tmp_path):
    out = tmp_path / "zoom.mp4"
    argv = zoom_argv(kit, out, 30)
    p, _ = stop_at_frame(argv, out, 3, signal.SIGKILL, timeout=60)
    assert (tmp_path / ".zoom.mp4.dreamwork" / "lock").read_text().strip() == str(p.pid)  # the stale lock is there
    r = subprocess.run(argv + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert frame_count(out) == 30 and sorted(x.name for x in tmp_path.iterdir()) == ["zoom.mp4"]


# ----------------------------------------------------------------------------- a full disk


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_one_clear_line_without_libpng_noise(tmp_path, capfd):
    frame = np.zeros((32, 32, 3), np.uint8)
    (tmp_path / "000001.tmp.png").symlink_to("/dev/full")  # every write there fails with ENOSPC
    with pytest.raises(DreamFailure, match=r"could not save .*000001\.png: No space left on device; check free"):
        io.write_png(tmp_path / "000001.png", frame)
    _, err = capfd.readouterr()
    assert "libpng" not in err and err == ""
    assert not (tmp_path / "000001.png").exists()


def test_core_errors_name_settings_and_the_command_line_names_its_flags(kit, tmp_path, capsys):
    import dreamvideo
    from dreamvideo import cli
    from dreamvideo.errors import UserError

    with pytest.raises(UserError, match=r"^`octave_scale` must be from 1 to 4, not 0.5$"):
        dreamvideo.dream_image(kit / "cat.png", tmp_path / "a.png", octave_scale=0.5)
    assert cli.main(["image", str(kit / "cat.png"), "-o", str(tmp_path / "a.png"), "--octave-scale", "0.5"]) == 2
    assert capsys.readouterr().err == "dreamvideo: error: --octave-scale must be from 1 to 4, not 0.5\n"
    with pytest.raises(TypeError, match="unknown option.*octave_scal"):
        dreamvideo.dream_image(kit / "cat.png", tmp_path / "a.png", octave_scal=1.5)


def test_the_public_jobs_stay_functions_after_every_module_is_imported():
    import importlib
    import pkgutil

    import dreamvideo

    for m in pkgutil.iter_modules(dreamvideo.__path__):
        if m.name not in ("ui",):
            importlib.import_module(f"dreamvideo.{m.name}")
    for name in ("zoom", "dream_video", "dream_image", "dream_frames", "zoom_frames", "plan_render"):
        assert callable(getattr(dreamvideo, name)) and not isinstance(getattr(dreamvideo, name), type(dreamvideo))
