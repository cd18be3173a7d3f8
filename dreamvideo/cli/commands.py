"""One function a command (``cmd_NAME(ns) -> exit code``) and the sub-parsers of the commands with
flags of their own (plan, batch, ui, live). Each imports what its work needs only when it runs, so
``--help`` and usage errors stay fast."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from dreamvideo import settings as S
from dreamvideo.cli.flags import (PLAN_OUT, Parser, SCHED_HELP, UsageError, add_settings,
                                  common_flags, distributed_from, flag_name, job_options,
                                  positive_int, preset_flags, render_flags, settings_from)


def cmd_image(ns) -> int:
    opts = job_options(ns, "image")
    from dreamvideo.jobs import dream_image

    out = dream_image(ns.input, ns.output, seed=ns.seed, max_side=ns.max_side, quality=ns.quality, **opts)
    if not ns.quiet:
        print(f"wrote {out}")
    return 0


def cmd_layers(ns) -> int:
    from dreamvideo.build import load_feature_model

    model = load_feature_model(S.ModelSettings(model=ns.model, weights=ns.weights, precision="float32"))
    print(f"# {model.name}: default layers {model.default_layers}")
    print(f"{'layer':48s} {'kind':22s} channels")
    for info in model.layers:
        if ns.filter in info.name:
            print(f"{info.name:48s} {info.kind:22s} {info.channels}")
    return 0


def cmd_video(ns) -> int:
    opts = job_options(ns, "video")
    ds = distributed_from(ns).check()
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


def cmd_zoom(ns) -> int:
    if ns.workers or ns.ray_address:
        raise UsageError("a zoom is sequential (each frame is the previous dream moved), so it cannot be split "
                         "across workers: drop --workers/--ray-address, or render several zooms at once with "
                         "`dreamvideo batch JOBS.toml --workers N`")
    opts = job_options(ns, "zoom")
    from dreamvideo.jobs import zoom

    out = zoom(ns.input, ns.output, seed=ns.seed, max_side=ns.max_side, resume=ns.resume, quiet=ns.quiet, **opts)
    if not ns.quiet:
        print(f"wrote {out}")
    return 0


def plan_parser(sub):
    p = sub.add_parser(
        "plan", help="plot a render's per-frame curves and preview a few frames, before rendering",
        description="Look before a long render: `dreamvideo plan video|zoom ARGS...` takes exactly the "
                    "arguments of that render and writes a plot of every scheduled curve, layer weight and "
                    "audio feature over the timeline to -o; --preview also dreams a few frames small into a "
                    "contact sheet. Nothing is rendered otherwise.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", parser_class=Parser)
    kinds.required = True
    for kind in ("video", "zoom"):
        q = kinds.add_parser(kind, help=f"plan a `dreamvideo {kind}` render",
                             description=f"Plot the curves of a `dreamvideo {kind}` render (same arguments; -o is "
                                         f"the plot). Schedules: " + SCHED_HELP)
        render_flags(q, kind, PLAN_OUT)
        g = q.add_argument_group("preview")
        g.add_argument("--preview", nargs="?", const=True, default=None, metavar="FILE",
                       help="also dream a few frames small into a contact sheet (default file: the plot's "
                            "name with .preview.png); put it after the input or write --preview=FILE")
        g.add_argument("--preview-frames", type=positive_int, default=6, metavar="N",
                       help="frames in the preview, evenly spaced over the timeline (default: %(default)s)")
        g.add_argument("--preview-size", type=positive_int, default=256, metavar="PX",
                       help="longer side of the preview frames (default: %(default)s)")
        g.add_argument("--preview-steps", type=int, default=0, metavar="N",
                       help="steps per octave in the preview (default: 0 = half the render's)")


def cmd_plan(ns) -> int:
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


def cmd_doctor(ns) -> int:
    from dreamvideo.doctor import doctor, doctor_cluster

    if ns.ray_address:
        print(doctor_cluster(ns.ray_address))
        return 0

    print(doctor(settings_from(ns, "model")))
    return 0


def cmd_presets(ns) -> int:
    from dreamvideo import presets

    for name, path in [*presets.builtin().items(), *((f, f) for f in getattr(ns, "files", []))]:
        mark = " (performance)" if presets.table(path, "performance") else ""
        print(f"{name:20s} {presets.description(path)}{mark}")
    return 0


def ui_parser(sub):
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
        g.add_argument(flag_name(f.name), **kw)


def cmd_ui(ns) -> int:
    from dreamvideo.ui import run_ui

    given = {k[3:]: v for k, v in vars(ns).items() if k.startswith("ui.") and v is not None}
    return run_ui(given, ns.host, ns.port, ns.outputs, ns.ui_preset, ns.seed, ns.max_side)


def batch_parser(sub):
    p = sub.add_parser(
        "batch", help="render many jobs (images, videos, zooms) across Ray workers",
        description="Render the jobs of a TOML file across Ray workers, one job per worker, with one progress "
                    "bar: [defaults] (keys every job starts from) and one [[job]] table per job with kind "
                    "(image|video|zoom), input, output, optionally preset, seed, max_side and any option of "
                    "that command by its field name (steps = \"12\", layers = \"mixed4\"). Relative paths "
                    "are from the file's folder. See the README.")
    p.add_argument("jobs", metavar="JOBS.toml", help="the batch file")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", dest="distributed.workers", type=positive_int, default=0, metavar="N",
                   help="start a local Ray cluster with N workers for the batch (default: one per GPU, "
                        "else one)")
    g.add_argument("--ray-address", dest="distributed.ray_address", default="", metavar="ADDRESS",
                   help="join a running Ray cluster: auto or HOST:PORT")
    p.add_argument("--resume", action="store_true",
                   help="carry on the jobs that were stopped and keep the outputs that are complete")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def cmd_batch(ns) -> int:
    from dreamvideo.batch import batch

    ds = distributed_from(ns)
    lines = batch(ns.jobs, distributed=ds, resume=ns.resume, quiet=ns.quiet)
    if not ns.quiet:
        for line in lines:
            print(f"wrote {line}")
    return 0


#: Video settings that mean nothing live (a time range, a frame cap, a soundtrack file) or that live fixes
#: (``enter_every`` 1: a live frame is never held back for a band).
LIVE_SKIP = ("start", "end", "frames", "fps", "audio", "no_audio", "enter_every")


def live_parser(sub):
    p = sub.add_parser(
        "live", help="dream a camera, the screen, a stream, a file as it plays, or a live zoom",
        description="Dream a live source as it plays: the newest frame is dreamed (with temporal reuse), frames "
                    "that come while the engine is busy are not, and every source frame is shown with the last "
                    "dream carried onto it by optical flow. Sinks, any together: the local page (default), "
                    "--record, --stream, --virtual-camera. Ctrl-C, SIGTERM or --duration end it; the last line "
                    "printed is `live: shown F fps, dreamed F fps, latency N ms median / N ms p95, N source frames "
                    "dropped`. Schedules: " + SCHED_HELP)
    p.add_argument("source", help="camera, camera:N, a device path, screen, an ffmpeg URL (rtsp:// srt:// udp:// "
                                  "http(s)://), a file (played at its own rate), or a live infinite zoom: "
                                  "zoom:IMAGE, zoom:noise or zoom:noise:WxH (moved by --zoom --angle --dx --dy)")
    common_flags(p)
    g = p.add_argument_group("live")
    for f in dataclasses.fields(S.LiveSettings):
        kw = dict(dest=f"live.{f.name}", default=f.default, help=f.metadata["help"])
        if isinstance(f.default, bool):
            kw["action"] = "store_true"
        else:
            kw.update(type=type(f.default), metavar=f.metadata.get("metavar"))
            kw["help"] += " (default: %(default)s)"
        g.add_argument(flag_name(f.name), **kw)
    g = p.add_argument_group("play it while it runs (OSC, MIDI, the page's controls, scenes), NDI out, and the "
                             "performance --record writes beside the recording (out.performance.toml)")
    for f in dataclasses.fields(S.PlaySettings):
        kw = dict(dest=f"play.{f.name}", default=f.default, help=f.metadata["help"])
        if isinstance(f.default, bool):
            kw["action"] = "store_true"
        elif isinstance(f.default, tuple):
            kw.update(action="append", default=None, metavar=f.metadata.get("metavar"))
        elif f.name == "midi":
            kw.update(nargs="?", const="default", metavar=f.metadata.get("metavar"))
        else:
            kw.update(type=type(f.default), metavar=f.metadata.get("metavar"), choices=f.metadata.get("choices"))
            if f.default != "":
                kw["help"] += " (default: %(default)s)"
        g.add_argument(flag_name(f.name), **kw)
    add_settings(p, "video", skip=LIVE_SKIP, title="video (coherence and reuse; --quality is the recording's)")
    add_settings(p, "model", title="model and objective")
    add_settings(p, "dream", skip=S.MOVING, title="dream engine")
    add_settings(p, "schedules", title="schedules (t: seconds since the start; audio features from the live sound; "
                                       "--zoom, --angle, --dx, --dy move a zoom: source)")
    add_settings(p, "zoom", skip=S.field_names(S.ZoomSettings) - set(S.LIVE_ZOOM), title="zoom: source (a live infinite zoom; --fps is its frame rate)")
    preset_flags(p, "video")


def cmd_live(ns) -> int:
    """Exit codes: 0 when the source ends or --duration is reached, 130 on Ctrl-C, 143 on SIGTERM,
    129 on SIGHUP (the recording finalized each time), 1 on a failure, 2 on a mistake (before any
    model loads). The closing line is printed whenever the run started."""
    from dreamvideo.signals import exit_code, stopped_by

    opts = job_options(ns, "video")
    opts["zoom"] = S.check_ranges(settings_from(ns, "zoom"))
    live = S.LiveSettings(**{f.name: getattr(ns, f"live.{f.name}") for f in dataclasses.fields(S.LiveSettings)})
    live.check()
    play = S.PlaySettings(**{f.name: (tuple(getattr(ns, f"play.{f.name}") or ()) if f.name == "scene"
                                      else getattr(ns, f"play.{f.name}")) for f in dataclasses.fields(S.PlaySettings)})
    from dreamvideo.realtime.session import LiveSession, status_printer

    show = status_printer(quiet=ns.quiet)
    rig = None
    if play != S.PlaySettings() or live.record or not live.no_page:
        from dreamvideo.realtime.rig import Rig

        def say(line):  # a learn line above the status line
            sys.stderr.write("\r\x1b[K" + line + "\n")
            sys.stderr.flush()

        rig = Rig(play, preset=ns.preset or "", say=say)
    session = LiveSession(ns.source, live, opts, seed=ns.seed, max_side=ns.max_side, status=show, rig=rig)
    frames = iter(session)
    code, failure = 0, None
    try:
        try:
            for k, _ in enumerate(frames):
                if not k and session.page_url and not ns.quiet:
                    print(f"dreamvideo: live at {session.page_url}", file=sys.stderr)
        finally:
            frames.close()
            session.close()
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP: the recording is finalized all the same
        code = exit_code(e)
        if not ns.quiet:
            sys.stderr.write(("\n" if show is not None else "") + f"dreamvideo: {stopped_by(e)}\n")
            show = None
    except Exception as e:  # noqa: BLE001 - said after the closing line, by main
        failure = e
    try:  # after SIGHUP the terminal may be gone: the recording is finalized already, whatever prints
        if show is not None:
            sys.stderr.write("\n")
        if session.recorded and not ns.quiet:
            print(f"dreamvideo: wrote {session.recorded}", file=sys.stderr)
        if session.performance and not ns.quiet:
            print(f"dreamvideo: wrote {session.performance}; render it at full size with: {rig.render} "
                  "--max-side 1080", file=sys.stderr)
        print(session.stats.line(), flush=True)
    except OSError:
        pass
    if failure is not None:
        raise failure
    return code
