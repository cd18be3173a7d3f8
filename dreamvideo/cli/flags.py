"""The command line's flags, built from the settings dataclasses (the single source of defaults and
ranges), and the parsed arguments turned back into those dataclasses: the parsed namespace never
leaves :mod:`dreamvideo.cli`."""

from __future__ import annotations

import argparse
import dataclasses

from dreamvideo import settings as S


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class UsageError(Exception):
    pass


def flag_name(name: str) -> str:
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
        group.add_argument(flag_name(f.name), **kw)


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


SCHED_HELP = S.SCHEDULE_HELP


def resume_flag(p):
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted render of the same output with the same arguments")


def positive_int(text):
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return v


def top_type(name):
    """An argparse type for top-level setting ``name``: a whole number in its range (settings.TOP_RANGES)."""
    def parse(text):
        v = int(text)
        if not S.in_range(v, S.TOP_RANGES[name]):
            raise argparse.ArgumentTypeError(f"must be a whole number {S.range_text(S.TOP_RANGES[name])}, not {text}")
        return v

    parse.__name__ = name  # argparse names the type in its message
    return parse


def common_flags(p):
    p.add_argument("--seed", type=top_type("seed"), default=0,
                   help=f"random seed: same seed and inputs give the same output bytes "
                        f"({S.range_text(S.TOP_RANGES['seed'])})")
    p.add_argument("--max-side", type=top_type("max_side"), default=None, metavar="PX",
                   help=f"downscale the input so its longer side is at most PX pixels "
                        f"({S.range_text(S.TOP_RANGES['max_side'])})")
    p.add_argument("--max-pixels", type=positive_int, default=None, metavar="N",
                   help=f"{S.MAX_PIXELS_HELP} (default: {S.MAX_PIXELS})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


VIDEO_OUT = "output: .mp4 .webm .gif .mov .mkv, or a folder for PNG frames"


PLAN_OUT = "the plot: .png .svg .pdf (a video name such as out.mp4 becomes out.plan.png)"


RENDER_ARGS = {  # kind: (input help, the schedules it does not have)
    "video": ("video file (mp4, mov, mkv, webm, avi, gif...) or image folder / glob", ("zoom", "angle", "dx", "dy")),
    "zoom": ("start image (or use --from-noise WxH)", ("blend",)),
}


def render_flags(p, kind, output_help=VIDEO_OUT):
    """The arguments of `dreamvideo video|zoom` (also those of `dreamvideo plan video|zoom`)."""
    input_help, no_schedules = RENDER_ARGS[kind]
    p.add_argument("input", nargs="?" if kind == "zoom" else None, help=input_help)
    p.add_argument("-o", "--output", required=True, help=output_help)
    common_flags(p)
    resume_flag(p)
    add_settings(p, kind, title=kind)
    add_settings(p, "model", title="model and objective")
    add_settings(p, "dream", skip=S.MOVING, title="dream engine")
    add_settings(p, "schedules", skip=no_schedules, title="schedules (per-frame values)")
    preset_flags(p, kind)


def preset_flags(p, kind):
    g = p.add_argument_group("presets")
    g.add_argument("--preset", default=None, metavar="NAME|FILE",
                   help="start from a named look (see `dreamvideo presets`) or a .toml file; flags given "
                        "on the command line override it")
    g.add_argument("--save-preset", default=None, metavar="FILE",
                   help="write the effective settings that differ from the defaults to FILE (.toml), then go on")
    p.set_defaults(_settings_parser=p, _kind=kind)


def distributed_flags(p):
    """--workers, --ray-address, --chunk-frames, --chunk-overlap from DistributedSettings."""
    g = p.add_argument_group("workers (Ray; pip install \"dreamvideo[ray]\")")
    for f in dataclasses.fields(S.DistributedSettings):
        g.add_argument(flag_name(f.name), dest=f"distributed.{f.name}", default=f.default,
                       type=non_negative_int if isinstance(f.default, int) else type(f.default),
                       metavar=f.metadata.get("metavar"),
                       help=f.metadata["help"] + f" ({_range_help('distributed', f.metadata)}default: %(default)s)")


def non_negative_int(text):
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, not {text}")
    return v


def distributed_from(ns):
    return S.DistributedSettings(**{f.name: getattr(ns, f"distributed.{f.name}")
                                    for f in dataclasses.fields(S.DistributedSettings)
                                    if hasattr(ns, f"distributed.{f.name}")})
