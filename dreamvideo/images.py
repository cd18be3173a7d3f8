"""Still images in and out: read only once the header says they fit, written under a temporary name.

Convention: images are HxWx3 uint8 RGB numpy arrays (C-contiguous, writable); sizes are
(width, height) in pixels; a pixel limit counts pixels (width x height).

Reading opens the file's header first (Pillow decodes no pixel until asked), so a size is known
before any memory is spent on it. An image whose decoded size exceeds the pixel limit
(:data:`~dreamvideo.settings.MAX_PIXELS` by default, ``--max-pixels`` or ``DREAMVIDEO_MAX_PIXELS``)
is refused with one line: a decompression bomb (a small file that claims to be 30000x30000) costs
a millisecond. With a ``max_side``, a JPEG is decoded already reduced (its DCT scaling, 1/2 to
1/8 of each side) and every format is then area-averaged down, so a 12000x12000 JPEG with
``--max-side 160`` never exists in memory at full size. Pillow's warnings are silenced (its
DecompressionBombWarning included: the limit here replaces its own), and OpenCV, whose codec
libraries print to stderr (``libpng error: ...``, ``Premature end of JPEG file``), only decodes the
TIFF flavours Pillow lacks, with its logging off.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DreamFailure, UserError
from .ffmpeg import existing_file
from .settings import default_max_pixels

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_FIX = "pass a png, jpg, webp, bmp or tiff file"
_BLOCK = 1 << 20  # pixels converted at a time: the float intermediates stay small at any image size
# Pillow's own bomb check is a process-wide setting; it is lifted only while a header is parsed or a
# band of rows is cut (under this lock), since the limit here is checked on the size the header gives.
_PIL_LIMIT = threading.Lock()


def is_image_path(path) -> bool:
    """True for still-image extensions (.png .jpg .jpeg .webp .bmp .tif .tiff); .gif counts as video."""
    return Path(str(path)).suffix.lower() in IMAGE_EXTS


# ----------------------------------------------------------------------------- reading


@contextlib.contextmanager
def _pillow_unlimited():
    """Pillow's bomb check off (its warning and error would reach the user; our limit is checked instead)."""
    with _PIL_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(p: Path) -> Image.Image:
    """The image's header, parsed by Pillow (no pixels decoded); UserError if no format knows it."""
    try:
        with _pillow_unlimited(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(p)
    except UnidentifiedImageError:
        raise
    except Exception as e:  # a header too broken to give a size
        raise UserError(f"cannot read image {p}: its header is damaged ({e}); {_FIX}") from None


def _is_tiff(p: Path) -> bool:
    with open(p, "rb") as fh:
        return fh.read(4) in (b"II*\0", b"MM\0*")


def _tiff_size(p: Path) -> tuple[int, int] | None:
    """(width, height) from a classic TIFF's first directory, or None (Pillow knows no mode for some
    TIFFs, e.g. float RGB, which OpenCV then decodes: their size must be checked all the same)."""
    with open(p, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8 or head[:4] not in (b"II*\0", b"MM\0*"):
            return None
        e = "<" if head[:2] == b"II" else ">"
        fh.seek(struct.unpack(e + "I", head[4:])[0])
        raw = fh.read(2)
        if len(raw) < 2:
            return None
        n = struct.unpack(e + "H", raw)[0]
        entries = fh.read(12 * n)
        size = {}
        for i in range(len(entries) // 12):
            tag, kind, count = struct.unpack(e + "HHI", entries[12 * i:12 * i + 8])
            if tag in (256, 257) and count == 1 and kind in (3, 4):
                value = entries[12 * i + 8:12 * i + 12]
                size[tag] = struct.unpack(e + ("H" if kind == 3 else "I"), value[:2 if kind == 3 else 4])[0]
        return (size[256], size[257]) if len(size) == 2 else None


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1: upright; 5-8 turn the picture a quarter), 1 where the EXIF is unreadable."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1  # not in the header: Pillow would decode every pixel looking for an eXIf chunk after them
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _oriented(size: tuple[int, int], im: Image.Image) -> tuple[int, int]:
    """``size`` as displayed."""
    return (size[1], size[0]) if _orientation(im) in (5, 6, 7, 8) else size


def image_size(path) -> tuple[int, int]:
    """An image file's (width, height) as displayed (EXIF orientation applied), from its header only.
    Raises UserError for a missing, empty or unrecognised file."""
    p = existing_file(path, "image")
    try:
        with _open(p) as im:
            return _oriented(im.size, im)
    except UnidentifiedImageError:
        size = _tiff_size(p)
        if size is None:
            raise UserError(f"cannot read image {p}: not a decodable image; {_FIX}") from None
        return size


def _target(size: tuple[int, int], max_side: int | None, want: tuple[int, int] | None) -> tuple[int, int] | None:
    """The size the caller will resize to (``want``, or the longer side brought to ``max_side``), None for full."""
    if want:
        return want
    if max_side and max(size) > max_side:
        s = max_side / max(size)
        return max(1, round(size[0] * s)), max(1, round(size[1] * s))
    return None


def _limit_check(p: Path, size: tuple[int, int], decoded: tuple[int, int], limit: int, reducible: bool) -> None:
    pixels = decoded[0] * decoded[1]
    if pixels <= limit:
        return
    hint = " or pass `max_side` to decode it reduced" if reducible and decoded == size else ""
    mp = f"{pixels / 1e6:.0f} megapixels" + ("" if decoded == size else f" even decoded at {decoded[0]}x{decoded[1]}")
    raise UserError(f"image {p} is {size[0]}x{size[1]} ({mp}), more than the "
                    f"limit of {limit / 1e6:g} megapixels: shrink it first{hint}, or raise the limit with "
                    f"`max_pixels` (or DREAMVIDEO_MAX_PIXELS) if this machine has {pixels * 7 / 2**30:.1f} GB "
                    "of memory to spare")


def check_image(path, max_side: int | None = None, *, size: tuple[int, int] | None = None,
                max_pixels: int | None = None) -> tuple[int, int]:
    """Check from the header alone that :func:`read_image` with these arguments would decode ``path``
    within the pixel limit; returns its (width, height) as displayed. Raises UserError otherwise."""
    p = existing_file(path, "image")
    limit = max_pixels or default_max_pixels()
    try:
        with _open(p) as im:
            full = _oriented(im.size, im)
            target = _target(full, max_side, size)
            if target and im.format in ("JPEG", "MPO"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    im.draft(None, _stored(target, im.size, full))
            _limit_check(p, full, _oriented(im.size, im), limit, im.format in ("JPEG", "MPO"))
            return full
    except UnidentifiedImageError:
        full = image_size(p)
        _limit_check(p, full, full, limit, False)
        return full


def _stored(target: tuple[int, int], stored: tuple[int, int], shown: tuple[int, int]) -> tuple[int, int]:
    """``target`` (display orientation) in the file's stored orientation."""
    return target if stored == shown else (target[1], target[0])


def read_image(path, max_side: int | None = None, *, size: tuple[int, int] | None = None,
               max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB; ``max_side``: its longer side brought down to at most
    that many pixels; ``size``: resized to exactly (width, height) (area averaging either way).

    Handles jpg/png/webp/bmp/tiff, EXIF orientation, greyscale (replicated), alpha (composited
    onto white), 16-bit (scaled to 8-bit), palette, CMYK and float images. An image that would
    decode to more than ``max_pixels`` (default :func:`~dreamvideo.settings.default_max_pixels`)
    pixels is refused from its header; a JPEG is decoded reduced where ``max_side``/``size`` allow.
    Raises UserError for a missing, empty, truncated, too large or undecodable file or a folder.
    """
    p = existing_file(path, "image")
    limit = max_pixels or default_max_pixels()
    try:
        im = _open(p)
    except UnidentifiedImageError:
        img = _read_tiff_cv2(p, limit)
    else:
        with im:
            img = _decode(p, im, max_side, size, limit)
    target = _target(img.shape[1::-1], max_side, size)
    if target and target != img.shape[1::-1]:
        img = cv2.resize(img, target, interpolation=cv2.INTER_AREA)
    return img


def _decode(p: Path, im: Image.Image, max_side, size, limit: int) -> np.ndarray:
    full = _oriented(im.size, im)
    target = _target(full, max_side, size)
    jpeg = im.format in ("JPEG", "MPO")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's notes on odd files (EXIF, ICC, TIFF tags) are not the user's
        if target and jpeg:
            im.draft(None, _stored(target, im.size, full))
        _limit_check(p, full, _oriented(im.size, im), limit, jpeg)
        try:
            im.load()
            if _orientation(im) != 1:  # (exif_transpose copies even an upright image)
                with contextlib.suppress(Exception):  # a damaged EXIF block: the pixels as stored
                    im = ImageOps.exif_transpose(im)
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA")
            elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            elif im.mode == "1":
                im = im.convert("L")
            return _pil_rgb8(im)
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as e:
            if _is_tiff(p):  # Pillow lacks some TIFF flavours (e.g. 16-bit RGBA with extra samples)
                return _read_tiff_cv2(p, limit)
            why = str(e).rstrip(".") or type(e).__name__
            raise UserError(f"cannot read image {p}: the file is truncated or damaged ({why}); "
                            "re-export or re-download it") from None


@contextlib.contextmanager
def _quiet_opencv():
    """OpenCV's own log lines (``[ WARN:0@0.01] ... TIFF_Warning ...``) off while it decodes."""
    logging = cv2.utils.logging
    old = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(old)


def _read_tiff_cv2(p: Path, limit: int) -> np.ndarray:
    size = _tiff_size(p) if _is_tiff(p) else None
    if size is None:
        raise UserError(f"cannot read image {p}: not a decodable image; {_FIX}")
    _limit_check(p, size, size, limit, False)
    with _quiet_opencv():
        a = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise UserError(f"cannot read image {p}: not a decodable image; {_FIX}")
    if a.ndim == 3 and a.shape[2] >= 3:
        a = a[..., [2, 1, 0, 3][: a.shape[2]]]  # BGR(A) -> RGB(A)
    return _to_rgb8(a, _float_scale(a))


def _float_scale(a: np.ndarray) -> float:
    """Float images hold 0..1 (scaled to 0..255) or 0..255 (kept)."""
    if a.dtype.kind != "f":
        return 1.0
    top = np.nanmax(a) if a.size else 0.0
    return 255.0 if top <= 1.0 else 1.0


def _pil_rgb8(im: Image.Image) -> np.ndarray:
    """A loaded Pillow image as HxWx3 uint8 RGB, converted a band of rows at a time."""
    w, h = im.size
    if im.mode == "F":
        scale = 255.0 if (im.getextrema()[1] or 0.0) <= 1.0 else 1.0
    else:
        scale = 1.0
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, _BLOCK // max(1, w))
    for y in range(0, h, rows):
        with _pillow_unlimited():  # (a crop is checked too)
            block = np.asarray(im.crop((0, y, w, min(h, y + rows))))
        out[y:y + rows] = _to_rgb8(block, scale)
    return out


def _to_rgb8(a: np.ndarray, float_scale: float = 1.0) -> np.ndarray:
    """Any HxW[xC] array (C = 1..4, uint8/uint16/int/float) -> HxWx3 uint8 RGB; alpha composited onto white.
    ``float_scale`` multiplies float data (255 for 0..1 images)."""
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint8:
        a = a.astype(np.float32)
    elif a.dtype.kind in "ui":
        a = a.astype(np.float32) * (255.0 / 65535.0)  # 16-bit data (Pillow's int32 "I" mode holds 16-bit PNGs too)
    else:
        a = np.nan_to_num(a.astype(np.float32)) * float_scale
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] in (2, 4):  # grey+alpha or RGBA
        alpha = np.clip(a[..., -1:] / 255.0, 0.0, 1.0)
        a = a[..., :-1] * alpha + 255.0 * (1.0 - alpha)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(np.clip(np.rint(a[..., :3]), 0, 255).astype(np.uint8))


def fit_max_side(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """``img`` downscaled (area averaging) so its longer side is at most ``max_side`` pixels."""
    target = _target(img.shape[1::-1], max_side, None)
    return cv2.resize(img, target, interpolation=cv2.INTER_AREA) if target else img


def read_png(path) -> np.ndarray:
    """A PNG written by :func:`write_png` as HxWx3 uint8 RGB (a damaged one is a DreamFailure, in one line)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return np.array(im.convert("RGB"))
    except Exception:
        raise DreamFailure(f"could not read {path}; the work folder is damaged: run without resume to start "
                           "over") from None


# ----------------------------------------------------------------------------- writing


def check_frame(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DreamFailure(f"frame must be HxWx3 uint8 RGB, got {rgb.dtype} {rgb.shape}; convert it before writing")
    return rgb


def _write_file(path: Path, data: bytes, tmp: Path, doing: str = "save") -> None:
    """``data`` written to ``tmp``, then renamed to ``path``: the name only ever holds a whole file.
    Written by Python, so a full disk is one DreamFailure (a codec writing the file prints its own)."""
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DreamFailure(f"could not {doing} {path}: {e.strerror or e}; check free disk space and "
                           "permissions") from None


def write_image(path, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write an HxWx3 uint8 RGB image, format by extension (png jpg jpeg webp bmp tif tiff), atomically
    (under ``<stem>.tmp-<8 hex>.<ext>`` first). quality (1-100) applies to jpg and webp. Returns the path."""
    path = Path(str(path))
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise UserError(f"cannot write image {path}: unknown extension '{ext}'; use one of {' '.join(IMAGE_EXTS)}")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise UserError(f"output folder {parent} does not exist; create it or choose another output path")
    if not os.access(parent, os.W_OK):
        raise UserError(f"output folder {parent} is not writable; choose another output path")
    if path.is_dir():
        raise UserError(f"output {path} is a folder; give a file name with an extension")
    params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, int(quality)], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, int(quality)],
              ".webp": [cv2.IMWRITE_WEBP_QUALITY, int(quality)]}.get(ext, [])
    ok, buf = cv2.imencode(ext, check_frame(rgb)[..., ::-1], params)
    if not ok:
        raise DreamFailure(f"could not encode image {path}; check the extension")
    _write_file(path, buf.tobytes(), parent / f"{path.stem}.tmp-{secrets.token_hex(4)}{path.suffix}", "write image")
    return path


def write_png(path, rgb: np.ndarray, fast: bool = False) -> Path:
    """Write an HxWx3 uint8 RGB frame as PNG under a temporary name, then rename it into place.
    ``fast``: light compression (the work folder's frames)."""
    path = Path(str(path))
    ok, buf = cv2.imencode(".png", check_frame(rgb)[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1 if fast else 3])
    if not ok:
        raise DreamFailure(f"could not encode frame {path.name} as PNG")
    _write_file(path, buf.tobytes(), path.with_name(f"{path.stem}.tmp{path.suffix}"))
    return path
