"""What dreamvideo guarantees (docs/guarantees.md), as a user sees it:

1. No file a render reads is ever written, moved or deleted by it: the input (a file, a folder or glob of
   frames), the ``--audio`` soundtrack, the ``--guide`` image, a ``--model``/``--weights``/``--preset`` file,
   another batch job's files; by path, symbolic link or hard link, and no temporary name of the output.
   Refused with one line naming both, exit 2, before any model loads (test_*_is_refused...).
2. A resume is exact or refused: a changed soundtrack, a changed frame of a folder input, a changed setting
   are refused with one line naming what changed (test_resume_after_...).
3. A damaged work folder is one line, exit 1, naming the folder and the fix; no libpng line (test_damaged_...).
4. A source that ends early keeps the frames done as a playable output, says so in one line with the resume
   command, and that command finishes the render once the file is whole (test_a_truncated_clip_...).

Whole commands run as real subprocesses (``python -m dreamvideo.cli``, the working folder a fresh tmp folder);
the partial renders that resumes start from are made in-process (a Ctrl-C at a chosen frame).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ffmpeg, ffmpeg_children
from dreamvideo import cli, io
from dreamvideo.coherence import VideoStepper
from helpers import ROOT, photo, tiny_model_file

CLIP_FRAMES = 36  # 96x64 @12 fps, 3 s, with a tone


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A tiny model, a photo, a guide image, a clip, a song, a folder of frames and a preset, once."""
    d = tmp_path_factory.mktemp("made")
    tiny_model_file(d / "tiny.keras")
    Image.fromarray(np.ascontiguousarray(photo("chelsea")[::4, ::4][:64, :96])).save(d / "cat.png")
    Image.fromarray(np.ascontiguousarray(photo("coffee")[::8, ::8][:48, :64])).save(d / "guide.png")
    src = ["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=12", "-f", "lavfi", "-i", "sine=frequency=440",
           "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-movflags", "+faststart"]
    ffmpeg(*src, d / "clip.mp4")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=330:duration=3", "-c:a", "pcm_s16le", d / "song.wav")
    (d / "seq").mkdir()
    base = np.ascontiguousarray(photo("astronaut")[::8, ::8][:48, :64])
    for i in range(8):
        frame = np.roll(base, 2 * i, axis=1)
        Image.fromarray(frame).save(d / "seq" / f"frame_{i + 1:06d}.png")
    (d / "look.toml").write_text('[dream]\noctaves = 1\n')
    assert io.probe_video(d / "clip.mp4").nframes == CLIP_FRAMES
    return d


@pytest.fixture
def here(made, tmp_path) -> Path:
    """A fresh working folder holding copies of the made files (so each test may change its own)."""
    import shutil

    for p in made.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, tmp_path / p.name)
    return tmp_path


FAST = ["--model", "tiny.keras", "--layers", "conv2", "--steps", "2", "--octaves", "1", "--precision", "float32",
        "-q"]


