"""Presets: named looks stored as TOML files.

A preset is a TOML file whose keys are the names of settings fields (``layers``, ``octaves``,
``zoom``, ``coherence``...), written either at the top level or under optional sections
``[model] [dream] [video] [zoom] [schedules]`` that name the settings group; plus an optional
top-level ``description``. Schedules are strings (``zoom = "1.0 + 0.03*beat"``) or numbers.

The built-in presets live in ``dreamvideo/presets/*.toml``; ``--preset NAME`` picks one of them
and ``--preset FILE.toml`` (anything with a path separator or a ``.toml`` suffix) a file.

This module only reads, checks and writes the files: which keys exist (the *schema*) is handed in
by the caller, so it knows nothing of the settings classes, argparse or TensorFlow.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from pathlib import Path

from .errors import UserError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).with_name("presets")
META_KEYS = ("description",)
#: Tables no render setting reads: a live run's ``[scenes]`` (NAME = PRESET, or a table of values)
#: and ``[midi]`` map, and a recorded performance's ``[performance]`` (see :func:`table`).
TABLES = ("scenes", "midi", "performance")


def builtin() -> dict[str, Path]:
    """The shipped presets, name -> file, sorted by name."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def nearest(name, choices) -> str:
    """``"; did you mean X?"`` for the nearest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]}?" if close else ""


def find(name_or_path) -> Path:
    """The file of a built-in preset name, or the given path (which must exist)."""
    text = os.fspath(name_or_path)
    if text.endswith(".toml") or os.sep in text or "/" in text or Path(text).is_file():
        if not Path(text).is_file():
            raise UserError(f"preset file {text} not found; give a .toml file or one of: {', '.join(builtin())}")
        return Path(text)
    presets = builtin()
    if text not in presets:
        raise UserError(f"unknown preset {text!r}{nearest(text, presets)} "
                        f"(built-in: {', '.join(presets)}; or give a .toml file)")
    return presets[text]


def read(name_or_path) -> tuple[Path, dict]:
    """``(path, parsed TOML)`` of a preset; a syntax error is a one-line UserError."""
    path = find(name_or_path)
    try:
        with open(path, "rb") as fh:
            return path, tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"preset {path}: not valid TOML: {str(e).splitlines()[0]}") from None
    except UnicodeDecodeError as e:  # a binary file, or text in another encoding
        raise UserError(f"preset {path}: not UTF-8 text (byte {e.start}); a preset is a UTF-8 TOML file") from None
    except OSError as e:
        raise UserError(f"cannot read preset {path}: {e.strerror or e}") from None


def description(name_or_path) -> str:
    return str(read(name_or_path)[1].get("description", ""))


def table(name_or_path, name: str) -> dict:
    """A preset's ``[name]`` table of :data:`TABLES` (empty when it has none); not a table is a UserError."""
    path, data = read(name_or_path)
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise UserError(f"preset {path}: {name} must be a table ([{name}]), not {value!r}")
    return value


def entries(data: dict, schema: dict[str, set], top: set = frozenset(), label: str = "preset") -> list:
    """Check a parsed preset against ``schema`` (section -> field names; ``top``: extra top-level
    keys) and flatten it to ``[(section or None, key, value), ...]`` in file order.

    An unknown section or key is a one-line UserError naming it and the nearest valid name.
    """
    every = set().union(*schema.values()) | set(top)
    out = []

    def check_value(key, value):
        if isinstance(value, (dict, list)) or not isinstance(value, (str, int, float, bool)):
            raise UserError(f"{label}: {key} must be a string, a number or true/false, not {value!r}")

    for key, value in data.items():
        if key in META_KEYS or (key in TABLES and isinstance(value, dict)):
            continue
        if isinstance(value, dict):
            if key not in schema:
                raise UserError(f"{label}: unknown section [{key}]{nearest(key, schema)} "
                                f"(sections: {', '.join(schema)})")
            for k, v in value.items():
                if k not in schema[key]:
                    hint = nearest(k, schema[key]) or nearest(k, every)
                    raise UserError(f"{label}: unknown key {k!r} in [{key}]{hint}")
                check_value(k, v)
                out.append((key, k, v))
        else:
            if key not in every:
                raise UserError(f"{label}: unknown key {key!r}{nearest(key, every | set(schema))}")
            check_value(key, value)
            out.append((None, key, value))
    return out


