"""The one place dreamvideo launches ffmpeg (the binary imageio-ffmpeg bundles), and what it says of a file.

Every ffmpeg runs in its own session (a Ctrl-C in the terminal reaches only Python, which then
decides to finish or abort), takes paths with the ``file:`` protocol, and is reaped when its
:class:`Proc` closes, on errors and Ctrl-C too.

Convention: sizes are (width, height) in pixels; times in seconds; fps in frames per second.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

from .errors import UserError

SEQUENCE_FPS = 25.0
_RUNNING: "weakref.WeakSet[Proc]" = weakref.WeakSet()  # for kill_all


def existing_file(path, what: str) -> Path:
    p = Path(str(path))
    if not p.exists():
        raise UserError(f"{what} {p} does not exist; check the path")
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder; pass a file")
    if p.stat().st_size == 0:
        raise UserError(f"{what} {p} is empty (0 bytes); pass a valid file")
    return p


def exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def ff_path(path) -> str:
    """A file path as ffmpeg must get it: absolute and with the file: protocol, so that a file named
    like an ffmpeg URL (``concat:a|b``, ``pipe:0``, ``subfile,,...``) is read as that file, never as
    what the URL points at, and a name starting with '-' is never taken for an option."""
    return "file:" + os.path.abspath(str(path))


class Proc:
    """One ffmpeg process; stderr goes to a temporary file (a pipe could fill up and stall ffmpeg)."""

    def __init__(self, args, stdin=None, stdout=None, pass_fds=()):
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen([exe(), "-hide_banner", "-nostdin", "-y", *args],
                                  stdin=stdin, stdout=stdout, stderr=self.err, start_new_session=True,
                                  pass_fds=tuple(pass_fds))
        _RUNNING.add(self)

    def stderr_text(self) -> str:
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def error_tail(self) -> str:
        lines = [ln.strip() for ln in self.stderr_text().splitlines() if ln.strip()]
        return lines[-1] if lines else "no error message"

    def close(self) -> None:
        """Kill ffmpeg if still running, reap it and release its pipes; safe to call more than once."""
        self.p.kill()  # first: flushing stdin into a live ffmpeg that stopped reading could block
        for pipe in (self.p.stdin, self.p.stdout):
            if pipe:
                with contextlib.suppress(OSError):
                    pipe.close()
        self.p.wait()
        self.err.close()

    def wait(self) -> int:
        """Let ffmpeg finish on its own (after stdin was closed); kill it if interrupted while waiting."""
        try:
            rc = self.p.wait()
        except BaseException:
            self.close()
            raise
        return rc


def kill_all() -> None:
    """Kill and reap every ffmpeg this process started that is still running: for a process that
    leaves renders behind mid-frame (the web page stopping), whose threads would not close them."""
    for proc in list(_RUNNING):
        with contextlib.suppress(OSError):
            proc.p.kill()
        with contextlib.suppress(Exception):
            proc.p.wait(1)


# ----------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class VideoInfo:
    """Video geometry and timing: width, height in pixels; fps; nframes (an estimate, 0 if unknown);
    duration in seconds; has_audio."""

    width: int
    height: int
    fps: float
    nframes: int
    duration: float
    has_audio: bool


def header(path, what="video") -> str:
    """stderr of `ffmpeg -i path`, which lists the streams (then fails for lack of an output).

    Raises UserError naming ffmpeg's reason when the file cannot be opened at all."""
    path = existing_file(path, what)
    proc = Proc(["-i", ff_path(path)])  # fails for lack of an output, after listing the streams
    try:
        proc.p.wait(timeout=60)
    except BaseException:
        proc.close()
        raise
    text = proc.stderr_text()
    proc.close()
    if "Input #0" not in text:
        last = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["unknown error"]
        reason = last[0].split("Error opening input files: ")[-1].strip()
        raise UserError(f"cannot read {what} {path}: {reason}; pass a media file ffmpeg can decode")
    return text


def has_audio(header: str) -> bool:
    return re.search(r"Stream #.*: Audio:", header) is not None


def require_audio(path) -> None:
    """UserError unless ``path`` exists and has an audio stream (for a soundtrack the user named)."""
    if not has_audio(header(path, "audio source")):
        raise UserError(f"{path} has no audio track; pass a soundtrack (`audio`) that has one")


def duration(path, what: str = "media") -> float:
    """The length of a media file in seconds (UserError if ffmpeg cannot tell)."""
    text = header(path, what)
    m = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    if not m:
        raise UserError(f"cannot tell how long {what} {path} is; pass a frame count")
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


def parse_header(text: str, path) -> VideoInfo:
    video = [ln for ln in text.splitlines() if re.search(r"Stream #.*: Video:", ln) and "(attached pic)" not in ln]
    if not video:
        raise UserError(f"cannot read video {path}: no video stream found; pass a video file ffmpeg can decode")
    line = video[0].split("Video:", 1)[1]
    size = re.search(r"(?<![\w/])([1-9]\d{0,5})x([1-9]\d{0,5})(?!\w)", line)
    if not size:
        raise UserError(f"cannot read video {path}: unknown frame size; pass a video file ffmpeg can decode")
    w, h = int(size[1]), int(size[2])
    rot = re.search(r"rotation of (-?[\d.]+) degrees", text)
    if rot and round(float(rot[1])) % 180 == 90:  # ffmpeg autorotates, so frames come out transposed
        w, h = h, w
    rate = re.search(r"([\d.]+) fps", line) or re.search(r"([\d.]+) tbr", line)
    fps = float(rate[1]) if rate and float(rate[1]) > 0 else SEQUENCE_FPS
    dur = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    duration = int(dur[1]) * 3600 + int(dur[2]) * 60 + float(dur[3]) if dur else 0.0
    return VideoInfo(w, h, fps, int(round(duration * fps)), duration, has_audio(text))




def run(args, what: str, timeout: float | None = None) -> bytes:
    """Run ffmpeg to completion with ``args`` (after the common flags) and return its stdout.

    stderr goes to a temporary file (a pipe could fill and stall ffmpeg); on failure raises
    ``Failed`` carrying ffmpeg's last error line, for the caller to phrase for the user. Killed and
    reaped on any exception, Ctrl-C included.
    """
    proc = Proc(args, stdout=subprocess.PIPE)
    try:
        out, _ = proc.p.communicate(timeout=timeout)
    except BaseException:
        proc.close()
        raise
    rc = proc.p.returncode
    text = proc.stderr_text() if rc else ""
    tail = proc.error_tail() if rc else ""
    proc.close()
    if rc:
        raise Failed(tail, what, text)
    return out


def stream(args, what: str, block: int = 1 << 20):
    """Run ffmpeg with ``args`` and yield its stdout in pieces of at most ``block`` bytes, so a long
    decode never sits in memory whole. Raises ``Failed`` (as :func:`run`) after the last piece if
    ffmpeg failed; killed and reaped when the caller stops early, on errors and Ctrl-C too."""
    proc = Proc(args, stdout=subprocess.PIPE)
    try:
        while True:
            piece = proc.p.stdout.read(block)
            if not piece:
                break
            yield piece
        rc = proc.p.wait()
        if rc:
            raise Failed(proc.error_tail(), what, proc.stderr_text())
    finally:
        proc.close()


class Failed(Exception):
    """ffmpeg exited with an error; ``str()`` is its last error line."""

    def __init__(self, tail: str, what: str = "", text: str = ""):
        super().__init__(tail)
        self.tail, self.what, self.text = tail, what, text
