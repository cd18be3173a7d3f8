"""Images and video in and out: what a user would notice (counts, sizes, audio, atomic files, errors)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ffmpeg, ffmpeg_children
from dreamvideo import io
from dreamvideo.errors import DreamFailure, UserError
from helpers import photo


def read_all(path, **kw) -> list[np.ndarray]:
    with io.VideoReader(path, **kw) as r:
        return list(r)


def write_all(path, frames, fps=12, **kw) -> Path:
    with io.VideoWriter(path, fps, **kw) as w:
        for f in frames:
            w.write(f)
    return Path(path)


def stream_seconds(path, kind: str) -> float:
    """Decoded length in seconds of the first `kind` ('v' or 'a') stream; 0 if there is none."""
    err = ffmpeg("-i", path, "-map", f"0:{kind}:0?", "-f", "null", "-")
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", err)
    return int(times[-1][0]) * 3600 + int(times[-1][1]) * 60 + float(times[-1][2]) if times else 0.0


def leftovers(folder) -> list[str]:
    return [p.name for p in Path(folder).iterdir() if ".tmp-" in p.name]


# ----------------------------------------------------------------------------- probing and reading


def test_probe_reports_size_fps_frames_and_audio(clips):
    info = io.probe_video(clips["clip"])
    assert (info.width, info.height, info.fps, info.nframes, info.has_audio) == (160, 120, 12.0, 24, True)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert io.probe_video(clips["silent"]).has_audio is False


def test_reader_yields_all_frames_as_writable_rgb(clips):
    with io.VideoReader(clips["clip"]) as r:
        frames = list(r)
        assert r.info.nframes == len(frames) == 24
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    frames[0][0, 0] = 1  # the dream pipeline edits frames in place
    assert not np.array_equal(frames[0], frames[1])


def test_odd_size_rounds_to_even_by_at_most_one_pixel(clips):
    with io.VideoReader(clips["odd"]) as r:
        frames = list(r)
    assert (r.info.width, r.info.height) == (160, 120)
    assert frames[0].shape == (120, 160, 3) and len(frames) == 12


def test_max_side_keeps_aspect_and_even_sizes(clips):
    with io.VideoReader(clips["clip"], max_side=81) as r:
        frames = list(r)
    assert (r.info.width, r.info.height) == (80, 60) and frames[0].shape == (60, 80, 3)
    assert io.even_size(1920, 1080, 1000) == (1000, 562)
    assert io.even_size(1080, 1920, None) == (1080, 1920)
    assert io.even_size(3, 1, None) == (2, 2)


def test_start_end_and_frame_cap_trim(clips):
    full = read_all(clips["clip"])
    with io.VideoReader(clips["clip"], start=0.5, end=1.5) as r:
        part = list(r)
    assert len(part) == r.info.nframes == 12
    assert np.abs(part[0].astype(int) - full[6]).mean() < 3  # accurate seek lands on frame 6
    assert len(read_all(clips["clip"], frames=5)) == 5
    assert len(read_all(clips["clip"], start=1.0, frames=100)) == 12


def test_fps_override_resamples(clips):
    with io.VideoReader(clips["clip"], fps=6) as r:
        assert r.info.fps == 6 and len(list(r)) == 12


# ----------------------------------------------------------------------------- writing


def test_roundtrip_keeps_frame_count_fps_and_audio(clips, tmp_path):
    frames = read_all(clips["clip"])
    out = write_all(tmp_path / "out.mp4", frames, audio=clips["clip"])
    info = io.probe_video(out)
    assert (info.width, info.height, info.fps, info.has_audio) == (160, 120, 12.0, True)
    back = read_all(out)
    assert len(back) == 24
    assert np.abs(np.stack(back).astype(float) - np.stack(frames)).mean() < 3
    assert stream_seconds(out, "a") == pytest.approx(2.0, abs=0.05)
    assert leftovers(tmp_path) == []


def test_audio_from_another_file_is_trimmed_and_padded_to_the_video(clips, tmp_path):
    frames = read_all(clips["clip"])[:18]  # 1.5 s
    out = write_all(tmp_path / "a.mp4", frames, audio=clips["tone"], audio_start=1.0)
    assert stream_seconds(out, "a") == pytest.approx(1.5, abs=0.05)
    out = write_all(tmp_path / "b.mkv", frames, audio=clips["tone"], audio_start=2.5, audio_duration=0.3)
    assert stream_seconds(out, "a") == pytest.approx(1.5, abs=0.05)  # padded with silence


def test_no_audio_when_the_source_has_none(clips, tmp_path):
    with io.VideoWriter(tmp_path / "out.mp4", 12, audio=clips["silent"]) as w:
        for f in read_all(clips["silent"], frames=6):
            w.write(f)
    assert w.has_audio is False
    assert io.probe_video(tmp_path / "out.mp4").has_audio is False


def test_writer_rounds_odd_frame_sizes(tmp_path):
    frames = [np.full((121, 161, 3), 40 * i, np.uint8) for i in range(3)]
    out = write_all(tmp_path / "odd.mp4", frames)
    assert [f.shape for f in read_all(out)] == [(120, 160, 3)] * 3


@pytest.mark.parametrize("name", ["out.webm", "out.gif", "out.mov", "frames", "frames2/"])
def test_other_outputs_play_back(clips, tmp_path, name):
    frames = read_all(clips["clip"], frames=8)
    write_all(tmp_path / name, frames)
    back = read_all(tmp_path / name, fps=12)
    assert len(back) == 8 and back[0].shape == (120, 160, 3)
    assert np.abs(back[4].astype(float) - frames[4]).mean() < 12  # gif palettes cost a little
    if name.startswith("frames"):
        assert sorted(p.name for p in (tmp_path / name).iterdir())[:2] == ["frame_000001.png", "frame_000002.png"]
    assert leftovers(tmp_path) == []


def test_gif_and_frame_folders_warn_that_audio_is_ignored(clips, tmp_path):
    with pytest.warns(UserWarning, match="audio ignored"):
        w = io.VideoWriter(tmp_path / "a.gif", 12, audio=clips["clip"])
    assert w.has_audio is False
    w.abort()


def test_frame_folder_overwrites_only_its_own_output(tmp_path):
    frame = np.zeros((8, 8, 3), np.uint8)
    write_all(tmp_path / "f", [frame, frame])
    write_all(tmp_path / "f", [frame])  # a previous frame folder is replaced, not merged
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["frame_000001.png"]
    (tmp_path / "f" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already holds other files"):
        io.VideoWriter(tmp_path / "f", 12)


def test_unknown_extension_and_bad_fps_are_user_errors(tmp_path):
    with pytest.raises(UserError, match=r"\.mp4"):
        io.VideoWriter(tmp_path / "out.xyz", 12)
    with pytest.raises(UserError, match="fps"):
        io.VideoWriter(tmp_path / "out.mp4", 0)


# ----------------------------------------------------------------------------- atomic output, processes


@pytest.mark.parametrize("name, exc, with_audio", [("out.mp4", RuntimeError, False), ("out.mp4", KeyboardInterrupt, True),
                                                    ("out.webm", KeyboardInterrupt, False), ("frames", RuntimeError, False)])
def test_exception_mid_write_leaves_no_file_and_no_ffmpeg(clips, tmp_path, name, exc, with_audio):
    frame = photo("chelsea")[:120, :160]
    with pytest.raises(exc):
        with io.VideoWriter(tmp_path / name, 12, audio=clips["clip"] if with_audio else None) as w:
            w.write(frame)
            assert bool(ffmpeg_children()) == (name != "frames")
            raise exc("stop")
    assert list(tmp_path.iterdir()) == []
    assert ffmpeg_children() == []


def test_finish_on_ctrl_c_keeps_a_playable_partial_video(clips, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with io.VideoWriter(tmp_path / "out.mp4", 12, audio=clips["clip"]) as w:
            try:
                for f in read_all(clips["clip"], frames=5):
                    w.write(f)
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                w.finish()
                raise
    assert len(read_all(tmp_path / "out.mp4")) == 5
    assert leftovers(tmp_path) == [] and ffmpeg_children() == []


def test_reader_ends_ffmpeg_on_early_exit_and_on_exceptions(clips):
    with io.VideoReader(clips["clip"]) as r:
        frames = iter(r)
        next(frames)
        assert ffmpeg_children()
    assert ffmpeg_children() == []
    next(iter(io.VideoReader(clips["clip"])))  # an abandoned iterator ends its ffmpeg too
    assert ffmpeg_children() == []
    with pytest.raises(ZeroDivisionError):
        with io.VideoReader(clips["clip"]) as r:
            for _ in r:
                1 / 0
    assert ffmpeg_children() == []


def test_no_frames_written_is_a_failure_without_output(tmp_path):
    with pytest.raises(DreamFailure, match="no frames"):
        with io.VideoWriter(tmp_path / "out.mp4", 12):
            pass
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_uses_a_sibling_temp_with_the_same_extension(tmp_path):
    with io.atomic_output(tmp_path / "out.mp4") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and ".tmp-" in tmp.name
        tmp.write_bytes(b"x")
        assert not (tmp_path / "out.mp4").exists()
    assert (tmp_path / "out.mp4").read_bytes() == b"x" and leftovers(tmp_path) == []
    with pytest.raises(UserError, match="does not exist"):
        with io.atomic_output(tmp_path / "missing" / "out.mp4"):
            pass


def test_output_is_not_the_input(tmp_path):  # the whole rule: tests/test_guarantees_inputs.py
    from dreamvideo import guard

    (tmp_path / "a.mp4").write_bytes(b"x")
    with pytest.raises(UserError, match="is the input"):
        guard.check_render("video", tmp_path / "a.mp4", tmp_path / "." / "a.mp4")
    guard.check_render("video", tmp_path / "a.mp4", tmp_path / "b.mp4")


# ----------------------------------------------------------------------------- bad inputs


def test_unreadable_videos_are_one_line_user_errors(clips, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video\n")
    (tmp_path / "trunc.mp4").write_bytes(clips["clip"].read_bytes()[:4000])
    (tmp_path / "dir.mp4").mkdir()
    cases = {"missing.mp4": "does not exist", "dir.mp4": "no images found", "empty.mp4": "empty",
             "text.mp4": "Invalid data", "trunc.mp4": "Invalid data"}
    for name, why in cases.items():
        with pytest.raises(UserError, match=why) as e:
            io.VideoReader(tmp_path / name)
        assert "\n" not in str(e.value) and "; " in str(e.value)


def test_zero_frame_inputs_are_user_errors(clips):
    with pytest.raises(UserError, match="no video stream"):
        io.VideoReader(clips["tone"])
    with pytest.raises(UserError, match="past the end"):
        io.VideoReader(clips["clip"], start=5)
    with pytest.raises(UserError, match="start < end"):
        io.VideoReader(clips["clip"], start=1, end=1)


# ----------------------------------------------------------------------------- image sequences


def test_image_sequence_folder_and_glob_sorted_naturally(tmp_path):
    for i in (1, 2, 10):
        io.write_image(tmp_path / f"f{i}.png", np.full((6, 8, 3), i, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    for src in (tmp_path, str(tmp_path / "f*.png")):
        info = io.probe_video(src, fps=10)
        assert (info.width, info.height, info.nframes, info.fps, info.has_audio) == (8, 6, 3, 10.0, False)
        assert [int(f[0, 0, 0]) for f in read_all(src)] == [1, 2, 10]
    assert io.probe_video(tmp_path).fps == io.SEQUENCE_FPS
    with pytest.raises(UserError, match="no images"):
        io.probe_video(str(tmp_path / "*.jpg"))


# ----------------------------------------------------------------------------- images


def _save(tmp_path, name, img: Image.Image, **kw) -> Path:
    img.save(tmp_path / name, **kw)
    return tmp_path / name


def test_read_image_modes(tmp_path):
    rgb = photo("astronaut")[:64, :48]
    grey = rgb[..., 0]
    cases = {
        "grey.png": (Image.fromarray(grey), np.repeat(grey[..., None], 3, 2), 0),
        "rgb.webp": (Image.fromarray(rgb), rgb, 6),
        "palette.png": (Image.fromarray(rgb).quantize(64), None, 12),
        "cmyk.jpg": (Image.fromarray(rgb).convert("CMYK"), rgb, 8),
        "cmyk.tif": (Image.fromarray(rgb).convert("CMYK"), rgb, 2),
        "rgb.bmp": (Image.fromarray(rgb), rgb, 0),
    }
    for name, (img, want, tol) in cases.items():
        got = io.read_image(_save(tmp_path, name, img))
        assert got.shape == (64, 48, 3) and got.dtype == np.uint8, name
        assert np.abs(got.astype(float) - (rgb if want is None else want)).mean() <= tol, name


def test_read_image_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # one opaque red pixel, the rest transparent
    got = io.read_image(_save(tmp_path, "a.png", Image.fromarray(rgba)))
    assert tuple(got[0, 0]) == (200, 0, 0) and tuple(got[1, 1]) == (255, 255, 255)
    la = np.stack([np.zeros((2, 2), np.uint8), np.full((2, 2), 0, np.uint8)], -1)
    assert (io.read_image(_save(tmp_path, "la.png", Image.fromarray(la, "LA"))) == 255).all()


def test_read_image_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display", as phones write it
    path = _save(tmp_path, "phone.jpg", Image.new("RGB", (40, 20), (200, 10, 10)), exif=exif)
    assert io.read_image(path).shape == (40, 20, 3)


def test_read_image_16bit_is_scaled_not_clipped(tmp_path):
    import cv2

    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    cv2.imwrite(str(tmp_path / "g16.png"), ramp)
    cv2.imwrite(str(tmp_path / "c16.tif"), np.stack([ramp] * 3, -1))
    for name in ("g16.png", "c16.tif"):
        got = io.read_image(tmp_path / name)
        assert np.abs(got[..., 0].astype(float) - ramp / 257).max() <= 1, name


def test_read_image_tiny_and_roundtrip_formats(tmp_path):
    assert io.read_image(_save(tmp_path, "one.png", Image.new("RGB", (1, 1), (1, 2, 3)))).tolist() == [[[1, 2, 3]]]
    img = photo("coffee")[:40, :50]
    for ext, tol in [(".png", 0), (".bmp", 0), (".tif", 0), (".jpg", 4), (".webp", 4)]:
        out = io.write_image(tmp_path / f"x{ext}", img)
        assert np.abs(io.read_image(out).astype(float) - img).mean() <= tol, ext
    assert leftovers(tmp_path) == []
    with pytest.raises(UserError, match=r"\.png"):
        io.write_image(tmp_path / "x.gifx", img)


def test_unreadable_images_are_one_line_user_errors(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    for name, why in {"missing.png": "does not exist", "empty.png": "empty", "text.jpg": "not a decodable"}.items():
        with pytest.raises(UserError, match=why):
            io.read_image(tmp_path / name)
    with pytest.raises(UserError, match="is a folder"):
        io.read_image(tmp_path)


def test_videos_and_images_are_told_apart_by_extension_in_any_case():
    assert io.is_video_path("a.MP4") and io.is_video_path("a.gif") and not io.is_video_path("a.png")
    assert io.is_image_path("a.JPEG") and not io.is_image_path("a.gif")


def test_an_https_input_whose_host_refuses_is_one_line_about_the_connection(capsys):
    pytest.importorskip("aiohttp")
    from dreamvideo.cli import main

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = main(["video", f"https://127.0.0.1:{port}/clip.mp4", "-o", "/tmp/never-written.mp4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert "cannot connect" in err[0] and f"127.0.0.1:{port}" in err[0] and "not found" not in err[0]
