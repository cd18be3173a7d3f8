"""The work folder that makes a render resumable, and the lock that keeps one render per output.

``.<output>.dreamwork/`` sits next to the output and holds ``settings.json`` (the fingerprint of the
render's settings and input), ``frames/000000.png ...`` (every finished frame) and ``lock``. A
frame's dream depends only on its source frame, the previous source and kept frame, what waits
for the next band (temporal reuse) and a per-frame seed. The saved frames and the sources are
enough: a resumed render re-encodes the frames, rebuilds what waits by planning again the frames
since the last band (:func:`dreamvideo.reuse.rebuild_from`), and continues with output identical
to an uninterrupted one.

The lock is an OS file lock (``flock``; ``msvcrt.locking`` on Windows) on ``lock``, which also holds
the render's process id. The OS releases it when the process ends however it ends (SIGKILL too), so
a stale lock never blocks a ``--resume``; a live one stops a second render of the same output at
once, before it touches the first's files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from . import io as dio
from .errors import DreamFailure, UserError


def workdir_path(output) -> Path:
    out = Path(str(output))
    return out.with_name(f".{out.name.rstrip('/')}.dreamwork")


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


class WorkDir:
    """The work folder of ``output``: created (or, with ``resume``, checked against ``fingerprint``)
    and locked. ``done`` is the number of frames already finished.

    Use as a context manager around the render: leaving on an exception keeps the frames for a
    resume (or removes the folder if it holds none) and releases the lock.
    """

    def __init__(self, output, fingerprint: dict, resume: bool):
        self.output, self.path = output, workdir_path(output)
        self.frames = self.path / "frames"
        self._fd = None
        meta = self.path / "settings.json"
        text = json.dumps(fingerprint, sort_keys=True, default=str)
        if resume and not meta.is_file():
            raise UserError(f"nothing to resume for {output}: no work folder {self.path}; "
                            f"run without `resume` to start")
        self._lock()
        try:
            if resume:
                if meta.read_text() != text:
                    raise UserError(f"cannot resume: {self.path} was made with other settings or input; "
                                    f"use the same arguments, or run without `resume` to start over")
            else:
                shutil.rmtree(self.frames, ignore_errors=True)
                meta.unlink(missing_ok=True)
            self.frames.mkdir(parents=True, exist_ok=True)
            meta.write_text(text)
            dio.remove_stale_temporaries(output)  # a killed (SIGKILL) run's half-written output
        except OSError as e:  # e.g. a read-only mount (root passes the access checks)
            self.release()
            raise DreamFailure(f"cannot write the work folder {self.path}: {e.strerror or e}; "
                               "choose an output folder you can write to") from None
        except BaseException:
            self.release()
            raise
        self.done = 0
        while (self.frames / f"{self.done:06d}.png").is_file():
            self.done += 1

    def _lock(self) -> None:
        lock = self.path / "lock"
        for _ in range(100):
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:  # e.g. under /proc, or a read-only mount
                raise DreamFailure(f"cannot write the work folder {self.path}: {e.strerror or e}; "
                                   "choose an output folder you can write to") from None
            if not _try_lock(fd):
                os.close(fd)
                try:
                    other = lock.read_text().strip() or "unknown"
                except OSError:
                    other = "unknown"
                raise UserError(f"another render (process {other}) is writing {self.output}; wait for it to "
                                f"finish or stop it, or choose another output")
            try:  # the render that held it may have removed the folder just before: lock the file that is there
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return
            os.close(fd)
        raise DreamFailure(f"could not lock the work folder {self.path}; try again")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            if self.done == 0 and not any(self.frames.glob("*.png")):
                self.remove()  # nothing to resume: leave no folder behind
            else:
                self.release()
        return False

    def release(self) -> None:
        """Release the lock (the folder stays)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def save(self, i: int, frame: np.ndarray) -> None:
        """Keep frame ``i`` (H, W, 3 uint8); a killed render never leaves a half-written frame."""
        dio.write_png(self.frames / f"{i:06d}.png", frame, fast=True)

    def load(self, i: int) -> np.ndarray:
        return dio.read_png(self.frames / f"{i:06d}.png")

    def remove(self) -> None:
        """Delete the folder (the render is complete) and release the lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()


def fingerprint(kind: str, input, **parts) -> dict:
    """What a resumed render must share with the one it continues: the job kind, version, input
    (path, size and modification time) and every settings part (dataclasses as dicts)."""
    from dataclasses import asdict, is_dataclass

    from . import __version__

    src = Path(str(input))
    fp = {"kind": kind, "version": __version__, "input": str(src.resolve()) if src.exists() else str(input)}
    if src.is_file():
        st = src.stat()
        fp["input_stat"] = [st.st_size, int(st.st_mtime)]
    for k, v in parts.items():
        fp[k] = asdict(v) if is_dataclass(v) else v
    return fp
