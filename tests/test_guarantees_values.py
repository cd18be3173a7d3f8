"""Every value a user gives is in a documented range, and every mistake is one line, found early.

What a user sees, mostly from whole commands in child processes: an out-of-range number or a
scheduled value out of range (at the frame where it happens) is one line naming the flag and the
range, exit 2, no traceback, found before TensorFlow or Keras is imported (so in well under the
model's load time); a huge ``--octaves`` is answered at once by every command; preset files that are
not UTF-8 TOML or hold values of the wrong type are one line naming the file and the key; nothing is
left behind and the inputs are unchanged. Also: the ranges are the settings' own (one source, shown
in ``--help`` and the docs' command reference), a long song's audio features are computed in bounded memory with the
values of the whole-signal computation, and dreamvideo's own warnings are one line.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FFMPEG, ffmpeg
from dreamvideo import settings as S
from helpers import ROOT, photo, tiny_model_file

# A child that runs the command line and says, on its last stdout line, whether a model framework was imported.
CHILD = ("import sys; from dreamvideo import cli; rc = cli.main(sys.argv[1:]); "
         "print('LOADED', 'tensorflow' in sys.modules, 'keras' in sys.modules, rc)")
EARLY = 5.0  # seconds: a usage error comes back well within the 10-12 s TensorFlow and a model take to load


def click_and_bass(path: Path, seconds: float, rate: int = 22050) -> Path:
    """A 120 bpm click over a 55 Hz bass that swells every 10 s, with a quiet 700 Hz tone (mono WAV)."""
    expr = ("0.4*sin(2*PI*55*t)*(1+0.5*sin(2*PI*0.1*t))+0.6*lt(mod(t\\,0.5)\\,0.03)*sin(2*PI*3000*t)"
            "+0.05*sin(2*PI*700*t)")
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", f"aevalsrc='{expr}':s={rate}:d={seconds:g}",
                    "-c:a", "pcm_s16le", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("values")
    tiny_model_file(d / "tiny.keras")
    Image.fromarray(np.ascontiguousarray(photo("chelsea")[::4, ::4][:64, :96])).save(d / "cat.png")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=12", "-f", "lavfi", "-i", "sine=frequency=440",
           "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", d / "clip.mp4")
    click_and_bass(d / "song.wav", 8.0)
    (d / "frames").mkdir()
    (d / "frames" / "notes.txt").write_text("the user's own file, not a frame\n")
    (d / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (d / "latin1.toml").write_bytes('description = "r\xe9ve"\n'.encode("latin-1"))
    (d / "seed_text.toml").write_text('seed = "abc"\n')
    (d / "steps_list.toml").write_text("steps = [1]\n")
    (d / "octaves_99.toml").write_text("[dream]\noctaves = 99\n")
    (d / "max_side_float.toml").write_text("max_side = 3.5\n")
    assert (d / "clip.mp4").stat().st_size > 0 and (d / "song.wav").stat().st_size > 0
    return d


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def run_child(argv, timeout=120):
    """(exit code, stderr lines, stdout, whether TF or Keras was imported, seconds)."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, *map(str, argv)], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    took = time.perf_counter() - t
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert last.startswith("LOADED "), (r.stdout, r.stderr)
    _, tf, keras, rc = last.split()
    assert int(rc) == r.returncode or r.returncode == 0
    return int(rc), [ln for ln in r.stderr.splitlines() if ln.strip()], r.stdout, tf == "True" or keras == "True", took


def fast(d: Path) -> list:
    return ["--model", d / "tiny.keras", "--layers", "conv2", "--steps", "1", "--octaves", "1", "-q"]


# ============================================================================ usage errors before the model

