"""dreamvideo: DeepDream for moving pictures.

Dream over a video clip, grow an infinite zoom from a still image, make music-video visuals that
pulse with the song::

    import dreamvideo
    dreamvideo.dream_image("cat.jpg", "dream.png", layers="mixed4:1.0,mixed5:1.5")
    dreamvideo.dream_video("clip.mp4", "dream.mp4", steps="10", coherence="flow")
    dreamvideo.zoom("cat.jpg", "zoom.mp4", frames=120, zoom="1.0 + 0.04*beat", audio="song.mp3")
    for frame in dreamvideo.dream_frames(my_frames, steps="5"): ...

The heavy modules (TensorFlow) load on first use.
"""

__version__ = "0.1.0"

_API = {"dream_video": "pipeline", "zoom": "pipeline", "dream_frames": "pipeline", "zoom_frames": "pipeline",
        "build_dreamer": "pipeline", "load_model": "models", "plan_render": "pipeline", "preset_options": "pipeline",
        "Dreamer": "engine", "DreamSettings": "engine", "layer": "objectives", "channel": "objectives",
        "guide": "objectives", "parse_objective": "objectives"}


def dream_image(input, output, *, seed: int = 0, max_side=None, **options):
    """Dream one image file; ``options`` are fields of ModelSettings and DreamSettings (``steps=10``...)."""
    from .engine import DreamSettings
    from .pipeline import ModelSettings, _split, dream_image as _dream_image

    model, dream = _split(options, ModelSettings, DreamSettings)
    return _dream_image(input, output, model, dream, seed=seed, max_side=max_side)


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(name)