def toml_value(v) -> str:
    """``v`` (bool, number or text) written as a TOML value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def dumps(sections: dict, header: str = "", description: str = "") -> str:
    """TOML text for ``{section or None: {key: value}}`` (the None section first, at the top level)."""
    lines = [f"# {ln}" for ln in header.splitlines()]
    if description:
        lines.append(f"description = {toml_value(description)}")
    for k, v in sections.get(None, {}).items():
        lines.append(f"{k} = {toml_value(v)}")
    for name, values in sections.items():
        if name is None or not values:
            continue
        lines += ["", f"[{name}]"] + [f"{k} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def write(path, sections: dict, header: str = "", description: str = "") -> Path:
    """Write a preset file (atomically); returns its path."""
    from .io import atomic_output

    path = Path(path)
    if path.suffix.lower() != ".toml":
        raise UserError(f"cannot save preset {path}: use a .toml file name")
    text = dumps(sections, header, description)
    try:
        with atomic_output(path) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    except OSError as e:  # a place the user named that cannot hold a file: their path to fix
        raise UserError(f"cannot save preset {path}: {e.strerror or e}; choose another path") from None
    return path


# ---------------------------------------------------------------- presets and the settings


def convert_value(f, value, label, key):
    """``value`` from a preset converted to settings field ``f``'s type (``f`` None: a top-level int).
    A value that does not fit is a UserError, or ValueError/TypeError for the caller to phrase."""
    default = f.default if f is not None else 0
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{label}: {key} must be true or false, not {value!r}")
        return value
    if isinstance(value, bool):
        raise UserError(f"{label}: {key} must be a {type(default).__name__}, not {str(value).lower()}")
    parse = (f.metadata.get("parse") if f is not None else None) or type(default)
    out = parse(value if isinstance(value, str) else repr(value))  # 10.5 is no int; 0.01 is the schedule "0.01"
    choices = f.metadata.get("choices") if f is not None else None
    if choices and out not in choices:
        raise UserError(f"{label}: {key} = {value!r} is not one of {', '.join(choices)}")
    if f is not None and "range" in f.metadata and not isinstance(out, str):
        from .settings import in_range, range_text

        if not in_range(out, f.metadata["range"], f.metadata.get("off")):
            raise UserError(f"{label}: {key} = {value!r} is out of range; it must be "
                            f"{range_text(f.metadata['range'], f.metadata.get('off'))}")
    return out


def top_value(key, value, label):
    """A preset's top-level ``seed`` or ``max_side``, checked against its range."""
    from .settings import TOP_RANGES, in_range, range_text

    try:
        v = convert_value(None, value, label, key)
    except (ValueError, TypeError):
        v = None
    if v is None or not in_range(v, TOP_RANGES[key]):
        raise UserError(f"{label}: {key} = {value!r} must be a whole number {range_text(TOP_RANGES[key])}")
    return v


def resolve(name_or_path, kind: str) -> dict:
    """A preset's values for a ``kind`` job ("image", "video", "zoom"): ``{None: {seed, max_side},
    section: {field: typed value}}``, only the settings that job has.

    A key applies to the sections of this job that have a field of that name (any section when the
    key is at the top level). ``steps``/``step_size`` cross between ``[dream]`` and ``[schedules]``:
    a still image has no schedules, and a moving render schedules them. Keys of settings the job does
    not have are left out, so one preset serves every command; unknown keys and values of the wrong
    type are one-line :class:`UserError`\\ s, whether or not this job uses them.
    """
    from dataclasses import fields

    from .settings import KIND_SECTIONS, MOVING, SECTIONS, TOP_LEVEL

    path, data = read(name_or_path)
    label = f"preset {path.stem if path.parent == BUILTIN_DIR else path}"
    schema = {s: {f.name for f in fields(c)} for s, c in SECTIONS.items()}
    mine = {s: set(schema[s]) for s in KIND_SECTIONS[kind]}
    if "schedules" in mine:  # a moving render's steps and step size are schedules
        mine["dream"] -= set(MOVING)
    out: dict = {None: {}}
    for section, key, value in entries(data, schema, set(TOP_LEVEL), label):
        if section is None and key in TOP_LEVEL:
            out[None][key] = top_value(key, value, label)
            continue
        homes = [section] if section else [s for s in SECTIONS if key in schema[s]]
        converted, problem = {}, None
        for s in homes:  # checked in its own settings even where this job does not use it
            f = {x.name: x for x in fields(SECTIONS[s])}[key]
            try:
                converted[s] = convert_value(f, value, label, key)
            except UserError as e:
                problem = problem or e
            except (ValueError, TypeError):
                want = {"int": "a whole number", "float": "a number"}.get(type(f.default).__name__, "valid")
                problem = problem or UserError(f"{label}: {key} = {value!r} is not {want}")
        if problem and (section or not converted):  # top level: fine if some section takes it
            raise problem
        targets = [s for s in converted if key in mine.get(s, ())]
        cross = {"dream": "schedules", "schedules": "dream"}
        if not targets and section in cross and key in mine.get(cross[section], ()):
            other = cross[section]
            try:
                converted[other] = convert_value({x.name: x for x in fields(SECTIONS[other])}[key], value, label, key)
                targets = [other]
            except (ValueError, TypeError):  # a schedule expression has no meaning for a still image
                pass
        for s in targets:
            out.setdefault(s, {})[key] = converted[s]
    return out


def options(name_or_path, kind: str = "zoom") -> dict:
    """A preset as flat keyword options of the ``kind`` job: ``dreamvideo.zoom("cat.jpg", "z.mp4",
    **presets.options("pulse"))``."""
    out = {}
    for values in resolve(name_or_path, kind).values():
        out.update(values)
    return out


def sections_of(settings: dict, top: dict, only_changed: bool = True) -> dict:
    """``{section: settings dataclass}`` and top-level values as preset sections ``{None: {...},
    section: {field: value}}``; with ``only_changed`` the defaults are left out. Paths to existing
    files (model, weights, guide, audio) are made absolute: a preset may be used from another folder."""
    from dataclasses import fields

    from .settings import SECTIONS

    out = {None: {k: v for k, v in top.items() if v is not None and not (only_changed and k == "seed" and v == 0)}}
    for section, obj in settings.items():
        values = {}
        for f in fields(SECTIONS[section]):
            value = getattr(obj, f.name)
            if value is None or (only_changed and value == f.default):
                continue
            if f.name in ("model", "weights", "guide", "audio") and value and Path(str(value)).is_file():
                value = str(Path(str(value)).resolve())
            values[f.name] = value
        if values:
            out[section] = values
    return {k: v for k, v in out.items() if v}