HUGE = "99999999999999999999"
# (id, argv with {d} = the kit and {o} = an output in an empty folder, a regex the one line must match)
EARLY_ERRORS = [
    # a huge or overflowing --octaves: answered at once by every command (it used to hang plan / overflow)
    ("plan-huge-octaves", "plan zoom {d}/cat.png -o {o}.png --octaves " + HUGE, r"--octaves must be from 1 to 12"),
    ("image-huge-octaves", "image {d}/cat.png -o {o}.png --octaves " + HUGE, r"--octaves must be from 1 to 12"),
    ("video-huge-octaves", "video {d}/clip.mp4 -o {o}.mp4 --octaves " + HUGE, r"--octaves must be from 1 to 12"),
    ("zoom-huge-octaves", "zoom {d}/cat.png -o {o}.mp4 --octaves " + HUGE, r"--octaves must be from 1 to 12"),
    ("video-octaves-10000", "video {d}/clip.mp4 -o {o}.mp4 --octaves 10000", r"--octaves must be .*not 10000$"),
    # the zoom per frame: 0, negative, absurd (they rendered flat or flipping frames)
    ("zoom-0", "zoom {d}/cat.png -o {o}.mp4 --zoom 0", r"--zoom must be at least 0\.1 \(from 0\.1 to 10\), not 0$"),
    ("zoom-negative", "zoom {d}/cat.png -o {o}.mp4 --zoom -1", r"--zoom must be at least 0\.1"),
    ("zoom-1e308", "zoom {d}/cat.png -o {o}.mp4 --zoom 1e308", r"--zoom must be at most 10"),
    # a scheduled value out of range: named at its frame and time
    ("zoom-schedule-falls-below", "zoom {d}/cat.png -o {o}.mp4 --fps 25 --frames 400 --zoom '1 - 0.1*t'",
     r'--zoom "1 - 0.1\*t" reaches 0\.096 at frame 226 \(t=9\.04 s\); --zoom must be at least 0\.1'),
    ("plan-zoom-schedule-falls-below", "plan zoom {d}/cat.png -o {o}.png --fps 25 --frames 400 --zoom '1 - 0.1*t'",
     r"reaches 0\.096 at frame 226"),
    ("zoom-audio-schedule-out-of-range", "zoom {d}/cat.png -o {o}.mp4 --fps 10 --frames 60 --audio {d}/song.wav "
     "--zoom '1 + 20*rms'", r'--zoom "1 \+ 20\*rms" reaches [\d.]+ at frame \d+ \(t=[\d.]+ s\); --zoom must be at most 10'),
    ("zoom-dx-schedule", "zoom {d}/cat.png -o {o}.mp4 --dx '5000*sin(t)'", r"--dx .* at frame \d+ .*at most 4096"),
    ("video-blend-schedule", "video {d}/clip.mp4 -o {o}.mp4 --blend '0.9 + 0.1*t'", r"--blend .* at frame 13 "),
    ("video-layer-weight", "video {d}/clip.mp4 -o {o}.mp4 --layer-weights 'conv2=2000'",
     r"--layer-weights of conv2 must be at most 1000"),
    # schedule syntax, the time range, the output folder: as fast as plan finds them
    ("video-schedule-syntax", "video {d}/clip.mp4 -o {o}.mp4 --step-size 'foo(1)'", r"unknown function 'foo'"),
    ("video-start-in-last-frame", "video {d}/clip.mp4 -o {o}.mp4 --start 2.99", r"--start 2\.99 s leaves less than one frame"),
    ("video-frames-folder-with-other-files", "video {d}/clip.mp4 -o {d}/frames", r"already holds other files"),
    ("zoom-frames-folder-with-other-files", "zoom {d}/cat.png -o {d}/frames/", r"already holds other files"),
    # plain numbers out of range, named as flags with their range
    ("video-fps", "video {d}/clip.mp4 -o {o}.mp4 --fps 5000", r"--fps must be from 0\.1 to 1000 \(or 0\), not 5000"),
    ("video-crf", "video {d}/clip.mp4 -o {o}.mp4 --quality 99", r"--quality must be from 0 to 51"),
    ("zoom-detail-octaves", "zoom {d}/cat.png -o {o}.mp4 --detail-octaves 50", r"--detail-octaves must be from 0 to 12"),
    ("image-tile-size", "image {d}/cat.png -o {o}.png --tile-size 100000", r"--tile-size must be from 64 to 8192"),
    ("image-step-size", "image {d}/cat.png -o {o}.png --step-size 5", r"--step-size must be from 0 to 1"),
    ("image-max-side", "image {d}/cat.png -o {o}.png --max-side 4", r"--max-side: must be a whole number from 16"),
    ("plan-smoothing", "plan zoom {d}/cat.png -o {o}.png --smoothing 1000", r"--smoothing must be from 0 to 60"),
    ("video-enter-every", "video {d}/clip.mp4 -o {o}.mp4 --enter-every 0", r"--enter-every must be from 1 to 60"),
    # a misspelt model name: before TensorFlow and the precision probe (it took 34 s with a fresh cache)
    ("video-unknown-model", "video {d}/clip.mp4 -o {o}.mp4 --model incepshun_v3", r"unknown model 'incepshun_v3'; "
     r"did you mean inception_v3"),
    ("image-unknown-model", "image {d}/cat.png -o {o}.png --model vgg17", r"unknown model .vgg17.; did you mean vgg19, vgg16"),
    # preset files: one line naming the file and the key
    ("preset-binary", "image {d}/cat.png -o {o}.png --preset {d}/binary.toml", r"binary\.toml: not UTF-8 text"),
    ("preset-latin1", "zoom {d}/cat.png -o {o}.mp4 --preset {d}/latin1.toml", r"latin1\.toml: not UTF-8 text"),
    ("preset-seed-text", "image {d}/cat.png -o {o}.png --preset {d}/seed_text.toml",
     r"seed_text\.toml: seed = 'abc' must be a whole number from 0 to 4294967295"),
    ("preset-steps-list", "zoom {d}/cat.png -o {o}.mp4 --preset {d}/steps_list.toml", r"steps_list\.toml: steps must be"),
    ("preset-octaves-out-of-range", "image {d}/cat.png -o {o}.png --preset {d}/octaves_99.toml",
     r"octaves_99\.toml: octaves = 99 is out of range; it must be from 1 to 12"),
    ("preset-max-side-float", "image {d}/cat.png -o {o}.png --preset {d}/max_side_float.toml",
     r"max_side_float\.toml: max_side = 3\.5 must be a whole number"),
    ("save-preset-unwritable", "image {d}/cat.png -o {o}.png --save-preset /proc/dreamvideo-preset.toml",
     r"cannot save preset /proc/dreamvideo-preset\.toml: .*; choose another path"),
]
assert len({c[0] for c in EARLY_ERRORS}) == len(EARLY_ERRORS) >= 15


