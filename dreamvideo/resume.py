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

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from . import io as dio
from .errors import DreamFailure, SourceEnded, UserError


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
        self.resumed, self._verify, self._sources = resume, None, []
        meta = self.path / "settings.json"
        fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        text = json.dumps(fingerprint, sort_keys=True)
        if resume and not meta.is_file():
            raise UserError(f"nothing to resume for {output}: no work folder {self.path}; "
                            f"run without `resume` to start")
        self._lock()
        try:
            if resume:
                self._check(meta, fingerprint)
            else:
                shutil.rmtree(self.frames, ignore_errors=True)
                for name in ("settings.json", "runtime.json", ENDED):
                    (self.path / name).unlink(missing_ok=True)
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

    def _damaged(self, what: str) -> DreamFailure:
        return DreamFailure(f"the work folder {self.path} is damaged ({what}); run without `resume` to start "
                            f"over, or delete {self.path}")

    def _read_json(self, name: str):
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            raise self._damaged(f"{name} is unreadable") from None

    def _check(self, meta: Path, new: dict) -> None:
        """Refuse a resume whose render differs from the one that made the work folder, naming what
        differs; a source that ended early and has grown since (a finished download) may carry on."""
        old = self._read_json(meta.name)
        if old == new:
            return
        if not isinstance(old, dict) or old.get("format") != new["format"]:
            raise UserError(f"cannot resume {self.output}: {self.path} was made by another version of dreamvideo; "
                            f"run without `resume` to start over")
        ended = self._read_json(ENDED) if (self.path / ENDED).is_file() else None
        what = describe_change(old, new, grown_ok=ended is not None)
        if what is None:  # only the input grew: keep the frames whose source frames are the same
            self._verify = ended.get("hashes", [])
            return
        raise UserError(f"cannot resume {self.output}: {what}; use the same files and arguments, or run "
                        f"without `resume` to start over")

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

    def load(self, i: int, size=None) -> np.ndarray:
        """Frame ``i`` (H, W, 3 uint8); ``size`` (width, height): what it must be. A damaged frame is a
        one-line DreamFailure (decoded by Pillow, which prints nothing of its own)."""
        path = self.frames / f"{i:06d}.png"
        try:
            with Image.open(path) as im:
                im.load()
                if im.mode != "RGB":
                    raise ValueError(im.mode)
                a = np.array(im)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise self._damaged(f"frame {path.name} is truncated or not a frame it wrote") from None
        if size is not None and a.shape[1::-1] != tuple(size):
            raise self._damaged(f"frame {path.name} is {a.shape[1]}x{a.shape[0]}, not {size[0]}x{size[1]}")
        return a

    def confirm(self, facts: dict) -> None:
        """What is known only once the model is loaded (the precision ``auto`` chose, the device, the
        backend's versions): a resume where they differ is refused, as for the fingerprint."""
        facts = json.loads(json.dumps(facts, sort_keys=True, default=str))
        meta = self.path / "runtime.json"
        if self.resumed and meta.is_file():
            old = self._read_json(meta.name)
            for k in sorted(set(old) | set(facts)):
                if old.get(k) != facts.get(k):
                    raise UserError(f"cannot resume {self.output}: {k}: {old.get(k)} -> {facts.get(k)} since the "
                                    f"render started; run where it started, or without `resume` to start over")
        meta.write_text(json.dumps(facts, sort_keys=True))

    def note_source(self, frame) -> None:
        """Remember a hash of each source frame (:func:`frame_hash`), for :meth:`ended`."""
        if frame.image is not None:
            self._sources.append(frame_hash(frame.image))

    def ended(self, decoded: int) -> None:
        """The source ended after ``decoded`` frames: a hash of each is kept, so a resume after the file
        grew (a download that finished) keeps the frames whose source frames are the same."""
        with contextlib.suppress(OSError):
            (self.path / ENDED).write_text(json.dumps({"frames": decoded, "hashes": self._sources[:decoded]}))

    def check_source(self, open_frames, margin: int = 1) -> None:
        """After a source that ended early grew: keep only the frames done whose source frames (and the
        ``margin`` frames after each, which a held frame is finished with) are the frames of then.
        ``open_frames()``: a reader (context manager) of the source frames, opened only if needed."""
        if self._verify is None:
            return
        same = 0
        with open_frames() as frames, contextlib.suppress(SourceEnded):  # still short: what it has is compared
            for img, h in zip(frames, self._verify):
                if frame_hash(img) != h:
                    break
                same += 1
        keep = max(0, min(self.done, same - max(1, margin) + 1 if same < len(self._verify) else same))
        for i in range(keep, self.done):
            (self.frames / f"{i:06d}.png").unlink(missing_ok=True)
        self.done = keep
        (self.path / ENDED).unlink(missing_ok=True)
        self._verify = None

    def remove(self) -> None:
        """Delete the folder (the render is complete) and release the lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()


#: The work folder's record of a source that ended early (frames decoded, a hash of each).
ENDED = "ended.json"
#: Files up to this size are hashed whole; a larger one by four blocks, with its size and mtime.
_WHOLE = 16 << 20
_BLOCK = 1 << 20
#: Libraries whose versions change a frame's bytes before the model is loaded (decode, flow, PNG);
#: the backend's own are checked once it is loaded (:meth:`WorkDir.confirm`).
_LIBRARIES = ("numpy", "opencv-python", "opencv-python-headless", "opencv-contrib-python", "pillow",
              "imageio-ffmpeg", "keras")


def frame_hash(img: np.ndarray) -> str:
    """A short hash of a source frame's pixels (H, W, 3 uint8)."""
    return hashlib.blake2b(np.ascontiguousarray(img).data, digest_size=8).hexdigest()


