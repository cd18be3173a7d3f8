"""Reliability sweep: bad inputs, kills and resumes, long runs, untrusted text.

1. A generated corpus of bad inputs, each a one-line error (exit 2 for a usage mistake, 1 for a runtime
   failure), no traceback, nothing under the output name; odd but valid images (16-bit, grey, palette,
   alpha, CMYK, 1x1, 8K) dream.
2. Real renders in subprocesses killed with SIGINT / SIGKILL at random frames, then resumed: the frames match an
   uninterrupted render, a Ctrl-C'd output plays, no ffmpeg is left behind.
3. A 2,000-frame zoom: resident memory and frame time stay flat.
4. Schedules, presets and paths from users never reach eval, a shell, or a path the user did not name.
"""

from __future__ import annotations

import builtins
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreamvideo import cli
from conftest import FFMPEG, ffmpeg, ffmpeg_children, live_ffmpeg
from dreamvideo import io, presets
from dreamvideo.infinite import ZoomStepper
from helpers import ROOT, photo, tiny_model_file

CLIP_FRAMES = 36  # corpus clip: 96x64 @12 fps, 3 s, with a tone


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Every input the tests need, made here: a tiny model, a photo, a small clip, and the bad inputs."""
    d = tmp_path_factory.mktemp("corpus")
    tiny_model_file(d / "tiny.keras")
    Image.fromarray(np.ascontiguousarray(photo("chelsea")[::4, ::4][:64, :96])).save(d / "cat.png")
    src = ["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=12", "-f", "lavfi", "-i", "sine=frequency=440",
           "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]
    ffmpeg(*src, d / "clip.mp4")  # moov atom at the end (ffmpeg's default)
    ffmpeg(*src, "-movflags", "+faststart", d / "faststart.mp4")
    data = (d / "clip.mp4").read_bytes()
    (d / "trunc.mp4").write_bytes(data[: len(data) // 2])  # the index is lost: cannot even be opened
    data = (d / "faststart.mp4").read_bytes()
    (d / "truncfs.mp4").write_bytes(data[: len(data) // 2])  # opens, then the frames run out: a cut download
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=12", "-frames:v", "0", "-c:v", "libx264", d / "zero.mp4")
    (d / "text.mp4").write_text("not a video\n")
    (d / "text.png").write_text("not an image\n")
    (d / "empty.png").write_bytes(b"")
    (d / "empty.mp4").write_bytes(b"")
    (d / "folder").mkdir()
    (d / "folder" / "readme.txt").write_text("no images here")
    (d / "notes.txt").write_text("a regular file, so notes.txt/out.mp4 cannot be created\n")
    rng = np.random.default_rng(7)
    (d / "garbage.weights.h5").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "garbage.keras").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "bad_key.toml").write_text('zoom = "1.02"\nzoomm = "1.03"\n')
    (d / "broken.toml").write_text("zoom = \n")
    (d / "wrong_type.toml").write_text('[dream]\noctaves = "many"\n')
    assert all((d / n).stat().st_size > 0 for n in ("clip.mp4", "faststart.mp4", "zero.mp4"))
    assert io.probe_video(d / "clip.mp4").nframes == CLIP_FRAMES
    return d


def fast(d) -> list[str]:
    return ["--model", str(d / "tiny.keras"), "--layers", "conv2", "--steps", "1", "--octaves", "1", "-q"]


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def leftovers(*folders) -> list[str]:
    return sorted(p.name for f in folders for p in Path(f).iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def frames_of(path) -> list[np.ndarray]:
    with io.VideoReader(path) as r:
        return list(r)


# ============================================================================ 1. bad inputs

# (id, argv with {d} = corpus and {o} = the output, exit code, a word the message must hold). The output
# is {o} = <empty folder>/out.<ext>; a case may name its own output instead (then {o} is not used).
U, R = 2, 1  # usage mistake, runtime failure
BAD = [
    # inputs
    ("missing-image", "image {d}/missing.png -o {o}.png", U, "does not exist"),
    ("missing-video", "video {d}/missing.mp4 -o {o}.mp4", U, "does not exist"),
    ("folder-as-image", "image {d}/folder -o {o}.png", U, "is a folder"),
    ("folder-without-images-as-video", "video {d}/folder -o {o}.mp4", U, "no images found"),
    ("empty-image", "image {d}/empty.png -o {o}.png", U, "empty"),
    ("empty-video", "video {d}/empty.mp4 -o {o}.mp4", U, "empty"),
    ("truncated-mp4", "video {d}/trunc.mp4 -o {o}.mp4", U, "cannot read video"),
    ("text-named-mp4", "video {d}/text.mp4 -o {o}.mp4", U, "cannot read video"),
    ("text-named-png", "image {d}/text.png -o {o}.png", U, "not a decodable image"),
    ("text-named-png-as-zoom-start", "zoom {d}/text.png -o {o}.mp4", U, "not a decodable image"),
    ("video-as-image", "image {d}/clip.mp4 -o {o}.png", U, "not a decodable image"),
    ("zero-frame-video", "video {d}/zero.mp4 -o {o}.mp4", U, "no video stream"),
    ("frames-beyond-clip", "video {d}/clip.mp4 -o {o}.mp4 --frames 500", U, "more than the 36 frames"),
    ("start-past-end", "video {d}/clip.mp4 -o {o}.mp4 --start 60", U, "past the end"),
    ("end-infinite", "video {d}/clip.mp4 -o {o}.mp4 --end inf", U, "time range"),
    ("start-nan", "video {d}/clip.mp4 -o {o}.mp4 --start nan", U, "time range"),
    ("fps-nan", "video {d}/clip.mp4 -o {o}.mp4 --fps nan", U, "fps"),
    # model, layers, channels, weights
    ("unknown-model", "video {d}/clip.mp4 -o {o}.mp4 --model incepshun_v3", U, "did you mean inception_v3"),
    ("unknown-layer", "image {d}/cat.png -o {o}.png --layers conv9", U, "no layer 'conv9'"),
    ("unknown-channel", "image {d}/cat.png -o {o}.png --layers conv2:99", U, "out of range"),
    ("bad-layer-syntax", "image {d}/cat.png -o {o}.png --layers conv2:x:y:z", U, "cannot read layer item"),
    ("unreadable-weights", "image {d}/cat.png -o {o}.png --model mobilenet_v2 --weights {d}/garbage.weights.h5",
     U, "cannot load weights"),
    ("missing-weights", "image {d}/cat.png -o {o}.png --model mobilenet_v2 --weights {d}/none.weights.h5", U,
     "not found"),
    ("unreadable-model-file", "image {d}/cat.png -o {o}.png --model {d}/garbage.keras", U, "cannot load model"),
    # schedules
    ("schedule-syntax", "zoom {d}/cat.png -o {o}.mp4 --zoom 1+", U, "bad zoom schedule"),
    ("schedule-keyframes", "video {d}/clip.mp4 -o {o}.mp4 --steps '0:(1), x'", U, "bad steps schedule"),
    ("schedule-log0", "zoom {d}/cat.png -o {o}.mp4 --angle 'log(0)'", U, "gives -inf"),
    ("schedule-audio-without-soundtrack", "zoom {d}/cat.png -o {o}.mp4 --dx '3*beat'", U, "no soundtrack"),
    ("schedule-too-many-steps", "zoom {d}/cat.png -o {o}.mp4 --steps 3e9", U, "at most"),
    ("layer-weights-unknown-layer", "zoom {d}/cat.png -o {o}.mp4 --layer-weights conv9=1", U, "--layer-weights"),
    # presets
    ("unknown-preset", "zoom {d}/cat.png -o {o}.mp4 --preset clasic", U, "did you mean classic"),
    ("missing-preset-file", "image {d}/cat.png -o {o}.png --preset {d}/none.toml", U, "not found"),
    ("preset-not-toml", "image {d}/cat.png -o {o}.png --preset {d}/broken.toml", U, "not valid TOML"),
    ("preset-unknown-key", "zoom {d}/cat.png -o {o}.mp4 --preset {d}/bad_key.toml", U, "unknown key 'zoomm'"),
    ("preset-wrong-type", "image {d}/cat.png -o {o}.png --preset {d}/wrong_type.toml", U, "octaves"),
    # outputs
    ("output-is-input-image", "image {d}/cat.png -o {d}/cat.png", U, "is the input"),
    ("output-is-input-video", "video {d}/clip.mp4 -o {d}/clip.mp4", U, "is the input"),
    ("output-under-a-file-image", "image {d}/cat.png -o {d}/notes.txt/out.png", U, "does not exist"),
    ("output-under-a-file-video", "video {d}/clip.mp4 -o {d}/notes.txt/out.mp4", U, "does not exist"),
    ("output-under-a-file-zoom", "zoom {d}/cat.png -o {d}/notes.txt/frames/", U, "does not exist"),
    ("output-unwritable-image", "image {d}/cat.png -o /proc/dreamvideo-test.png", R, "could not write"),
    ("output-unwritable-zoom", "zoom {d}/cat.png -o /proc/dreamvideo-test.mp4", R, "cannot write the work folder"),
    ("output-unknown-extension", "video {d}/clip.mp4 -o {o}.txt", U, "cannot write"),
    ("image-output-as-video", "image {d}/cat.png -o {o}.mp4", U, "image extension"),
    ("save-preset-under-a-file", "image {d}/cat.png -o {o}.png --save-preset {d}/notes.txt/p.toml", U,
     "does not exist"),
    ("save-preset-not-toml", "image {d}/cat.png -o {o}.png --save-preset {d}/p.json", U, ".toml"),
    # conflicting flags
    ("zoom-input-and-noise", "zoom {d}/cat.png --from-noise 64x48 -o {o}.mp4", U, "not both"),
    ("zoom-neither-input-nor-noise", "zoom -o {o}.mp4", U, "--from-noise"),
    ("no-audio-with-audio", "video {d}/clip.mp4 -o {o}.mp4 --no-audio --audio {d}/clip.mp4", U, "contradict"),
    ("audio-file-without-audio", "video {d}/clip.mp4 -o {o}.mp4 --audio {d}/zero.mp4", U, "no audio track"),
    ("zoom-audio-file-without-audio", "zoom {d}/cat.png -o {o}.mp4 --audio {d}/cat.png", U, "no audio track"),
    ("zoom-absurd-frame-count", "zoom {d}/cat.png -o {o}.mp4 --frames 99999999999", U, "--frames must be from 1"),
    ("resume-nothing", "zoom {d}/cat.png -o {o}.mp4 --resume", U, "nothing to resume"),
    ("unknown-flag", "image {d}/cat.png -o {o}.png --octavez 2", U, "unrecognized arguments"),
    ("unknown-command", "dreem {d}/cat.png -o {o}.png", U, "invalid choice"),
    # numbers out of range
    ("negative-seed", "zoom --from-noise 64x48 -o {o}.mp4 --seed -1", U, "--seed"),
    ("huge-seed", "image {d}/cat.png -o {o}.png --seed 99999999999999999999", U, "--seed"),
    ("tile-size-too-small", "image {d}/cat.png -o {o}.png --tile-size 10", U, "--tile-size"),
    ("jitter-beyond-int32", "image {d}/cat.png -o {o}.png --jitter 3000000000", U, "--jitter"),
    ("octave-scale-nan", "image {d}/cat.png -o {o}.png --octave-scale nan", U, "--octave-scale"),
    ("carry-step-out-of-range", "video {d}/clip.mp4 -o {o}.mp4 --carry-step 2", U, "--carry-step"),
    ("first-steps-beyond-int32", "zoom {d}/cat.png -o {o}.mp4 --first-steps 3000000000", U, "--first-steps"),
    ("image-quality-out-of-range", "image {d}/cat.png -o {o}.jpg --quality 500", U, "--quality"),
    ("noise-size", "zoom --from-noise 8x8 -o {o}.mp4", U, "--from-noise"),
]
assert len(BAD) >= 25 and len({c[0] for c in BAD}) == len(BAD)


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {p.name: p.read_bytes() if p.is_file() else None for p in folder.iterdir()}


@pytest.mark.parametrize("argv, code, needle", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_one_line_error_and_leaves_nothing(corpus, tmp_path, capsys, argv, code, needle):
    out = tmp_path / "out"
    args = [a.format(d=corpus, o=out) for a in shlex.split(argv)]
    named = Path(args[args.index("-o") + 1])
    before = _snapshot(corpus)
    extra = ["--steps", "1", "--octaves", "1", "-q"]  # before the case's own flags, which win
    if "--model" not in args:
        extra += ["--model", str(corpus / "tiny.keras"), "--layers", "conv2"]
    rc, stdout, err = run(capsys, args[0], *extra, *args[1:])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == code, (rc, err)
    assert len(lines) == 1 and lines[0].startswith("dreamvideo: error:") and needle in lines[0], err
    assert "Traceback" not in err + stdout
    if named.parent != corpus or named.name not in before:  # (output-is-input: that file is the input)
        assert not named.exists(), f"{named} was created"
    assert leftovers(tmp_path, corpus) == []
    assert _snapshot(corpus) == before  # the inputs untouched, nothing added
    assert ffmpeg_children() == []


# ---------------------------------------------------------------------------- odd but valid images


def _odd_images(d: Path) -> dict[str, Path]:
    import cv2

    rgb = photo("astronaut")[::8, ::8][:48, :40]
    ramp = (np.linspace(0, 65535, 48 * 40).reshape(48, 40)).astype(np.uint16)
    rgba = np.dstack([rgb, np.linspace(0, 255, 40, dtype=np.uint8)[None].repeat(48, 0)])
    made = {
        "one-pixel.png": lambda p: Image.new("RGB", (1, 1), (200, 30, 90)).save(p),
        "grey16.png": lambda p: cv2.imwrite(str(p), ramp),
        "rgb16.png": lambda p: cv2.imwrite(str(p), np.dstack([ramp, ramp[::-1], ramp[:, ::-1]])),
        "rgb16.tif": lambda p: cv2.imwrite(str(p), np.dstack([ramp, ramp[::-1], ramp[:, ::-1]])),
        "grey.png": lambda p: Image.fromarray(rgb[..., 1]).save(p),
        "grey.jpg": lambda p: Image.fromarray(rgb[..., 1]).save(p),
        "bilevel.png": lambda p: Image.fromarray(rgb[..., 0] > 128).save(p),
        "palette.png": lambda p: Image.fromarray(rgb).quantize(16).save(p),
        "palette-transparent.png": lambda p: Image.fromarray(rgb).quantize(16).save(p, transparency=0),
        "rgba.png": lambda p: Image.fromarray(rgba).save(p),
        "grey-alpha.png": lambda p: Image.fromarray(rgba[..., [1, 3]], "LA").save(p),
        "rgba.webp": lambda p: Image.fromarray(rgba).save(p, lossless=True),
        "cmyk.jpg": lambda p: Image.fromarray(rgb).convert("CMYK").save(p),
        "cmyk.tif": lambda p: Image.fromarray(rgb).convert("CMYK").save(p),
    }
    out = {}
    for name, make in made.items():
        make(d / name)
        out[name] = d / name
    return out


ODD = ["one-pixel.png", "grey16.png", "rgb16.png", "rgb16.tif", "grey.png", "grey.jpg", "bilevel.png", "palette.png",
       "palette-transparent.png", "rgba.png", "grey-alpha.png", "rgba.webp", "cmyk.jpg", "cmyk.tif"]


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory) -> dict[str, Path]:
    return _odd_images(tmp_path_factory.mktemp("odd"))


@pytest.mark.parametrize("name", ODD)
def test_odd_but_valid_images_dream(corpus, odd_images, tmp_path, capsys, name):
    src = odd_images[name]
    out = tmp_path / "dream.png"
    rc, _, err = run(capsys, "image", src, "-o", out, *fast(corpus))
    assert rc == 0 and err == "", err
    got = io.read_image(out)
    w, h = Image.open(src).size
    assert got.shape == (h, w, 3) and got.dtype == np.uint8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dream.png"]


def test_8k_image_dreams_in_bounded_memory_through_tiles(corpus, tmp_path):
    """7680x4320 through 512-px tiles, in a process of its own so its peak RSS is its own."""
    import cv2

    src, out = tmp_path / "8k.jpg", tmp_path / "8k.png"
    small = cv2.imread(str(corpus / "cat.png"))
    big = cv2.resize(small, (7680, 4320), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(str(src), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    del big
    t = time.monotonic()
    with open(tmp_path / "stderr.txt", "wb") as log:
        p = subprocess.Popen([sys.executable, "-m", "dreamvideo.cli", "image", str(src), "-o", str(out), "--tile-size", "512",
                              *fast(corpus)], cwd=ROOT, stdout=log, stderr=log)
        _, status, usage = os.wait4(p.pid, 0)  # the rusage of this child alone
    p.returncode = os.waitstatus_to_exitcode(status)
    err = (tmp_path / "stderr.txt").read_text()
    (tmp_path / "stderr.txt").unlink()
    peak_gb, seconds = usage.ru_maxrss / 2 ** 20, time.monotonic() - t
    print(f"8K image: peak RSS {peak_gb:.2f} GB, {seconds:.1f} s")
    assert p.returncode == 0, err
    assert Image.open(out).size == (7680, 4320)
    # The image itself is 0.4 GB per float32 copy; the network only ever sees one 512-px tile. (Before the
    # tiles' gradients were concatenated instead of padded to full size and summed, this took 8 GB and a minute.)
    assert peak_gb < 6.0, f"peak RSS {peak_gb:.2f} GB"
    assert leftovers(tmp_path) == []


# ============================================================================ 2. kills and resumes


def _work_frames(out: Path) -> dict[str, bytes]:
    work = out.parent / f".{out.name}.dreamwork" / "frames"
    try:
        return {p.name: p for p in work.iterdir() if re.fullmatch(r"\d{6}\.png", p.name)}
    except OSError:
        return {}


def _ffmpeg_mentioning(*paths) -> list[str]:
    """Live ffmpeg processes (any parent) whose command line names one of ``paths``."""
    return [f"{pid}: " + cmd.replace(b"\0", b" ").decode(errors="replace")[:200] for pid, _, cmd in live_ffmpeg()
            if any(str(p).encode() in cmd for p in paths)]


def _no_ffmpeg_left(*paths, wait: float = 10.0) -> list[str]:
    deadline = time.monotonic() + wait
    while (left := _ffmpeg_mentioning(*paths)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _as_from_a_terminal() -> None:
    """In the child, before exec: SIGINT as a terminal's Ctrl-C finds it. Whatever blocked or ignored
    it in the test process (in two full runs, not alone, the renders exited 0 past a SIGINT) is not
    inherited: a render started in the background ignores SIGINT by design, and this test is about Ctrl-C."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _render_argv(kind, corpus, out) -> list[str]:
    common = ["--model", str(corpus / "tiny.keras"), "--layers", "conv2", "--octaves", "1", "--steps", "12",
              "--seed", "11", "-q"]
    if kind == "video":
        args = ["video", str(corpus / "clip.mp4"), "-o", str(out)]
    else:
        args = ["zoom", str(corpus / "cat.png"), "-o", str(out), "--frames", str(CLIP_FRAMES), "--zoom", "1.03",
                "--angle", "1.5", "--dx", "0.5*sin(t)"]
    return [sys.executable, "-m", "dreamvideo.cli", *args, *common]


