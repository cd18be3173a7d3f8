"""dreamvideo: DeepDream for moving pictures.

Dream over a video clip, grow an infinite zoom from a still image, make music-video visuals that
pulse with the song. The heavy modules (TensorFlow) load on first use.
"""

__version__ = "0.1.0"
