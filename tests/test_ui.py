"""The web page's functions, without a browser: uploads, options, the render queue, cancel and
resume, plans that follow the song, presets; and its API through gradio_client.

A tiny random model (tests/helpers.py) keeps every dream to a fraction of a second.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from dreamvideo.errors import UserError

from helpers import ROOT, ui_media

FAST = {"octaves": 1, "steps": "2", "layers": "conv2:1.0", "weights": "random"}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = ui_media(tmp_path_factory.mktemp("ui-media"), 3)
    for name in ("notes.txt", "notes.mp3", "notes.mp4"):
        (d / name).write_text("not a picture, a song or a clip")
    (d / "fake.png").write_bytes(b"\x89PNG but not really")
    return d


@pytest.fixture(scope="module")
def page(media, tmp_path_factory):
    from dreamvideo.ui.page import Page

    p = Page(tmp_path_factory.mktemp("ui-out"), {**FAST, "model": str(media / "tiny.keras")})
    yield p
    p.worker.shutdown()


def frame_count(path) -> int:
    from dreamvideo.io import VideoReader

    with VideoReader(path) as r:
        return sum(1 for _ in r)


# ---------------------------------------------------------------- uploads and options

def test_dream_image_writes_a_dream_beside_the_original(page, media):
    import imageio.v3 as iio

    job = page.submit_image(media / "cat.png")
    assert job.wait(120) and job.state == "done", job.message
    out = iio.imread(job.result)
    src = iio.imread(media / "cat.png")
    assert job.result.parent == page.outputs and job.result.suffix == ".png"
    assert out.shape == src.shape
    assert np.abs(out.astype(int) - src).mean() > 0.5  # it dreamed
    again = page.submit_image(media / "cat.png")  # same upload and settings: the same file, not made again
    assert again.wait(120) and again.result == job.result and "not rendered again" in again.message
    other = page.submit_image(media / "cat.png", {"seed": 3})
    assert other.wait(120) and other.result != job.result and other.message == ""


@pytest.mark.parametrize("name, what, needle", [
    ("notes.txt", "image", "not a supported image file"),
    ("fake.png", "image", "cannot read image fake.png: not a decodable image"),
    ("cat.png", "audio", "not a supported audio file"),
    ("missing.png", "image", "is gone; upload it again"),
    ("notes.mp3", "audio", "no audio ffmpeg can read in 'notes.mp3'; upload a song"),
    ("notes.mp4", "video", "no video ffmpeg can read in 'notes.mp4'; upload a clip"),
])
def test_bad_uploads_are_one_clear_line(page, media, name, what, needle):
    with pytest.raises(UserError, match=needle):
        page.check_upload(media / name, what)


def test_upload_size_limit_and_origin(media, tmp_path, monkeypatch):
    from dreamvideo.ui import page as page_mod

    p = page_mod.Page(tmp_path / "out", FAST, upload_roots=[tmp_path / "uploads"], worker=_NoWorker())
    with pytest.raises(UserError, match="must be a file uploaded to the page"):
        p.check_upload(media / "cat.png", "image")  # a path that was not uploaded is never read
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "cat.png").write_bytes((media / "cat.png").read_bytes())
    monkeypatch.setitem(page_mod.LIMITS, "image", 1000)
    with pytest.raises(UserError, match=r"takes image files up to 0 MB"):
        p.check_upload(tmp_path / "uploads" / "cat.png", "image")


def test_only_offered_models_and_weights_are_used(page):
    with pytest.raises(UserError, match="model '/etc/passwd' is not one the page offers"):
        page.options("image", {"model": "/etc/passwd"})
    with pytest.raises(UserError, match="weights"):
        page.options("zoom", {"weights": "/tmp/x.weights.h5"})
    with pytest.raises(UserError, match="steps must be a whole number"):
        page.options("image", {"steps": "1+beat"})  # a schedule is for video and zoom
    opts, seed, max_side = page.options("zoom", {"steps": "2 + 2*beat", "seed": 7, "max_side": 0})
    assert opts["steps"] == "2 + 2*beat" and seed == 7 and max_side is None


# ---------------------------------------------------------------- plans and the song

def test_layer_list_of_the_model_for_the_picker(page, media):
    default, rows = page.layers(str(media / "tiny.keras"), "random")  # loaded in the worker
    assert default == "conv2:1.0"
    assert rows == ["conv1  (Conv2D, 8 ch)", "pool1  (AveragePooling2D, 8 ch)", "conv2  (Conv2D, 16 ch)",
                    "pool2  (AveragePooling2D, 16 ch)", "conv3  (Conv2D, 24 ch)"]


def test_zoom_with_a_song_and_no_frame_count_follows_the_song(page, media):
    res = page.plan_zoom(media / "cat.png", media / "song.wav", {"zoom_frames": 0, "fps": 8, "zoom": "1 + 0.04*rms"})
    assert res["frames"] == 24  # 3 s x 8 fps
    assert res["plot"].is_file() and res["plot"].parent == page.outputs
    assert "audio rms" in res["curves"] and "24 frames, 3.00 s at 8 fps" in res["summary"]
    assert page.plan_zoom(media / "cat.png", None, {"zoom_frames": 0})["frames"] == 100  # no song: the default
    assert page.plan_zoom(media / "cat.png", media / "song.wav", {"zoom_frames": 5})["frames"] == 5


def test_preview_contact_sheet_goes_through_the_worker(page, media):
    res = page.plan_zoom(media / "cat.png", None, {"zoom_frames": 4}, preview=True, preview_frames=2,
                         preview_size=64)
    assert res["preview"].is_file()
    assert any(j["kind"] == "preview" and j["state"] == "done" for j in page.worker.snapshot())


# ---------------------------------------------------------------- the queue: progress, cancel, resume

def test_render_cancelled_midway_is_a_playable_partial_and_resumes(page, media, monkeypatch):
    from dreamvideo.ui import worker as worker_mod

    seen = []
    original = worker_mod.Job.progress

    def progress(job, done, total):  # the page's Cancel, pressed as the third frame finishes
        seen.append((done, total))
        if done == 3 and not job.resume:
            page.worker.cancel(job.id)
        return original(job, done, total)

    monkeypatch.setattr(worker_mod.Job, "progress", progress)
    values = {"zoom_frames": 8, "fps": 8}
    job = page.submit_zoom(media / "cat.png", None, values)
    assert job.wait(120)
    assert job.state == "interrupted", job.message
    assert "3/8 frames" in job.message and job.result.is_file()
    assert frame_count(job.result) == 3  # finalized and playable
    assert seen[0] == (0, 8) and seen[-1] == (3, 8)
    html = page.queue_html()
    assert "interrupted" in html and "Resume continues it" in html
    assert page.resumable_jobs() == [(f"#{job.id} zoom: cat.png (3/8)", job.id)]

    again = page.submit_zoom(media / "cat.png", None, values)  # Render again: it resumes
    assert again.resume and again.wait(120) and again.state == "done", again.message
    assert again.result == job.result and frame_count(again.result) == 8
    assert seen[-1] == (8, 8) and (3, 8) in seen[seen.index((3, 8)) + 1:]  # resumed from frame 3
    assert f"continued by job #{again.id}" in job.message and page.resumable_jobs() == []
    assert page.finished_outputs().count(str(job.result)) == 1


def test_queue_runs_one_at_a_time_and_cancels_a_queued_job(tmp_path):
    from dreamvideo.ui.worker import Worker

    w = Worker()
    gate, running = threading.Event(), []

    def slow(progress, resume):
        running.append(1)
        progress(0, 2)
        gate.wait(10)
        progress(1, 2)
        progress(2, 2)
        return tmp_path / "a.mp4"

    a = w.submit("zoom", "a", tmp_path / "a.mp4", slow)
    b = w.submit("zoom", "b", tmp_path / "b.mp4", slow)
    c = w.submit("zoom", "c", tmp_path / "c.mp4", slow)
    for _ in range(100):
        if a.state == "running":
            break
        threading.Event().wait(0.02)
    assert [a.state, b.state, c.state] == ["running", "queued", "queued"]
    assert w.cancel(b.id) and b.state == "cancelled"
    gate.set()
    assert c.wait(10) and a.state == c.state == "done" and len(running) == 2
    assert not w.cancel(a.id)  # finished: nothing to cancel
    w.shutdown()


def test_eta_from_the_rate_of_this_run(tmp_path):
    from dreamvideo.ui.worker import Job, format_seconds

    j = Job(1, "zoom", "x", tmp_path / "x.mp4", None, state="running")
    j._first = (0.0, 4)  # resumed at frame 4
    j.done, j.total = 4, 10
    assert j.eta is None  # nothing rendered in this run yet
    import time

    j._first = (time.monotonic() - 6.0, 4)
    j.done = 7  # 3 frames in 6 s -> 3 left take 6 s
    assert 5.5 < j.eta < 6.6
    assert format_seconds(75) == "01:15" and format_seconds(None) == "--:--"


# ---------------------------------------------------------------- presets

def test_presets_apply_and_save_round_trip(page):
    pulse = page.apply_preset("pulse")
    assert "beat" in pulse["zoom"]
    path = page.save_preset("my-look", "zoom", {"zoom": "1 + 0.1*beat", "angle": "0.5", "octaves": 2})
    assert path.parent == page.outputs / "presets" and "my-look" in page.preset_choices()
    back = page.apply_preset("my-look")
    assert back["zoom"] == "1 + 0.1*beat" and back["angle"] == "0.5" and back["octaves"] == 2
    with pytest.raises(UserError, match="built-in preset"):
        page.save_preset("pulse", "zoom", {})
    with pytest.raises(UserError, match="a preset name is letters"):
        page.save_preset("../escape", "zoom", {})
    with pytest.raises(UserError, match="unknown preset"):
        page.apply_preset("../../etc/passwd")


def test_page_starts_from_a_preset_then_flags(media, tmp_path):
    from dreamvideo.ui.page import Page

    p = Page(tmp_path, {"steps": "3"}, preset="pulse", worker=_NoWorker())
    assert "beat" in p.start["zoom"] and p.start["steps"] == "3"
    (tmp_path / "mine.toml").write_text('zoom = "1.2"\n[dream]\noctaves = 2\n')
    p = Page(tmp_path / "out", preset=str(tmp_path / "mine.toml"), worker=_NoWorker())  # --preset FILE
    assert p.start["zoom"] == "1.2" and p.start["octaves"] == 2


# ---------------------------------------------------------------- the command and the API

def test_without_gradio_one_line_naming_the_install(monkeypatch, capsys):
    from dreamvideo import cli

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now fails
    assert cli.main(["ui", "--port", "7999"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "dreamvideo[ui]"' in err and len(err.strip().splitlines()) == 1


def test_ui_flags_become_starting_values(monkeypatch):
    from dreamvideo import cli, ui

    got = {}
    monkeypatch.setattr(ui, "_require_gradio", lambda: None)
    monkeypatch.setattr(ui, "launch", lambda *a: got.update(args=a) or 0)
    assert cli.main(["ui", "--model", "mobilenet_v2", "--steps", "5", "--jitter", "8", "--preset", "pulse",
                     "--outputs", "/tmp/o"]) == 0
    host, port, outputs, start, preset, fixed = got["args"]
    assert (host, port, outputs, preset) == ("127.0.0.1", 7860, "/tmp/o", "pulse")
    assert start == {"model": "mobilenet_v2", "steps": "5"} and fixed == {"jitter": 8}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_host_other_than_localhost_warns():
    from dreamvideo.ui import host_warning

    assert host_warning("127.0.0.1", 7860) == "" and host_warning("localhost", 7860) == ""
    assert "warning: the page listens on 0.0.0.0: anyone who can reach this machine on port 7860" in \
        host_warning("0.0.0.0", 7860)


def test_api_with_only_the_input_file(media, clips, tmp_path):
    pytest.importorskip("gradio")
    client_mod = pytest.importorskip("gradio_client")
    from dreamvideo import ui

    with ui.start("127.0.0.1", free_port(), tmp_path / "out", {**FAST, "model": str(media / "tiny.keras")},
                  quiet=True) as srv:
        client = client_mod.Client(srv.url, verbose=False)
        assert {"/dream_image", "/dream_video", "/zoom"} <= set(client.view_api(print_info=False,
                                                                               return_format="dict")["named_endpoints"])
        # The docs' three lines, as written there.
        readme = (ROOT / "docs" / "web-page.md").read_text()
        snippet = readme.split("from gradio_client import Client, handle_file", 1)[1].split("```", 1)[0]
        scope = {}
        exec("from gradio_client import Client, handle_file" + snippet.replace("http://127.0.0.1:7860/", srv.url)
             .replace('"cat.jpg"', repr(str(media / "cat.png"))), scope)
        image, status = scope["dream"], scope["status"]
        assert "done" in status
        import imageio.v3 as iio

        assert iio.imread(image).shape == iio.imread(media / "cat.png").shape
        video, status = client.predict(client_mod.handle_file(str(media / "cat.png")),
                                          client_mod.handle_file(str(media / "song.wav")), api_name="/zoom")
        assert frame_count(video["video"] if isinstance(video, dict) else video) == 75  # 3 s at 25 fps
        video, status = client.predict(client_mod.handle_file(str(clips["clip"])), api_name="/dream_video")
        assert "done" in status and frame_count(video["video"] if isinstance(video, dict) else video) == 24
        # Named parameters, as the page's controls are called; a mistake comes back as its one line.
        params = [p["parameter_name"] for p in client.view_api(print_info=False, return_format="dict")
                  ["named_endpoints"]["/zoom"]["parameters"]]
        assert params[:4] == ["image", "song", "model", "weights"] and "frames" in params and "zoom" in params
        with pytest.raises(Exception, match="upload a song first"):
            client.predict(client_mod.handle_file(str(clips["clip"])), audio_mode="replace", api_name="/dream_video")


class _NoWorker:
    def submit(self, *a, **k):
        raise AssertionError("no job expected")

    def shutdown(self):
        pass


def test_command_serves_until_sigterm_then_stops_cleanly(media, tmp_path):
    pytest.importorskip("gradio")
    import os
    import signal
    import time
    import urllib.request

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "dreamvideo.ui", "--port", str(port), "--outputs",
                             str(tmp_path / "out"), "--model", str(media / "tiny.keras"), "--weights", "random"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    assert r.status == 200 and b"dreamvideo" in r.read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 143
        err = proc.stderr.read()
        assert f"the page is at http://127.0.0.1:{port}/" in err and "stopping the page" in err
        with pytest.raises(OSError):  # the server went with the command
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_video_keeps_or_drops_its_sound(page, clips):
    from conftest import audio_samples

    kept = page.submit_video(clips["clip"], {"video_frames": 6})
    silent = page.submit_video(clips["clip"], {"video_frames": 6, "audio_mode": "none"})
    assert silent.wait(120) and kept.state == silent.state == "done", (kept.message, silent.message)
    assert frame_count(kept.result) == 6 and frame_count(silent.result) == 6
    assert audio_samples(kept.result).size > 0 and audio_samples(silent.result).size == 0
    with pytest.raises(UserError, match="upload a song first"):
        page.submit_video(clips["clip"], {"audio_mode": "replace"})


def _cli():
    import importlib

    try:
        cli = importlib.import_module("dreamvideo.cli")
    except ImportError:
        cli = importlib.import_module("cli")
    if "ui" not in cli.COMMANDS:
        pytest.skip("`dreamvideo ui` is not in the command table yet (cli.COMMANDS)")
    return cli


def test_cli_ui_without_gradio_exits_2_naming_the_install(monkeypatch, capsys):
    cli = _cli()
    monkeypatch.setitem(sys.modules, "gradio", None)
    assert cli.main(["ui", "--preset", "pulse"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install "dreamvideo[ui]"' in err


def test_cli_ui_takes_model_flags_and_preset(monkeypatch):
    from dreamvideo import ui

    cli = _cli()
    got = {}
    monkeypatch.setattr(ui, "_require_gradio", lambda: None)
    monkeypatch.setattr(ui, "launch", lambda *a: got.update(args=a) or 0)
    assert cli.main(["ui", "--port", "7999", "--preset", "pulse", "--octaves", "2", "--precision", "float32"]) == 0
    host, port, outputs, start, preset, fixed = got["args"]
    assert (host, port, preset, start, fixed) == ("127.0.0.1", 7999, "pulse", {"octaves": 2},
                                                 {"precision": "float32"})
