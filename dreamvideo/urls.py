"""Inputs and outputs in buckets: ``s3://``, ``gs://``, ``az://`` (through fsspec: s3fs, gcsfs, adlfs,
the ``s3``/``gcs``/``azure`` extras) and ``https://`` (read only).

A render's input, ``audio``, ``weights``, ``model`` and ``guide`` may be URLs: each object is read
once into this machine's cache (``$XDG_CACHE_HOME/dreamvideo/urls/<hash>/<name>``, kept while its
render can resume, then removed) and the render reads that copy; Ray workers get it through the
object store as any other file. An output URL is rendered to the cache
(``.../urls/<hash>/<name>``, with the work folder ``--resume`` uses beside it: on this machine) and
uploaded only once the render is complete, so the object never holds a half-written file.

Credentials come from each cloud's usual environment and files (``AWS_*``/``~/.aws``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``); this module never puts them in a message,
a log, the work folder's record or a preset (only URLs, which carry none, are kept). A missing
bucket or object, or a refused credential, is one line naming the URL and the fix, before any model
loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import shutil
from pathlib import Path

from .errors import DreamFailure, UserError

#: scheme -> (the fsspec package, the extra that installs it)
SCHEMES = {"s3": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"), "az": ("adlfs", "azure"),
           "abfs": ("adlfs", "azure"), "https": ("aiohttp", "https"), "http": ("aiohttp", "https")}
READ_ONLY = ("https", "http")
_URL = re.compile(r"^([a-z][a-z0-9+]*)://", re.I)
#: the options a render reads a file from (its input besides)
URL_OPTIONS = ("audio", "weights", "model", "guide")

_CRED_FIX = {
    "s3": "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, ~/.aws/credentials) and "
          "AWS_ENDPOINT_URL for an S3-compatible store",
    "gs": "check GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`",
    "az": "check AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_CONNECTION_STRING or "
          "AZURE_STORAGE_SAS_TOKEN",
}


def scheme(value) -> str:
    """The URL scheme of ``value`` (lower case), or "" for a path or a name."""
    m = _URL.match(value) if isinstance(value, str) else None
    return m.group(1).lower() if m else ""


def is_url(value) -> bool:
    return scheme(value) in SCHEMES


def _kind(sch: str) -> str:
    return {"gcs": "gs", "abfs": "az"}.get(sch, sch)


def filesystem(url: str):
    """The fsspec filesystem for ``url``; a missing package is a one-line UserError naming the install."""
    sch = scheme(url)
    package, extra = SCHEMES[sch]
    try:
        import fsspec

        return fsspec.filesystem(sch, skip_instance_cache=True)  # credentials as the environment has them now
    except ImportError:
        raise UserError(f"reading {sch}:// URLs needs {package}; install it with: pip install "
                        f'"dreamvideo[{extra}]"') from None


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dreamvideo" / "urls"


def _slot(url: str) -> Path:
    """The cache folder of one URL (a hash of it: the same URL finds the same copy on a resume)."""
    return cache_root() / hashlib.sha256(url.encode()).hexdigest()[:24]


def _name(url: str) -> str:
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name or "object"


def _said(e: BaseException) -> str:
    """The first line of an error from a filesystem library, without any credential it might quote."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    for key in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
                "AZURE_STORAGE_CONNECTION_STRING", "AWS_ACCESS_KEY_ID"):
        secret = os.environ.get(key)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text.rstrip(".")


def _failure(url: str, what: str, e: BaseException):
    """A filesystem error as one line naming ``url`` and the fix."""
    sch = _kind(scheme(url))
    cause = e.__cause__ or e.__context__
    if isinstance(e, FileNotFoundError) and "connect" in type(cause).__name__.lower():
        # fsspec's http filesystem says "not found" for a host that cannot be reached at all
        return DreamFailure(f"{what} {url}: cannot connect ({_said(cause)}); check the URL and the network, "
                            "then try again")
    if isinstance(e, FileNotFoundError):
        fix = "check the URL" if sch in ("http", "https") else "check the bucket and object name"
        return UserError(f"{what} {url} not found; {fix}")
    if isinstance(e, PermissionError) or "credential" in str(e).lower() or "AccessDenied" in str(e):
        # (S3 also answers 403 for a missing object to a key that may not list the bucket)
        return UserError(f"{what} {url}: the credentials were refused ({_said(e)}); "
                         f"{_CRED_FIX.get(sch, 'check the credentials for it')}, and that they may read the object")
    return DreamFailure(f"{what} {url}: {_said(e)}; check the URL and the network, then try again")


