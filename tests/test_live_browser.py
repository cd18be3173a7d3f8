"""The Live tab in a real browser: Debian's Chromium (Playwright) with a fake camera playing a y4m
file of a still photo. Dreamed frames come back and differ from the camera's; a larger step size
while it runs dreams harder; Stop stops the frames. Screenshots go to $DREAMVIDEO_SCREENSHOTS."""

from __future__ import annotations

import time

import numpy as np
import pytest

from helpers import photo, tiny_model_file
from test_ui_browser import ARGS, CHROMIUM, SHOTS, _free_port

pytestmark = pytest.mark.browser

W, H = 320, 240


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    """A y4m clip of the cat photo (Chrome's fake camera wants the plain `C420` header) and a tiny model."""
    import cv2

    d = tmp_path_factory.mktemp("live-browser")
    cat = cv2.resize(photo("chelsea"), (W, H), interpolation=cv2.INTER_AREA)
    yuv = cv2.cvtColor(cat, cv2.COLOR_RGB2YUV_I420).tobytes()
    with open(d / "cam.y4m", "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F10:1 Ip A1:1 C420\n".encode())
        for _ in range(20):
            f.write(b"FRAME\n" + yuv)
    tiny_model_file(d / "tiny.keras")
    return d, cat


@pytest.fixture(scope="module")
def live_page(camera, tmp_path_factory):
    pytest.importorskip("gradio", reason='the web page needs gradio: pip install "dreamvideo[ui]"')
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright: pip install playwright")
    if not CHROMIUM:
        pytest.skip("needs Chromium: apt-get install -y chromium")
    from dreamvideo import ui

    d, _ = camera
    start = {"model": str(d / "tiny.keras"), "weights": "random", "layers": "conv2:1.0", "octaves": 1, "steps": "2",
             "step_size": "0.03"}
    fake = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={d / 'cam.y4m'}"]
    with ui.start("127.0.0.1", _free_port(), tmp_path_factory.mktemp("live-outputs"), start, quiet=True) as srv, \
            sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + fake)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.grant_permissions(["camera"])
        page = ctx.new_page()
        page.set_default_timeout(90_000)
        page.goto(srv.url, wait_until="domcontentloaded")
        page.get_by_text("Render queue").wait_for()
        yield page
        browser.close()


def _shown(page) -> tuple[str, np.ndarray]:
    import cv2

    for _ in range(20):
        src = page.locator("#live-out img").first.get_attribute("src")
        img = cv2.imdecode(np.frombuffer(page.request.get(src).body(), np.uint8), cv2.IMREAD_COLOR)
        if img is not None:
            return src, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        # Gradio's file server can answer a frame it is still writing with an empty or cut body
        # ("Too much data for declared Content-Length"); the browser shows the next frame, and so do we.
        time.sleep(0.1)
    raise AssertionError(f"the shown frame {src} never decoded")


def _strength(img, cat) -> float:
    """Mean |shown - camera| (either way round: the browser may mirror the camera)."""
    import cv2

    ref = cv2.resize(cat, img.shape[1::-1], interpolation=cv2.INTER_AREA).astype(float)
    return min(np.abs(img - ref).mean(), np.abs(img - ref[:, ::-1]).mean())


def _status(page) -> str:
    return page.locator("#live-status").inner_text()


def test_the_live_tab_dreams_the_camera_follows_the_controls_and_stops(live_page, camera):
    page, (_, cat) = live_page, camera
    page.get_by_role("tab", name="Live").click()
    page.locator("#live-start").click()
    page.wait_for_function("() => document.querySelector('#live-status').innerText.startsWith('Running')")
    page.locator("#live-in").get_by_text("Click to Access Webcam").click()
    page.locator("#live-in").get_by_text("Record").click()
    page.wait_for_function("() => { const i = document.querySelector('#live-out img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    page.wait_for_function("() => /dreamed [1-9]/.test(document.querySelector('#live-status').innerText)")
    time.sleep(2)
    _, first = _shown(page)
    assert max(first.shape[:2]) == 256  # dreamed at the tab's size
    gentle = _strength(first, cat)
    assert gentle > 1.5, gentle  # a dream, not the camera's frame
    page.screenshot(path=str(SHOTS / "live-tab.png"))

    page.get_by_label("Step size").fill("0.3")  # while it runs: the next dream uses it
    page.get_by_label("Step size").press("Tab")
    deadline = time.monotonic() + 60
    strong = gentle
    while strong < 2 * gentle and time.monotonic() < deadline:
        time.sleep(1)
        strong = _strength(_shown(page)[1], cat)
    assert strong > 2 * gentle, (gentle, strong)
    assert "source frames dropped" in _status(page)

    page.locator("#live-stop").click()
    page.wait_for_function("() => document.querySelector('#live-status').innerText.startsWith('Stopped')")
    src, _ = _shown(page)
    time.sleep(2)
    assert _shown(page)[0] == src  # no frame since Stop
    page.screenshot(path=str(SHOTS / "live-tab-stopped.png"))


def test_without_a_camera_an_uploaded_clip_plays_live_until_stop(live_page, camera, tmp_path):
    from conftest import ffmpeg

    page = live_page
    clip = tmp_path / "loop.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           clip)
    page.get_by_role("tab", name="Live").click()
    page.get_by_text("No camera? Loop a clip").click()
    page.locator("#live-clip input[type=file]").set_input_files(str(clip))
    page.locator("#live-clip video").wait_for(state="attached")
    page.locator("#live-play").click()
    # Two seconds of clip shown past its end: it loops.
    page.wait_for_function("() => { const m = /shown ([\\d.]+) fps/.exec(document.querySelector('#live-status')"
                           ".innerText); return m && document.querySelector('#live-out img'); }")
    time.sleep(3)
    src, shown = _shown(page)
    assert shown.shape == (120, 160, 3)
    time.sleep(1)
    assert _shown(page)[0] != src  # still playing past the clip's end
    page.locator("#live-stop").click()
    page.wait_for_function("() => document.querySelector('#live-status').innerText.startsWith('Stopped')")
    assert "source frames dropped" in _status(page)
