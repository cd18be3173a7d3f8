"""`dreamvideo video` and `dreamvideo zoom`: what a user would notice (frames, fps, sizes, audio, flicker,
resume, processes and files left behind, errors), run in-process through ``cli.main`` with a tiny model."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from dreamvideo import cli
import dreamvideo
from conftest import FFMPEG, audio_samples, ffmpeg, ffmpeg_children
from dreamvideo import io
from dreamvideo.coherence import VideoStepper
from dreamvideo.infinite import ZoomStepper, color_stats
from helpers import MOBILENET_WEIGHTS, needs_weights, photo, tiny_model_file

PAN_STEP = 3  # pixels per frame the pan's window moves right


@pytest.fixture(scope="module")
def media(tmp_path_factory, clips) -> dict[str, Path]:
    """tiny.keras; 'pan': a folder of 12 PNG frames 128x96 panning right over a photo by PAN_STEP px a frame;
    'still': an odd-size 97x67 photo; 'stepped': 160x120 @12 fps 2 s whose audio is silent for 1 s, then a tone;
    'odd': a 161x121 @12 fps 1 s clip."""
    d = tmp_path_factory.mktemp("video")
    out = {"tiny": tiny_model_file(d / "tiny.keras"), "pan": d / "pan"}
    img = photo("astronaut")
    out["pan"].mkdir()
    for i in range(12):
        x = 100 + PAN_STEP * i
        io.write_image(out["pan"] / f"pan{i + 1}.png", np.ascontiguousarray(img[100:196, x:x + 128]))
    out["still"] = d / "still.png"
    io.write_image(out["still"], np.ascontiguousarray(photo("coffee")[::6, ::6][:67, :97]))
    out["stepped"] = d / "stepped.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=12", "-f", "lavfi",
           "-i", "aevalsrc=if(gte(t\\,1)\\,0.5*sin(2*PI*440*t)\\,0):s=44100:d=2", "-t", "2",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", out["stepped"])
    out["odd"] = d / "odd.mp4"  # testsrc (RGB) keeps odd sizes; testsrc2 (yuv420p) would round them to even
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=161x121:rate=12", "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv444p",
           out["odd"])
    assert out["stepped"].stat().st_size > 0 and io.probe_video(out["odd"]).width == 161
    return out


def fast(media) -> list[str]:
    return ["--model", str(media["tiny"]), "--layers", "conv2", "--steps", "2", "--octaves", "1", "-q"]


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def frames_of(path) -> list[np.ndarray]:
    with io.VideoReader(path) as r:
        return list(r)


def folder_frames(path) -> list[np.ndarray]:
    return [io.read_image(p) for p in sorted(Path(path).glob("frame_*.png"))]


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def dominant_hz(samples, rate=8000) -> float:
    spec = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spec.argmax()])


def stop_at(monkeypatch, cls, k=None, exc=KeyboardInterrupt) -> list[int]:
    """Patch a stepper to raise ``exc`` when asked for frame ``k``; returns the frame indices it was asked for."""
    original, calls = cls.dream, []

    def dream(self, frame):
        calls.append(frame.index)
        if frame.index == k:
            raise exc(f"stop at frame {frame.index}")
        return original(self, frame)

    monkeypatch.setattr(cls, "dream", dream)
    return calls


def assert_clean(folder):
    assert ffmpeg_children() == []
    assert leftovers(folder) == []


# ----------------------------------------------------------------------------- video: frames, fps, sizes, outputs


def test_video_keeps_frame_count_fps_size_and_audio(clips, media, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    rc, stdout, err = run(capsys, "video", clips["clip"], "-o", out, *fast(media)[:-1])
    assert rc == 0 and f"wrote {out}" in stdout
    info = io.probe_video(out)
    assert (info.width, info.height, info.fps, info.has_audio) == (160, 120, 12.0, True)
    frames = frames_of(out)
    assert len(frames) == 24
    src = frames_of(clips["clip"])
    assert np.abs(frames[10].astype(float) - src[10]).mean() < 40  # a dream of that frame, not something else
    assert len(audio_samples(out)) / 8000 == pytest.approx(2.0, abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no work folder, no temporaries
    assert ffmpeg_children() == []


def test_odd_size_input_gives_even_undistorted_output_and_max_side(clips, media, tmp_path, capsys):
    rc, _, _ = run(capsys, "video", media["odd"], "-o", tmp_path / "odd.mp4", *fast(media))
    assert rc == 0
    info = io.probe_video(tmp_path / "odd.mp4")
    frames = frames_of(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (160, 120) and len(frames) == 12
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(media["odd"]), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True).stdout
    src = cv2.resize(np.frombuffer(raw, np.uint8).reshape(121, 161, 3), (160, 120), interpolation=cv2.INTER_AREA)
    assert np.abs(frames[0].astype(float) - src).mean() < 10  # the same picture, rescaled by < 1 px, not cropped
    rc, _, _ = run(capsys, "video", clips["clip"], "-o", tmp_path / "small.mp4", "--max-side", "80", "--frames", "5",
                   *fast(media))
    assert rc == 0
    info = io.probe_video(tmp_path / "small.mp4")
    assert (info.width, info.height, info.fps) == (80, 60, 12.0) and len(frames_of(tmp_path / "small.mp4")) == 5
    assert len(audio_samples(tmp_path / "small.mp4")) / 8000 == pytest.approx(5 / 12, abs=0.05)


@pytest.mark.parametrize("name", ["out.gif", "out.webm", "frames", "frames2/"])
def test_other_outputs_gif_webm_and_png_folder(clips, media, tmp_path, capsys, name):
    out = tmp_path / name
    rc, _, err = run(capsys, "video", clips["clip"], "-o", str(out) + ("/" if name.endswith("/") else ""),
                     "--frames", "6", *fast(media))
    assert rc == 0
    assert "Warning" not in err and "warn" not in err.lower()  # the source's audio is simply not carried
    frames = folder_frames(out) if out.is_dir() else frames_of(out)
    assert len(frames) == 6 and frames[0].shape == (120, 160, 3)
    if name == "out.webm":
        info = io.probe_video(out)
        assert info.fps == 12.0 and info.has_audio
        assert len(audio_samples(out)) / 8000 == pytest.approx(0.5, abs=0.05)
    if name == "out.gif":
        assert io.probe_video(out).duration == pytest.approx(0.5, abs=0.05)
    assert_clean(tmp_path)


@pytest.mark.parametrize("pattern", ["{dir}", "{dir}/*.png"])
def test_image_sequence_input_folder_and_glob(media, tmp_path, capsys, pattern):
    out = tmp_path / "seq.mp4"
    rc, _, err = run(capsys, "video", pattern.format(dir=media["pan"]), "-o", out, "--fps", "10", *fast(media))
    assert rc == 0, err
    info = io.probe_video(out)
    assert (info.width, info.height, info.fps, info.has_audio) == (128, 96, 10.0, False)
    assert len(frames_of(out)) == 12


def test_video_start_end_trims_frames_and_audio(media, tmp_path, capsys):
    # 'stepped' is silent for its first second, then a tone: the trimmed output's audio must follow the picture.
    out = tmp_path / "trim.mp4"
    rc, _, _ = run(capsys, "video", media["stepped"], "-o", out, "--start", "0.5", "--end", "1.5", *fast(media))
    assert rc == 0
    assert len(frames_of(out)) == 12 and io.probe_video(out).fps == 12.0
    a = audio_samples(out)
    assert len(a) / 8000 == pytest.approx(1.0, abs=0.05)
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))  # noqa: E731
    assert rms(a[400:3600]) < 0.02 and rms(a[4400:7600]) > 0.2  # silent 0.05-0.45 s, tone 0.55-0.95 s


def test_audio_from_another_file_and_no_audio(clips, media, tmp_path, capsys):
    rc, _, _ = run(capsys, "video", clips["clip"], "-o", tmp_path / "tone.mp4", "--audio", clips["tone"], *fast(media))
    assert rc == 0
    a = audio_samples(tmp_path / "tone.mp4")
    assert len(a) / 8000 == pytest.approx(2.0, abs=0.05)  # the 3 s soundtrack is cut to the 2 s video
    assert dominant_hz(a) == pytest.approx(660, abs=10)  # the other file's 660 Hz, not the source's 440 Hz
    rc, _, _ = run(capsys, "video", clips["clip"], "-o", tmp_path / "mute.mp4", "--no-audio", "--frames", "4",
                   *fast(media))
    assert rc == 0 and not io.probe_video(tmp_path / "mute.mp4").has_audio
    assert len(audio_samples(tmp_path / "mute.mp4")) == 0


def test_source_without_audio_gives_silent_output_quietly(clips, media, tmp_path, capsys):
    out = tmp_path / "silent.mp4"
    rc, stdout, err = run(capsys, "video", clips["silent"], "-o", out, "--frames", "6", *fast(media)[:-1])
    assert rc == 0 and stdout == f"wrote {out}\n"
    assert "warn" not in err.lower() and "audio" not in err.lower(), err  # only the progress bar
    assert not io.probe_video(out).has_audio and len(frames_of(out)) == 6


# ----------------------------------------------------------------------------- coherence


def flicker(outs, srcs) -> tuple[float, float]:
    """(change of the dream between consecutive frames once the pan is undone, mean strength of the dream),
    skipping the first frames while a carried dream builds up."""
    res = [o.astype(np.float64) - s for o, s in zip(outs, srcs)]
    s = PAN_STEP
    change = [np.abs(res[i + 1][:, :-s] - res[i][:, s:]).mean() for i in range(2, len(res) - 1)]
    return float(np.mean(change)), float(np.mean([np.abs(r).mean() for r in res[2:]]))


def render_pan(media, tmp_path, capsys, mode, extra) -> tuple[list, list]:
    out = tmp_path / f"pan-{mode}"
    rc, _, err = run(capsys, "video", media["pan"], "-o", out, "--coherence", mode, "--seed", "1", *extra)
    assert rc == 0, err
    outs = folder_frames(out)
    assert len(outs) == 12 and outs[0].shape == (96, 128, 3)
    return outs, [io.read_image(p) for p in sorted(media["pan"].iterdir(), key=lambda p: int(p.stem[3:]))]


def test_coherence_modes_run_and_flow_flickers_less_than_none(media, tmp_path, capsys):
    result = {}
    for mode in ("none", "blend", "flow"):
        outs, srcs = render_pan(media, tmp_path, capsys, mode, fast(media))
        result[mode] = flicker(outs, srcs)
        assert result[mode][1] > 0.5  # it did dream
    # The tiny net's dream is nearly shift-equivariant, so compare the share of the dream that changes from one
    # frame to the next (the carried dream is also stronger, which makes absolute differences unfair here).
    rel = {m: change / strength for m, (change, strength) in result.items()}
    assert rel["flow"] < 0.75 * rel["none"], result


@needs_weights
def test_flow_flickers_less_than_none_with_real_weights(media, tmp_path, capsys):
    extra = ["--model", "mobilenet_v2", "--weights", MOBILENET_WEIGHTS, "--layers", "block_10_expand_relu",
             "--steps", "2", "--octaves", "1", "-q"]
    none = flicker(*render_pan(media, tmp_path, capsys, "none", extra))
    flow = flicker(*render_pan(media, tmp_path, capsys, "flow", extra))
    assert flow[0] < 0.9 * none[0], (flow, none)  # what a viewer sees: less change beyond the motion
    assert flow[0] / flow[1] < 0.7 * none[0] / none[1], (flow, none)


# ----------------------------------------------------------------------------- zoom


def test_zoom_frame_count_fps_and_even_size(media, tmp_path, capsys):
    out = tmp_path / "zoom.mp4"
    rc, stdout, err = run(capsys, "zoom", media["still"], "-o", out, "--frames", "6", "--fps", "10", *fast(media))
    assert rc == 0 and err == "", err
    info = io.probe_video(out)
    assert (info.width, info.height, info.fps, info.has_audio) == (96, 66, 10.0, False)
    assert len(frames_of(out)) == 6
    rc, _, _ = run(capsys, "zoom", "--from-noise", "96x64", "-o", tmp_path / "noise", "--frames", "3", *fast(media))
    assert rc == 0
    frames = folder_frames(tmp_path / "noise")
    assert len(frames) == 3 and frames[0].shape == (64, 96, 3)
    assert_clean(tmp_path)


def test_zoom_color_match_stops_colour_drift(media, tmp_path, capsys):
    drift = {}
    for flag in ("--color-match", "--no-color-match"):
        out = tmp_path / flag.strip("-")
        rc, _, _ = run(capsys, "zoom", media["still"], "-o", out, "--frames", "10", flag, *fast(media))
        assert rc == 0
        frames = folder_frames(out)
        (m0, s0), (m, s) = color_stats(frames[0]), color_stats(frames[-1])
        drift[flag] = float(np.abs(m - m0).sum() + np.abs(s - s0).sum())
    assert drift["--color-match"] < 0.5 * drift["--no-color-match"], drift


def best_shift(a, b, r=6) -> tuple[int, int]:
    """The (dx, dy) that best maps a onto b: b[y, x] ~ a[y - dy, x - dx]."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    h, w = a.shape[:2]

    def err(dx, dy):
        return np.abs(b[r + dy:h - r + dy, r + dx:w - r + dx] - a[r:h - r, r:w - r]).mean()

    return min(((dx, dy) for dx in range(-r, r + 1) for dy in range(-r, r + 1)), key=lambda d: err(*d))


