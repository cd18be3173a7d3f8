"""Live mode: dream a camera, the screen, a stream or a file as it plays (``dreamvideo live``).

- :mod:`.sources`: the source as ffmpeg delivers it, newest frame only;
- :mod:`.engine`: the dream thread (newest shown frame only, temporal reuse), live schedules and
  the ``--target-fps`` controller;
- :mod:`.session`: the show loop (every source frame carried from the last dream by optical flow,
  to every sink) and its figures;
- :mod:`.sinks`: recording, stream, virtual camera, local page;
- :mod:`.listen`: the audio features online;
- :mod:`.adapter`: the only door to the video renderer's stepper and carry.

Convention: frames are ``H x W x 3`` uint8 RGB; timestamps are seconds of the source since the start.
"""

from __future__ import annotations


def live(source, *, record: str = "", stream: str = "", virtual_camera: bool = False, page: bool = False,
         page_port: int = 7870, duration: float = 0.0, target_fps: float = 0.0, loop: bool = False,
         audio_in: str = "", deepen: float | None = None, source_timeout: float | None = None, seed: int = 0,
         max_side: int | None = None, dreamer=None, controls=None, **options):
    """Generator: ``(seconds, frame)`` of every frame shown live from ``source`` (``"camera"``,
    ``"camera:N"``, ``"screen"``, an ffmpeg URL, a file played at its own rate, or a live infinite
    zoom ``"zoom:IMAGE"`` / ``"zoom:noise"``), each the last dream carried onto that source frame
    by optical flow (a zoom's frames: the last dream moved by ``zoom``, ``angle``, ``dx``, ``dy``);
    the dream itself updates as fast as the engine goes (frames that come while it is busy are not
    dreamed, never queued).

    Sinks as options: ``record="out.mp4"``, ``stream="udp://127.0.0.1:5000"``, ``virtual_camera=True``,
    ``page=True`` (a local page at ``http://127.0.0.1:page_port/``). ``deepen``: steps per octave a
    still region's dream adds up to (0: off; default :class:`~dreamvideo.settings.LiveSettings`'s);
    ``source_timeout``: seconds without a frame before the run gives up. ``controls``: a
    :class:`~dreamvideo.realtime.controls.LiveControls` to change settings while it plays.
    ``options``: the model, dream, video and schedule settings of :func:`dreamvideo.dream_video`
    (``steps="3"``, ``layers=...``), and for a zoom ``fps``, ``color_match``, ``detail_octaves``,
    ``detail_steps``; to play it while it runs, the options of
    :class:`~dreamvideo.settings.PlaySettings` (``osc="9000"``, ``midi="virtual"``,
    ``scene=("calm=gentle-video",)``, ``ndi="dreamvideo"``, ``record_source="raw.mp4"``); with
    ``record``, ``out.performance.toml`` is written beside the recording (:mod:`.performance`). A
    value of the wrong type is a one-line error naming the option.
    Closing the generator (``break``, ``close()``, Ctrl-C) finalizes every sink and ends every ffmpeg.
    """
    from dataclasses import fields

    from ..settings import LIVE_ZOOM, LiveSettings, PlaySettings, ZoomSettings, check_ranges, split_options
    from .session import LiveSession

    given = dict(record=record, stream=stream, virtual_camera=virtual_camera, no_page=not _flag("page", page),
                 page_port=page_port, duration=duration, target_fps=target_fps, loop=loop, audio_in=audio_in,
                 deepen=deepen, source_timeout=source_timeout)
    settings = LiveSettings(**{k: _typed(k, v, getattr(LiveSettings, k)) for k, v in given.items() if v is not None})
    play = {f.name: options.pop(f.name) for f in fields(PlaySettings) if f.name in options}
    if isinstance(play.get("scene"), str):
        play["scene"] = (play["scene"],)
    play = PlaySettings(**{k: tuple(v) if k == "scene" else _typed(k, v, getattr(PlaySettings, k))
                           for k, v in play.items()})
    zoom = check_ranges(ZoomSettings(**{k: options.pop(k) for k in LIVE_ZOOM if k in options}))
    sections = split_options("video", options)
    sections["zoom"] = zoom
    rig = None
    if play != PlaySettings() or settings.record or not settings.no_page:
        from .rig import Rig

        rig = Rig(play)
    session = LiveSession(source, settings, sections, seed=seed, max_side=max_side, dreamer=dreamer,
                          controls=controls, rig=rig)
    yield from session


def _flag(name: str, value) -> bool:
    """A yes/no option: a bool (or 0/1), never a string (``"no"`` would be true)."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    from ..errors import UserError

    raise UserError(f"`{name}` must be True or False, not {value!r}")


def _typed(name: str, value, default):
    """``value`` as the type of the option's ``default``, or a one-line UserError naming the option."""
    from ..errors import UserError

    if isinstance(default, bool):
        return _flag(name, value)
    if isinstance(default, str):
        import os

        if value is None or value == "":
            return ""
        if not isinstance(value, (str, os.PathLike)):
            raise UserError(f"`{name}` must be a text or a path, not {value!r}")
        return str(value)
    try:
        if isinstance(value, bool):  # True is no number of seconds
            raise ValueError
        number = float(value)
        if isinstance(default, int) and number != int(number):
            raise ValueError
        return type(default)(number)
    except (TypeError, ValueError, OverflowError):
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise UserError(f"`{name}` must be {kind}, not {value!r}") from None
