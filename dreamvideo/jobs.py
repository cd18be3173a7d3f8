"""The public jobs: dream an image, a video or a zoom, from files to files (or frames to frames).

Each job takes flat keyword ``options``: the field names of the settings dataclasses of
:mod:`dreamvideo.settings` that the job has (``steps="10", coherence="flow", layers="mixed4"``),
or whole sections (``dream=DreamSettings(...)``). Unknown names are a TypeError, bad values a
one-line :class:`~dreamvideo.errors.UserError`.

Convention: frames are ``H x W x 3`` uint8 RGB arrays; times in seconds; ``progress(done, total)``
as in :mod:`dreamvideo.render`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import guard, io as dio
from .build import build_dreamer, schedule_terms
from .coherence import frames_with_flow, video_stepper
from .errors import UserError
from .render import Progress, SourceFrame, render, run_stepper
from .resume import WorkDir, fingerprint, runtime
from .reuse import rebuild_from
from .settings import (SCHEDULED, TOP_RANGES, VideoSettings, check_moving, check_top, check_value, split_options,
                       with_blend_default)
from .timeline import Timeline
from .urls import accepts_urls
from .infinite import ZoomStepper, song_frames, zoom_start


@accepts_urls
def dream_image(input, output, *, seed: int = 0, max_side: int | None = None, quality: int = 95, **options) -> Path:
    """Dream one still image file into ``output`` (png/jpg/webp...). Returns the output path.

    ``options``: fields of ModelSettings and DreamSettings (``layers="mixed4:1.0", steps=10``).
    """
    s = split_options("image", options)
    dream = s["dream"].check()
    check_top(seed=seed, max_side=max_side)
    check_value("quality", quality, TOP_RANGES["quality"])
    guard.check_render("image", input, output, s)
    if Path(output).suffix.lower() not in dio.IMAGE_EXTS:
        raise UserError(f"cannot write {output}: use an image extension ({', '.join(dio.IMAGE_EXTS)})")
    img = dio.read_image(input, max_side)  # a JPEG decodes reduced
    out = build_dreamer(s["model"]).dream(img, settings=dream, seed=seed)
    dio.write_image(output, out, quality=quality)
    return Path(output)


def check_video_output(input, output) -> None:
    """A render's output must be a video file or a folder, in an existing folder (that it writes no
    file the render reads is :func:`dreamvideo.guard.check_render`'s)."""
    p = str(output)
    if not (p.endswith("/") or Path(p).suffix.lower() in dio.WRITE_VIDEO_EXTS or not Path(p).suffix):
        raise UserError(f"cannot write {output}: use {', '.join(dio.WRITE_VIDEO_EXTS)} or a folder for PNG frames")
    parent = Path(p).absolute().parent  # checked before the work folder is made there (which would create it)
    if not parent.is_dir():
        raise UserError(f"output folder {parent} does not exist; create it or choose another output path")
    if dio.is_folder_path(output):
        dio.check_frames_folder(output)


def soundtrack(input, video: VideoSettings, info) -> tuple[str, float]:
    """The audio a video render uses (``""`` for none) and where in it the render starts, seconds."""
    audio = "" if video.no_audio else (video.audio or (str(input) if info.has_audio else ""))
    return audio, (video.start if audio and not video.audio else 0.0)


def open_video(input, video: VideoSettings, max_side: int | None, frames: int | None = None):
    """A reader of the frames a video render uses (time range, frame cap, size, rate)."""
    return dio.VideoReader(input, start=video.start or None, end=video.end or None,
                          frames=frames or video.frames or None, max_side=max_side, fps=video.fps or None)


def carries_audio(video: VideoSettings, output) -> bool:
    """Whether a video render's output gets its soundtrack: a named one always, the source's own only
    where it can (not GIF / PNG frames: no warning for what was never asked)."""
    return bool(video.audio) or Path(str(output)).suffix.lower() in (".mp4", ".mov", ".mkv", ".webm")


def prepare_video(input, output, options: dict, max_side: int | None):
    """A video job's settings by section (engine settings checked, the blend default filled in, and
    ``"timeline"``: every schedule evaluated and checked) and a reader of its frames, after the checks
    every video render makes (output path, settings, soundtrack, frame count): all before a model loads."""
    s = split_options("video", options)
    s["dream"] = s["dream"].check()
    s["schedules"] = with_blend_default(s["schedules"], s["video"])
    guard.check_render("video", input, output, s)
    check_video_output(input, output)
    check_moving(s["video"])
    if s["video"].audio:
        dio.require_audio(s["video"].audio)
    reader = open_video(input, s["video"], max_side)
    try:
        info, video = reader.info, s["video"]
        if not info.nframes and reader.src.duration:  # a start inside the last frame: nothing to decode
            raise UserError(f"`start` {video.start:g} s leaves less than one frame of {input} "
                            f"({reader.src.duration:.2f} s at {info.fps:g} fps); use a smaller `start` or a later "
                            f"`end`")
        if video.frames and info.nframes and video.frames > info.nframes + 1:
            raise UserError(f"`frames` {video.frames} is more than the {info.nframes} frames of {input} in that "
                            f"range; use {info.nframes} or fewer")
        audio, audio_start = soundtrack(input, video, info)
        s["timeline"] = Timeline(s["schedules"], info.fps, info.nframes, schedule_terms(s["model"], s["schedules"]),
                                 audio or None, audio_start, use=SCHEDULED["video"])
    except BaseException:
        reader.close()
        raise
    return s, reader