def fetch(url: str, what: str = "input") -> str:
    """The path of this machine's copy of ``url``, read once: kept while the object is unchanged
    (its ETag or size and time), so a resumed render finds the same file."""
    fs = filesystem(url)
    try:
        info = fs.info(url)
    except Exception as e:  # noqa: BLE001 - each library raises its own
        raise _failure(url, what, e) from None
    if info.get("type") == "directory":
        raise UserError(f"{what} {url} is a folder; give the URL of one file")
    slot = _slot(url)
    path = slot / _name(url)
    stamp = repr((info.get("ETag") or info.get("etag") or "", info.get("size"), str(info.get("LastModified", ""))))
    mark = slot / ".stamp"
    if path.is_file() and mark.is_file() and mark.read_text() == stamp:
        return str(path)
    slot.mkdir(parents=True, exist_ok=True)
    part = slot / f".{path.name}.part"
    try:
        with fs.open(url, "rb") as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
    except Exception as e:  # noqa: BLE001
        part.unlink(missing_ok=True)
        raise _failure(url, what, e) from None
    os.replace(part, path)
    mark.write_text(stamp)
    return str(path)


def check_output(url: str) -> None:
    """An output URL must be writable: a bucket (container) that is there, a scheme that writes."""
    sch = scheme(url)
    if sch in READ_ONLY:
        raise UserError(f"cannot write to {url}: {sch}:// is read only; write to a file or an s3:// gs:// az:// URL")
    fs = filesystem(url)
    bucket = url.split("://", 1)[1].split("/", 1)[0]
    try:
        fs.info(f"{sch}://{bucket}")
    except Exception as e:  # noqa: BLE001
        if isinstance(e, FileNotFoundError):
            raise UserError(f"output {url}: bucket {bucket} not found; create it or check the URL") from None
        raise _failure(url, "output", e) from None


def upload(local: str, url: str) -> None:
    """Upload a complete output (a file, or a folder of frames) to ``url``; S3, GCS and Azure make an
    object visible only once its upload completes."""
    fs = filesystem(url)
    try:
        if os.path.isdir(local):
            fs.put(local.rstrip("/") + "/", url.rstrip("/") + "/", recursive=True)
        else:
            fs.put_file(local, url)
    except Exception as e:  # noqa: BLE001
        raise _failure(url, "output", e) from None


def staged_output(url: str) -> str:
    """Where a render to ``url`` writes on this machine (its work folder beside it)."""
    slot = _slot(url)
    slot.mkdir(parents=True, exist_ok=True)
    name = _name(url) + ("/" if url.endswith("/") else "")
    return str(slot / name)


def _forget(url: str) -> None:
    shutil.rmtree(_slot(url), ignore_errors=True)


def _url_options(options: dict) -> list:
    """``(section or None, field, url)`` of each URL among the file options, flat or in a settings section."""
    found = []
    for k, v in options.items():
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            found += [(k, f.name, getattr(v, f.name)) for f in dataclasses.fields(v)
                      if f.name in URL_OPTIONS and is_url(getattr(v, f.name))]
        elif k in URL_OPTIONS and is_url(v):
            found.append((None, k, v))
    return found


def accepts_urls(fn):
    """Decorate a job ``fn(input, output, *, ..., **options)``: URL input, options (:data:`URL_OPTIONS`)
    and output as the module's docstring says. Returns the output URL (a path for a path)."""

    @functools.wraps(fn)
    def run(input, output, *args, **options):
        out_url = output if is_url(str(output)) else None
        named = _url_options(options)
        urls = ([input] if is_url(input) else []) + [u for _, _, u in named]
        if out_url is None and not urls:
            return fn(input, output, *args, **options)
        if out_url:
            check_output(out_url)
        if is_url(input):
            input = fetch(input, "input")
        for section, key, url in named:
            local = fetch(url, f"`{key}`")
            if section is None:
                options[key] = local
            else:
                options[section] = dataclasses.replace(options[section], **{key: local})
        if out_url:
            output = staged_output(out_url)
        result = fn(input, output, *args, **options)
        if out_url:
            upload(str(result), out_url)
            with contextlib.suppress(OSError):
                shutil.rmtree(str(result)) if os.path.isdir(str(result)) else os.unlink(str(result))
            _forget(out_url)
        for u in urls:
            _forget(u)
        return out_url or result

    return run
