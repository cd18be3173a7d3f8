"""dreamvideo command line: ``dreamvideo image|video|zoom|plan|layers|presets ...``.

Flags are generated from the settings dataclasses (the single source of defaults); the parsed
arguments never leave this module: they are turned into those dataclasses first. Nothing here
imports a model framework until a command needs one, so ``--help``, ``presets`` and usage errors
are fast. Core error messages name settings as `field_name`; they are shown here as ``--field-name``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


from dreamvideo import __version__  # noqa: E402
from dreamvideo import settings as S  # noqa: E402
from dreamvideo.errors import DreamError, Interrupted, SourceEnded  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


class _UsageError(Exception):
    pass


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_settings(parser, section, skip=(), title=None):
    """Add one flag per field of settings ``section`` (bools as --x/--no-x), help and defaults from it.
    The dest is ``section.field``; :func:`settings_from` turns them back into the dataclass."""
    cls = S.SECTIONS[section]
    group = parser.add_argument_group(title or cls.__doc__.splitlines()[0] if cls.__doc__ else None)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta = f.metadata
        kw = dict(dest=f"{section}.{f.name}", default=f.default, help=meta.get("help", ""))
        if isinstance(f.default, bool) and f.name.startswith("no_"):
            kw["action"] = "store_true"
        elif isinstance(f.default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = meta.get("parse", type(f.default) if f.default is not None else str)
            kw["help"] += f" ({_range_help(section, meta)}default: %(default)s)"
            if "choices" in meta:
                kw["choices"] = meta["choices"]
            kw["metavar"] = meta.get("metavar", f.name.split("_")[-1].upper())
        group.add_argument(_flag(f.name), **kw)


def _range_help(section, meta) -> str:
    if "range" not in meta:
        return ""
    return f"{'per frame ' if section == 'schedules' else ''}{S.range_text(meta['range'], meta.get('off'))}; "


def settings_from(ns, section):
    """The ``section`` settings dataclass from parsed flags (fields without a flag keep their default)."""
    cls = S.SECTIONS[section]
    return cls(**{f.name: getattr(ns, f"{section}.{f.name}") for f in dataclasses.fields(cls)
                  if hasattr(ns, f"{section}.{f.name}")})


def sections_from(ns, kind) -> dict:
    """``{section: settings}`` of a ``kind`` job from parsed flags."""
    return {section: settings_from(ns, section) for section in S.KIND_SECTIONS[kind]}


def job_options(ns, kind) -> dict:
    """The keyword options of a ``kind`` job: its settings, whole, by section; checked here first, so a
    mistake is reported before the job's heavy imports."""
    sections = sections_from(ns, kind)
    sections["dream"].check()
    if kind in ("video", "zoom"):
        S.check_moving(sections[kind])
    return sections


_SCHED_HELP = S.SCHEDULE_HELP


def _resume(p):
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted render of the same output with the same arguments")


def _positive_int(text):
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return v


def _top(name):
    """An argparse type for top-level setting ``name``: a whole number in its range (settings.TOP_RANGES)."""
    def parse(text):
        v = int(text)
        if not S.in_range(v, S.TOP_RANGES[name]):
            raise argparse.ArgumentTypeError(f"must be a whole number {S.range_text(S.TOP_RANGES[name])}, not {text}")
        return v

    parse.__name__ = name  # argparse names the type in its message
    return parse


