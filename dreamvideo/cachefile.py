"""The JSON files under the user's cache folder that keep what a measurement found on this machine.

Convention: ``name`` is a file name such as ``"precision.json"``; the folder is ``$XDG_CACHE_HOME/dreamvideo``
(``~/.cache/dreamvideo`` without it). A file that is missing, unreadable or not a JSON object reads as ``{}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def path(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dreamvideo" / name


def load(name: str) -> dict:
    try:
        data = json.loads(path(name).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save(name: str, data: dict) -> None:
    """Write ``data`` whole (a temporary file renamed), so two processes never leave a half-written file."""
    target = path(name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only home only costs a re-measure next time