@pytest.mark.parametrize("argv, pattern", [c[1:] for c in EARLY_ERRORS], ids=[c[0] for c in EARLY_ERRORS])
def test_a_usage_error_is_one_line_before_any_model_loads(kit, tmp_path, argv, pattern):
    import shlex

    out = tmp_path / "out"
    args = [a.format(d=kit, o=out) for a in shlex.split(argv)]
    before = snapshot(kit)
    # The case's own flags come after the defaults, so they win.
    cut = 2 if args[0] == "plan" else 1
    rc, err, stdout, loaded, took = run_child([*args[:cut + 1], *fast(kit), *args[cut + 1:]])
    assert rc == 2, (rc, err)
    assert len(err) == 1 and err[0].startswith("dreamvideo: error: "), err
    assert re.search(pattern, err[0]), err[0]
    assert "Traceback" not in stdout + "".join(err)
    assert not loaded, "TensorFlow/Keras was imported for a usage error"
    assert took < (2.0 if HUGE in argv else EARLY), f"took {took:.1f} s"
    assert list(tmp_path.iterdir()) == []  # no output, no work folder, no temporary file
    assert snapshot(kit) == before  # inputs untouched, nothing added next to them


# ---------------------------------------------------------------------------- the Python API and the page's jobs


def test_the_python_jobs_check_ranges_before_the_model(kit, tmp_path, monkeypatch):
    import dreamvideo
    from dreamvideo import build, jobs, plan
    from dreamvideo.errors import UserError

    def no_model(*a, **k):
        raise AssertionError("a model was loaded for a usage error")

    for mod in (build, jobs, plan):
        monkeypatch.setattr(mod, "build_dreamer", no_model)
    common = dict(model=str(kit / "tiny.keras"), layers="conv2")
    with pytest.raises(UserError, match=r"^`octaves` must be from 1 to 12, not 10\*\*20|^`octaves` must be from 1 to 12"):
        dreamvideo.dream_image(kit / "cat.png", tmp_path / "a.png", octaves=10 ** 20, **common)
    with pytest.raises(UserError, match=r'^`zoom` "1 - 0.1\*t" reaches .* at frame 226 \(t=9.04 s\); `zoom` must'):
        dreamvideo.zoom(kit / "cat.png", tmp_path / "z.mp4", frames=400, fps=25, zoom="1 - 0.1*t", **common)
    with pytest.raises(UserError, match=r"^`blend` must be at most 1 \(from 0 to 1\), not 1.5$"):
        dreamvideo.dream_video(kit / "clip.mp4", tmp_path / "v.mp4", blend="1.5", **common)
    with pytest.raises(UserError, match=r"^`seed` must be from 0 to 4294967295, not -1$"):
        dreamvideo.dream_video(kit / "clip.mp4", tmp_path / "v.mp4", seed=-1, **common)
    with pytest.raises(UserError, match=r"^`angle` must be at most 180"):
        dreamvideo.plan_render("zoom", kit / "cat.png", tmp_path / "p.png", angle="720", **common)
    with pytest.raises(UserError, match=r"^`octave_scale` must be from 1 to 4, not inf$"):
        next(dreamvideo.zoom_frames(np.zeros((32, 32, 3), np.uint8), 2, octave_scale=float("inf"), **common))
    with pytest.raises(UserError, match=r"^`steps` must be at most 10000"):
        next(dreamvideo.dream_frames([np.zeros((32, 32, 3), np.uint8)], steps="1e6", **common))
    assert list(tmp_path.iterdir()) == []


