"""The documentation: the site builds with warnings as errors, no link in it or in the README is broken, the
command reference lists every flag, the README stays short and names CI's test command, and every shell example
in the README and docs/ runs.

A ```bash block is run line by line (``dreamvideo ...`` commands, ``\\`` continuations joined, ``#`` comments
dropped) unless the line above its fence is ``<!-- example: not run (why) -->`` (network, hardware, servers).
The examples run in a sandbox with ``cat.jpg``, ``clip.mp4``, ``song.wav``, ``song.mp3``, the repository's
``samples/`` and ``../shared``, at a small size (flags appended: the last given wins), with random weights where
an example names none (ImageNet's would need the network).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from helpers import ROOT, SHARED

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
NOT_RUN = re.compile(r"<!-- example: not run \(.+\) -->\s*$")
WEIGHTS = SHARED / "models" / "mobilenet_v2_imagenet.weights.h5"


def examples(path: Path) -> list[tuple[str, int, list[str]]]:
    """(file, line, argv after `dreamvideo`) of every runnable shell command in a markdown file; a command
    that is not `dreamvideo`'s comes as (file, line, [the command line]) with argv[0] != "dreamvideo"."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        if m.group(1) not in ("bash", "sh", "shell", "console"):
            continue
        above = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if NOT_RUN.match(above):
            continue
        line = text[:m.start()].count("\n") + 2
        for cmd in m.group(2).replace("\\\n", " ").splitlines():
            argv = shlex.split(cmd, comments=True)
            if not argv:
                continue
            out.append((path.name, line, argv[1:] if argv[0] == "dreamvideo" else [cmd]))
    return out


FOUND = [e for p in [ROOT / "README.md", *PAGES] for e in examples(p)]

COMMANDS = ("image", "video", "zoom", "plan", "batch", "live", "layers", "presets", "ui", "doctor")
ALL_EXAMPLES = [e for e in FOUND if e[2][0] in COMMANDS]
SMALL = ["--max-side", "64", "--octaves", "1", "--steps", "1", "-q"]


def small(argv: list[str]) -> list[str]:
    """The example at a small size: a few frames (live: two seconds) of 64 px, one octave, one step; random
    weights if it names none."""
    kind = argv[1] if argv[0] == "plan" else argv[0]
    if argv[0] == "live":  # two seconds, no page (a server the runner would not stop)
        return argv + ["--max-side", "64", "--octaves", "1", "--steps", "1", "--duration", "2", "--no-page", "-q"]
    if argv[0] not in ("image", "video", "zoom", "plan"):
        return argv
    extra = list(SMALL)
    if kind in ("video", "zoom"):
        extra += ["--frames", "3"]
    if argv[0] == "plan" and "--preview" in argv:
        extra += ["--preview-frames", "2", "--preview-size", "64"]
    if "--weights" not in argv and not any(a.startswith("--weights=") for a in argv):
        extra += ["--weights", "random"]
    return argv + extra


RUNNER = r"""
import contextlib, io, json, os, shutil, sys
from dreamvideo.cli import main
results = []
for argv, out in json.load(open(sys.argv[1])):
    if out and os.path.isdir(out):  # an earlier example's output of the same name: each must write its own
        shutil.rmtree(out)
    elif out and os.path.exists(out):
        os.remove(out)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    results.append([code, err.getvalue()[-400:]])
json.dump(results, open(sys.argv[2], "w"))
"""


def test_every_docs_page_is_in_the_sites_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.name for p in PAGES if f" {p.name}" not in nav]
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"


def test_the_readme_is_short_and_its_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 120
    command = next(line for line in readme.splitlines() if "python -m pytest" in line and "pip install" in line)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    install, test = command.split(" && python -m pytest")
    assert any(line.strip() == install.strip() for line in ci), "CI installs other than the README says"
    assert "python -m pytest" in [line.strip() for line in ci]


def test_the_readmes_links_and_pictures_exist():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", readme) + re.findall(r'<img src="([^"]+)"', readme)
    local = [t for t in targets if not urlsplit(t).scheme]
    assert local, "the README links to no page of the docs"
    missing = [t for t in local if not (ROOT / unquote(urlsplit(t).path)).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_gallery_is_under_3_mb_and_every_picture_is_shown():
    pictures = [p for p in (DOCS / "gallery").iterdir() if p.suffix in (".jpg", ".png", ".webp", ".gif")]
    assert sum(p.stat().st_size for p in pictures) < 3_000_000
    shown = "".join(p.read_text() for p in PAGES)
    assert {p.name for p in pictures} <= set(re.findall(r"gallery/([\w.-]+)", shown)), "a gallery picture no page shows"
    assert {"dream-pair.jpg", "zoom.webp", "clip-sheet.jpg", "plan.png"} <= {p.name for p in pictures}


def test_the_command_reference_lists_every_flag_of_every_command():
    import argparse

    sys.path.insert(0, str(DOCS / "hooks"))
    from cli_reference import reference

    from dreamvideo.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    page = (DOCS / "cli.md").read_text()
    for name, parser in sub.choices.items():
        assert f"<!-- cli-reference {name} -->" in page, f"docs/cli.md lacks `dreamvideo {name}`"
        text = reference(name)
        for action in parser._actions:
            if action.help is argparse.SUPPRESS:
                continue
            for flag in action.option_strings:
                assert f"`{flag}`" in text, f"`dreamvideo {name}` reference lacks {flag}"
    assert "(from 1 to 12; default: 3)" in reference("video")  # --octaves: the settings' range and default


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key) and (tag in ("a", "img", "source") or (tag == "link" and key == "href")):
                self.links.append(a[key])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason='the docs site needs mkdocs: pip install -e ".[docs]"')
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stderr[-3000:]}"
    return out