def content_hash(path, size: int | None = None) -> str:
    """A hash of a file's first ``size`` bytes (default: all): whole up to 16 MiB, else 1 MiB blocks at
    the start, a third, two thirds and the end, so a 2 GB clip costs 4 MiB of reading."""
    h = hashlib.sha256()
    size = os.path.getsize(path) if size is None else size
    with open(path, "rb") as fh:
        if size <= _WHOLE:
            h.update(fh.read(size))
        else:
            for at in (0, size // 3, 2 * size // 3, size - _BLOCK):
                fh.seek(at)
                h.update(fh.read(_BLOCK))
    return h.hexdigest()


def file_identity(path) -> dict:
    """What says a file is the one a render started with: its resolved path, size, content hash (and
    modification time, where the hash covers only part of it)."""
    st = os.stat(path)
    out = {"path": os.path.realpath(path), "size": st.st_size, "hash": content_hash(path, st.st_size)}
    if st.st_size > _WHOLE:
        out["mtime_ns"] = st.st_mtime_ns
    return out


def _library_versions() -> dict:
    from importlib import metadata

    out = {}
    for name in _LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def fingerprint(kind: str, input, **parts) -> dict:
    """What a resumed render must share with the one it continues: the job kind, version, every file
    it reads (:func:`dreamvideo.guard.reads`: the input and each frame of a folder or glob, the
    soundtrack, guide, model and weights files) by :func:`file_identity`, the library versions that
    change the frames, and every settings part (dataclasses as dicts) but how the backend, device and
    precision are asked for: the ones chosen are checked once the model is loaded (:func:`runtime`)."""
    from dataclasses import asdict, is_dataclass

    from . import __version__, guard

    src = Path(str(input))
    fp = {"format": 2, "kind": kind, "version": __version__,
          "input": str(src.resolve()) if src.exists() else str(input), "libraries": _library_versions()}
    files = {}
    for r in guard.reads(input, parts):
        if os.path.isfile(r.path):
            key = f"{r.what}|{os.path.realpath(r.path)}" if r.frame_of is not None else r.what
            files[key] = {**file_identity(r.path), "shown": r.path, "frame": r.frame_of is not None}
    fp["files"] = files
    for k, v in parts.items():
        fp[k] = asdict(v) if is_dataclass(v) else v
    if isinstance(fp.get("model"), dict):
        # How the backend, device and precision are asked for (`auto`, or an environment variable's default)
        # is no part of the frames: what was chosen is, and :meth:`WorkDir.confirm` compares that (runtime()).
        for asked in ("backend", "device", "precision"):
            fp["model"].pop(asked, None)
    return fp


def runtime(dreamer) -> dict:
    """What a render's frames depend on that is known once its model is loaded (see :meth:`WorkDir.confirm`)."""
    from . import backends

    return {"precision": getattr(dreamer.model, "precision", None), "backend": backends.active(),
            "backend versions": backends.current().versions()}


def _shown(key: str, ident: dict) -> str:
    what = key.split("|", 1)[0]
    if ident.get("frame"):
        return f"the input's frame {ident['shown']}"
    return f"the {what} {ident['shown']}"


def _grew(old: dict, new: dict) -> bool:
    """True if the file ``new`` is ``old`` with more bytes after it (a download that finished)."""
    if old["path"] != new["path"] or new["size"] <= old["size"]:
        return False
    try:
        return content_hash(new["path"], old["size"]) == old["hash"]
    except OSError:
        return False


def describe_change(old: dict, new: dict, grown_ok: bool = False) -> str | None:
    """The first difference of two fingerprints, as a user reads it (``the `audio` soundtrack
    song.wav changed since the render started``, ```steps`: 20 -> 12``). None if the only one is an
    input that grew and ``grown_ok``."""
    if old.get("kind") != new["kind"]:
        return f"the work folder is of a {old.get('kind')} render, not a {new['kind']}"
    of, nf = old.get("files", {}), new["files"]
    grown = False
    for key in sorted(set(of) | set(nf), key=lambda k: (of.get(k) or nf.get(k)).get("shown", k)):
        a, b = of.get(key), nf.get(key)
        if a is not None and b is not None:
            same = {k: v for k, v in a.items() if k != "shown"} == {k: v for k, v in b.items() if k != "shown"}
            if same:
                continue
            if grown_ok and key == "input" and _grew(a, b):
                grown = True
                continue
            if a["path"] != b["path"]:
                return f"the {key.split('|')[0]} is {b['shown']}, not {a['shown']} as when the render started"
            return f"{_shown(key, a)} changed since the render started"
        if a is not None:
            return f"{_shown(key, a)} is gone (or no longer read) since the render started"
        return f"{_shown(key, b)} was not there when the render started"
    if old.get("input") != new["input"]:
        return f"the input is {new['input']}, not {old.get('input')} as when the render started"
    for name in sorted(set(old.get("libraries", {})) | set(new["libraries"])):
        a, b = old.get("libraries", {}).get(name), new["libraries"].get(name)
        if a != b:
            return f"{name} {a} -> {b} since the render started"
    for part in sorted(set(old) | set(new)):
        if part in ("format", "kind", "version", "input", "files", "libraries"):
            continue
        a, b = old.get(part), new.get(part)
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    return f"`{k}`: {_value(a.get(k))} -> {_value(b.get(k))}"
        elif a != b:
            return f"`{part}`: {_value(a)} -> {_value(b)}"
    if old.get("version") != new["version"]:
        return f"dreamvideo {old.get('version')} -> {new['version']} since the render started"
    return None if grown else "the work folder's record differs"


def _value(v) -> str:
    return "(none)" if v is None or v == "" else str(v)
