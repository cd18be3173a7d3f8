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

from . import io as dio
from .build import build_dreamer
from .coherence import frames_with_flow, video_stepper
from .errors import UserError
from .render import Progress, SourceFrame, render, run_stepper
from .resume import WorkDir, fingerprint
from .reuse import rebuild_from
from .settings import SCHEDULED, VideoSettings, check_moving, split_options, with_blend_default
from .timeline import Timeline
from .infinite import ZoomStepper, song_frames, zoom_start


def dream_image(input, output, *, seed: int = 0, max_side: int | None = None, quality: int = 95, **options) -> Path:
    """Dream one still image file into ``output`` (png/jpg/webp...). Returns the output path.

    ``options``: fields of ModelSettings and DreamSettings (``layers="mixed4:1.0", steps=10``).
    """
    s = split_options("image", options)
    dream = s["dream"].check()
    if not 1 <= quality <= 100:
        raise UserError(f"`quality` must be from 1 to 100, not {quality}")
    dio.check_not_same(input, output)
    if Path(output).suffix.lower() not in dio.IMAGE_EXTS:
        raise UserError(f"cannot write {output}: use an image extension ({', '.join(dio.IMAGE_EXTS)})")
    img = dio.fit_max_side(dio.read_image(input), max_side)
    out = build_dreamer(s["model"]).dream(img, settings=dream, seed=seed)
    dio.write_image(output, out, quality=quality)
    return Path(output)


def check_video_output(input, output) -> None:
    """A render's output must be a video file or a folder, in an existing folder, not the input."""
    dio.check_not_same(input, output)
    p = str(output)
    if not (p.endswith("/") or Path(p).suffix.lower() in dio.WRITE_VIDEO_EXTS or not Path(p).suffix):
        raise UserError(f"cannot write {output}: use {', '.join(dio.WRITE_VIDEO_EXTS)} or a folder for PNG frames")
    parent = Path(p).absolute().parent  # checked before the work folder is made there (which would create it)
    if not parent.is_dir():
        raise UserError(f"output folder {parent} does not exist; create it or choose another output path")


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
    """A video job's settings by section (engine settings checked, the blend default filled in) and a
    reader of its frames, after the checks every video render makes (output path, settings, soundtrack)."""
    s = split_options("video", options)
    s["dream"] = s["dream"].check()
    s["schedules"] = with_blend_default(s["schedules"], s["video"])
    check_video_output(input, output)
    check_moving(s["video"])
    if s["video"].audio:
        dio.require_audio(s["video"].audio)
    return s, open_video(input, s["video"], max_side)


def dream_video(input, output, *, seed: int = 0, max_side: int | None = None, resume: bool = False,
                quiet: bool = False, progress: Progress | None = None, **options) -> Path:
    """Dream over a video clip (or image sequence) into ``output`` (mp4/webm/gif/mov/mkv or a folder).

    ``options``: fields of ModelSettings, DreamSettings, VideoSettings and Schedules. Returns the
    output path; raises :class:`~dreamvideo.render.Interrupted` on Ctrl-C/SIGTERM after finalizing
    the frames done (``resume=True`` then continues).
    """
    s, reader = prepare_video(input, output, options, max_side)
    model, dream, video, sched = s["model"], s["dream"], s["video"], s["schedules"]
    info = reader.info
    if video.frames and info.nframes and video.frames > info.nframes + 1:
        reader.close()
        raise UserError(f"`frames` {video.frames} is more than the {info.nframes} frames of {input} in that "
                        f"range; use {info.nframes} or fewer")
    audio, audio_start = soundtrack(input, video, info)
    fp = fingerprint("video", input, model=model, dream=dream, video=video, sched=sched, seed=seed,
                     max_side=max_side)
    with WorkDir(output, fp, resume) as work:
        dreamer = build_dreamer(model)
        stepper = video_stepper(dreamer, dream, video, sched, fps=info.fps, nframes=info.nframes, seed=seed,
                                audio=audio, audio_start=audio_start)
        method = video.flow if video.coherence == "flow" else None

        def source():
            with reader:
                yield from frames_with_flow(reader, method, skip=rebuild_from(work.done, video))

        return render(source, stepper, output, total=info.nframes, fps=info.fps, size=(info.width, info.height),
                      quality=video.quality or None, audio=audio if carries_audio(video, output) else "",
                      audio_start=audio_start, work=work, progress=progress, quiet=quiet, desc="dreaming")


def zoom(input, output, *, seed: int = 0, max_side: int | None = None, resume: bool = False, quiet: bool = False,
         progress: Progress | None = None, **options) -> Path:
    """Grow an infinite-zoom animation from an image (or ``from_noise="WxH"``; ``input`` may then be None).

    ``options``: fields of ModelSettings, DreamSettings, ZoomSettings and Schedules
    (``zoom="1.0 + 0.04*beat", frames=240, audio="song.mp3"``). ``frames=0`` with an ``audio``
    file renders as many frames as the song lasts at ``fps``.
    """
    s = split_options("zoom", options)
    model, sched, dream = s["model"], s["schedules"], s["dream"].check()
    check_video_output(input or "", output)
    if s["zoom"].audio:
        dio.require_audio(s["zoom"].audio)
    zs = song_frames(s["zoom"])
    init = zoom_start(input, zs, max_side, seed)
    fp = fingerprint("zoom", input or zs.from_noise, model=model, dream=dream, zoom=zs, sched=sched, seed=seed,
                     max_side=max_side)
    with WorkDir(output, fp, resume) as work:
        dreamer = build_dreamer(model)
        timeline = Timeline(sched, zs.fps, zs.frames, dreamer.objective.terms, zs.audio or None, 0.0,
                            use=SCHEDULED["zoom"])
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
    video = s["video"]
    dreamer = dreamer or build_dreamer(s["model"])
    stepper = video_stepper(dreamer, s["dream"].check(), video, s["schedules"], fps=fps,
                            nframes=first_index + (video.frames or 1), seed=seed, audio=video.audio,
                            first_index=first_index)
    for _, image in run_stepper(stepper, frames_with_flow(frames, video.flow if video.coherence == "flow" else None,
                                                          first_index=first_index)):
        yield image


def zoom_frames(image, nframes: int, *, seed: int = 0, dreamer=None, **options):
    """Generator: the frames of an infinite zoom from ``image`` (uint8 RGB), one at a time."""
    s = split_options("zoom", options)
    zs = s["zoom"]
    dreamer = dreamer or build_dreamer(s["model"])
    timeline = Timeline(s["schedules"], zs.fps, nframes, dreamer.objective.terms, zs.audio or None,
                        use=SCHEDULED["zoom"])
    stepper = ZoomStepper(dreamer, s["dream"].check(), zs, timeline, seed, np.asarray(image, np.uint8))
    yield from stepper.frames(nframes)