def test_the_ranges_are_the_settings_own_and_shown_in_help_and_the_docs(capsys):
    """Every numeric field has a range; --help shows each one; the docs' command reference lists the same."""
    from dreamvideo import cli

    ranged = {}
    for section, cls in {**S.SECTIONS, "distributed": S.DistributedSettings}.items():
        for f in dataclasses.fields(cls):
            numeric = isinstance(f.default, (int, float)) and not isinstance(f.default, bool)
            if section == "video" and f.name in ("start", "end"):  # their range is the clip's
                assert not f.metadata.get("range")
                continue
            if numeric or (section == "schedules" and f.name not in ("interp",)):
                assert "range" in f.metadata, f"{section}.{f.name} has no range"
                ranged[(section, f.name)] = S.range_text(f.metadata["range"], f.metadata.get("off"))
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    shown = {}
    for cmd in ("image", "video", "zoom"):
        for action in subs[cmd]._actions:
            section, _, name = action.dest.partition(".")
            if (section, name) in ranged:
                shown[(section, name)] = action.help
    for key, text in ranged.items():
        assert key in shown, f"{key} has no flag"
        want = ("per frame " if key[0] == "schedules" else "") + text
        assert want in shown[key], (key, shown[key])
    assert cli.main(["zoom", "--help"]) == 0
    helps = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "--zoom SCHEDULE zoom: scale per frame (>1 zooms in) (per frame from 0.1 to 10; default: 1.05)" in helps
    assert "(from 1 to 12; default: 3)" in helps
    # The docs' command reference is generated from the same parser: each range is there with its flag.
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    from cli_reference import reference

    table = {}
    for cmd in ("image", "video", "zoom"):
        for flags, text in re.findall(r"^\| ((?:`--[a-z-]+`(?:, )?)+)[^|]* \| ([^|]+?) \|", reference(cmd), re.M):
            for flag in re.findall(r"`--([a-z-]+)`", flags):
                table.setdefault(flag, []).append(text)
    for (section, name), text in ranged.items():
        flag = name.replace("_", "-")
        assert flag in table, f"the docs' command reference misses --{flag}"
        assert any(text in row for row in table[flag]), (flag, table[flag], text)


def test_a_huge_octaves_is_refused_at_once_by_the_page(kit, tmp_path):
    """The web page's actions use the same jobs and settings: its plan answers at once, with the same line."""
    from dreamvideo.errors import UserError
    from dreamvideo.ui.page import Page

    page = Page(tmp_path / "outputs", {"model": str(kit / "tiny.keras"), "layers": "conv2"})
    try:
        t = time.perf_counter()
        with pytest.raises(UserError, match=r"^`octaves` must be from 1 to 12"):
            page.plan_zoom(kit / "cat.png", None, {"octaves": HUGE})
        with pytest.raises(UserError, match=r"^`zoom` must be at least 0.1 \(from 0.1 to 10\), not 0$"):
            page.plan_zoom(kit / "cat.png", None, {"zoom": "0"})
        assert time.perf_counter() - t < 2.0
    finally:
        page.worker.shutdown()


# ---------------------------------------------------------------------------- plan's work and warnings


def test_plans_work_summary_follows_steps(kit, tmp_path):
    from dreamvideo import plan_render

    common = dict(model=str(kit / "tiny.keras"), layers="conv2", frames=4, quiet=True)
    four = plan_render("zoom", kit / "cat.png", tmp_path / "a.png", steps="4", **common)["work"]["summary"]
    ten = plan_render("zoom", kit / "cat.png", tmp_path / "b.png", steps="10", **common)["work"]["summary"]
    assert "at 2 steps" in four and "at 5 steps" in ten, (four, ten)


def test_a_png_folder_with_audio_warns_in_one_line(kit, tmp_path):
    rc, err, stdout, _, _ = run_child(["video", kit / "clip.mp4", "-o", tmp_path / "frames", "--audio",
                                       kit / "song.wav", "--frames", "2", *fast(kit)], timeout=300)
    assert rc == 0, err
    mine = [ln for ln in err if "audio" in ln]
    assert mine == ["dreamvideo: warning: frames: frames output has no audio track; audio ignored"], err
    assert not any("UserWarning" in ln or ".py:" in ln for ln in err), err
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_000001.png", "frame_000002.png"]


# ============================================================================ long audio in bounded memory