def dreamvideo_cmd(here: Path, *argv, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "dreamvideo.cli", *map(str, argv)], cwd=here, env=env,
                          capture_output=True, text=True, timeout=timeout)


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (links as their targets' names), by relative path."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = None
    return out


def temporaries(folder: Path, inputs=()) -> list[str]:
    """What a render leaves under temporary names (``inputs``: files so named on purpose)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name not in inputs
                  and (".tmp-" in p.name or ".old-" in p.name or p.name.endswith(".tmp.png")))


def one_line(p: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The one line a user sees on stderr, after checking the exit code, that there is no other line
    (no traceback, no libpng or Python warning) and that it holds every needle."""
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == code, (p.returncode, p.stderr)
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr + p.stdout and "libpng" not in p.stderr and "Warning" not in p.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def refused(here: Path, *argv, needles=(), inputs=()) -> str:
    """Run a command that must be refused before it writes anything: exit 2, one line naming both
    roles, every file as it was, nothing added (no work folder, no temporaries), no ffmpeg left."""
    before = snapshot(here)
    p = dreamvideo_cmd(here, *argv)
    line = one_line(p, 2, "dreamvideo: error: ", *needles)
    assert snapshot(here) == before, "a file was written, moved or deleted"
    assert temporaries(here, inputs) == [] and ffmpeg_children() == []
    return line


# ============================================================================ 1. no input is ever written


def test_a_glob_input_as_the_output_folder_is_refused(here):
    """`video 'seq/*.png' -o seq/` once replaced the source PNGs by their dreams."""
    refused(here, "video", "seq/*.png", "-o", "seq/", *FAST,
            needles=("the output seq/ is a folder that holds seq/frame_000001.png, a frame of the input seq/*.png",
                     "choose another output folder"))


def test_a_folder_input_as_the_output_folder_is_refused(here):
    refused(here, "video", "seq", "-o", "seq/", *FAST, needles=("the output seq/ is the input",))


def test_an_output_folder_that_holds_the_input_folder_is_refused(here):
    (here / "work").mkdir()
    (here / "seq").rename(here / "work" / "seq")
    refused(here, "video", "work/seq", "-o", "work", *FAST,
            needles=("the output work is a folder that holds the input work/seq",))


def test_the_soundtrack_as_the_output_is_refused(here):
    (here / "dream.mp4").write_bytes((here / "clip.mp4").read_bytes())  # a song that is an mp4
    refused(here, "zoom", "cat.png", "-o", "dream.mp4", "--frames", "3", "--audio", "dream.mp4", *FAST,
            needles=("the output dream.mp4 is the --audio soundtrack; choose another output name",))
    refused(here, "video", "clip.mp4", "-o", "dream.mp4", "--audio", "dream.mp4", *FAST,
            needles=("the output dream.mp4 is the --audio soundtrack",))


def test_the_guide_image_as_the_output_is_refused(here):
    refused(here, "image", "cat.png", "-o", "guide.png", "--guide", "guide.png", *FAST,
            needles=("the output guide.png is the --guide image",))


def test_the_model_file_as_the_output_is_refused(here):
    refused(here, "image", "cat.png", "-o", "tiny.keras", *FAST, needles=("the output tiny.keras is the --model file",))


def test_a_hard_link_of_the_input_as_the_output_is_refused(here):
    os.link(here / "clip.mp4", here / "link.mp4")
    refused(here, "video", "clip.mp4", "-o", "link.mp4", *FAST,
            needles=("the output link.mp4 is the input clip.mp4 (a hard link to the same file)",))


def test_a_symbolic_link_of_the_input_as_the_output_is_refused(here):
    os.symlink("clip.mp4", here / "alias.mp4")
    refused(here, "video", "clip.mp4", "-o", "alias.mp4", *FAST,
            needles=("the output alias.mp4 is the input clip.mp4 (the same file through a symbolic link)",))
    os.symlink("seq", here / "frames")  # a folder reached through a link: its frames are the input's
    refused(here, "video", "seq/*.png", "-o", "frames/", *FAST, needles=("the output frames/ is a folder that holds",))


def test_an_input_named_like_a_temporary_of_the_output_is_refused(here):
    """A start deletes what a killed run left under the output's temporary names: never an input."""
    (here / "out.tmp-1a2b3c4d.mp4").write_bytes((here / "clip.mp4").read_bytes())
    refused(here, "video", "out.tmp-1a2b3c4d.mp4", "-o", "out.mp4", *FAST,
            needles=("the input out.tmp-1a2b3c4d.mp4 has the name of a temporary file or the work folder of the "
                     "output out.mp4",), inputs=("out.tmp-1a2b3c4d.mp4",))


def test_an_input_inside_the_outputs_work_folder_is_refused(here):
    (here / ".out.mp4.dreamwork").mkdir()
    (here / ".out.mp4.dreamwork" / "src.mp4").write_bytes((here / "clip.mp4").read_bytes())
    refused(here, "video", ".out.mp4.dreamwork/src.mp4", "-o", "out.mp4", *FAST, needles=("work folder of the output",))


def test_saving_a_preset_over_the_preset_read_is_refused(here):
    refused(here, "image", "cat.png", "-o", "out.png", "--preset", "look.toml", "--save-preset", "look.toml", *FAST,
            needles=("the --save-preset file look.toml is the --preset file; choose another preset file name",))


def test_a_plan_plot_over_its_input_is_refused(here):
    refused(here, "plan", "zoom", "cat.png", "-o", "cat.png", "--frames", "3", *FAST,
            needles=("the plot cat.png is the input",))


def _batch(here: Path, text: str) -> Path:
    (here / "out").mkdir(exist_ok=True)
    (here / "jobs.toml").write_text(text)
    return here / "jobs.toml"


def test_a_batch_where_one_jobs_output_is_another_jobs_input_is_refused(here):
    _batch(here, '[defaults]\nmodel = "tiny.keras"\nlayers = "conv2"\nsteps = "1"\noctaves = 1\n\n'
                 '[[job]]\nkind = "video"\ninput = "clip.mp4"\noutput = "out/a.mp4"\n\n'
                 '[[job]]\nkind = "video"\ninput = "out/a.mp4"\noutput = "out/b.mp4"\n')
    refused(here, "batch", "jobs.toml", "-q", needles=("jobs.toml job 1: the output", "out/a.mp4 is job 2's input"))


def test_a_batch_where_one_jobs_output_is_another_jobs_soundtrack_is_refused(here):
    (here / "out").mkdir()
    (here / "out" / "a.mp4").write_bytes((here / "clip.mp4").read_bytes())  # made by an earlier batch
    _batch(here, '[[job]]\nkind = "video"\ninput = "clip.mp4"\noutput = "out/a.mp4"\nmodel = "tiny.keras"\n\n'
                 '[[job]]\nkind = "zoom"\ninput = "cat.png"\noutput = "out/z.mp4"\naudio = "out/a.mp4"\n'
                 'model = "tiny.keras"\n')
    refused(here, "batch", "jobs.toml", "-q", needles=("jobs.toml job 1: the output", "is job 2's --audio soundtrack"))


def test_a_batch_where_two_jobs_write_one_output_is_refused(here):
    (here / "out").mkdir()
    os.symlink("out", here / "same")  # the same folder by another name
    _batch(here, '[[job]]\nkind = "image"\ninput = "cat.png"\noutput = "out/a.png"\nmodel = "tiny.keras"\n\n'
                 '[[job]]\nkind = "image"\ninput = "guide.png"\noutput = "same/a.png"\nmodel = "tiny.keras"\n')
    refused(here, "batch", "jobs.toml", "-q", needles=("jobs.toml job 2 writes same/a.png, as job 1 does",))


def test_the_python_api_and_the_web_pages_door_refuse_the_same(here, monkeypatch):
    import dreamvideo
    from dreamvideo.errors import UserError
    from dreamvideo.ui import api

    monkeypatch.chdir(here)
    before = snapshot(here)
    with pytest.raises(UserError, match=r"the output seq/ is a folder that holds seq/frame_000001\.png"):
        dreamvideo.dream_video("seq/*.png", "seq/", model="tiny.keras")
    with pytest.raises(UserError, match="the output song.wav is the `audio` soundtrack"):
        dreamvideo.zoom("cat.png", "song.wav", audio="song.wav", frames=3, model="tiny.keras")
    with pytest.raises(UserError, match="guide.png is the `guide` image; choose another output name"):
        api.run("image", here / "cat.png", here / "guide.png", seed=0, max_side=None, guide=str(here / "guide.png"),
                model="tiny.keras")
    assert snapshot(here) == before


# ============================================================================ 2. a resume is exact or refused


def _partial(here: Path, monkeypatch, capsys, argv, stop: int = 3) -> None:
    """A render of ``argv`` stopped by Ctrl-C at frame ``stop`` (in this process, cwd ``here``)."""
    monkeypatch.chdir(here)
    original = VideoStepper.dream

    def dream(self, frame):
        if frame.index == stop:
            raise KeyboardInterrupt
        return original(self, frame)

    monkeypatch.setattr(VideoStepper, "dream", dream)
    rc = cli.main([str(a) for a in argv])
    capsys.readouterr()
    monkeypatch.undo()
    assert rc == 130 and (here / ".out.mp4.dreamwork" / "frames" / "000001.png").is_file()


def _refused_resume(here: Path, argv, *needles) -> str:
    work = here / ".out.mp4.dreamwork"
    kept = {k: v for k, v in snapshot(work).items() if k != "lock"}
    line = one_line(dreamvideo_cmd(here, *argv, "--resume"), 2, "dreamvideo: error: cannot resume out.mp4: ",
                    *needles, "without --resume to start over")
    assert {k: v for k, v in snapshot(work).items() if k != "lock"} == kept  # the frames done are kept: the right files resume them still
    assert temporaries(here) == [] and ffmpeg_children() == []
    return line


def test_resume_after_changing_the_soundtrack_is_refused(here, monkeypatch, capsys):
    argv = ["video", "clip.mp4", "-o", "out.mp4", "--audio", "song.wav", "--full-frames", *FAST]
    _partial(here, monkeypatch, capsys, argv)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=550:duration=3", "-c:a", "pcm_s16le", here / "song.wav")
    _refused_resume(here, argv, "the --audio soundtrack song.wav changed since the render started")


def test_resume_after_changing_one_frame_of_a_folder_input_is_refused(here, monkeypatch, capsys):
    argv = ["video", "seq", "-o", "out.mp4", "--full-frames", *FAST]
    _partial(here, monkeypatch, capsys, argv)
    frame = here / "seq" / "frame_000005.png"
    img = np.array(Image.open(frame))
    img[:8, :8] = 0
    Image.fromarray(img).save(frame)
    _refused_resume(here, argv, "the input's frame seq/frame_000005.png changed since the render started")
    frame.unlink()
    _refused_resume(here, argv, "frame_000005.png is gone")


def test_resume_after_changing_a_setting_names_it(here, monkeypatch, capsys):
    argv = ["video", "clip.mp4", "-o", "out.mp4", "--frames", "6", "--full-frames", *FAST]
    _partial(here, monkeypatch, capsys, [*argv, "--steps", "20"])
    _refused_resume(here, [*argv, "--steps", "12"], "--steps: 20 -> 12")


def test_resume_with_another_soundtrack_names_both(here, monkeypatch, capsys):
    argv = ["video", "clip.mp4", "-o", "out.mp4", "--frames", "6", "--full-frames", *FAST]
    _partial(here, monkeypatch, capsys, [*argv, "--audio", "song.wav"])
    (here / "other.wav").write_bytes((here / "song.wav").read_bytes())
    _refused_resume(here, [*argv, "--audio", "other.wav"],
                    "the --audio soundtrack is other.wav, not song.wav as when the render started")


# ============================================================================ 3. a damaged work folder is one line


@pytest.mark.parametrize("damage", ["truncated", "other-size", "settings"])
def test_damaged_work_folder_is_one_line_naming_it(here, monkeypatch, capsys, damage):
    argv = ["video", "clip.mp4", "-o", "out.mp4", "--frames", "6", "--full-frames", *FAST]
    _partial(here, monkeypatch, capsys, argv)
    work = here / ".out.mp4.dreamwork"
    frame = work / "frames" / "000001.png"
    if damage == "truncated":
        data = frame.read_bytes()
        frame.write_bytes(data[: len(data) // 2])
        needle = "frame 000001.png is truncated"
    elif damage == "other-size":
        Image.new("RGB", (10, 12), (1, 2, 3)).save(frame)
        needle = "frame 000001.png is 10x12, not 96x64"
    else:
        (work / "settings.json").write_bytes(b"\xff\xfe not json")
        needle = "settings.json is unreadable"
    p = dreamvideo_cmd(here, *argv, "--resume")
    one_line(p, 1, f"the work folder .out.mp4.dreamwork is damaged ({needle}", "run without --resume to start over",
             "or delete .out.mp4.dreamwork")
    assert temporaries(here) == [] and ffmpeg_children() == []
    if damage != "truncated":
        return
    # The fix it names works: without --resume the render starts over and finishes.
    p = dreamvideo_cmd(here, *argv)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert sorted(x.name for x in here.iterdir() if x.name.startswith((".out", "out"))) == ["out.mp4"]


# ============================================================================ 4. a source that ends early


def test_a_truncated_clip_keeps_the_frames_done_and_resumes_once_whole(here, capsys, monkeypatch):
    whole = (here / "clip.mp4").read_bytes()
    (here / "cut.mp4").write_bytes(whole[: len(whole) // 2])  # a download cut half-way
    before = (here / "cut.mp4").read_bytes()
    argv = ["video", "cut.mp4", "-o", "out.mp4", "--seed", "5", *FAST]
    p = dreamvideo_cmd(here, *argv)
    line = one_line(p, 1, "cut.mp4 ended after ", f" of {CLIP_FRAMES} frames", "wrote the ",
                    "frames done to out.mp4", ".out.mp4.dreamwork keeps them", "resume with: ")
    done = int(line.split("ended after ")[1].split()[0])
    assert 0 < done < CLIP_FRAMES and f"wrote the {done} frames done" in line
    assert (here / "cut.mp4").read_bytes() == before
    with io.VideoReader(here / "out.mp4") as r:  # the partial output plays, with every frame decoded, and sound
        assert len(list(r)) == done
    assert io.probe_video(here / "out.mp4").has_audio
    assert temporaries(here) == [] and ffmpeg_children() == []
    suggested = shlex.split(line.split("resume with: ", 1)[1])
    assert suggested == ["dreamvideo", *argv, "--resume"]
    # The same cut file again: it ends at the same frame, the same way (nothing is lost).
    p = dreamvideo_cmd(here, *suggested[1:])
    assert one_line(p, 1, "resume with: ") == line
    # The download finishes: the command it printed carries on and gives an uninterrupted render's frames.
    (here / "cut.mp4").write_bytes(whole)
    p = dreamvideo_cmd(here, *suggested[1:])
    assert p.returncode == 0 and p.stderr == "", p.stderr
    monkeypatch.chdir(here)
    assert cli.main(["video", "clip.mp4", "-o", "ref.mp4", "--seed", "5", *FAST]) == 0
    capsys.readouterr()
    with io.VideoReader(here / "out.mp4") as a, io.VideoReader(here / "ref.mp4") as b:
        got, want = list(a), list(b)
    assert len(got) == len(want) == CLIP_FRAMES
    for i, (x, y) in enumerate(zip(got, want)):
        assert np.array_equal(x, y), f"frame {i} differs from an uninterrupted render"
    assert not (here / ".out.mp4.dreamwork").exists() and temporaries(here) == []


def test_a_truncated_clip_replaced_by_another_is_refused(here):
    whole = (here / "clip.mp4").read_bytes()
    (here / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    argv = ["video", "cut.mp4", "-o", "out.mp4", *FAST]
    one_line(dreamvideo_cmd(here, *argv), 1, "ended after")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=12", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           here / "cut.mp4")  # not the cut file completed: another clip
    one_line(dreamvideo_cmd(here, *argv, "--resume"), 2, "the input cut.mp4 changed since the render started")