@accepts_urls
def dream_video(input, output, *, seed: int = 0, max_side: int | None = None, resume: bool = False,
                quiet: bool = False, progress: Progress | None = None, **options) -> Path:
    """Dream over a video clip (or image sequence) into ``output`` (mp4/webm/gif/mov/mkv or a folder).

    ``options``: fields of ModelSettings, DreamSettings, VideoSettings and Schedules. Returns the
    output path; raises :class:`~dreamvideo.render.Interrupted` on Ctrl-C/SIGTERM after finalizing
    the frames done (``resume=True`` then continues).
    """
    check_top(seed=seed, max_side=max_side)
    s, reader = prepare_video(input, output, options, max_side)
    model, dream, video, sched, timeline = s["model"], s["dream"], s["video"], s["schedules"], s["timeline"]
    info = reader.info
    audio, audio_start = soundtrack(input, video, info)
    fp = fingerprint("video", input, model=model, dream=dream, video=video, sched=sched, seed=seed,
                     max_side=max_side)
    with WorkDir(output, fp, resume) as work:
        work.check_source(lambda: open_video(input, video, max_side), video.enter_every)  # a source that grew
        dreamer = build_dreamer(model)
        work.confirm(runtime(dreamer))
        stepper = video_stepper(dreamer, dream, video, sched, fps=info.fps, nframes=info.nframes, seed=seed,
                                audio=audio, audio_start=audio_start, timeline=timeline)
        method = video.flow if video.coherence == "flow" else None

        def source():
            with reader:
                yield from frames_with_flow(reader, method, skip=rebuild_from(work.done, video))

        return render(source, stepper, output, total=info.nframes, fps=info.fps, size=(info.width, info.height),
                      quality=video.quality or None, audio=audio if carries_audio(video, output) else "",
                      audio_start=audio_start, work=work, progress=progress, quiet=quiet, desc="dreaming")


@accepts_urls
def zoom(input, output, *, seed: int = 0, max_side: int | None = None, resume: bool = False, quiet: bool = False,
         progress: Progress | None = None, **options) -> Path:
    """Grow an infinite-zoom animation from an image (or ``from_noise="WxH"``; ``input`` may then be None).

    ``options``: fields of ModelSettings, DreamSettings, ZoomSettings and Schedules
    (``zoom="1.0 + 0.04*beat", frames=240, audio="song.mp3"``). ``frames=0`` with an ``audio``
    file renders as many frames as the song lasts at ``fps``.
    """
    s = split_options("zoom", options)
    model, sched, dream = s["model"], s["schedules"], s["dream"].check()
    check_top(seed=seed, max_side=max_side)
    check_moving(s["zoom"])
    guard.check_render("zoom", input, output, s)
    check_video_output(input or "", output)
    if s["zoom"].audio:
        dio.require_audio(s["zoom"].audio)
    zs = song_frames(s["zoom"])
    init = zoom_start(input, zs, max_side, seed)
    timeline = Timeline(sched, zs.fps, zs.frames, schedule_terms(model, sched), zs.audio or None, 0.0,
                        use=SCHEDULED["zoom"])
    fp = fingerprint("zoom", input or zs.from_noise, model=model, dream=dream, zoom=zs, sched=sched, seed=seed,
                     max_side=max_side)
    with WorkDir(output, fp, resume) as work:
        dreamer = build_dreamer(model)
        work.confirm(runtime(dreamer))
        stepper = ZoomStepper(dreamer, dream, zs, timeline, seed, init)
        return render(lambda: (SourceFrame(i) for i in range(zs.frames)), stepper, output, total=zs.frames,
                      fps=zs.fps, size=(init.shape[1], init.shape[0]), quality=zs.quality or None, audio=zs.audio,
                      audio_start=0.0, work=work, progress=progress, quiet=quiet, desc="zooming")


def dream_frames(frames, *, seed: int = 0, dreamer=None, fps: float = 25.0, first_index: int = 0, **options):
    """Generator: dream an iterable of uint8 RGB frames coherently, yielding each dream once it is
    final: with temporal reuse (``full_frames=False``) a frame that shows content waiting for the
    next band comes out with that band, up to ``enter_every - 1`` frames later.

    For plugging in your own source and sink. ``options`` as :func:`dream_video` (model, engine,
    coherence and schedules; audio-reactive schedules need ``audio=FILE``). ``first_index`` numbers
    the first frame (its seed and schedule values), for a piece of a longer clip.
    """
    s = split_options("video", options)
    video, dream = s["video"], s["dream"].check()
    check_moving(video)
    sched = with_blend_default(s["schedules"], video)
    nframes = first_index + (video.frames or 1)
    timeline = Timeline(sched, fps, nframes, dreamer.objective.terms if dreamer else schedule_terms(s["model"], sched),
                        video.audio or None, use=SCHEDULED["video"])
    dreamer = dreamer or build_dreamer(s["model"])
    stepper = video_stepper(dreamer, dream, video, sched, fps=fps, nframes=nframes, seed=seed, audio=video.audio,
                            first_index=first_index, timeline=timeline)
    for _, image in run_stepper(stepper, frames_with_flow(frames, video.flow if video.coherence == "flow" else None,
                                                          first_index=first_index)):
        yield image


def zoom_frames(image, nframes: int, *, seed: int = 0, dreamer=None, **options):
    """Generator: the frames of an infinite zoom from ``image`` (uint8 RGB), one at a time."""
    s = split_options("zoom", options)
    zs, dream = s["zoom"], s["dream"].check()
    check_moving(zs)
    timeline = Timeline(s["schedules"], zs.fps, nframes,
                        dreamer.objective.terms if dreamer else schedule_terms(s["model"], s["schedules"]),
                        zs.audio or None, use=SCHEDULED["zoom"])
    dreamer = dreamer or build_dreamer(s["model"])
    stepper = ZoomStepper(dreamer, dream, zs, timeline, seed, np.asarray(image, np.uint8))
    yield from stepper.frames(nframes)
