"""dreamvideo: DeepDream for moving pictures.

Dream over a video clip, grow an infinite zoom from a still image, make music-video visuals that
pulse with the song::

    import dreamvideo
    dreamvideo.dream_image("cat.jpg", "dream.png", layers="mixed4:1.0,mixed5:1.5")
    dreamvideo.dream_video("clip.mp4", "dream.mp4", steps="10", coherence="flow")
    dreamvideo.zoom("cat.jpg", "zoom.mp4", frames=120, zoom="1.0 + 0.04*beat", audio="song.mp3")
    for frame in dreamvideo.dream_frames(my_frames, steps="5"): ...

The heavy modules (TensorFlow) load on first use; ``import dreamvideo`` alone is light.
"""

__version__ = "0.1.0"

_API = {"dream_image": "jobs", "dream_video": "jobs", "zoom": "jobs", "dream_frames": "jobs", "zoom_frames": "jobs",
        "plan_render": "plan", "build_dreamer": "build", "load_model": "models", "Dreamer": "engine",
        "Interrupted": "errors", "layer": "objectives", "channel": "objectives", "guide": "objectives",
        "parse_objective": "objectives", "live": "realtime",
        **{name: "settings" for name in ("ModelSettings", "DreamSettings", "VideoSettings", "ZoomSettings",
                                         "Schedules")}}


def preset_options(name_or_path, kind: str = "zoom") -> dict:
    """A preset as keyword options of a job: ``dreamvideo.zoom("cat.jpg", "z.mp4", **preset_options("pulse"))``."""
    from .presets import options

    return options(name_or_path, kind)


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(name)


def __dir__():
    return sorted(list(globals()) + list(_API))
