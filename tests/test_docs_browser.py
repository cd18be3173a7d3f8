"""The documentation as a reader sees it, in headless Chromium (Debian's `chromium`, driven by Playwright): every
page of the built site and the README (rendered as markdown, from the repository root) shows every picture it
names, and the gallery's pictures are the dream, not blank. Screenshots go to $DREAMVIDEO_SCREENSHOTS."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import ROOT
from test_ui_browser import SHOTS, browser  # noqa: F401 - the fixture: one Chromium for the module

pytestmark = pytest.mark.browser

BROKEN_IMAGES = """() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason='the docs site needs mkdocs: pip install -e ".[docs]"')
    out = tmp_path_factory.mktemp("site-browser")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_every_page_of_the_site_shows_all_its_pictures(browser, site):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    pages = sorted(site.rglob("index.html"))
    assert len(pages) >= 15
    for html in pages:
        page.goto(html.as_uri(), wait_until="load")
        broken = page.evaluate(BROKEN_IMAGES)
        assert not broken, f"{html.relative_to(site)} shows broken pictures: {broken}"
    page.goto((site / "gallery" / "index.html").as_uri(), wait_until="load")
    page.screenshot(path=str(SHOTS / "dreamvideo-docs-gallery.png"), full_page=True)
    sizes = page.evaluate("() => [...document.querySelectorAll('article img')].map(i => [i.naturalWidth, "
                          "i.naturalHeight])")
    assert len(sizes) == 6 and all(w >= 256 and h >= 100 for w, h in sizes), sizes
    page.close()


def test_the_readme_shows_its_gallery_and_its_links_lead_to_pages(browser, tmp_path):
    import markdown

    body = markdown.markdown((ROOT / "README.md").read_text(), extensions=["fenced_code", "tables"])
    html = ROOT / f".readme-{os.getpid()}.html"  # at the root, so the README's relative paths resolve
    html.write_text(f"<!doctype html><meta charset='utf-8'><body style='max-width:900px;margin:auto;"
                    f"font-family:sans-serif'>{body}</body>")
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(html.as_uri(), wait_until="load")
        assert page.evaluate(BROKEN_IMAGES) == []
        assert page.evaluate("() => document.images.length") >= 3
        page.screenshot(path=str(SHOTS / "dreamvideo-readme.png"), full_page=True)
        links = page.evaluate("() => [...document.links].map(a => a.getAttribute('href'))")
        local = [h for h in links if not h.startswith(("http", "#"))]
        assert local and all((ROOT / h.split("#")[0]).exists() for h in local), local
        page.close()
    finally:
        html.unlink()
