"""The web page keeps the command line's promises: a bad upload is the command line's one line (never
Gradio's "Could not preprocess input component"), and Ctrl-C or SIGTERM stop a real ``dreamvideo ui``
within 2 s whatever runs (a render mid-frame, a plan), leaving no ffmpeg behind. No browser: the
page's API through gradio_client, and the command in a subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreamvideo import cli
from helpers import ROOT, photo, tiny_model_file
from test_guarantees_files import png_bomb

pytest.importorskip("gradio")
client_mod = pytest.importorskip("gradio_client")

FAST = {"octaves": 1, "steps": "1", "layers": "conv2", "weights": "random"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ui-hostile")
    tiny_model_file(d / "tiny.keras")
    Image.fromarray(np.ascontiguousarray(photo("chelsea")[::4, ::4][:64, :96])).save(d / "cat.png")
    png_bomb(d / "bomb.png", 30000, 30000)
    (d / "text.png").write_text("not an image, a text file renamed\n")
    (d / "empty.png").write_bytes(b"")
    data = (d / "cat.png").read_bytes()
    (d / "trunc.png").write_bytes(data[: len(data) * 2 // 3])
    return d


def cli_line(files: Path, name: str, monkeypatch) -> str:
    """What ``dreamvideo image NAME -o out.png`` prints, run in the files' folder (so it names the file as
    the page names an upload)."""
    import contextlib
    import io

    monkeypatch.chdir(files)
    with contextlib.redirect_stderr(io.StringIO()) as buf:
        rc = cli.main(["image", name, "-o", "../out.png", "--model", "tiny.keras", "--layers", "conv2", "--steps",
                       "1", "--octaves", "1", "--precision", "float32", "-q"])
    err = buf.getvalue().strip()
    assert rc == 2 and err.count("\n") == 0 and err.startswith("dreamvideo: error: "), err
    return err.removeprefix("dreamvideo: error: ")


@pytest.mark.parametrize("name", ["text.png", "bomb.png", "trunc.png", "empty.png"])
def test_bad_upload_is_the_command_lines_line(files, tmp_path, monkeypatch, name):
    from dreamvideo import ui

    want = cli_line(files, name, monkeypatch)
    with ui.start("127.0.0.1", free_port(), tmp_path / "out", {**FAST, "model": str(files / "tiny.keras")},
                  quiet=True) as srv:
        client = client_mod.Client(srv.url, verbose=False)
        for api, args in [("/dream_image", ()), ("/zoom", (None,))]:
            t0 = time.monotonic()
            with pytest.raises(client_mod.exceptions.AppError) as got:
                client.predict(client_mod.handle_file(str(files / name)), *args, api_name=api)
            assert str(got.value) == want, api
            assert "preprocess" not in str(got.value) and time.monotonic() - t0 < 20
    assert not any((tmp_path / "out").glob("*.png"))  # no dream of it


# ---------------------------------------------------------------- stopping the page


def children(pid: int) -> list[int]:
    """Every live descendant of ``pid``."""
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                state, ppid = (d / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if state != "Z":
                parents[int(d.name)] = int(ppid)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [k for k, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def page_process(files: Path, out: Path, port: int, slow_plan: bool = False) -> subprocess.Popen:
    """``dreamvideo ui`` serving on ``port``; ``slow_plan``: its plans hang for a minute (as a plan of an
    unbounded setting once did), to stop the page while one runs."""
    argv = ["ui", "--port", str(port), "--outputs", str(out), "--model", str(files / "tiny.keras"), "--weights", "random"]
    prelude = ("import time, dreamvideo.ui.api as a; slow = a.plan; "
               "a.plan = lambda *x, **k: (time.sleep(60), slow(*x, **k))[1]; " if slow_plan else "")
    code = f"import sys; {prelude}from dreamvideo.cli import main; sys.exit(main({argv!r}))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=env)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the page did not start: {proc.stderr.read()}")
            time.sleep(0.5)


def stop(proc: subprocess.Popen, sig) -> tuple[int, float, str]:
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        rc = proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    took = time.monotonic() - t0
    return rc, took, proc.stderr.read()


def test_ctrl_c_stops_the_page_within_2s_while_a_render_runs(files, tmp_path):
    port = free_port()
    proc = page_process(files, tmp_path / "out", port)
    try:
        client = client_mod.Client(f"http://127.0.0.1:{port}/", verbose=False)
        # Frames of a few seconds each: the Ctrl-C comes mid-frame.
        client.submit(None, None, from_noise="768x768", frames=200, steps="60", octaves=2, api_name="/zoom")
        deadline = time.monotonic() + 180
        while not list((tmp_path / "out").glob(".*.dreamwork/frames/*.png")):
            assert time.monotonic() < deadline and proc.poll() is None, "the render never made a frame"
            time.sleep(0.2)
        time.sleep(0.5)
        kids = children(proc.pid)
        assert kids, "the render's ffmpeg should be running"
        rc, took, err = stop(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130 and took < 2.0, (rc, took, err)
    assert "stopping the page" in err and "Traceback" not in err, err
    time.sleep(0.5)
    assert [k for k in kids if alive(k)] == []  # no ffmpeg left behind
    # The finished frames stay in the work folder: the same render started again resumes there.
    assert list((tmp_path / "out").glob(".*.dreamwork/frames/*.png"))


def test_sigterm_stops_the_page_within_2s_while_a_plan_runs(files, tmp_path):
    port = free_port()
    proc = page_process(files, tmp_path / "out", port, slow_plan=True)
    try:
        client = client_mod.Client(f"http://127.0.0.1:{port}/", verbose=False)
        answer = {}

        def plan():
            try:
                answer["value"] = client.predict(None, None, from_noise="64x64", frames=10, api_name="/plan_zoom")
            except Exception as e:  # the page went away mid-plan
                answer["error"] = e

        threading.Thread(target=plan, daemon=True).start()
        time.sleep(3)
        assert proc.poll() is None and not answer, answer
        rc, took, err = stop(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 143 and took < 2.0, (rc, took, err)
    assert "Traceback" not in err, err


@pytest.mark.browser
def test_the_page_shows_the_command_lines_line_for_a_text_file_named_png(files, tmp_path, monkeypatch):
    """In a browser: a text file renamed .png uploaded as the photo; Dream shows the command line's line (a
    bomb is left to gradio_client above: the browser itself would decode it to show it)."""
    from test_ui_browser import ARGS, CHROMIUM

    from dreamvideo import ui

    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright: pip install playwright")
    if not CHROMIUM:
        pytest.skip("needs Chromium: apt-get install -y chromium")
    want = cli_line(files, "text.png", monkeypatch)
    with ui.start("127.0.0.1", free_port(), tmp_path / "out", {**FAST, "model": str(files / "tiny.keras")},
                  quiet=True) as srv, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.set_default_timeout(60_000)
        tab.goto(srv.url, wait_until="domcontentloaded")
        tab.get_by_text("Render queue").wait_for()
        tab.locator("#image-in input[type=file]").set_input_files(str(files / "text.png"))
        tab.wait_for_timeout(1000)
        tab.locator("#image-go").click()
        tab.get_by_text(want).first.wait_for()
        assert tab.get_by_text("Could not preprocess").count() == 0
        browser.close()