def test_zoom_angle_dx_dy_move_the_picture(media, tmp_path, capsys):
    def render(name, *flags):
        rc, _, err = run(capsys, "zoom", media["still"], "-o", tmp_path / name, "--frames", "2", "--zoom", "1",
                         "--no-color-match", *flags, *fast(media))
        assert rc == 0, err
        return folder_frames(tmp_path / name)

    f = render("right", "--dx", "4")
    assert best_shift(f[0], f[1]) == (4, 0)
    f = render("down", "--dy", "-3")
    assert best_shift(f[0], f[1]) == (0, -3)
    f = render("turn", "--angle", "10")
    h, w = f[0].shape[:2]

    def rotated(deg):
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), deg, 1.0)
        return cv2.warpAffine(f[0], m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)

    err = {deg: np.abs(rotated(deg).astype(float) - f[1])[8:-8, 8:-8].mean() for deg in (-10, 0, 10)}
    assert err[10] < 0.5 * min(err[0], err[-10]), err  # counter-clockwise, as cv2 and the help say


# ----------------------------------------------------------------------------- interrupt and resume


def test_video_ctrl_c_keeps_a_playable_partial_and_resume_finishes_it(clips, media, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.mp4"
    # Whole frames: each is saved once dreamed (reuse holds some back for the band, see test_reuse).
    argv = ["video", str(clips["clip"]), "-o", str(out), *fast(media), "--full-frames"]
    stop_at(monkeypatch, VideoStepper, 5)
    rc, _, err = run(capsys, *argv)
    assert rc == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "5/24" in lines[0] and "Traceback" not in err
    assert lines[0].endswith("resume with: dreamvideo " + " ".join(argv) + " --resume")
    assert len(frames_of(out)) == 5 and io.probe_video(out).has_audio  # playable, with its audio
    assert len(audio_samples(out)) / 8000 == pytest.approx(5 / 12, abs=0.05)
    assert_clean(tmp_path)
    monkeypatch.undo()
    calls = stop_at(monkeypatch, VideoStepper)
    rc, _, err = run(capsys, *argv, "--resume")
    assert rc == 0, err
    assert calls == list(range(5, 24))  # the first five frames were not dreamed again
    assert len(frames_of(out)) == 24 and len(audio_samples(out)) / 8000 == pytest.approx(2.0, abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # the work folder is gone once done
    assert ffmpeg_children() == []


@pytest.mark.parametrize("kind", ["video", "full", "zoom"])
def test_resumed_render_is_byte_identical_to_an_uninterrupted_one(clips, media, tmp_path, capsys, monkeypatch, kind):
    if kind == "video":  # flow coherence with reuse (the default): the carried state must be rebuilt exactly
        args, cls = ["video", clips["clip"], "--frames", "10", "--seed", "7"], VideoStepper
    elif kind == "full":
        args, cls = ["video", clips["clip"], "--frames", "10", "--seed", "7", "--full-frames"], VideoStepper
    else:
        args, cls = ["zoom", media["still"], "--frames", "8", "--seed", "7", "--angle", "2"], ZoomStepper
    rc, _, _ = run(capsys, *args, "-o", tmp_path / "whole", *fast(media))
    assert rc == 0
    stop_at(monkeypatch, cls, 4)
    rc, _, err = run(capsys, *args, "-o", tmp_path / "parts", *fast(media))
    assert rc == 130 and "--resume" in err
    saved = len(folder_frames(tmp_path / "parts"))
    assert saved <= 4 if kind == "video" else saved == 4  # reuse holds frames until their band is dreamed
    monkeypatch.undo()
    rc, _, err = run(capsys, *args, "-o", tmp_path / "parts", *fast(media), "--resume")
    assert rc == 0, err
    whole = sorted((tmp_path / "whole").iterdir())
    parts = sorted((tmp_path / "parts").iterdir())
    assert [p.name for p in whole] == [p.name for p in parts] and len(whole) == (8 if kind == "zoom" else 10)
    for a, b in zip(whole, parts):
        assert np.array_equal(io.read_image(a), io.read_image(b)), a.name
    assert_clean(tmp_path)


def test_resume_with_other_settings_or_nothing_to_resume_is_a_usage_error(clips, media, tmp_path, capsys,
                                                                          monkeypatch):
    out = tmp_path / "out.mp4"
    whole = [*fast(media), "--full-frames"]  # each frame saved once dreamed
    rc, _, err = run(capsys, "video", clips["clip"], "-o", out, "--resume", *whole)
    assert rc == 2 and err.startswith("dreamvideo: error: nothing to resume") and err.count("\n") == 1
    assert not out.exists()
    stop_at(monkeypatch, VideoStepper, 3)
    assert run(capsys, "video", clips["clip"], "-o", out, *whole)[0] == 130
    monkeypatch.undo()
    rc, _, err = run(capsys, "video", clips["clip"], "-o", out, "--resume", "--seed", "9", *whole)
    assert rc == 2 and err.startswith("dreamvideo: error: cannot resume") and err.count("\n") == 1
    assert len(frames_of(out)) == 3  # the partial output is left as it was, and can still be resumed
    calls = stop_at(monkeypatch, VideoStepper)
    assert run(capsys, "video", clips["clip"], "-o", out, "--resume", "--frames", "6", *whole)[0] == 2
    assert run(capsys, "video", clips["clip"], "-o", out, "--resume", *whole)[0] == 0
    assert calls == list(range(3, 24)) and len(frames_of(out)) == 24
    monkeypatch.undo()
    rc, _, err = run(capsys, "zoom", "--from-noise", "96x64", "-o", tmp_path / "z.mp4", "--resume", *fast(media))
    assert rc == 2 and err.startswith("dreamvideo: error: nothing to resume")
    assert_clean(tmp_path)


# ----------------------------------------------------------------------------- failures leave nothing behind


@pytest.mark.parametrize("name", ["out.mp4", "frames"])
def test_failure_mid_render_leaves_no_output_temporaries_or_ffmpeg(clips, media, tmp_path, capsys, monkeypatch, name):
    stop_at(monkeypatch, VideoStepper, 3, RuntimeError)
    with pytest.raises(RuntimeError, match="stop at frame 3"):
        dreamvideo.dream_video(clips["clip"], tmp_path / name, model=str(media["tiny"]), layers="conv2", steps="2",
                               octaves=1, quiet=True)
    assert not (tmp_path / name).exists()
    assert_clean(tmp_path)
    with pytest.raises(RuntimeError):  # the CLI does not swallow a bug: it propagates (exit status 1)
        cli.main(["video", str(clips["clip"]), "-o", str(tmp_path / name), *fast(media)])
    assert not (tmp_path / name).exists()
    assert_clean(tmp_path)
    stop_at(monkeypatch, ZoomStepper, 2, RuntimeError)
    with pytest.raises(RuntimeError):
        cli.main(["zoom", str(media["still"]), "-o", str(tmp_path / name), "--frames", "5", *fast(media)])
    assert not (tmp_path / name).exists()
    assert_clean(tmp_path)


def test_ctrl_c_on_the_first_frame_leaves_no_output_and_no_ffmpeg(clips, media, tmp_path, capsys, monkeypatch):
    stop_at(monkeypatch, VideoStepper, 0)
    rc, _, err = run(capsys, "video", clips["clip"], "-o", tmp_path / "out.mp4", *fast(media))
    assert rc == 130 and err.count("\n") == 1 and "0/24" in err
    assert not (tmp_path / "out.mp4").exists()
    assert_clean(tmp_path)


def ctrl_c_while_ffmpeg_finishes(monkeypatch):
    """Ctrl-C while waiting for ffmpeg to finalize a file (what io.Proc.wait does on an interrupt: end ffmpeg)."""
    def wait(self):
        self.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(io.Proc, "wait", wait)


@pytest.mark.parametrize("first_ctrl_c", [None, 5])
def test_ctrl_c_while_the_file_is_finalized_leaves_no_temporaries_and_can_resume(clips, media, tmp_path, capsys,
                                                                                 monkeypatch, first_ctrl_c):
    # None: Ctrl-C while the finished render is encoded and muxed; 5: a second Ctrl-C while the partial is saved.
    out = tmp_path / "out.mp4"
    argv = ["video", clips["clip"], "-o", out, "--frames", "8", *fast(media), "--full-frames"]  # saved as dreamed
    stop_at(monkeypatch, VideoStepper, first_ctrl_c)
    ctrl_c_while_ffmpeg_finishes(monkeypatch)
    rc, _, err = run(capsys, *argv)
    assert rc == 130 and err.count("\n") == 1, err
    assert not out.exists()
    assert_clean(tmp_path)
    monkeypatch.undo()
    calls = stop_at(monkeypatch, VideoStepper)
    rc, _, err = run(capsys, *argv, "--resume")  # the dreamed frames were kept
    assert rc == 0, err
    assert calls == list(range(first_ctrl_c or 8, 8)) and len(frames_of(out)) == 8
    assert_clean(tmp_path)


# ----------------------------------------------------------------------------- errors


@pytest.fixture
def bad_inputs(clips, tmp_path):
    (tmp_path / "text.mp4").write_text("not a video\n")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=12", "-frames:v", "0", "-c:v", "libx264",
           tmp_path / "zero.mp4")
    (tmp_path / "copy.mp4").write_bytes(clips["clip"].read_bytes())
    return tmp_path


@pytest.mark.parametrize("input, output, why", [
    ("text.mp4", "out.mp4", "cannot read video"),
    ("zero.mp4", "out.mp4", "no video stream"),
    ("missing.mp4", "out.mp4", "does not exist"),
    ("copy.mp4", "copy.mp4", "is the input"),
    ("copy.mp4", "out.txt", "cannot write"),
    ("copy.mp4", "out.png", "cannot write"),
    ("copy.mp4", "missing/out.mp4", "does not exist"),
])
def test_bad_video_inputs_and_outputs_are_one_line_usage_errors(media, bad_inputs, capsys, input, output, why):
    before = sorted(p.name for p in bad_inputs.iterdir())
    rc, _, err = run(capsys, "video", bad_inputs / input, "-o", bad_inputs / output, *fast(media))
    assert rc == 2
    assert err.startswith("dreamvideo: error:") and err.count("\n") == 1 and why in err, err
    assert sorted(p.name for p in bad_inputs.iterdir()) == before  # nothing written, the input untouched
    assert ffmpeg_children() == []


def test_audio_only_input_start_past_end_and_bad_zoom_arguments_are_usage_errors(clips, media, tmp_path, capsys):
    cases = [
        ("video", clips["tone"], "-o", tmp_path / "a.mp4"),
        ("video", clips["clip"], "-o", tmp_path / "b.mp4", "--start", "5"),
        ("video", clips["clip"], "-o", tmp_path / "c.mp4", "--frames", "100"),
        ("zoom", "-o", tmp_path / "d.mp4"),
        ("zoom", media["still"], "--from-noise", "96x64", "-o", tmp_path / "e.mp4"),
        ("zoom", "--from-noise", "tiny", "-o", tmp_path / "f.mp4"),
        ("zoom", tmp_path / "missing.png", "-o", tmp_path / "g.mp4"),
    ]
    for argv in cases:
        rc, _, err = run(capsys, *argv, *fast(media))
        assert rc == 2 and err.startswith("dreamvideo: error:") and err.count("\n") == 1, (argv, err)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- Python API


def test_dream_frames_and_zoom_frames_yield_frames_lazily(media):
    srcs = [io.read_image(p) for p in sorted(media["pan"].iterdir())[:4]]
    gen = dreamvideo.dream_frames(iter(srcs), model=str(media["tiny"]), layers="conv2", steps=2, octaves=1)
    first = next(gen)
    assert first.shape == (96, 128, 3) and first.dtype == np.uint8 and not np.array_equal(first, srcs[0])
    rest = list(gen)
    assert len(rest) == 3 and all(f.shape == (96, 128, 3) and f.dtype == np.uint8 for f in rest)
    start = srcs[0][:64, :96]
    frames = list(dreamvideo.zoom_frames(start, 3, model=str(media["tiny"]), layers="conv2", steps=2, octaves=1))
    assert len(frames) == 3 and all(f.shape == (64, 96, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[1], frames[2])  # it moves
