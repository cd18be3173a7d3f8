"""The command line's live page in Chromium: the controls beside the picture. Moving the step-size
slider to 0 makes the shown frames the source's; a scene button switches the scene and the dream
comes back."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import ffmpeg
from helpers import tiny_model_file
from test_ui_browser import ARGS, CHROMIUM, _free_port

pytestmark = pytest.mark.browser


def test_page_slider_and_scene_button_change_the_dream(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright: pip install playwright")
    if not CHROMIUM:
        pytest.skip("needs Chromium: apt-get install -y chromium")
    from dreamvideo.realtime.rig import Rig
    from dreamvideo.realtime.session import LiveSession
    from dreamvideo.settings import LiveSettings, PlaySettings, split_options

    tiny_model_file(tmp_path / "tiny.keras")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-frames:v", "1", tmp_path / "still.png")
    ffmpeg("-loop", "1", "-framerate", "10", "-i", tmp_path / "still.png", "-t", "4", "-c:v", "libx264", "-qp", "0",
           "-pix_fmt", "yuv444p", tmp_path / "still.mp4")
    (tmp_path / "wild.toml").write_text('step_size = 0.2\nsteps = 3\n')
    port = _free_port()
    live = LiveSettings(page_port=port, loop=True, duration=120)
    sections = split_options("video", dict(model=str(tmp_path / "tiny.keras"), layers="conv2:1.0", steps="2",
                                           octaves=1, step_size="0.05", jitter=0, coherence="none"))
    session = LiveSession(str(tmp_path / "still.mp4"), live, sections,
                          rig=Rig(PlaySettings(scene=(f"wild={tmp_path / 'wild.toml'}",))))
    shown, stop = [], threading.Event()

    def play():
        for _, frame in session:
            shown.append(frame)
            if stop.is_set():
                break

    t = threading.Thread(target=play, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 120
        while not session.page_url and time.monotonic() < deadline:
            time.sleep(0.05)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.set_default_timeout(60_000)
            # Opened while the model loads: the controls come once the run plays.
            page.goto(session.page_url, wait_until="domcontentloaded")
            while len(shown) < 15 and time.monotonic() < deadline:
                time.sleep(0.1)
            source = shown[0].astype(np.float32)  # shown before any dream

            def strength():
                time.sleep(1.5)  # a dream or more lands
                return float(np.abs(shown[-1].astype(np.float32) - source).mean())

            dreamed = strength()
            assert dreamed > 2.0
            slider = page.locator("#slider-step_size")
            slider.wait_for()
            assert slider.get_attribute("max") == "1" and page.locator("#text-layers").input_value() == "conv2:1.0"
            slider.fill("0")  # moved and let go
            page.get_by_text("step_size = 0 (page)").wait_for()
            assert strength() < 1.0  # step size 0: the source's frames
            page.locator("#scene-wild").click()
            page.get_by_text("scene wild (page)").wait_for()
            assert strength() > dreamed + 1.0  # the scene's stronger dream
            browser.close()
    finally:
        stop.set()
        t.join(30)
    assert session.rig.controls.values["step_size"] == "0.2"
