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
         audio_in: str = "", seed: int = 0, max_side: int | None = None, dreamer=None, **options):
    """Generator: ``(seconds, frame)`` of every frame shown live from ``source`` (``"camera"``,
    ``"camera:N"``, ``"screen"``, an ffmpeg URL, a file played at its own rate, or a live infinite
    zoom ``"zoom:IMAGE"`` / ``"zoom:noise"``), each the last dream carried onto that source frame
    by optical flow (a zoom's frames: the last dream moved by ``zoom``, ``angle``, ``dx``, ``dy``);
    the dream itself updates as fast as the engine goes (frames that come while it is busy are not
    dreamed, never queued).

    Sinks as options: ``record="out.mp4"``, ``stream="udp://127.0.0.1:5000"``, ``virtual_camera=True``,
    ``page=True`` (a local page at ``http://127.0.0.1:page_port/``). ``options``: the model, dream,
    video and schedule settings of :func:`dreamvideo.dream_video` (``steps="3"``, ``layers=...``),
    and for a zoom ``fps``, ``color_match``, ``detail_octaves``, ``detail_steps``; to play it while it
    runs, the options of :class:`~dreamvideo.settings.PlaySettings` (``osc="9000"``, ``midi="virtual"``,
    ``scene=("calm=gentle-video",)``, ``ndi="dreamvideo"``, ``record_source="raw.mp4"``). With
    ``record``, ``out.performance.toml`` is written beside the recording (:mod:`.performance`).
    Closing the generator (``break``, Ctrl-C) finalizes every sink.
    """
    from dataclasses import fields

    from ..settings import PlaySettings
    from ..settings import LIVE_ZOOM, LiveSettings, ZoomSettings, check_ranges, split_options
    from .session import LiveSession

    settings = LiveSettings(record=str(record or ""), stream=str(stream or ""), virtual_camera=bool(virtual_camera),
                            no_page=not page, page_port=int(page_port), duration=float(duration),
                            target_fps=float(target_fps), loop=bool(loop), audio_in=str(audio_in or ""))
    play = PlaySettings(**{f.name: options.pop(f.name) for f in fields(PlaySettings) if f.name in options})
    if isinstance(play.scene, str):
        play = PlaySettings(**{**{f.name: getattr(play, f.name) for f in fields(PlaySettings)}, "scene": (play.scene,)})
    zoom = check_ranges(ZoomSettings(**{k: options.pop(k) for k in LIVE_ZOOM if k in options}))
    sections = split_options("video", options)
    sections["zoom"] = zoom
    rig = None
    if play != PlaySettings() or settings.record or page:
        from .rig import Rig

        rig = Rig(play)
    session = LiveSession(source, settings, sections, seed=seed, max_side=max_side, dreamer=dreamer, rig=rig)
    yield from session
