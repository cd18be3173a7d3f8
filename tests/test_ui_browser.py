"""The web page in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright).

The test starts the page itself on a free localhost port with a tiny random model, uploads a
photo and dreams it; uploads an image and a song, sees the plan plot, renders the zoom and plays
the file. Screenshots go to $DREAMVIDEO_SCREENSHOTS (default: the system temp folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from helpers import ui_media

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(os.environ.get("DREAMVIDEO_SCREENSHOTS", tempfile.gettempdir()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return ui_media(tmp_path_factory.mktemp("ui-browser"), 2)


@pytest.fixture(scope="module")
def server(media, tmp_path_factory):
    pytest.importorskip("gradio", reason='the web page needs gradio: pip install "dreamvideo[ui]"')
    from dreamvideo import ui

    start = {"model": str(media / "tiny.keras"), "weights": "random", "layers": "conv2:1.0", "octaves": 1,
             "steps": "2"}
    with ui.start("127.0.0.1", _free_port(), tmp_path_factory.mktemp("ui-outputs"), start, quiet=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright: pip install playwright")
    if not CHROMIUM:
        pytest.skip("needs Chromium: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def tab(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(server.url, wait_until="domcontentloaded")
    page.get_by_text("Render queue").wait_for()
    yield page
    page.close()


def _image_src(page, elem_id: str, timeout=120_000) -> str:
    img = page.locator(f"#{elem_id} img").first
    img.wait_for(state="visible", timeout=timeout)
    page.wait_for_function("id => { const i = document.querySelector(`#${id} img`); "
                           "return i && i.complete && i.naturalWidth > 0; }", arg=elem_id, timeout=timeout)
    return img.get_attribute("src")


def test_layer_picker_lists_the_models_layers(tab):
    # The list comes from the page's load event (the model is loaded in the worker).
    tab.wait_for_function("() => document.querySelector('#layers textarea, #layers input')?.placeholder"
                          ".includes('conv2:1.0')")
    tab.locator("#layer-pick input").click()
    options = tab.locator("#layer-pick [role=option]")
    options.first.wait_for()
    texts = [o.get_attribute("aria-label") for o in options.all()]
    tab.screenshot(path=str(SHOTS / "dreamvideo-ui-layers.png"))
    assert texts == ["conv1  (Conv2D, 8 ch)", "pool1  (AveragePooling2D, 8 ch)", "conv2  (Conv2D, 16 ch)",
                     "pool2  (AveragePooling2D, 16 ch)", "conv3  (Conv2D, 24 ch)"], texts
    assert tab.locator("[data-testid=status-tracker] .error").count() == 0  # no event's "Error" badge
    options.filter(has_text="conv3").click()  # picking fills the layers box (a round trip to the server)
    tab.wait_for_function("() => document.querySelector('#layers textarea, #layers input').value === 'conv3:1.0'")


def test_upload_a_photo_dream_it_see_the_result(tab, media):
    tab.locator("#image-in input[type=file]").set_input_files(str(media / "cat.png"))
    _image_src(tab, "image-in")  # the original is shown once uploaded
    tab.locator("#image-go").click()
    src = _image_src(tab, "image-out")
    tab.get_by_text("done in").wait_for()
    tab.screenshot(path=str(SHOTS / "dreamvideo-ui-image.png"), full_page=True)
    size = tab.evaluate("() => { const i = document.querySelector('#image-out img'); "
                        "return [i.naturalWidth, i.naturalHeight]; }")
    assert size == [151, 100], size  # the dream, at the photo's size
    assert tab.request.get(src).body()[:8] == b"\x89PNG\r\n\x1a\n"


def test_image_and_song_plan_then_render_a_playable_zoom(tab, media, tmp_path):
    tab.get_by_role("tab", name="Zoom and music video").click()
    tab.locator("#zoom-image input[type=file]").set_input_files(str(media / "cat.png"))
    tab.locator("#zoom-song input[type=file]").set_input_files(str(media / "song.wav"))
    _image_src(tab, "zoom-image")
    tab.locator("#zoom-song audio, #zoom-song .waveform-container, #zoom-song button").first.wait_for()
    tab.locator("#zoom-plan").click()
    _image_src(tab, "zoom-plot")
    # Frames 0 with a song: as long as the song (2 s at 25 fps).
    tab.locator("#zoom-summary").get_by_text("50 frames, 2.00 s at 25 fps").wait_for()
    tab.screenshot(path=str(SHOTS / "dreamvideo-ui-plan.png"), full_page=True)

    tab.locator("#zoom-go").click()
    video = tab.locator("#zoom-out video")
    video.wait_for(state="attached", timeout=180_000)
    tab.wait_for_function("() => { const v = document.querySelector('#zoom-out video'); "
                          "return v && v.readyState >= 1 && v.duration > 0; }", timeout=60_000)
    duration = tab.evaluate("() => document.querySelector('#zoom-out video').duration")
    assert 1.8 < duration < 2.3, duration  # the browser plays it: 50 frames at 25 fps
    tab.get_by_text("done in").first.wait_for()
    tab.screenshot(path=str(SHOTS / "dreamvideo-ui-zoom.png"), full_page=True)

    data = tab.request.get(video.get_attribute("src")).body()
    (tmp_path / "zoom.mp4").write_bytes(data)
    from dreamvideo.io import VideoReader

    with VideoReader(tmp_path / "zoom.mp4") as r:
        assert sum(1 for _ in r) == 50
    assert "done" in tab.locator("#queue").inner_text()


def test_closing_the_tab_does_not_stop_the_render(browser, server, media):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(server.url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Zoom and music video").click()
    page.locator("#zoom-image input[type=file]").set_input_files(str(media / "cat.png"))
    _image_src(page, "zoom-image")
    page.locator("#zoom-frames input").fill("40")
    before = {j["id"] for j in server.page.worker.snapshot()}
    page.locator("#zoom-go").click()
    page.locator("#zoom-status").get_by_text("Job #").wait_for()
    page.close()  # the tab goes; the render stays in the page's queue
    job = next(server.page.worker.get(j["id"]) for j in server.page.worker.snapshot() if j["id"] not in before)
    assert job.wait(120) and job.state == "done", job.message
    from dreamvideo.io import VideoReader

    with VideoReader(job.result) as r:
        assert sum(1 for _ in r) == 40