@pytest.mark.slow
@pytest.mark.parametrize("kind, seed", [("video", 1), ("zoom", 2)])
def test_kills_and_resumes_give_the_frames_of_an_uninterrupted_render(corpus, tmp_path, kind, seed):
    """Five rounds per kind (ten in all, both signals): kill at a random frame, resume, ... then finish."""
    rng = random.Random(seed)
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "killed"
    ref_dir.mkdir(), run_dir.mkdir()
    ref, out = ref_dir / "out.mp4", run_dir / "out.mp4"
    reference = subprocess.Popen(_render_argv(kind, corpus, ref), cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # runs alongside the killed renders
    argv = _render_argv(kind, corpus, out)
    signals = [signal.SIGINT, signal.SIGKILL] * 2 + [signal.SIGINT if kind == "video" else signal.SIGKILL]
    rng.shuffle(signals)  # five of each signal over the two kinds
    kept: dict[str, bytes] = {}
    for n, sig in enumerate(signals):
        done = len(_work_frames(out))
        k = done + 1 + rng.randrange(4)  # a random frame a little ahead of what is done
        assert k < CLIP_FRAMES - 2, "kill points ran past the clip"
        p = subprocess.Popen(argv + (["--resume"] if n else []), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=_as_from_a_terminal)
        deadline = time.monotonic() + 180
        while p.poll() is None and len(_work_frames(out)) < k and time.monotonic() < deadline:
            time.sleep(0.002)
        assert p.poll() is None, f"round {n}: the render ended before frame {k}: {p.communicate()}"
        p.send_signal(sig)
        _, err = p.communicate(timeout=180)
        frames = _work_frames(out)
        where = f"round {n} ({sig.name} at frame {k}, {len(frames)} saved)"
        if sig == signal.SIGINT:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            assert p.returncode == 130, (where, err)
            assert len(lines) == 1 and lines[0].startswith("dreamvideo: interrupted after"), (where, err)
            assert shlex.split(lines[0].split("resume with: ", 1)[1]) == ["dreamvideo", *argv[3:], "--resume"]
            done_now = int(re.search(r"after (\d+)/", lines[0])[1])
            assert 0 < done_now <= len(frames)
            partial = frames_of(out)  # the partial output plays, with what was done
            assert len(partial) == done_now, where
            if kind == "video":
                assert io.probe_video(out).has_audio
            assert leftovers(run_dir) == [], where
        else:
            assert p.returncode == -signal.SIGKILL, (where, err)
        assert _no_ffmpeg_left(run_dir, corpus) == [], where
        # A frame once saved is never rewritten; a resumed run only adds frames.
        for name, path in frames.items():
            data = path.read_bytes()
            assert kept.setdefault(name, data) == data, (where, name)
        assert len(frames) > done, where
        print(f"{kind} {where}: exit {p.returncode}")
    p = subprocess.run(argv + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr
    assert reference.wait(timeout=300) == 0, reference.communicate()[1]
    reference.communicate()
    # The work folder and the temporaries that the SIGKILLed runs left are gone.
    assert sorted(x.name for x in run_dir.iterdir()) == ["out.mp4"]
    got, want = frames_of(out), frames_of(ref)
    assert len(got) == len(want) == CLIP_FRAMES
    for i, (a, b) in enumerate(zip(got, want)):
        assert np.array_equal(a, b), f"frame {i} differs from the uninterrupted render"
    if kind == "video":
        assert io.probe_video(out).has_audio
    assert _no_ffmpeg_left(tmp_path, corpus, wait=0) == []


# ============================================================================ 3. long runs


def _rss_kb(pid="self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.slow
def test_a_2000_frame_zoom_keeps_memory_and_frame_time_flat(corpus, tmp_path, capsys, monkeypatch):
    n, warm = 2000, 200
    times, rss, ff_rss = [], {}, {}
    original = ZoomStepper.dream

    def call(self, frame):
        i = frame.index
        times.append(time.perf_counter())  # the whole loop per frame: dream, save, encode behind
        if i % 20 == 0:
            rss[i] = _rss_kb()
            for pid in ffmpeg_children():
                try:
                    ff_rss[i] = _rss_kb(pid)
                except OSError:
                    pass
        return original(self, frame)

    monkeypatch.setattr(ZoomStepper, "dream", call)
    out = tmp_path / "long.mp4"
    rc, _, err = run(capsys, "zoom", "--from-noise", "64x48", "-o", out, "--frames", n, "--zoom", "1.02",
                     "--angle", "0.5", "--dx", "sin(t)", *fast(corpus))
    assert rc == 0, err
    assert len(times) == n and len(frames_of(out)) == n
    after = {i: v for i, v in rss.items() if i >= warm}
    growth = (max(after.values()) - after[warm]) / after[warm]
    dt = np.diff(times) * 1000
    early, late = np.median(dt[warm:700]), np.median(dt[-500:])
    ff = {i: v for i, v in ff_rss.items() if i >= warm}
    ff_growth = (max(ff.values()) - ff[min(ff)]) / ff[min(ff)] if ff else 0.0
    print(f"2000-frame zoom: RSS {after[warm] / 1024:.1f} MB at frame {warm}, max {max(after.values()) / 1024:.1f} MB "
          f"after ({100 * growth:+.2f} %); ffmpeg RSS {100 * ff_growth:+.2f} %; "
          f"median frame time {early:.2f} ms (frames {warm}-700), {late:.2f} ms (last 500)")
    assert growth < 0.05
    assert ff_growth < 0.05
    assert late < 1.5 * early


# ============================================================================ 4. untrusted text

EVIL = ["__import__('os').system('touch MARKER')", "open('MARKER', 'w')", "().__class__.__bases__[0]",
        "`touch MARKER`", "$(touch MARKER)", "1; touch MARKER", "1 && touch MARKER", "1 | touch MARKER",
        "exec('1')", "eval", "lambda: 1", "[x for x in ()]", "{}", "f'{1}'", "\\x41", "1 # comment"]


@pytest.mark.parametrize("flag", ["--zoom", "--angle", "--steps", "--step-size", "--layer-weights"])
@pytest.mark.parametrize("text", EVIL)
def test_schedules_holding_code_or_shell_are_usage_errors(corpus, tmp_path, capsys, monkeypatch, flag, text):
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(ZoomStepper, "dream", lambda self, frame: calls.append(frame.index))
    value = f"conv2={text}" if flag == "--layer-weights" else text
    rc, _, err = run(capsys, "zoom", corpus / "cat.png", "-o", "out.mp4", "--frames", "3", *fast(corpus), flag, value)
    assert rc == 2 and err.startswith("dreamvideo: error: ") and err.count("\n") == 1, err
    assert re.match(r"dreamvideo: error: (bad .*schedule|--layer-weights item)", err), err  # ';' splits layer items
    assert calls == [] and list(tmp_path.iterdir()) == []  # nothing rendered, no MARKER


def test_a_preset_holding_code_is_a_usage_error_and_nothing_runs(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(ZoomStepper, "dream", lambda self, frame: calls.append(frame.index))
    look = tmp_path / "look.toml"
    for key, value in [("zoom", EVIL[0]), ("angle", EVIL[4]), ("steps", EVIL[5]), ("dx", EVIL[2]),
                       ("layer_weights", "conv2=" + EVIL[1])]:
        look.write_text(f"[schedules]\n{key} = {presets.toml_value(value)}\n")
        rc, _, err = run(capsys, "zoom", corpus / "cat.png", "-o", "out.mp4", "--frames", "3", "--preset", look,
                         *fast(corpus)[:4])  # no --steps flag: it would win over the preset's
        assert rc == 2 and err.startswith("dreamvideo: error: bad ") and err.count("\n") == 1, (key, err)
        assert calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["look.toml"], key
    # Paths in a preset are paths, never commands: a guide "$(touch MARKER)" is a missing file.
    look.write_text('[model]\nguide = "$(touch MARKER)"\n')
    rc, _, err = run(capsys, "zoom", corpus / "cat.png", "-o", "out.mp4", "--frames", "3", "--preset", look,
                     *fast(corpus))
    assert rc == 2 and "$(touch MARKER) does not exist" in err
    assert calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["look.toml"]


def test_renders_never_eval_and_only_ever_run_the_ffmpeg_binary(corpus, tmp_path, capsys, monkeypatch):
    argvs = [
        ["zoom", corpus / "cat.png", "-o", tmp_path / "z.mp4", "--frames", "4", "--zoom", "1.02 + 0.01*sin(2*pi*t)",
         "--angle", "0:(0), 3:(2)", "--layer-weights", "conv2=1 + 0.5*(f > 1)", "--audio", corpus / "clip.mp4"],
        ["video", corpus / "clip.mp4", "-o", tmp_path / "v.mp4", "--frames", "4", "--blend", "0.9 - 0.1*(f % 2)"],
        ["image", corpus / "cat.png", "-o", tmp_path / "i.png"],
    ]
    for argv in argvs:  # once unwatched, so every module that a render imports lazily is imported
        assert run(capsys, *argv, *fast(corpus))[0] == 0
    project = (str(ROOT / "dreamvideo"), str(ROOT / "cli.py"))
    evals, launched = [], []

    def watch(name, real):
        def spy(*args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            evals.append((name, caller, str(args[0])[:80] if args else ""))
            if caller.startswith(project):
                raise AssertionError(f"{name} called from {caller}")
            return real(*args, **kwargs)
        return spy

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, watch(name, getattr(builtins, name)))
    real_popen = subprocess.Popen

    class Popen(real_popen):
        def __init__(self, args, *a, **kw):
            launched.append((args, kw.get("shell", False), kw.get("executable")))
            super().__init__(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", Popen)
    monkeypatch.setattr(os, "system", lambda *a: pytest.fail(f"os.system{a}"))
    for argv in argvs:
        rc, _, err = run(capsys, *argv, *fast(corpus))
        assert rc == 0, err
    monkeypatch.undo()
    assert not [e for e in evals if e[1].startswith(project)]
    assert not [e for e in evals if "sin" in e[2] or "conv2" in e[2] or "0.9" in e[2]]  # no schedule text
    assert len(launched) >= 4  # probes, decode, encode, audio mux
    for args, shell, executable in launched:
        assert isinstance(args, list) and args[0] == FFMPEG and shell is False and executable is None, args


ODD_NAMES = ["-weird name;$(touch MARKER) 'q' \"dq\" `touch MARKER`", "semi;colon && touch MARKER", "x|touch MARKER",
             "$HOME", "*?[a]", "new\nline"]


@pytest.mark.parametrize("stem", ODD_NAMES, ids=["dash-quotes-subst", "semicolon", "pipe", "dollar", "glob", "newline"])
def test_odd_paths_are_taken_literally(corpus, tmp_path, capsys, monkeypatch, stem):
    monkeypatch.chdir(tmp_path)
    (tmp_path / f"{stem}.png").write_bytes((corpus / "cat.png").read_bytes())
    (tmp_path / f"{stem}.m4a").write_bytes((corpus / "clip.mp4").read_bytes())  # a soundtrack with an odd name
    argv = ["zoom", f"./{stem}.png", "--output", f"./{stem}.mp4", "--frames", "3", "--audio", f"./{stem}.m4a",
            *fast(corpus)]
    rc, _, err = run(capsys, *argv)
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{stem}{e}" for e in (".m4a", ".mp4", ".png"))
    assert len(frames_of(tmp_path / f"{stem}.mp4")) == 3 and io.probe_video(tmp_path / f"{stem}.mp4").has_audio
    rc, _, err = run(capsys, "image", f"./{stem}.png", f"--output=./{stem}.out.jpg", *fast(corpus))
    assert rc == 0, err
    assert (tmp_path / f"{stem}.out.jpg").is_file()
    assert not Path("MARKER").exists() and not (Path.home() / "MARKER").exists()


def test_ffmpeg_protocol_names_are_plain_file_names(corpus, tmp_path, capsys, monkeypatch):
    """A file named like an ffmpeg URL (concat:, subfile,, pipe:) is that file, never what the URL points at."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.mp4").write_bytes((corpus / "faststart.mp4").read_bytes())  # what a URL could reach
    for name in ("concat:secret.mp4", "pipe:0", "file:secret.mp4"):
        (tmp_path / name).write_text("not a video\n")
        rc, _, err = run(capsys, "video", name, "-o", "out.mp4", *fast(corpus))
        assert rc == 2 and "cannot read video" in err and err.count("\n") == 1, (name, err)
        assert not Path("out.mp4").exists()
    (tmp_path / "a.m4a").write_bytes((corpus / "clip.mp4").read_bytes())  # what concat:a.m4a would reach
    (tmp_path / "concat:a.m4a").write_text("not audio\n")
    rc, _, err = run(capsys, "zoom", corpus / "cat.png", "-o", "z.mp4", "--frames", "2", "--audio", "concat:a.m4a",
                     *fast(corpus))
    assert rc == 2 and "cannot read audio source" in err and err.count("\n") == 1, err
    assert not Path("z.mp4").exists()


def test_presets_are_read_only_where_named_and_saved_only_where_named(corpus, tmp_path, capsys, monkeypatch):
    elsewhere, cwd = tmp_path / "elsewhere", tmp_path / "cwd"
    elsewhere.mkdir(), cwd.mkdir()
    monkeypatch.chdir(cwd)
    (elsewhere / "look.toml").write_text('[dream]\noctaves = 1\n')
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(presets, "open", lambda f, *a, **k: opened.append(Path(f)) or real_open(f, *a, **k),
                        raising=False)
    save = "my dir;$(touch MARKER)/saved look.toml"
    (cwd / "my dir;$(touch MARKER)").mkdir()
    rc, _, err = run(capsys, "image", corpus / "cat.png", "-o", "out.png", "--preset", "../elsewhere/look.toml",
                     "--save-preset", save, *fast(corpus))
    assert rc == 0, err
    assert opened == [Path("../elsewhere/look.toml")]  # read where named (relative to the working folder)
    assert (cwd / save).is_file() and "octaves = 1" in (cwd / save).read_text()
    assert sorted(p.name for p in cwd.iterdir()) == ["my dir;$(touch MARKER)", "out.png"]
    assert [p.name for p in (cwd / "my dir;$(touch MARKER)").iterdir()] == ["saved look.toml"]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["look.toml"]
    opened.clear()
    rc, _, err = run(capsys, "image", corpus / "cat.png", "-o", "out2.png", "--preset", "mobilenet-offline",
                     *fast(corpus))
    assert rc == 0, err
    assert opened == [presets.BUILTIN_DIR / "mobilenet-offline.toml"]  # a name is only ever a built-in one
    for name in ("../elsewhere/look", "..", "/etc/passwd"):  # not a preset: never read as one
        opened.clear()
        rc, _, err = run(capsys, "image", corpus / "cat.png", "-o", "out3.png", "--preset", name, *fast(corpus))
        assert rc == 2 and err.count("\n") == 1, err
        assert all(p == Path(name) or presets.BUILTIN_DIR in p.parents for p in opened), opened


def test_the_work_folder_stays_next_to_the_named_output(corpus, tmp_path, capsys, monkeypatch):
    cwd = tmp_path / "cwd"
    (cwd / "sub dir").mkdir(parents=True)
    monkeypatch.chdir(cwd)
    original, seen = ZoomStepper.dream, []

    def call(self, frame):
        if frame.index == 2:
            seen.extend(sorted(p.name for p in (cwd / "sub dir").iterdir()))
            raise KeyboardInterrupt
        return original(self, frame)

    monkeypatch.setattr(ZoomStepper, "dream", call)
    name = "sub dir/-odd;$(touch MARKER).mp4"
    rc, _, err = run(capsys, "zoom", corpus / "cat.png", "-o", name, "--frames", "5", *fast(corpus))
    assert rc == 130
    work = ".-odd;$(touch MARKER).mp4.dreamwork"
    assert work in seen and (cwd / "sub dir" / work / "frames" / "000001.png").is_file()
    assert sorted(p.name for p in cwd.iterdir()) == ["sub dir"]
    assert sorted(p.name for p in (cwd / "sub dir").iterdir()) == sorted([work, "-odd;$(touch MARKER).mp4"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd"]
    # The resume command printed for copy and paste is quoted for a shell: it parses back to the same arguments.
    suggested = shlex.split(err.strip().split("resume with: ", 1)[1])
    assert suggested[suggested.index("-o") + 1] == name and suggested[-1] == "--resume"
    monkeypatch.undo()
    monkeypatch.chdir(cwd)
    rc, _, err = run(capsys, *suggested[1:])
    assert rc == 0, err
    assert sorted(p.name for p in (cwd / "sub dir").iterdir()) == ["-odd;$(touch MARKER).mp4"]
