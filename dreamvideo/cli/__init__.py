"""dreamvideo command line: ``dreamvideo image|video|zoom|plan|batch|live|layers|presets|ui|doctor ...``.

Flags are generated from the settings dataclasses (the single source of defaults, :mod:`.flags`);
the parsed arguments never leave this package: they are turned into those dataclasses first, and
each command (:mod:`.commands`) runs a job with them. Nothing here
imports a model framework until a command needs one, so ``--help``, ``presets`` and usage errors
are fast. Core error messages name settings as `field_name`; they are shown here as ``--field-name``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dreamvideo import __version__  # noqa: E402
from dreamvideo import settings as S  # noqa: E402
from dreamvideo.errors import DreamError, Interrupted, SourceEnded  # noqa: E402
from dreamvideo.cli.flags import (Parser, SCHED_HELP, UsageError, add_settings, common_flags,  # noqa: E402
                                  distributed_flags, preset_flags, render_flags, sections_from,
                                  settings_from)
from dreamvideo.cli.commands import (batch_parser, cmd_batch, cmd_doctor, cmd_image, cmd_layers,  # noqa: E402
                                     cmd_live, cmd_plan, cmd_presets, cmd_ui, cmd_video, cmd_zoom,
                                     live_parser, plan_parser, ui_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dreamvideo", description="DeepDream for moving pictures.")
    parser.add_argument("--version", action="version", version=f"dreamvideo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("image", help="dream a still image", description="Dream a still image.")
    p.add_argument("input", help="image file (jpg, png, webp, bmp, tiff)")
    p.add_argument("-o", "--output", required=True, help="output image (png, jpg, webp, ...)")
    p.add_argument("--quality", type=int, default=95,
                   help=f"JPEG/WebP quality ({S.range_text(S.TOP_RANGES['quality'])}; default: %(default)s)")
    common_flags(p)
    add_settings(p, "model", title="model and objective")
    add_settings(p, "dream", title="dream engine")
    preset_flags(p, "image")

    p = sub.add_parser("video", help="dream over a video clip",
                       description="Dream over a video clip or image sequence, coherent from frame to frame, "
                                   "keeping the audio. Schedules: " + SCHED_HELP)
    render_flags(p, "video")
    distributed_flags(p)

    p = sub.add_parser("zoom", help="grow an infinite-zoom animation from an image",
                       description="Infinite zoom: each frame is the previous dream zoomed, rotated and shifted, "
                                   "then dreamed. Schedules: " + SCHED_HELP)
    render_flags(p, "zoom")
    g = p.add_argument_group("workers")  # only to say why they do not apply
    g.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    g.add_argument("--ray-address", default="", help=argparse.SUPPRESS)
    plan_parser(sub)
    batch_parser(sub)
    live_parser(sub)
    pp = sub.add_parser("presets", help="list the built-in presets (and describe preset files)",
                        description="List the built-in presets (--preset NAME), and describe the preset files given; "
                                    "a recorded live performance (live --record's out.performance.toml) is marked "
                                    "(performance).")
    pp.add_argument("files", nargs="*", metavar="FILE.toml", help="preset files to describe")

    p = sub.add_parser("layers", help="list a model's dreamable layers",
                       description=f"List dreamable layers and their channels. Models: {', '.join(S.MODEL_NAMES)}.")
    p.add_argument("--model", default=S.ModelSettings.model, help="model name or model file (default: %(default)s)")
    p.add_argument("--weights", default="random",
                   help="weights to load (layer names do not depend on them; default: %(default)s)")
    p.add_argument("--filter", default="", help="only layers whose name contains this text")
    ui_parser(sub)

    p = sub.add_parser("doctor", help="show the backend, device and precision the engine runs with, and why",
                       description="Show the Keras backend, the device, the installed backends and what "
                                   "--precision auto means here (measured once per machine, then cached).")
    add_settings(p, "model", title="model settings (only backend, device and precision matter here)",
                 skip=("model", "weights", "layers", "objective", "guide"))
    p.add_argument("--ray-address", default="", metavar="ADDRESS",
                   help="instead, list the nodes of the Ray cluster at ADDRESS (HOST:PORT or auto): their CPUs and "
                        "GPUs and what each can run")
    return parser


@contextlib.contextmanager
def _max_pixels(n):
    """``--max-pixels`` as $DREAMVIDEO_MAX_PIXELS while the command runs: every image reader sees it, a
    Ray worker's too (the environment travels; a flag would have to be passed down every call)."""
    key, old = "DREAMVIDEO_MAX_PIXELS", os.environ.get("DREAMVIDEO_MAX_PIXELS")
    if n is not None:
        os.environ[key] = str(n)
    try:
        yield
    finally:
        if n is not None:
            os.environ.pop(key, None) if old is None else os.environ.__setitem__(key, old)


def _resume_command(argv) -> str:
    import shlex

    return shlex.join(["dreamvideo", *argv, *([] if "--resume" in argv else ["--resume"])])


def _flags(message: str) -> str:
    """Core messages name a setting as `field_name`; on the command line it is the flag --field-name."""
    from dreamvideo.errors import as_flags

    return as_flags(message)


