"""The page's one door to the jobs: dream an image, a video or a zoom, plan, presets, layers.

Everything the page asks of dreamvideo goes through here (and only here are its modules named),
so the page itself stays plain Python over flat option dicts (the settings' field names, as the
jobs take them). Imports are made on use: ``dreamvideo ui --help`` loads no model framework.

Convention: ``progress(done, total)`` as in :mod:`dreamvideo.render`; options are flat field names.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from .. import __version__

KINDS = ("image", "video", "zoom")


def read_types() -> tuple[tuple, tuple]:
    """The image and video file extensions the jobs read."""
    from ..io import IMAGE_EXTS, VIDEO_EXTS

    return IMAGE_EXTS, VIDEO_EXTS


def model_names() -> tuple:
    """The named networks the jobs build."""
    from ..settings import MODEL_NAMES

    return MODEL_NAMES


def workdir_path(output) -> Path:
    """Where a render of ``output`` keeps its state to resume."""
    from ..resume import workdir_path as _workdir_path

    return _workdir_path(output)


def describe(name: str, values) -> str:
    """One line about a planned curve (its range or constant value)."""
    from ..plot import describe as _describe

    return _describe(name, values)


def field_defaults(kind: str) -> dict:
    """``{field: default}`` of every setting a ``kind`` job takes ("image", "video", "zoom")."""
    from ..settings import KIND_SECTIONS, SECTIONS

    out = {}
    for section in KIND_SECTIONS[kind]:
        for f in fields(SECTIONS[section]):
            out.setdefault(f.name, f.default)
    return out


def all_defaults() -> dict:
    out = {}
    for kind in KINDS:
        for k, v in field_defaults(kind).items():
            out.setdefault(k, v)
    return out


def run(kind: str, input, output, *, seed: int, max_side, progress=None, resume: bool = False, shown: str = "",
        **options) -> Path:
    """Run a ``kind`` job from ``input`` to ``output``; ``progress`` and ``resume`` for video and zoom.
    ``shown``: the name the input was uploaded as, for the error messages that name it."""
    from .. import jobs
    from ..errors import DreamFailure, UserError

    try:
        if kind == "image":
            return jobs.dream_image(input, output, seed=seed, max_side=max_side, **options)
        job = jobs.dream_video if kind == "video" else jobs.zoom
        return job(input, output, seed=seed, max_side=max_side, resume=resume, quiet=True, progress=progress,
                   **options)
    except (UserError, DreamFailure) as e:
        if not shown or input is None or str(input) not in str(e):
            raise
        raise type(e)(str(e).replace(str(input), shown)) from None


def plan(kind: str, input, output, *, seed: int, max_side, preview=None, preview_frames: int = 6,
         preview_size: int = 256, **options) -> dict:
    from ..plan import plan_render

    return plan_render(kind, input, output, seed=seed, max_side=max_side, preview=preview,
                       preview_frames=preview_frames, preview_size=preview_size, quiet=True, **options)


def builtin_presets() -> dict:
    from .. import presets

    return {name: presets.description(path) for name, path in presets.builtin().items()}


def preset_description(name_or_path) -> str:
    from .. import presets

    return presets.description(name_or_path)


def preset_values(name_or_path, kind: str) -> dict:
    """A preset as flat options of a ``kind`` job (plus ``seed`` / ``max_side`` where it sets them)."""
    from .. import presets

    return presets.options(name_or_path, kind)


def save_preset(path, kind: str, options: dict, *, seed: int, max_side, description: str = "") -> Path:
    """Write the settings of a ``kind`` job that differ from the defaults as a preset file."""
    from .. import presets
    from ..settings import split_options

    known = field_defaults(kind)
    sections = split_options(kind, {k: v for k, v in options.items() if k in known})
    out = presets.sections_of(sections, {"seed": seed, "max_side": max_side})
    return presets.write(path, out, header=f"dreamvideo preset (dreamvideo {__version__}), saved from the web page",
                         description=description)


def layer_list(model: str, weights: str) -> tuple[str, list[tuple[str, str, int]]]:
    """``(default layers, [(layer, kind, channels), ...])`` of a model. Layer names do not depend on the
    weights, so a named model is built untrained, apart from the jobs' model cache (a render's model stays)."""
    from ..settings import MODEL_FILE_SUFFIXES
    from ..models import load_model

    is_file = Path(str(model)).suffix in MODEL_FILE_SUFFIXES
    m = load_model("file" if is_file else model, weights if is_file else "random",
                   model_file=model if is_file else None, precision="float32")
    return m.default_layers, [(i.name, i.kind, i.channels) for i in m.layers]


def stop_media() -> None:
    """End every ffmpeg of renders the page leaves behind as it stops."""
    from ..ffmpeg import kill_all

    kill_all()


def check_image(path, name: str = "") -> None:
    """UserError unless ``path`` is an image dreamvideo reads, from its header (size limit included);
    the message names the file ``name`` (the upload's own name) if given: the command line's line."""
    from ..errors import UserError
    from ..images import check_image as _check

    try:
        _check(path)
    except UserError as e:
        raise UserError(str(e).replace(str(path), name or str(path))) from None


def check_media(path, what: str) -> None:
    """UserError unless ffmpeg reads a video stream ("video") or an audio stream ("audio") in ``path``."""
    from ..errors import UserError

    try:
        if what == "video":
            from ..io import probe_video

            probe_video(path)
        else:
            from ..ffmpeg import require_audio

            require_audio(path)
    except UserError:
        raise UserError(f"no {what} ffmpeg can read in {Path(path).name!r}; upload "
                        f"{'a clip' if what == 'video' else 'a song'} in a common format") from None