def _common(p):
    p.add_argument("--seed", type=_top("seed"), default=0,
                   help=f"random seed: same seed and inputs give the same output bytes "
                        f"({S.range_text(S.TOP_RANGES['seed'])})")
    p.add_argument("--max-side", type=_top("max_side"), default=None, metavar="PX",
                   help=f"downscale the input so its longer side is at most PX pixels "
                        f"({S.range_text(S.TOP_RANGES['max_side'])})")
    p.add_argument("--max-pixels", type=_positive_int, default=None, metavar="N",
                   help=f"{S.MAX_PIXELS_HELP} (default: {S.MAX_PIXELS})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dreamvideo", description="DeepDream for moving pictures.")
    parser.add_argument("--version", action="version", version=f"dreamvideo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("image", help="dream a still image", description="Dream a still image.")
    p.add_argument("input", help="image file (jpg, png, webp, bmp, tiff)")
    p.add_argument("-o", "--output", required=True, help="output image (png, jpg, webp, ...)")
    p.add_argument("--quality", type=int, default=95,
                   help=f"JPEG/WebP quality ({S.range_text(S.TOP_RANGES['quality'])}; default: %(default)s)")
    _common(p)
    add_settings(p, "model", title="model and objective")
    add_settings(p, "dream", title="dream engine")
    _preset_args(p, "image")

    p = sub.add_parser("video", help="dream over a video clip",
                       description="Dream over a video clip or image sequence, coherent from frame to frame, "
                                   "keeping the audio. Schedules: " + _SCHED_HELP)
    _render_args(p, "video")
    _distributed_args(p)

    p = sub.add_parser("zoom", help="grow an infinite-zoom animation from an image",
                       description="Infinite zoom: each frame is the previous dream zoomed, rotated and shifted, "
                                   "then dreamed. Schedules: " + _SCHED_HELP)
    _render_args(p, "zoom")
    g = p.add_argument_group("workers")  # only to say why they do not apply
    g.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    g.add_argument("--ray-address", default="", help=argparse.SUPPRESS)
    _plan_parser(sub)
    _batch_parser(sub)
    _live_parser(sub)
    sub.add_parser("presets", help="list the built-in presets",
                   description="List the built-in presets (--preset NAME).")

    p = sub.add_parser("layers", help="list a model's dreamable layers",
                       description=f"List dreamable layers and their channels. Models: {', '.join(S.MODEL_NAMES)}.")
    p.add_argument("--model", default=S.ModelSettings.model, help="model name or model file (default: %(default)s)")
    p.add_argument("--weights", default="random",
                   help="weights to load (layer names do not depend on them; default: %(default)s)")
    p.add_argument("--filter", default="", help="only layers whose name contains this text")
    _ui_parser(sub)

    p = sub.add_parser("doctor", help="show the backend, device and precision the engine runs with, and why",
                       description="Show the Keras backend, the device, the installed backends and what "
                                   "--precision auto means here (measured once per machine, then cached).")
    add_settings(p, "model", title="model settings (only backend, device and precision matter here)",
                 skip=("model", "weights", "layers", "objective", "guide"))
    return parser


def _cmd_image(ns) -> int:
    opts = job_options(ns, "image")
    from dreamvideo.jobs import dream_image

    out = dream_image(ns.input, ns.output, seed=ns.seed, max_side=ns.max_side, quality=ns.quality, **opts)
    if not ns.quiet:
        print(f"wrote {out}")
    return 0


def _cmd_layers(ns) -> int:
    from dreamvideo.build import load_feature_model

    model = load_feature_model(S.ModelSettings(model=ns.model, weights=ns.weights, precision="float32"))
    print(f"# {model.name}: default layers {model.default_layers}")
    print(f"{'layer':48s} {'kind':22s} channels")
    for info in model.layers:
        if ns.filter in info.name:
            print(f"{info.name:48s} {info.kind:22s} {info.channels}")
    return 0


def _cmd_video(ns) -> int:
    opts = job_options(ns, "video")
    ds = _distributed_from(ns).check()
    if ds.enabled:
        from dreamvideo.distributed import dream_video as dream_video_on_ray

        out = dream_video_on_ray(ns.input, ns.output, seed=ns.seed, max_side=ns.max_side, resume=ns.resume,
                                 quiet=ns.quiet, distributed=ds, **opts)
        if not ns.quiet:
            print(f"wrote {out}")
        return 0
    from dreamvideo.jobs import dream_video

    out = dream_video(ns.input, ns.output, seed=ns.seed, max_side=ns.max_side, resume=ns.resume, quiet=ns.quiet,
                      **opts)
    if not ns.quiet:
        print(f"wrote {out}")
    return 0


def _cmd_zoom(ns) -> int:
    if ns.workers or ns.ray_address:
        raise _UsageError("a zoom is sequential (each frame is the previous dream moved), so it cannot be split "
                          "across workers: drop --workers/--ray-address, or render several zooms at once with "
                          "`dreamvideo batch JOBS.toml --workers N`")
    opts = job_options(ns, "zoom")
    from dreamvideo.jobs import zoom

    out = zoom(ns.input, ns.output, seed=ns.seed, max_side=ns.max_side, resume=ns.resume, quiet=ns.quiet, **opts)
    if not ns.quiet:
        print(f"wrote {out}")
    return 0


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


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 runtime failure, 2 usage mistake, 130 interrupted,
    143 stopped by SIGTERM)."""
    from dreamvideo.signals import Terminated, sigterm_as_interrupt

    argv = sys.argv[1:] if argv is None else list(argv)
    renders = argv[:1] in (["video"], ["zoom"], ["batch"])
    try:
        with sigterm_as_interrupt(), _warnings_as_lines():  # a stop takes Ctrl-C's careful way out
            ns = _parse_args(argv)
            with _max_pixels(getattr(ns, "max_pixels", None)):
                return COMMANDS[ns.command](ns)
    except SystemExit as e:  # --help / --version
        return int(e.code or 0)
    except _UsageError as e:
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
        what = "stopped by SIGTERM" if isinstance(e, Terminated) else "interrupted"
        print(f"dreamvideo: {what}" + (f"; resume with: {_resume_command(argv)}" if renders else ""),
              file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except MemoryError:
        print("dreamvideo: error: out of memory; lower --tile-size or --max-side", file=sys.stderr)
        return 1


# ---------------------------------------------------------------- shared render arguments, presets, plan

_VIDEO_OUT = "output: .mp4 .webm .gif .mov .mkv, or a folder for PNG frames"
_PLAN_OUT = "the plot: .png .svg .pdf (a video name such as out.mp4 becomes out.plan.png)"


_RENDER_ARGS = {  # kind: (input help, the schedules it does not have)
    "video": ("video file (mp4, mov, mkv, webm, avi, gif...) or image folder / glob", ("zoom", "angle", "dx", "dy")),
    "zoom": ("start image (or use --from-noise WxH)", ("blend",)),
}


def _render_args(p, kind, output_help=_VIDEO_OUT):
    """The arguments of `dreamvideo video|zoom` (also those of `dreamvideo plan video|zoom`)."""
    input_help, no_schedules = _RENDER_ARGS[kind]
    p.add_argument("input", nargs="?" if kind == "zoom" else None, help=input_help)
    p.add_argument("-o", "--output", required=True, help=output_help)
    _common(p)
    _resume(p)
    add_settings(p, kind, title=kind)
    add_settings(p, "model", title="model and objective")
    add_settings(p, "dream", skip=S.MOVING, title="dream engine")
    add_settings(p, "schedules", skip=no_schedules, title="schedules (per-frame values)")
    _preset_args(p, kind)


def _preset_args(p, kind):
    g = p.add_argument_group("presets")
    g.add_argument("--preset", default=None, metavar="NAME|FILE",
                   help="start from a named look (see `dreamvideo presets`) or a .toml file; flags given "
                        "on the command line override it")
    g.add_argument("--save-preset", default=None, metavar="FILE",
                   help="write the effective settings that differ from the defaults to FILE (.toml), then go on")
    p.set_defaults(_settings_parser=p, _kind=kind)


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
        for section, values in presets.resolve(ns.preset, ns._kind).items():
            for key, value in values.items():
                dest = key if section is None else f"{section}.{key}"
                if dest in dests:
                    defaults[dest] = value
        sub.set_defaults(**defaults)
        ns = parser.parse_args(argv)
    if getattr(ns, "_kind", None):
        _check_writes(ns)
    if getattr(ns, "save_preset", None):
        import shlex

        from dreamvideo import presets

        header = (f"dreamvideo preset (dreamvideo {__version__}), saved from:\n"
                  f"  {shlex.join(['dreamvideo', *argv])}")
        sections = presets.sections_of(sections_from(ns, ns._kind), {k: getattr(ns, k) for k in S.TOP_LEVEL})
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
    reads = guard.reads(getattr(ns, "input", None) or getattr(ns, "source", None), sections_from(ns, ns._kind), preset)
    if ns.command == "live":  # a live run writes only its recording, if any
        if getattr(ns, "record", None):
            guard.check(ns.record, reads, role="the `record` file", fix="choose another recording name")
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


def _plan_parser(sub):
    p = sub.add_parser(
        "plan", help="plot a render's per-frame curves and preview a few frames, before rendering",
        description="Look before a long render: `dreamvideo plan video|zoom ARGS...` takes exactly the "
                    "arguments of that render and writes a plot of every scheduled curve, layer weight and "
                    "audio feature over the timeline to -o; --preview also dreams a few frames small into a "
                    "contact sheet. Nothing is rendered otherwise.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", parser_class=_Parser)
    kinds.required = True
    for kind in ("video", "zoom"):
        q = kinds.add_parser(kind, help=f"plan a `dreamvideo {kind}` render",
                             description=f"Plot the curves of a `dreamvideo {kind}` render (same arguments; -o is "
                                         f"the plot). Schedules: " + _SCHED_HELP)
        _render_args(q, kind, _PLAN_OUT)
        g = q.add_argument_group("preview")
        g.add_argument("--preview", nargs="?", const=True, default=None, metavar="FILE",
                       help="also dream a few frames small into a contact sheet (default file: the plot's "
                            "name with .preview.png); put it after the input or write --preview=FILE")
        g.add_argument("--preview-frames", type=_positive_int, default=6, metavar="N",
                       help="frames in the preview, evenly spaced over the timeline (default: %(default)s)")
        g.add_argument("--preview-size", type=_positive_int, default=256, metavar="PX",
                       help="longer side of the preview frames (default: %(default)s)")
        g.add_argument("--preview-steps", type=int, default=0, metavar="N",
                       help="steps per octave in the preview (default: 0 = half the render's)")


def _cmd_plan(ns) -> int:
    opts = job_options(ns, ns.kind)
    from dreamvideo.plan import plan_render

    res = plan_render(ns.kind, ns.input, ns.output, seed=ns.seed, max_side=ns.max_side, preview=ns.preview,
                      preview_frames=ns.preview_frames, preview_size=ns.preview_size,
                      preview_steps=ns.preview_steps, quiet=ns.quiet, **opts)
    if not ns.quiet:
        from dreamvideo.plot import describe

        print(f"wrote {res['plot']}: {res['frames']} frames, {res['frames'] / res['fps']:.2f} s at {res['fps']:g} fps")
        for name in res["panels"]:
            print(f"  {describe(name, res['curves'][name])}")
        print(f"  work: {res['work']['summary']}")
        if res["preview"]:
            print(f"wrote {res['preview']}")
    return 0


def _cmd_doctor(ns) -> int:
    from dreamvideo.doctor import doctor

    print(doctor(settings_from(ns, "model")))
    return 0


def _cmd_presets(ns) -> int:
    from dreamvideo import presets

    for name, path in presets.builtin().items():
        print(f"{name:20s} {presets.description(path)}")
    return 0


def _ui_parser(sub):
    from dreamvideo.ui import DEFAULT_OUTPUTS, INSTALL  # no Gradio: that is imported when the page starts

    p = sub.add_parser(
        "ui", help="open a local web page for images, clips and music videos",
        description="Serve a web page (Gradio) with the image, video and zoom jobs, a plan plot, presets "
                    f"and a render queue. Needs {INSTALL}. Model flags and --preset set the page's starting "
                    "values; other dream settings given here apply to every job.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only; another prints a warning)")
    p.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    p.add_argument("--outputs", default=str(DEFAULT_OUTPUTS), metavar="DIR",
                   help="folder the page writes renders, uploads and saved presets to (default: %(default)s)")
    # dest ui_preset: the renders' --preset handling (defaults re-parsed from the preset) is not this one's
    p.add_argument("--preset", dest="ui_preset", default="", metavar="NAME|FILE",
                   help="starting values from a preset (a built-in name or a .toml file)")
    p.add_argument("--seed", type=int, default=None, help="starting seed")
    p.add_argument("--max-side", type=int, default=None, metavar="PX", help="starting max side (0 = full size)")
    g = p.add_argument_group("model and dream (starting values; flags the page has no control for apply to "
                             "every job)")
    for f in (f for section in ("model", "dream") for f in dataclasses.fields(S.SECTIONS[section])):
        kw = dict(dest=f"ui.{f.name}", default=None, help=f.metadata.get("help", ""))
        if isinstance(f.default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = str if f.name in ("steps", "step_size") else type(f.default)
            kw.update({"choices": f.metadata["choices"]} if "choices" in f.metadata else
                      {"metavar": f.metadata.get("metavar", f.name.split("_")[-1].upper())})
        g.add_argument(_flag(f.name), **kw)


def _cmd_ui(ns) -> int:
    from dreamvideo.ui import run_ui

    given = {k[3:]: v for k, v in vars(ns).items() if k.startswith("ui.") and v is not None}
    return run_ui(given, ns.host, ns.port, ns.outputs, ns.ui_preset, ns.seed, ns.max_side)


# ---------------------------------------------------------------- workers (Ray)

def _distributed_args(p):
    """--workers, --ray-address, --chunk-frames, --chunk-overlap from DistributedSettings."""
    g = p.add_argument_group("workers (Ray; pip install \"dreamvideo[ray]\")")
    for f in dataclasses.fields(S.DistributedSettings):
        g.add_argument(_flag(f.name), dest=f"distributed.{f.name}", default=f.default,
                       type=_non_negative_int if isinstance(f.default, int) else type(f.default),
                       metavar=f.metadata.get("metavar"),
                       help=f.metadata["help"] + f" ({_range_help('distributed', f.metadata)}default: %(default)s)")


def _non_negative_int(text):
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, not {text}")
    return v


def _distributed_from(ns):
    return S.DistributedSettings(**{f.name: getattr(ns, f"distributed.{f.name}")
                                    for f in dataclasses.fields(S.DistributedSettings)
                                    if hasattr(ns, f"distributed.{f.name}")})


def _batch_parser(sub):
    p = sub.add_parser(
        "batch", help="render many jobs (images, videos, zooms) across Ray workers",
        description="Render the jobs of a TOML file across Ray workers, one job per worker, with one progress "
                    "bar: [defaults] (keys every job starts from) and one [[job]] table per job with kind "
                    "(image|video|zoom), input, output, optionally preset, seed, max_side and any option of "
                    "that command by its field name (steps = \"12\", layers = \"mixed4\"). Relative paths "
                    "are from the file's folder. See the README.")
    p.add_argument("jobs", metavar="JOBS.toml", help="the batch file")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", dest="distributed.workers", type=_positive_int, default=0, metavar="N",
                   help="start a local Ray cluster with N workers for the batch (default: one per GPU, "
                        "else one)")
    g.add_argument("--ray-address", dest="distributed.ray_address", default="", metavar="ADDRESS",
                   help="join a running Ray cluster: auto or HOST:PORT")
    p.add_argument("--resume", action="store_true",
                   help="carry on the jobs that were stopped and keep the outputs that are complete")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _cmd_batch(ns) -> int:
    from dreamvideo.batch import batch

    ds = _distributed_from(ns)
    lines = batch(ns.jobs, distributed=ds, resume=ns.resume, quiet=ns.quiet)
    if not ns.quiet:
        for line in lines:
            print(f"wrote {line}")
    return 0


# ---------------------------------------------------------------- live

#: Video settings that mean nothing live (a time range, a frame cap, a soundtrack file) or that live fixes
#: (``enter_every`` 1: a live frame is never held back for a band).
_LIVE_SKIP = ("start", "end", "frames", "fps", "audio", "no_audio", "enter_every")


def _live_parser(sub):
    p = sub.add_parser(
        "live", help="dream a camera, the screen, a stream or a file as it plays",
        description="Dream a live source as it plays: the newest frame is dreamed (with temporal reuse), frames "
                    "that come while the engine is busy are not, and every source frame is shown with the last "
                    "dream carried onto it by optical flow. Sinks, any together: the local page (default), "
                    "--record, --stream, --virtual-camera. Ctrl-C, SIGTERM or --duration end it; the last line "
                    "printed is `live: shown F fps, dreamed F fps, latency N ms median / N ms p95, N source frames "
                    "dropped`. Schedules: " + _SCHED_HELP)
    p.add_argument("source", help="camera, camera:N, a device path, screen, an ffmpeg URL (rtsp:// srt:// udp:// "
                                  "http(s)://), or a file (played at its own rate)")
    _common(p)
    g = p.add_argument_group("live")
    for f in dataclasses.fields(S.LiveSettings):
        kw = dict(dest=f"live.{f.name}", default=f.default, help=f.metadata["help"])
        if isinstance(f.default, bool):
            kw["action"] = "store_true"
        else:
            kw.update(type=type(f.default), metavar=f.metadata.get("metavar"))
            kw["help"] += " (default: %(default)s)"
        g.add_argument(_flag(f.name), **kw)
    add_settings(p, "video", skip=_LIVE_SKIP, title="video (coherence and reuse; --quality is the recording's)")
    add_settings(p, "model", title="model and objective")
    add_settings(p, "dream", skip=S.MOVING, title="dream engine")
    add_settings(p, "schedules", skip=("zoom", "angle", "dx", "dy"),
                 title="schedules (t: seconds since the start; audio features from the live sound)")
    _preset_args(p, "video")


def _cmd_live(ns) -> int:
    opts = job_options(ns, "video")
    live = S.LiveSettings(**{f.name: getattr(ns, f"live.{f.name}") for f in dataclasses.fields(S.LiveSettings)})
    live.check()
    from dreamvideo.realtime.session import LiveSession, status_printer

    show = status_printer(quiet=ns.quiet)
    session = LiveSession(ns.source, live, opts, seed=ns.seed, max_side=ns.max_side, status=show)
    frames = iter(session)
    try:
        for k, _ in enumerate(frames):
            if not k and session.page_url and not ns.quiet:
                print(f"dreamvideo: live at {session.page_url}", file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the usual end of a live run
        pass
    finally:
        frames.close()
        session.close()
    if show is not None:
        sys.stderr.write("\n")
    if session.recorded and not ns.quiet:
        print(f"dreamvideo: wrote {session.recorded}", file=sys.stderr)
    print(session.stats.line(), flush=True)
    return 0


COMMANDS = {"live": _cmd_live, "ui": _cmd_ui, "image": _cmd_image, "video": _cmd_video, "zoom": _cmd_zoom, "plan": _cmd_plan,
            "presets": _cmd_presets, "layers": _cmd_layers, "batch": _cmd_batch, "doctor": _cmd_doctor}

if __name__ == "__main__":
    sys.exit(main())