@contextlib.contextmanager
def _warnings_as_lines():
    """dreamvideo's own warnings reach the terminal as one line each, without Python's file and line."""
    import warnings

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category is UserWarning and os.path.dirname(os.path.abspath(filename)).startswith(_PACKAGE):
            print(f"dreamvideo: warning: {message}", file=sys.stderr if file is None else file)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # dreamvideo/


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 runtime failure, 2 usage mistake, 130 interrupted,
    143 stopped by SIGTERM, 129 by SIGHUP (live))."""
    from dreamvideo.signals import sighup_as_interrupt, sigterm_as_interrupt

    argv = sys.argv[1:] if argv is None else list(argv)
    renders = argv[:1] in (["video"], ["zoom"], ["batch"])
    try:
        hup = sighup_as_interrupt() if argv[:1] == ["live"] else contextlib.nullcontext()
        with sigterm_as_interrupt(), hup, _warnings_as_lines():  # a stop takes Ctrl-C's careful way out
            ns = _parse_args(argv)
            with _max_pixels(getattr(ns, "max_pixels", None)):
                return COMMANDS[ns.command](ns)
    except SystemExit as e:  # --help / --version
        return int(e.code or 0)
    except UsageError as e:
        print(f"dreamvideo: error: {e}", file=sys.stderr)
        return 2
    except DreamError as e:
        if isinstance(e, Interrupted):
            print(f"dreamvideo: {e}; resume with: {_resume_command(argv)}", file=sys.stderr)
        elif isinstance(e, SourceEnded) and e.output is not None and renders:  # the frames done are kept
            print(f"dreamvideo: error: {e.head}; once the file is whole again, resume with: "
                  f"{_resume_command(argv)}", file=sys.stderr)
        else:
            print(f"dreamvideo: error: {_flags(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # outside the frame loop (start-up, the final encode): the work folder is kept
        from dreamvideo.signals import exit_code, stopped_by

        print(f"dreamvideo: {stopped_by(e)}" + (f"; resume with: {_resume_command(argv)}" if renders else ""),
              file=sys.stderr)
        if argv[:1] == ["live"]:  # live's closing line, whenever it stops
            print("live: shown 0.0 fps, dreamed 0.0 fps, latency 0 ms median / 0 ms p95, 0 source frames dropped",
                  flush=True)
        return exit_code(e)
    except MemoryError:
        print("dreamvideo: error: out of memory; lower --tile-size or --max-side", file=sys.stderr)
        return 1


def _preset_kinds(ns) -> list[str]:
    """The kinds of job whose preset settings a command takes: its own; live also a zoom's (its
    zoom: source has the zoom's --fps and detail settings)."""
    return [ns._kind, "zoom"] if ns.command == "live" else [ns._kind]


def _parse_args(argv):
    """Parse ``argv``; with --preset the preset's values become the defaults, and the command line is
    parsed again, so the precedence is defaults < preset < flags given. --save-preset is written here."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if getattr(ns, "preset", None):
        from dreamvideo import presets

        sub = ns._settings_parser
        dests = {a.dest for a in sub._actions}
        defaults = {}
        for kind in _preset_kinds(ns):
            for section, values in presets.resolve(ns.preset, kind).items():
                for key, value in values.items():
                    dest = key if section is None else f"{section}.{key}"
                    if dest in dests:
                        defaults.setdefault(dest, value)
        sub.set_defaults(**defaults)
        ns = parser.parse_args(argv)
    if getattr(ns, "_kind", None):
        _check_writes(ns)
    if getattr(ns, "save_preset", None):
        import shlex

        from dreamvideo import presets

        header = (f"dreamvideo preset (dreamvideo {__version__}), saved from:\n"
                  f"  {shlex.join(['dreamvideo', *argv])}")
        own = sections_from(ns, ns._kind)
        if ns.command == "live":  # and a zoom: source's own settings
            own["zoom"] = settings_from(ns, "zoom")
        sections = presets.sections_of(own, {k: getattr(ns, k) for k in S.TOP_LEVEL})
        path = presets.write(ns.save_preset, sections, header=header)
        if not getattr(ns, "quiet", False):
            print(f"saved preset {path}")
    return ns


def _check_writes(ns) -> None:
    """No file the command reads (its input, soundtrack, guide, model, weights, preset) is written by it:
    its output, or its --save-preset (:mod:`dreamvideo.guard`; the jobs check their output again)."""
    from dreamvideo import guard

    preset = None
    if ns.preset:
        from dreamvideo import presets

        preset = presets.find(ns.preset)
    source = getattr(ns, "input", None)
    if ns.command == "live":
        from dreamvideo.realtime.sources import read_path

        source = read_path(ns.source)
    reads = guard.reads(source, sections_from(ns, ns._kind), preset)
    if ns.command == "live":  # a live run writes only its recording, if any
        if getattr(ns, "live.record", None):
            guard.check(getattr(ns, "live.record"), reads, role="the `record` file", fix="choose another recording name")
    elif ns.command != "plan":  # a plan's plot is checked where its name is made
        guard.check(ns.output, reads)
    if ns.save_preset:
        guard.check(ns.save_preset, reads, role="the `save_preset` file", fix="choose another preset file name")


def settings_of(argv) -> dict:
    """What a job's command line (``image|video|zoom ...`` or ``plan video|zoom ...``) means, without
    running it: ``{section: settings dataclass, ..., None: {"seed": ..., "max_side": ...}}`` with
    presets applied (a ``--save-preset`` is written). Usage mistakes raise as in :func:`main`."""
    ns = _parse_args([str(a) for a in argv])
    out = sections_from(ns, ns._kind)
    out[None] = {k: getattr(ns, k) for k in S.TOP_LEVEL}
    return out


COMMANDS = {"live": cmd_live, "ui": cmd_ui, "image": cmd_image, "video": cmd_video, "zoom": cmd_zoom, "plan": cmd_plan,
            "presets": cmd_presets, "layers": cmd_layers, "batch": cmd_batch, "doctor": cmd_doctor}