def test_the_site_builds_with_warnings_as_errors_and_shows_the_gallery(site):
    home = (site / "index.html").read_text()
    assert "gallery/dream-pair.jpg" in home
    cli = (site / "cli" / "index.html").read_text()
    assert "--enter-every" in cli and "from 1 to 60" in cli  # generated from the settings
    api = (site / "api" / "index.html").read_text()
    assert "dream_video" in api and "frames" in api


def test_no_link_in_the_site_is_broken(site):
    broken = []
    for page in site.rglob("*.html"):
        if page.name == "404.html":
            continue
        parser = _Links()
        parser.feed(page.read_text())
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:", "#")) or not parts.path:
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = _Links()
                ids.feed(target.read_text())
                if parts.fragment not in ids.ids:
                    broken.append(f"{page.relative_to(site)} -> {link} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_shell_example_runs_dreamvideo_or_says_why_it_is_not_run():
    others = [f"{name}:{line}: {argv[0]}" for name, line, argv in FOUND if " " in argv[0] or argv[0] not in COMMANDS]
    assert not others, ("shell examples run only `dreamvideo` commands; mark a block "
                        "`<!-- example: not run (why) -->` if it must not run:\n" + "\n".join(others))
    assert len(ALL_EXAMPLES) >= 10
    assert {"image", "video", "zoom", "plan", "live", "layers", "presets", "doctor"} <= {a[0] for _, _, a in ALL_EXAMPLES}


@pytest.mark.slow
def test_every_shell_example_in_the_docs_runs(tmp_path):
    if not WEIGHTS.is_file():
        pytest.skip(f"needs the offline weights {WEIGHTS}")
    from conftest import ffmpeg

    sys.path.insert(0, str(ROOT / "samples"))
    from sample_utils import click_track

    box = tmp_path / "repo"
    box.mkdir()
    (tmp_path / "shared").symlink_to(SHARED.resolve())
    (box / "samples").symlink_to(ROOT / "samples")
    shutil.copy(ROOT / "samples" / "cat.jpg", box / "cat.jpg")
    shutil.copy(ROOT / "samples" / "clip.mp4", box / "clip.mp4")
    click_track(box / "song.wav", seconds=3.0)
    ffmpeg("-i", box / "song.wav", box / "song.mp3")
    runs = [small(argv) for _, _, argv in ALL_EXAMPLES]
    outs = [next((run[i + 1] for i, a in enumerate(run[:-1]) if a in ("-o", "--output")), None) for run in runs]
    (tmp_path / "in.json").write_text(json.dumps(list(zip(runs, outs))))
    r = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path / "in.json"), str(tmp_path / "out.json")],
                       cwd=box, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert r.returncode == 0, r.stderr[-2000:]
    failed = []
    for (name, line, argv), out, (code, err) in zip(ALL_EXAMPLES, outs, json.loads((tmp_path / "out.json").read_text())):
        if code != 0:
            failed.append(f"{name}:{line}: dreamvideo {shlex.join(argv)} -> exit {code}: {err.strip()}")
        elif out is not None and not (box / out).exists():
            failed.append(f"{name}:{line}: dreamvideo {shlex.join(argv)} wrote no {out}")
    assert not failed, "\n".join(failed)


@pytest.mark.slow
def test_the_gallery_script_makes_a_dream_beside_its_source(tmp_path):
    if not WEIGHTS.is_file():
        pytest.skip(f"needs the offline weights {WEIGHTS}")
    import numpy as np
    from PIL import Image

    r = subprocess.run([sys.executable, str(DOCS / "gallery" / "make.py"), "--only", "dream-pair",
                        "--weights", str(WEIGHTS), "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    pair = np.asarray(Image.open(tmp_path / "dream-pair.jpg").convert("RGB"), float)
    half = (pair.shape[1] - 6) // 2
    source, dream = pair[:, :half], pair[:, -half:]
    assert np.abs(dream - source).mean() > 8  # the dream, not the photo again
    assert abs(dream.mean() - source.mean()) < 25  # no colour cast: the dream keeps the photo's brightness
