"""Music videos, plans, presets and samples: fast tests on a tiny random model and synthetic media."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dreamvideo
from dreamvideo import cli
from dreamvideo import infinite as zoom_module
from dreamvideo.plan import plan_render
from dreamvideo.plot import sheet_size
from dreamvideo.settings import split_options

from helpers import ROOT, needs_weights, photo, tiny_model_file

SAMPLES = ROOT / "samples"


def click_track(path, seconds=4.0, bpm=120.0, sr=22050):
    """A click (1.5 kHz, 30 ms decay) every beat at ``bpm``, over a quiet 110 Hz hum, as a 16-bit WAV."""
    from scipy.io import wavfile

    t = np.arange(int(seconds * sr)) / sr
    since = np.mod(t, 60.0 / bpm)
    y = 0.8 * np.sin(2 * np.pi * 1500 * t) * np.exp(-since / 0.03) + 0.05 * np.sin(2 * np.pi * 110 * t)
    wavfile.write(path, sr, (y * 32767).astype(np.int16))
    return path


def texture(w=192, h=144, seed=0):
    """Colour noise with detail at every scale (so a picture still has texture after zooming 5x)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for k in (4, 8, 16, 32, 64, w):
        img += cv2.resize(rng.normal(0, 1, (max(2, h * k // w), k, 3)).astype(np.float32), (w, h),
                          interpolation=cv2.INTER_CUBIC)
    img = (img - img.mean()) / img.std()
    return np.clip(128 + 45 * img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    import imageio.v3 as iio

    d = tmp_path_factory.mktemp("music")
    iio.imwrite(d / "cat.png", photo("chelsea")[::2, ::2])  # 226x150
    iio.imwrite(d / "texture.png", texture())
    tiny_model_file(d / "tiny.keras")
    click_track(d / "click.wav")
    return d


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def tiny(media, layers="conv2"):
    return ["--model", media / "tiny.keras", "--layers", layers]


# ---------------------------------------------------------------- music video: zoom follows the beat

def scale_between(prev, cur, candidates):
    """The zoom about the centre that best maps ``prev`` onto ``cur`` (central half compared)."""
    h, w = cur.shape[:2]
    crop = (slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))
    err = [np.mean((_MOVE(prev, s, 0, 0, 0)[crop].astype(np.float32) - cur[crop]) ** 2) for s in candidates]
    return float(candidates[int(np.argmin(err))])


_MOVE = zoom_module.move


def test_rendered_music_video_zoom_follows_the_beat(media, tmp_path, capsys, monkeypatch):
    """A 120 bpm click track at 10 fps beats every 5 frames; with --zoom '1.0 + 0.1*beat' and no dreaming
    (--steps 0) the zoom is the only change between frames. Both the zoom each frame was moved by (spied
    on) and the zoom measured between the rendered frames must follow the timeline's beat curve."""
    import imageio.v3 as iio

    from dreamvideo.audio import features_for

    used = []

    def spy(img, zoom, angle, dx, dy):
        used.append(zoom)
        return _MOVE(img, zoom, angle, dx, dy)

    monkeypatch.setattr(zoom_module, "move", spy)
    out = tmp_path / "frames"
    rc, _, err = run(capsys, "zoom", media / "texture.png", "-o", out, "--zoom", "1.0 + 0.1*beat",
                     "--audio", media / "click.wav", "--frames", 40, "--fps", 10, "--steps", 0, "--octaves", 1,
                     "--no-color-match", *tiny(media), "-q")
    assert rc == 0, err
    beat = features_for(media / "click.wav", 10.0, 40, needed=["beat"])["beat"]
    beats = np.flatnonzero(beat >= 0.999)
    assert len(beats) >= 6 and np.all(np.abs((beats + 2) % 5 - 2) <= 1)  # every 0.5 s
    assert len(used) == 39  # frames 1..39 are each the previous one moved
    np.testing.assert_allclose(used, 1.0 + 0.1 * beat[1:], atol=1e-6)

    frames = [iio.imread(p) for p in sorted(out.glob("frame_*.png"))]
    assert len(frames) == 40
    candidates = np.round(np.arange(0.99, 1.13, 0.0025), 4)
    measured = np.array([1.0] + [scale_between(a, b, candidates) for a, b in zip(frames, frames[1:])])
    np.testing.assert_allclose(measured[1:], 1.0 + 0.1 * beat[1:], atol=0.006)
    assert np.corrcoef(measured[1:], beat[1:])[0, 1] > 0.98
    for b in beats[beats + 1 < 40]:
        if b > 0:
            assert measured[b] > measured[b - 1] and measured[b] > measured[b + 1]  # a peak on every beat
            assert measured[b] == pytest.approx(1.1, abs=0.006)
    assert np.all(np.abs(measured[1:beats[0]] - 1.0) <= 0.006)  # still until the first beat


# ---------------------------------------------------------------- plan and preview

def test_plan_plots_every_curve_and_audio_feature(media, tmp_path, capsys):
    import imageio.v3 as iio

    res = plan_render("zoom", media / "cat.png", tmp_path / "plan.png", zoom="1.0 + 0.04*beat",
                               audio=str(media / "click.wav"), frames=48, fps=12, layers="conv2,conv3",
                               model=str(media / "tiny.keras"), layer_weights="conv3=0.5+0.5*sin(t)")
    motion = ["zoom", "angle", "dx", "dy", "step_size", "steps"]
    audio = [f"audio {k}" for k in ("rms", "onset", "beat", "low", "mid", "high")]
    assert res["panels"] == motion + ["weight of conv3"] + audio
    assert res["titles"][1] == "angle = 0 (constant)" and res["titles"][0].startswith("zoom 1 .. 1.04")
    assert all(len(v) == 48 for v in res["curves"].values()) and res["fps"] == 12 and res["frames"] == 48
    np.testing.assert_allclose(res["curves"]["zoom"], 1 + 0.04 * res["curves"]["audio beat"])
    np.testing.assert_allclose(res["curves"]["weight of conv3"], 0.5 + 0.5 * np.sin(np.arange(48) / 12))
    img = iio.imread(tmp_path / "plan.png")
    assert img.shape[1] == 1000 and img.shape[0] > 900  # 10 in wide at 100 dpi, a panel per curve
    assert res["preview"] is None and not (tmp_path / "plan.preview.png").exists()

    # The command line takes the render's own arguments; a video name as -o gives NAME.plan.png.
    rc, out, err = run(capsys, "plan", "zoom", media / "cat.png", "-o", tmp_path / "zoom.mp4", "--zoom",
                       "1+0.04*beat", "--audio", media / "click.wav", "--frames", 24, "--fps", 12, *tiny(media))
    assert rc == 0, err
    assert (tmp_path / "zoom.plan.png").is_file() and not (tmp_path / "zoom.mp4").exists()
    assert "24 frames, 2.00 s at 12 fps" in out and "angle = 0 (constant)" in out and "audio beat 0 .. 1" in out


def test_plan_video_with_preview_contact_sheet(media, clips, tmp_path, capsys):
    import imageio.v3 as iio

    rc, out, err = run(capsys, "plan", "video", clips["clip"], "-o", tmp_path / "plan.png", "--step-size",
                       "0.01*(1+rms)", "--blend", "0:(0.5), 23:(0.9)", *tiny(media), "--steps", 4,
                       "--preview", "--preview-frames", 4, "--preview-size", 80, "-q")
    assert rc == 0, err
    sheet = iio.imread(tmp_path / "plan.preview.png")
    assert sheet.shape == (2 * 60 + 3 * 4, 3 * 80 + 4 * 4, 3)  # 4 tiles of 80x60, 3 columns, 4 px gaps
    assert sheet.shape[1::-1] == sheet_size((80, 60), 4)
    assert sheet[:4].max() == 32 and sheet[10:50, 10:70].std() > 5  # grey gaps around dreamed frames

    res = plan_render("video", clips["clip"], tmp_path / "v.png", step_size="0.01*(1+rms)",
                               model=str(media / "tiny.keras"), layers="conv2")
    assert res["panels"][:3] == ["step_size", "steps", "blend"] and "audio rms" in res["panels"]
    assert res["frames"] == 24 and res["fps"] == 12


def test_zoom_preview_named_file(media, tmp_path, capsys):
    import imageio.v3 as iio

    rc, _, err = run(capsys, "plan", "zoom", media / "cat.png", "-o", tmp_path / "p.png", "--frames", 10,
                     "--steps", 2, "--dx", 3, *tiny(media), f"--preview={tmp_path / 'sheet.png'}",
                     "--preview-frames", 3, "--preview-size", 64, "-q")
    assert rc == 0, err
    assert iio.imread(tmp_path / "sheet.png").shape == (4 + 42 + 4, 3 * 64 + 4 * 4, 3)  # 226x150 -> 64x42
    assert not (tmp_path / "p.preview.png").exists()


# ---------------------------------------------------------------- presets

def parse(*argv):
    """The settings a command line means, flat: {"schedules.zoom": ..., "seed": ...}."""
    out = {}
    for section, values in cli.settings_of(argv).items():
        if section is None:
            out.update(values)
        else:
            out.update({f"{section}.{k}": v for k, v in dataclasses.asdict(values).items()})
    return out


def test_every_builtin_preset_loads_for_every_command(media):
    from dreamvideo import presets

    names = list(presets.builtin())
    assert {"classic", "googlenet", "pulse", "gentle-video", "mobilenet-offline"} <= set(names)
    for name in names:
        assert presets.description(name)
        for kind in ("image", "video", "zoom"):
            opts = dreamvideo.preset_options(name, kind)
            split_options(kind, opts)  # every option is a field of that command's settings
        parse("zoom", media / "cat.png", "-o", "z.mp4", "--preset", name)
        parse("video", "clip.mp4", "-o", "v.mp4", "--preset", name)
        parse("image", media / "cat.png", "-o", "i.png", "--preset", name)


def test_preset_values_and_flags_override_them(media):
    base = ("zoom", media / "cat.png", "-o", "z.mp4")
    ns = parse(*base, "--preset", "pulse")
    assert ns["schedules.zoom"] == "1.01 + 0.03*beat" and ns["schedules.steps"] == "8"
    assert ns["zoom.first_steps"] == 20 and ns["dream.octaves"] == 3
    ns = parse(*base, "--steps", "3", "--preset", "pulse", "--first-steps", "0")  # given flags win, wherever
    assert ns["schedules.steps"] == "3" and ns["zoom.first_steps"] == 0
    assert ns["schedules.zoom"] == "1.01 + 0.03*beat"
    # A flag equal to its default still overrides the preset.
    ns = parse("image", "a.png", "-o", "b.png", "--preset", "googlenet", "--octaves", "3")
    assert ns["dream.octaves"] == 3 and ns["dream.steps"] == 10
    # A still image takes a preset's scheduled steps when they are a plain number, and skips expressions.
    ns = parse("image", "a.png", "-o", "b.png", "--preset", "gentle-video")
    assert ns["dream.steps"] == 12 and ns["dream.jitter"] == 16
    assert "video.coherence" not in ns
    assert parse("image", "a.png", "-o", "b.png", "--preset", "pulse")["dream.step_size"] == 0.01
    assert parse("video", "c.mp4", "-o", "v.mp4", "--preset", "gentle-video")["schedules.steps"] == "12"
    # The Python API reads presets too.
    opts = dreamvideo.preset_options("gentle-video", "video")
    assert opts["coherence"] == "flow" and opts["steps"] == "12" and "zoom" not in opts


def test_save_preset_round_trip(media, tmp_path, capsys):
    saved = tmp_path / "look.toml"
    argv = ("zoom", media / "cat.png", "-o", tmp_path / "z.mp4")
    first = parse(*argv, "--preset", "pulse", "--angle", "0.5", "--octaves", "4", "--no-color-match",
                  "--max-side", "300", "--seed", "7", "--model", media / "tiny.keras", "--save-preset", saved)
    assert capsys.readouterr().out.strip() == f"saved preset {saved}"
    text = saved.read_text()
    assert "[schedules]" in text and 'angle = "0.5"' in text and "octaves = 4" in text
    assert "color_match = false" in text and "max_side = 300" in text and "jitter" not in text  # defaults left out
    again = parse(*argv, "--preset", saved)
    settings = lambda ns: {k: v for k, v in ns.items() if "." in k or k in ("seed", "max_side")}
    assert settings(again) == settings(first)
    from dreamvideo.presets import tomllib

    assert tomllib.loads(text)["model"]["model"] == str(media / "tiny.keras")  # paths saved absolute

    # A render goes on after saving.
    rc, _, err = run(capsys, "image", media / "cat.png", "-o", tmp_path / "d.png", *tiny(media), "--steps", 2,
                     "--octaves", 1, "--save-preset", tmp_path / "img.toml", "-q")
    assert rc == 0, err
    assert (tmp_path / "d.png").is_file() and "steps = 2" in (tmp_path / "img.toml").read_text()


@pytest.mark.parametrize("content,needle", [
    (None, "unknown preset 'pulsee'; did you mean pulse?"),
    ("step_sise = 0.02\n", "unknown key 'step_sise'; did you mean step_size?"),
    ("[dream]\nocatves = 2\n", "unknown key 'ocatves' in [dream]; did you mean octaves?"),
    ("[dreem]\nsteps = 2\n", "unknown section [dreem]; did you mean dream?"),
    ("[dream]\noctaves = 'many'\n", "octaves = 'many' is not a whole number"),
    ("[video]\ncoherence = 'flo'\n", "coherence = 'flo' is not one of flow, blend, none"),
    ("[zoom]\ncolor_match = 1\n", "color_match must be true or false"),
    ("octaves = = 2\n", "not valid TOML"),
])
def test_bad_presets_are_one_line_exit_2(media, tmp_path, capsys, content, needle):
    preset = "pulsee"
    if content is not None:
        preset = tmp_path / "bad.toml"
        preset.write_text(content)
    for command in (["zoom", media / "cat.png", "-o", tmp_path / "z.mp4"],
                    ["video", media / "clip.mp4", "-o", tmp_path / "v.mp4"]):
        rc, out, err = run(capsys, *command, "--preset", preset, *tiny(media))
        assert rc == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("dreamvideo: error: ") and needle in err, err
    assert not list(tmp_path.glob("*.mp4"))


def test_presets_command_lists_them(capsys):
    rc, out, _ = run(capsys, "presets")
    assert rc == 0 and {line.split()[0] for line in out.splitlines()} >= {"classic", "pulse", "gentle-video"}


# ---------------------------------------------------------------- samples

def _sample(script, *args):
    r = subprocess.run([sys.executable, str(SAMPLES / script), *map(str, args)], capture_output=True, text=True,
                       timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.slow
@needs_weights
def test_the_samples_write_what_they_promise_and_the_clips_dream_holds_to_the_end(tmp_path):
    """Each sample runs at a small size with the offline weights and writes a playable video; the clip's
    dream is as strong on its last frame as on its first (the carried dream is kept, not faded)."""
    import cv2
    import imageio.v3 as iio

    from dreamvideo import ffmpeg

    sys.path.insert(0, str(SAMPLES))
    try:
        from sample_utils import click_track, pan_clip
    finally:
        sys.path.remove(str(SAMPLES))
    clip = pan_clip(tmp_path / "pan.mp4")
    _sample("dream_clip.py", clip, "-o", tmp_path / "clip.mp4", "--size", 128)
    src, out = list(iio.imiter(clip)), list(iio.imiter(tmp_path / "clip.mp4"))
    assert len(out) == 24 and ffmpeg.has_audio(ffmpeg.header(tmp_path / "clip.mp4"))

    def strength(i):
        return np.abs(out[i].astype(float) - cv2.resize(src[i], out[i].shape[1::-1], interpolation=cv2.INTER_AREA)).mean()

    assert strength(0) > 5 and strength(len(out) - 1) > 0.7 * strength(0)
    _sample("infinite_zoom.py", "-o", tmp_path / "zoom.mp4", "--size", 96)
    assert len(list(iio.imiter(tmp_path / "zoom.mp4"))) == 36
    song = click_track(tmp_path / "song.wav", seconds=2.0)
    printed = _sample("music_video.py", "--audio", song, "--seconds", 2, "-o", tmp_path / "music.mp4", "--size", 96)
    assert (tmp_path / "music.plan.png").stat().st_size > 10_000 and "beat" in printed
    assert len(list(iio.imiter(tmp_path / "music.mp4"))) == 24
    assert ffmpeg.has_audio(ffmpeg.header(tmp_path / "music.mp4"))


def test_samples_pick_weights_in_order(monkeypatch, tmp_path):
    sys.path.insert(0, str(SAMPLES))
    try:
        import sample_utils as su
    finally:
        sys.path.remove(str(SAMPLES))
    monkeypatch.delenv("DREAMVIDEO_WEIGHTS", raising=False)
    monkeypatch.delenv("DREAMVIDEO_MODEL", raising=False)
    mine = "x/mobilenet_v2.weights.h5"
    assert su.model_options(mine) == {"model": "mobilenet_v2", "weights": mine}
    monkeypatch.setenv("DREAMVIDEO_WEIGHTS", "/w/inception.h5")
    assert su.model_options() == {"model": "inception_v3", "weights": "/w/inception.h5"}
    monkeypatch.delenv("DREAMVIDEO_WEIGHTS")
    monkeypatch.setattr(su, "SHARED_WEIGHTS", tmp_path / "none.h5")
    assert su.model_options() == {"model": "inception_v3", "weights": "imagenet"}
    (tmp_path / "none.h5").write_bytes(b"")
    assert su.model_options() == {"model": "mobilenet_v2", "weights": str(tmp_path / "none.h5")}
    # The click track they make has its beats where a 120 bpm song has them.
    from dreamvideo.audio import beat_times, load_audio

    beats = beat_times(*load_audio(su.click_track(tmp_path / "c.wav", seconds=4.0)))
    assert len(beats) >= 6 and np.allclose(np.diff(beats), 0.5, atol=0.03)


def test_notebook_is_valid(tmp_path):
    path = SAMPLES / "explore.ipynb"
    try:
        import nbformat
    except ImportError:
        nbformat = None
    if nbformat is not None:
        nbformat.validate(nbformat.read(path, as_version=4))
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4 and isinstance(nb["metadata"], dict) and nb["cells"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 4 and {c["cell_type"] for c in nb["cells"]} <= {"code", "markdown"}
    for i, cell in enumerate(nb["cells"]):
        assert isinstance(cell["source"], list) and isinstance(cell["metadata"], dict)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
            compile("".join(cell["source"]), f"explore.ipynb cell {i}", "exec")
    text = "".join("".join(c["source"]) for c in code)
    assert all(word in text for word in ("layer(", "channel(", "octaves", "imshow", "model_options"))


def test_sample_help_runs_offline():
    r = subprocess.run([sys.executable, str(SAMPLES / "infinite_zoom.py"), "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "--weights" in r.stdout
