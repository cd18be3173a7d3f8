"""Files a Ray worker needs, sent from the driver through Ray's object store: a worker never opens a
path of the driver's, so the nodes of a cluster need no shared disk.

The driver puts a file (the clip, a model or weights file, a guide image, a batch job's soundtrack)
in the object store once per command, in pieces of :data:`PIECE` bytes (its own memory holds one
piece at a time); a worker node pulls the pieces once and keeps the file in a cache folder of its
own (``<Ray session folder>/dreamvideo-shipped/<digest>/<name>``), which every worker of that node shares.
So each node receives each file once, however many chunks or jobs it dreams.

The whole clip is shipped, not each chunk's range: see ``bench/bench_ray.py --ship`` and
bench/RESULTS.md (a range cut without re-encoding starts at a keyframe, so it would need the
frames from there anyway, and an exact cut costs a decode and re-encode on the driver per chunk).

Ray is imported by the callers (:mod:`dreamvideo.distributed`, :mod:`dreamvideo.batch`) only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import DreamFailure

PIECE = 64 << 20  # bytes per object: bounds the driver's memory while it puts a large clip

#: The options whose value, when it names an existing file, is that file (not a name like imagenet).
FILE_FIELDS = ("model", "weights", "guide", "audio")

_fetched = {"bytes": 0, "files": 0}  # what this worker process pulled from the object store


@dataclass(frozen=True)
class Shipped:
    """A file in Ray's object store: its base name (its extension matters to the readers), the
    SHA-256 of its bytes (hex), its size in bytes, and the refs of its pieces in order."""

    name: str
    digest: str
    size: int
    pieces: tuple

    def __str__(self) -> str:  # how a message names it: the file's own name
        return self.name


def ship(ray, path) -> Shipped:
    """Put the file at ``path`` in the object store (driver side); see the module's docstring."""
    path = Path(os.fspath(path))
    h, pieces, size = hashlib.sha256(), [], 0
    with open(path, "rb") as f:
        while piece := f.read(PIECE):
            h.update(piece)
            size += len(piece)
            pieces.append(ray.put(piece))
    return Shipped(path.name, h.hexdigest(), size, tuple(pieces))


@dataclass(frozen=True)
class ShippedFrames:
    """An image sequence (a folder or glob of frames) in the object store: each frame a
    :class:`Shipped`, in the order the sequence plays; a worker rebuilds it as a folder."""

    name: str
    frames: tuple

    def __str__(self) -> str:
        return self.name


def ship_input(ray, path, cache: dict):
    """The clip (a file) or image sequence (folder or glob) at ``path`` in the object store."""
    from .io import _sequence_files

    files = _sequence_files(path)
    if files is None:
        return ship_once(ray, path, cache)
    return ShippedFrames(os.fspath(path), tuple(ship_once(ray, f, cache) for f in files))


def ship_file_options(ray, options: dict, cache: dict) -> dict:
    """``options`` (flat, or a settings dataclass's fields) with each file of :data:`FILE_FIELDS`
    replaced by its :class:`Shipped`; ``cache`` (path -> Shipped) ships each file once per command."""
    out = dict(options)
    for key in FILE_FIELDS:
        v = out.get(key)
        if isinstance(v, (str, os.PathLike)) and os.fspath(v) and os.path.isfile(os.fspath(v)):
            out[key] = ship_once(ray, v, cache)
    return out


def ship_once(ray, path, cache: dict) -> Shipped:
    key = os.path.realpath(os.fspath(path))
    if key not in cache:
        cache[key] = ship(ray, path)
    return cache[key]


def ship_settings(ray, settings, cache: dict):
    """A settings dataclass whose file fields are replaced by :class:`Shipped` (see :func:`local_settings`)."""
    names = {f.name for f in dataclasses.fields(settings)}
    shipped = ship_file_options(ray, {k: getattr(settings, k) for k in FILE_FIELDS if k in names}, cache)
    return dataclasses.replace(settings, **shipped)


def local_settings(settings):
    """In a worker: ``settings`` with each :class:`Shipped` field replaced by its local copy's path."""
    names = {f.name for f in dataclasses.fields(settings)}
    return dataclasses.replace(settings, **{k: local(getattr(settings, k)) for k in FILE_FIELDS if k in names})


def local_options(options: dict) -> dict:
    """In a worker: flat options with each :class:`Shipped` value replaced by its local copy's path."""
    return {k: local(v) for k, v in options.items()}


def cache_folder() -> Path:
    """This node's copies: in the Ray session's folder (gone with the session's other files), else the
    temporary folder."""
    try:
        import ray

        node = ray._private.worker.global_worker.node  # private: the session folder of this worker's node
        return Path(node.get_session_dir_path()) / "dreamvideo-shipped"
    except Exception:  # noqa: BLE001 - outside a Ray worker, or another Ray
        return Path(tempfile.gettempdir()) / "dreamvideo-shipped"


def local(value):
    """In a worker: the path of a :class:`Shipped` file's copy on this node (pulled once, under a lock
    the node's workers share); any other value as it is."""
    if isinstance(value, ShippedFrames):
        return _local_frames(value)
    if not isinstance(value, Shipped):
        return value
    import fcntl

    import ray

    folder = cache_folder() / value.digest
    path = folder / value.name
    if _whole(path, value):
        return str(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder.parent / f"{value.digest}.lock", "wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker of this node may be pulling it now
            if not _whole(path, value):
                tmp = folder / f".{value.name}.part"
                with open(tmp, "wb") as f:
                    for ref in value.pieces:
                        piece = ray.get(ref, timeout=600)
                        f.write(piece)
                        _fetched["bytes"] += len(piece)
                        del piece
                os.replace(tmp, path)
                _fetched["files"] += 1
    except OSError as e:
        raise DreamFailure(f"could not keep {value.name} on this Ray node ({folder}): {e.strerror or e}; free "
                           f"space in its temporary folder") from None
    return str(path)


def _local_frames(value: ShippedFrames) -> str:
    """A folder of this node's copies of a sequence's frames, named so they sort as they play."""
    key = hashlib.sha256("".join(f.digest for f in value.frames).encode()).hexdigest()
    folder = cache_folder() / f"frames-{key}"
    if not (folder / "complete").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for n, f in enumerate(value.frames):
            link = folder / f"{n:08d}{Path(f.name).suffix.lower()}"
            if not link.exists():
                tmp = folder / f".{n:08d}.{os.getpid()}"
                os.symlink(local(f), tmp)
                os.replace(tmp, link)
        (folder / "complete").touch()
    return str(folder)


def _whole(path: Path, value: Shipped) -> bool:
    try:
        return path.stat().st_size == value.size
    except OSError:
        return False


def fetched() -> dict:
    """What this worker process pulled from the object store so far: ``{"bytes": n, "files": n}``."""
    return dict(_fetched)
