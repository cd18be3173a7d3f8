"""The one rule that keeps what a user made: no file a render reads is ever written, moved or deleted by it.

A render reads its input (a file, or every frame of an image folder or glob), the soundtrack
(``audio``), the ``guide`` image, a ``weights`` or ``model`` file and a ``preset`` file; in a batch
also every other job's files. It writes its output (under a temporary name first, renamed into
place; a folder output replaces the folder whole), its work folder ``.<output>.dreamwork/`` and, on
a start, deletes what a killed run left under the output's temporary names. :func:`check` refuses,
with one line naming both roles, any output that is, holds, or could clobber a file it reads:
compared by resolved path (symbolic links followed) and by file identity (``st_dev`` and
``st_ino``: hard links), before anything is written or any model loads.

Every command, the Python jobs, batch files and the web page (through the jobs) call it. This
module imports only the standard library, so the check costs nothing before a usage error.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Iterable, Optional

from .errors import UserError

#: Extensions of the frames an image folder or glob input is read as (as :data:`dreamvideo.io.IMAGE_EXTS`).
_FRAME_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
#: Option names that hold a file a render reads, and how a message names that file.
FILE_OPTIONS = {"audio": "`audio` soundtrack", "guide": "`guide` image", "weights": "`weights` file",
                "model": "`model` file", "audio_in": "`audio_in` sound"}


@dataclass(frozen=True)
class Read:
    """A file (or folder) a render reads. ``what``: how a message names it (``"input"``, ``"`audio`
    soundtrack"``); ``owner``: ``"the"`` or another batch job's ``"job 2's"``; ``frame_of``: for one
    frame of a folder or glob input, that input as given."""

    what: str
    path: str
    owner: str = "the"
    frame_of: Optional[str] = None

    def named(self) -> str:
        if self.frame_of is not None:
            return f"{self.path}, a frame of {self.owner} {self.what} {self.frame_of}"
        return f"{self.owner} {self.what} {self.path}"

    def of(self, owner: str) -> "Read":
        return Read(self.what, self.path, owner, self.frame_of)


def sequence_frames(path) -> Optional[list[str]]:
    """The image files of a folder or glob input, sorted; None when ``path`` is neither."""
    s = os.fspath(path)
    if os.path.isdir(s):
        names = [os.path.join(s, n) for n in os.listdir(s)]
    elif glob.has_magic(s) and not os.path.exists(s):
        names = glob.glob(s)
    else:
        return None
    return sorted(p for p in names if Path(p).suffix.lower() in _FRAME_EXTS and os.path.isfile(p))


def _flat(settings) -> dict:
    """``{name: value}`` of flat options, or of settings sections (dataclasses) merged."""
    flat = {}
    for k, v in (settings or {}).items():
        if is_dataclass(v) and not isinstance(v, type):
            flat.update({f.name: getattr(v, f.name) for f in fields(v)})
        else:
            flat.setdefault(k, v)
    return flat


def reads(input, settings=None, preset=None) -> list[Read]:
    """Every existing file a render of ``input`` with ``settings`` (flat options, or sections by
    name) reads: the input (and each frame of a folder or glob), the files its options name, and
    a ``preset`` file. Names that are no file (``imagenet``, ``inception_v3``, ``640x360``) are none."""
    out = []
    if input:
        s = os.fspath(input)
        frames = sequence_frames(s)
        if os.path.exists(s):
            out.append(Read("input", s))
        for f in frames or ():
            out.append(Read("input", f, frame_of=s))
    flat = _flat(settings)
    for key, what in FILE_OPTIONS.items():
        v = flat.get(key)
        if isinstance(v, (str, os.PathLike)) and os.fspath(v) and os.path.isfile(os.fspath(v)):
            out.append(Read(what, os.fspath(v)))
    if preset and os.path.isfile(os.fspath(preset)):
        out.append(Read("`preset` file", os.fspath(preset)))
    return out


def is_folder_output(path) -> bool:
    """A render output without an extension, or ending in a separator, is a folder of PNG frames."""
    s = os.fspath(path)
    return s.endswith(("/", os.sep)) or Path(s).suffix == "" or os.path.isdir(s)


def _real(path) -> str:
    return os.path.realpath(os.fspath(path).rstrip("/" + os.sep) or os.sep)


def _within(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def temporary_names(output) -> re.Pattern:
    """The names, in the output's folder, that writing ``output`` creates, replaces or deletes as its
    temporaries (see :mod:`dreamvideo.io`), and its work folder (see :mod:`dreamvideo.resume`)."""
    p = Path(os.fspath(output).rstrip("/" + os.sep))
    work = re.escape(f".{p.name}.dreamwork")
    if is_folder_output(output):
        return re.compile(rf"{re.escape(p.name)}\.(tmp-[a-z0-9_]{{8}}|old-[0-9a-f]{{8}})|{work}")
    return re.compile(rf"{re.escape(p.stem)}\.tmp-[0-9a-f]{{8}}(\.video)?{re.escape(p.suffix)}|{work}")


def _clash(output: str, role: str, read: Read) -> Optional[str]:
    """Why writing ``output`` would touch ``read`` (one line), or None."""
    out_real, in_real = _real(output), _real(read.path)
    if out_real == in_real or _same_file(output, read.path):
        if os.path.abspath(output).rstrip(os.sep) == os.path.abspath(read.path).rstrip(os.sep):
            return f"{role} {output} is {read.named() if read.frame_of else f'{read.owner} {read.what}'}"
        how = "the same file through a symbolic link" if out_real == in_real else "a hard link to the same file"
        return f"{role} {output} is {read.named()} ({how})"
    if is_folder_output(output) and _within(in_real, out_real):
        return f"{role} {output} is a folder that holds {read.named()}, and writing it replaces the folder"
    parent = os.path.dirname(out_real)
    if _within(in_real, parent):
        rel = os.path.relpath(in_real, parent).split(os.sep)[0]
        if temporary_names(output).fullmatch(rel):
            return (f"{read.named()} has the name of a temporary file or the work folder of {role} {output}, "
                    f"which the render replaces or deletes")
    return None


def check(output, reads: Iterable[Read], role: str = "the output", fix: str = "") -> None:
    """Raise a one-line :class:`UserError` if writing ``output`` (a render output, a plot, a saved
    preset: ``role`` names it) would write, move or delete any of ``reads``."""
    if output is None or not os.fspath(output):
        return
    output = os.fspath(output)
    for r in reads:
        why = _clash(output, role, r)
        if why:
            folder = is_folder_output(output)
            raise UserError(f"{why}; {fix or ('choose another output folder' if folder else 'choose another output name')}")


def check_render(kind: str, input, output, settings=None, preset=None) -> None:
    """:func:`check` of a ``kind`` render's ``output`` against every file it reads (:func:`reads`)."""
    check(output, reads(input, settings, preset))