def _whole_signal_features(y, sr, fps, nframes):
    """The features computed on the whole signal at once, as before the block-by-block analysis."""
    from scipy import fft
    from scipy.signal.windows import blackmanharris

    from dreamvideo import audio as A

    edges = np.round(np.arange(nframes + 1) * (sr / fps)).astype(np.int64)
    power = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    cut = power[np.minimum(edges, y.size)]
    out = {"rms": A._normalise(np.sqrt(np.maximum(np.diff(cut), 0.0) / np.maximum(np.diff(edges), 1)), A.SILENCE)}
    length = fft.next_fast_len(int(0.1 * sr), real=True)
    freqs = fft.rfftfreq(length, 1.0 / sr)
    window = blackmanharris(length).astype(np.float32)
    scale = 2.0 / (length * float(np.sum(window ** 2)))
    padded = np.concatenate([np.zeros(length, np.float32), y, np.zeros(length, np.float32)])
    first = np.clip((edges[:-1] + edges[1:]) // 2 - length // 2, -length, y.size) + length
    spec = np.abs(fft.rfft(padded[first[:, None] + np.arange(length)] * window, axis=1)) ** 2
    levels = {b: np.sqrt(scale * spec[:, (freqs >= max(lo, 1e-9)) & (freqs < hi)].sum(axis=1))
              for b, (lo, hi) in A.BANDS.items()}
    loudest = max(np.percentile(v, 99) for v in levels.values())
    out.update({b: A._normalise(v, max(A.SILENCE, A.BAND_FLOOR * loudest)) for b, v in levels.items()})
    try:
        import librosa
    except ImportError:
        return out
    env = librosa.onset.onset_strength(y=np.pad(y, (0, max(0, 2048 - y.size))), sr=sr, hop_length=A.HOP)
    times = librosa.times_like(env, sr=sr, hop_length=A.HOP)
    out["onset"] = A._normalise(A._frame_peaks(env, times, fps, nframes), 1e-6)
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=A.HOP, units="time")
    out["beat"] = A._beat_pulse(beats, fps, nframes)
    return out


@pytest.mark.parametrize("seconds, fps, nframes, block", [(40.0, 25.0, 1000, 1 << 19), (40.0, 12.0, 600, 5000),
                                                          (1.5, 30.0, 60, 1000), (0.02, 25.0, 3, 64)])
def test_block_by_block_features_equal_the_whole_signal_ones(kit, tmp_path, monkeypatch, seconds, fps, nframes,
                                                            block):
    """Small blocks, frames past the song's end, a song shorter than one STFT window: the same values."""
    from dreamvideo import audio as A

    song = click_and_bass(tmp_path / "s.wav", seconds)
    monkeypatch.setattr(A, "BLOCK", block)
    y, sr = A.load_audio(song)
    want = _whole_signal_features(y, sr, fps, nframes)
    got = A.features_for(song, fps, nframes, needed=list(want)) if seconds > 1 else \
        A.audio_features(y, sr, fps, nframes, needed=list(want))
    for k, v in want.items():
        assert got[k].shape == (nframes,)
        assert np.max(np.abs(got[k] - np.clip(v, 0, 1).astype(np.float32))) < 1e-4, k
    if "beat" in want:
        assert got["beat"].max() == 1.0 or seconds < 1


MEMORY_CHILD = """
import resource, subprocess, sys
work = ("import sys; from dreamvideo.audio import features_for; "
        "f = features_for(sys.argv[1], 25.0, int(float(sys.argv[2]) * 25)); print(sorted(f))")
r = subprocess.run([sys.executable, "-c", work, *sys.argv[1:]])
print("PEAK_MIB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, "RC", r.returncode)
"""


def test_a_long_song_is_analysed_in_bounded_memory(tmp_path):
    """A 15-minute song's features (all of them, as a plan computes), analysed by a child of a fresh
    process that reports ``getrusage(RUSAGE_CHILDREN).ru_maxrss``: under 600 MiB. Analysed whole, the
    samples alone took 80 MiB as bytes, 80 as float32 and 3 x 160 as float64 squares and their sums,
    the onset STFT ~650 MiB more (a 2-hour song: 9.1 GB; bench/RESULTS.md, "Long audio")."""
    minutes = 15
    song = click_and_bass(tmp_path / "long.wav", minutes * 60)
    r = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(song), str(minutes * 60)], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    peak, rc = int(words[words.index("PEAK_MIB") + 1]), int(words[words.index("RC") + 1])
    assert rc == 0, r.stderr
    assert "rms" in r.stdout and "high" in r.stdout
    assert peak < 600, f"peak {peak} MiB"
