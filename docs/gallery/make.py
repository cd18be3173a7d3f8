"""Make the docs' gallery: every picture the README and the docs show, from one command.

    python docs/gallery/make.py [--weights FILE] [--only NAME,...] [--no-screens]

Model: MobileNetV2 with its ImageNet weights (by default the offline file
``../shared/models/mobilenet_v2_imagenet.weights.h5``), layers ``block_10_expand_relu`` and
``block_13_expand_relu`` (its classic look: dog faces and eyes). InceptionV3, the default model, gives the
same kind of look. Writes into docs/gallery/ (or --out; kept under 3 MB together):

- ``dream-pair.jpg``   samples/cat.jpg beside its dream;
- ``zoom.webp``        an infinite zoom from it, animated (4 s at 12 fps);
- ``clip-sheet.jpg``   samples/clip.mp4 dreamed: source frames above, their dreams below;
- ``plan.png``         a music video's plan (`dreamvideo plan zoom ... --audio song.wav`);
- ``web-page.png``     the web page (`dreamvideo ui`) after dreaming the cat, in headless Chromium;
- ``live-page.png``    the page of `dreamvideo live` playing the sample clip, in headless Chromium.

The screenshots need Playwright and Debian's ``chromium`` (`--no-screens` skips them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "samples"))

CAT, CLIP = ROOT / "samples" / "cat.jpg", ROOT / "samples" / "clip.mp4"
WEIGHTS = Path(os.environ.get("DREAMVIDEO_SHARED", ROOT.parent / "shared")) / "models" / "mobilenet_v2_imagenet.weights.h5"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OUT = HERE  # where the pictures go (--out)
NAMES = ("dream-pair", "zoom", "clip-sheet", "plan", "web-page", "live-page")


def model(weights) -> dict:
    return {"model": "mobilenet_v2", "weights": str(weights)}


def side_by_side(images, gap: int = 6, background=(255, 255, 255)) -> Image.Image:
    h = max(i.height for i in images)
    sheet = Image.new("RGB", (sum(i.width for i in images) + gap * (len(images) - 1), h), background)
    x = 0
    for im in images:
        sheet.paste(im, (x, 0))
        x += im.width + gap
    return sheet


def dream_pair(tmp: Path, weights) -> None:
    import dreamvideo

    out = dreamvideo.dream_image(CAT, tmp / "dream.png", max_side=448, seed=1, **model(weights))
    dream = Image.open(out).convert("RGB")
    source = Image.open(CAT).convert("RGB").resize(dream.size, Image.LANCZOS)
    side_by_side([source, dream]).save(OUT / "dream-pair.jpg", quality=85, optimize=True)


def zoom(tmp: Path, weights) -> None:
    import dreamvideo
    from dreamvideo.images import read_image

    image = read_image(CAT, max_side=256)
    frames = [Image.fromarray(f) for f in dreamvideo.zoom_frames(image, 48, fps=12, zoom="1.04", angle="0.3",
                                                                    seed=1, **model(weights))]
    frames[0].save(OUT / "zoom.webp", save_all=True, append_images=frames[1:], duration=1000 // 12, loop=0,
                   quality=70, method=6)


def clip_sheet(tmp: Path, weights, n: int = 4) -> None:
    import imageio.v3 as iio

    import dreamvideo

    out = dreamvideo.dream_video(CLIP, tmp / "clip.mp4", seed=1, quiet=True, **model(weights))
    source = [f for f in iio.imiter(CLIP)]
    dream = [f for f in iio.imiter(out)]
    picks = np.linspace(0, len(dream) - 1, n).round().astype(int)
    rows = []
    for frames in (source, dream):
        rows.append(side_by_side([Image.fromarray(frames[i]) for i in picks], gap=4))
    sheet = Image.new("RGB", (rows[0].width, rows[0].height * 2 + 4), (255, 255, 255))
    sheet.paste(rows[0], (0, 0))
    sheet.paste(rows[1], (0, rows[0].height + 4))
    draw = ImageDraw.Draw(sheet)
    w = rows[0].width // n
    for k, i in enumerate(picks):
        draw.text((k * w + 6, rows[0].height + 8), f"frame {i}", fill=(255, 255, 255))
    sheet.save(OUT / "clip-sheet.jpg", quality=85, optimize=True)


def plan(tmp: Path, weights) -> None:
    from sample_utils import click_track

    import dreamvideo

    song = click_track(tmp / "song.wav", seconds=8.0)
    out = tmp / "plan.png"
    dreamvideo.plan_render("zoom", CAT, out, audio=str(song), fps=12, frames=96, zoom="1.0 + 0.04*beat",
                           step_size="0.01*(1 + 2*onset)", angle="0.2*sin(2*pi*t/8)", **model(weights))
    img = Image.open(out).convert("RGB")
    if img.width > 1000:
        img = img.resize((1000, round(img.height * 1000 / img.width)), Image.LANCZOS)
    img.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(OUT / "plan.png", optimize=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium():
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise SystemExit("make.py: the screenshots need Chromium (apt-get install -y chromium), or pass --no-screens")
    return sync_playwright, exe


def _texture(png: bytes) -> float:
    """How much fine pattern a screenshot holds (mean |Laplacian|): a dreamed frame holds more than its source."""
    import cv2

    grey = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())


def _save_screenshot(png: bytes, name: str, width: int = 1000) -> None:
    from io import BytesIO

    img = Image.open(BytesIO(png)).convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(OUT / f"{name}.png", optimize=True)


def web_page(tmp: Path, weights) -> None:
    from dreamvideo import ui

    sync_playwright, exe = _chromium()
    start = {**model(weights), "steps": "10"}
    photo = tmp / "cat.jpg"
    Image.open(CAT).convert("RGB").resize((448, 298), Image.LANCZOS).save(photo, quality=92)
    with ui.start("127.0.0.1", _free_port(), tmp / "ui-outputs", start, quiet=True) as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.set_default_timeout(300_000)
        page.goto(srv.url, wait_until="domcontentloaded")
        page.get_by_text("Render queue").wait_for()
        page.locator("#image-in input[type=file]").set_input_files(str(photo))
        page.locator("#image-go").click()
        page.wait_for_function("() => { const i = document.querySelector('#image-out img'); "
                               "return i && i.complete && i.naturalWidth > 0; }")
        page.get_by_text("done in").wait_for()
        page.wait_for_function("() => !document.querySelector('#queue').innerText.includes('running')")
        page.evaluate("window.scrollTo(0, 0)")
        _save_screenshot(page.screenshot(), "web-page")
        browser.close()


def live_page(tmp: Path, weights) -> None:
    sync_playwright, exe = _chromium()
    port = _free_port()
    cmd = [sys.executable, "-m", "dreamvideo.cli", "live", str(CLIP), "--loop", "--page-port", str(port),
           "--duration", "90", "--octaves", "3", "--steps", "8", "--step-size", "0.02", "--full-frames", "--model", "mobilenet_v2", "--weights", str(weights)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 780, "height": 230}, device_scale_factor=2)
            for _ in range(120):  # the page comes up once the model is loaded
                try:
                    page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=2000)
                    break
                except Exception:
                    if proc.poll() is not None:
                        raise SystemExit(f"make.py: dreamvideo live stopped: {proc.stdout.read()[-500:]}")
                    time.sleep(1)
            time.sleep(30)  # let a few dreams land
            # The clip loops every 3 s and a dream lands about every second: the frames just after the
            # loop's jump show the source until the next dream, so keep the most dreamed of a few shots.
            shots = []
            for _ in range(10):
                shots.append(page.screenshot())
                time.sleep(0.4)
            _save_screenshot(max(shots, key=_texture), "live-page", width=800)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


STEPS = {"dream-pair": dream_pair, "zoom": zoom, "clip-sheet": clip_sheet, "plan": plan, "web-page": web_page,
         "live-page": live_page}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(WEIGHTS), help="MobileNetV2 ImageNet .weights.h5 (default: %(default)s)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(NAMES)}")
    p.add_argument("--no-screens", action="store_true", help="skip the Chromium screenshots")
    p.add_argument("--out", default=str(HERE), help="folder for the pictures (default: %(default)s)")
    a = p.parse_args()
    global OUT
    OUT = Path(a.out)
    OUT.mkdir(parents=True, exist_ok=True)
    if not Path(a.weights).is_file():
        raise SystemExit(f"make.py: weights file {a.weights} not found; pass --weights FILE")
    names = [n for n in (a.only.split(",") if a.only else NAMES) if n]
    unknown = set(names) - set(NAMES)
    if unknown:
        raise SystemExit(f"make.py: unknown picture {', '.join(sorted(unknown))}; choose from {', '.join(NAMES)}")
    if a.no_screens:
        names = [n for n in names if not n.endswith("-page")]
    with tempfile.TemporaryDirectory(prefix="dreamvideo-gallery-") as tmp:
        for name in names:
            t = time.monotonic()
            STEPS[name](Path(tmp), a.weights)
            print(f"{name}: {time.monotonic() - t:.0f} s", flush=True)
    total = sum(f.stat().st_size for f in OUT.iterdir() if f.suffix in (".jpg", ".png", ".webp", ".gif"))
    print(f"gallery: {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
