"""Hostile and odd image files, as a user meets them: every one dreams or is one line.

A decompression bomb (a small PNG that claims 30000x30000) is refused from its header before any
pixel is decoded; a JPEG with --max-side decodes reduced (measured: the peak memory of a child);
a text file named .png, truncated PNG/JPEG/TIFF files and empty files are one line each, with no
traceback, no Python warning and no line of a codec library (``libpng error``, ``Premature end of
JPEG file``, OpenCV's ``[ WARN``) on stderr; 16-bit, alpha, palette, grey and odd TIFF images dream.
The inputs are byte-identical afterwards and nothing is left beside the output. PNG-folder outputs
follow the umask. The bad files are made here.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dreamvideo import cli, images, io
from dreamvideo.errors import DreamFailure, UserError
from helpers import ROOT, photo, tiny_model_file

# The child's own peak (VmHWM: getrusage's ru_maxrss would count this process's memory, copied at the fork).
PEAK_KB = "int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
FAST = ["--layers", "conv2", "--steps", "1", "--octaves", "1", "--precision", "float32", "-q"]
NOISE = ("Traceback", "Warning", "warning", "libpng", "Premature end", "[ WARN", "Corrupt JPEG")


def png_bomb(path: Path, w: int, h: int) -> Path:
    """A valid greyscale PNG of w x h black pixels: one IDAT of rows of zeros, compressed to almost nothing."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(w + 1)  # filter byte + w grey samples
    data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    tiny_model_file(d / "tiny.keras")
    cat = np.ascontiguousarray(photo("chelsea")[::4, ::4][:64, :96])
    Image.fromarray(cat).save(d / "cat.png")
    png_bomb(d / "bomb.png", 30000, 30000)
    png_bomb(d / "big.png", 12000, 12000)
    (d / "text.png").write_text("not an image, a text file renamed\n")
    (d / "empty.png").write_bytes(b"")
    data = (d / "cat.png").read_bytes()
    (d / "trunc.png").write_bytes(data[: len(data) * 2 // 3])  # header and part of the pixels
    big = cv2.resize(photo("chelsea"), (600, 400), interpolation=cv2.INTER_CUBIC)
    Image.fromarray(big).save(d / "cat.jpg", quality=90)
    data = (d / "cat.jpg").read_bytes()
    (d / "trunc.jpg").write_bytes(data[: len(data) * 2 // 3])  # the scan cut short
    Image.fromarray(cat).save(d / "cat.tif", compression="tiff_lzw")
    data = (d / "cat.tif").read_bytes()
    (d / "trunc.tif").write_bytes(data[: len(data) // 2])
    (d / "seq").mkdir()
    for i in range(3):
        Image.fromarray(np.roll(cat, 4 * i, axis=1)).save(d / "seq" / f"f{i}.png")
    (d / "seq-trunc").mkdir()
    for i in range(2):
        Image.fromarray(cat).save(d / "seq-trunc" / f"f{i}.png")
    (d / "seq-trunc" / "f2.png").write_bytes((d / "trunc.png").read_bytes())
    (d / "seq-bomb").mkdir()
    png_bomb(d / "seq-bomb" / "f0.png", 30000, 30000)
    return d


def run(capfd, *argv):
    """The command in this process; stderr as the terminal shows it (C libraries' lines included)."""
    rc = cli.main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return rc, out, err


def digest(folder: Path) -> dict:
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("dreamvideo: error: "), err
    assert not any(n in err for n in NOISE), err
    return lines[0]


# ----------------------------------------------------------------------------- one line each

REFUSED = [  # (id, command with {d} = the files and {o} = an output in an empty folder, needle)
    ("png-bomb-image", "image {d}/bomb.png -o {o}.png", "bomb.png is 30000x30000 (900 megapixels)"),
    ("png-bomb-with-max-side", "image {d}/bomb.png -o {o}.png --max-side 160", "30000x30000"),
    ("png-bomb-zoom-start", "zoom {d}/bomb.png -o {o}.mp4 --frames 2", "30000x30000"),
    ("png-bomb-plan-zoom", "plan zoom {d}/bomb.png -o {o}.png --frames 2", "30000x30000"),
    ("png-bomb-in-a-folder", "video {d}/seq-bomb -o {o}.mp4", "30000x30000"),
    ("png-bomb-in-a-glob", "video {d}/seq-bomb/*.png -o {o}.mp4", "30000x30000"),
    ("png-over-the-limit-with-max-side", "image {d}/big.png -o {o}.png --max-side 160", "12000x12000"),
    ("text-renamed-png", "image {d}/text.png -o {o}.png", "cannot read image"),
    ("text-renamed-png-zoom", "zoom {d}/text.png -o {o}.mp4 --frames 2", "not a decodable image"),
    ("empty-png", "image {d}/empty.png -o {o}.png", "is empty (0 bytes)"),
    ("truncated-png", "image {d}/trunc.png -o {o}.png", "truncated or damaged"),
    ("truncated-jpeg", "image {d}/trunc.jpg -o {o}.png", "truncated or damaged"),
    ("truncated-tiff", "image {d}/trunc.tif -o {o}.png", "trunc.tif"),
    ("limit-below-the-image", "image {d}/cat.png -o {o}.png --max-pixels 1000", "more than the limit"),
]


@pytest.mark.parametrize("argv, needle", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_hostile_image_is_one_line_and_leaves_everything_as_it_was(files, tmp_path, capfd, argv, needle):
    before = digest(files)
    t0 = time.monotonic()
    rc, out, err = run(capfd, *argv.format(d=files, o=tmp_path / "out").split(), "--model", files / "tiny.keras",
                       *FAST)
    took = time.monotonic() - t0
    assert rc == 2, err
    line = one_line(err)
    assert needle in line, line
    if "megapixels" in line:  # refused from the header: quickly, naming the way to raise the limit
        assert "--max-pixels" in line and "DREAMVIDEO_MAX_PIXELS" in line and took < 5, (line, took)
    assert list(tmp_path.iterdir()) == [] and digest(files) == before


def test_bomb_costs_no_memory_and_no_time(files):
    """Measured in a child: refusing the 30000x30000 bomb (0.9 GB of pixels; Pillow would allocate 3.6 GB)."""
    code = ("import sys, time; t = time.monotonic()\n"
            "from dreamvideo import images\n"
            "try:\n    images.read_image(sys.argv[1], 160)\nexcept images.UserError as e:\n    print(e)\n"
            f"print({PEAK_KB}, time.monotonic() - t)")
    r = subprocess.run([sys.executable, "-c", code, str(files / "bomb.png")], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    message, usage = r.stdout.strip().splitlines()
    peak_kb, seconds = usage.split()
    assert "30000x30000" in message and r.stderr == ""
    assert int(peak_kb) < 200_000 and float(seconds) < 2.0, usage


def test_jpeg_with_max_side_decodes_reduced(tmp_path):
    """An 8000x8000 JPEG with max_side 160: decoded at 1/8 (a peak of tens of MB, where the whole picture
    held 2.5 GB before), looking like the full decode brought down by area averaging."""
    img = cv2.resize(photo("chelsea"), (8000, 8000), interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    (tmp_path / "huge.jpg").write_bytes(buf.tobytes())
    del img
    code = ("import sys\nfrom dreamvideo import images\n"
            "a = images.read_image(sys.argv[1], 160)\n"
            f"print(a.shape, {PEAK_KB})\n"
            "__import__('numpy').save(sys.argv[2], a)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "huge.jpg"), str(tmp_path / "small.npy")],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    shape, peak_kb = r.stdout.rsplit(" ", 1)
    assert shape == "(160, 160, 3)" and int(peak_kb) < 400_000, r.stdout
    small = np.load(tmp_path / "small.npy")
    want = cv2.resize(photo("chelsea"), (160, 160), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(small - want).mean(axis=(0, 1)).max() < 6  # same picture, channels in order


def test_max_pixels_flag_and_environment_raise_the_limit(files, tmp_path, capfd, monkeypatch):
    rc, _, err = run(capfd, "image", files / "cat.png", "-o", tmp_path / "a.png", "--model", files / "tiny.keras",
                     *FAST, "--max-pixels", "6000")
    assert rc == 2 and "96x64" in one_line(err)
    rc, _, err = run(capfd, "image", files / "cat.png", "-o", tmp_path / "a.png", "--model", files / "tiny.keras",
                     *FAST, "--max-pixels", "7000")
    assert rc == 0 and (tmp_path / "a.png").is_file(), err
    assert "DREAMVIDEO_MAX_PIXELS" not in os.environ  # the flag lasts for its command only
    monkeypatch.setenv("DREAMVIDEO_MAX_PIXELS", "6000")
    with pytest.raises(UserError, match="limit of 0.006 megapixels"):
        images.read_image(files / "cat.png")
    assert images.read_image(files / "cat.png", max_pixels=7000).shape == (64, 96, 3)
    monkeypatch.setenv("DREAMVIDEO_MAX_PIXELS", "lots")
    rc, _, err = run(capfd, "image", files / "cat.png", "-o", tmp_path / "b.png")
    assert rc == 2 and "DREAMVIDEO_MAX_PIXELS must be a positive whole number" in one_line(err)


def test_pillow_bomb_check_never_reaches_the_user(files, monkeypatch):
    """Pillow's own check (a warning above its limit, an exception at twice it) is replaced by ours: with
    its limit set tiny, images still read, with no warning, and its setting is left as it was."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert images.read_image(files / "cat.png").shape == (64, 96, 3)
        assert images.image_size(files / "cat.jpg") == (600, 400)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_a_truncated_frame_of_a_folder_is_one_line(files, tmp_path, capfd):
    before = digest(files)
    rc, _, err = run(capfd, "video", files / "seq-trunc", "-o", tmp_path / "out.mp4", "--model",
                     files / "tiny.keras", *FAST)
    assert rc == 2 and "f2.png: the file is truncated or damaged" in one_line(err)
    assert digest(files) == before
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".out.mp4.dreamwork")]


def test_a_damaged_work_folder_frame_is_one_line_without_libpng(files, tmp_path, capfd):
    with pytest.raises(DreamFailure, match="the work folder is damaged"):
        io.read_png(files / "trunc.png")
    _, err = capfd.readouterr()
    assert err == ""


# ----------------------------------------------------------------------------- odd but valid images dream


def _odd_images(d: Path) -> dict[str, Path]:
    rgb = np.ascontiguousarray(photo("astronaut")[::8, ::8][:48, :64])
    grey = rgb[..., 1]
    alpha = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    out = {}

    def save(name, fn):
        out[name] = d / name
        fn(out[name])

    save("rgb16.png", lambda p: cv2.imwrite(str(p), rgb[..., ::-1].astype(np.uint16) * 257))
    save("rgba.png", lambda p: Image.fromarray(np.dstack([rgb, alpha])).save(p))
    save("palette.png", lambda p: Image.fromarray(rgb).quantize(32).save(p))
    save("palette-transparent.png", lambda p: Image.fromarray(rgb).quantize(32).save(p, transparency=0))
    save("grey.png", lambda p: Image.fromarray(grey).save(p))
    save("grey16-alpha.png", lambda p: cv2.imwrite(str(p), np.dstack([grey, grey, grey, alpha]).astype(np.uint16)
                                                   * 257))
    save("bw.png", lambda p: Image.fromarray(grey > 100).save(p))
    save("float-rgb.tif", lambda p: cv2.imwrite(str(p), (rgb[..., ::-1] / 255.0).astype(np.float32)))
    save("rgba16-extra.tif", lambda p: cv2.imwrite(str(p), np.dstack([rgb[..., ::-1], alpha * 0 + 255])
                                                   .astype(np.uint16) * 257))  # opaque: its colours are checked
    save("cmyk.tif", lambda p: Image.fromarray(rgb).convert("CMYK").save(p))
    save("lab.tif", lambda p: Image.fromarray(rgb).convert("LAB").save(p))
    save("bw.tif", lambda p: Image.fromarray(grey > 100).save(p))
    save("cmyk.jpg", lambda p: Image.fromarray(rgb).convert("CMYK").save(p, quality=95))
    return out


def test_odd_images_read_quietly_and_keep_their_colours(tmp_path, capfd):
    rgb = np.ascontiguousarray(photo("astronaut")[::8, ::8][:48, :64]).astype(float)
    for name, path in _odd_images(tmp_path).items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = images.read_image(path)
        assert got.shape == (48, 64, 3) and got.dtype == np.uint8 and got.flags.writeable, name
        if name.startswith(("rgb16", "float", "cmyk", "lab", "rgba16")):  # opaque colour: the same picture
            assert np.abs(got - rgb).mean(axis=(0, 1)).max() < 8, name
    _, err = capfd.readouterr()
    assert err == "", err


@pytest.mark.parametrize("name", ["rgb16.png", "rgba.png", "palette-transparent.png", "grey.png",
                                  "grey16-alpha.png", "float-rgb.tif", "rgba16-extra.tif"])
def test_odd_images_dream(files, tmp_path, capfd, name):
    src = _odd_images(tmp_path)[name]
    before = src.read_bytes()
    (tmp_path / "out").mkdir()
    rc, _, err = run(capfd, "image", src, "-o", tmp_path / "out" / "dream.png", "--model", files / "tiny.keras",
                     *FAST)
    assert rc == 0, err
    assert not [ln for ln in err.splitlines() if any(n in ln for n in NOISE)], err
    assert images.read_image(tmp_path / "out" / "dream.png").shape == (48, 64, 3)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["dream.png"] and src.read_bytes() == before


# ----------------------------------------------------------------------------- outputs the user makes


@pytest.mark.parametrize("umask, mode", [(0o022, 0o755), (0o027, 0o750)])
def test_png_folder_output_follows_the_umask(files, tmp_path, capfd, umask, mode):
    old = os.umask(umask)
    try:
        rc, _, err = run(capfd, "video", files / "seq", "-o", tmp_path / "frames", "--model", files / "tiny.keras",
                         *FAST, "--coherence", "none")
    finally:
        os.umask(old)
    assert rc == 0, err
    assert (tmp_path / "frames").stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"frame_00000{i}.png" for i in (1, 2, 3)]
    assert all(p.stat().st_mode & 0o777 == mode & 0o666 for p in (tmp_path / "frames").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_a_jpeg_glob_with_max_side_decodes_reduced_and_keeps_its_look(tmp_path, capfd, monkeypatch):
    """Each picture of a glob input is decoded reduced (JPEG) to the output size: the frames are the pictures
    brought down, channels in order."""
    src = cv2.resize(photo("astronaut"), (800, 600), interpolation=cv2.INTER_AREA)
    (tmp_path / "in").mkdir()
    for i in range(2):
        Image.fromarray(src).save(tmp_path / "in" / f"p{i}.jpg", quality=95)
    decoded = []
    original = images._pil_rgb8
    monkeypatch.setattr(images, "_pil_rgb8", lambda im: decoded.append(im.size) or original(im))
    with io.VideoReader(str(tmp_path / "in" / "*.jpg"), max_side=160) as reader:
        frames = list(reader)
    assert [f.shape for f in frames] == [(120, 160, 3)] * 2
    assert decoded == [(200, 150)] * 2  # 1/4 a side: the smallest JPEG scale at least the output's size
    want = cv2.resize(src, (160, 120), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(frames[0] - want).mean(axis=(0, 1)).max() < 4
    _, err = capfd.readouterr()
    assert err == ""
