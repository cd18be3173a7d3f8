"""Dream over a short video clip, coherent from frame to frame, keeping its sound.

    python samples/dream_clip.py [CLIP] [-o samples/out/dream_clip.mp4] [--weights FILE]

Without CLIP it first makes a 2-second pan over samples/cat.jpg with the bundled ffmpeg.
Weights: see samples/sample_utils.py (--weights, $DREAMVIDEO_WEIGHTS, the shared MobileNetV2 file, or
InceptionV3 downloaded).
"""

from sample_utils import OUT, model_options, output_path, pan_clip, parser

import dreamvideo

args = parser(__doc__, "dream_clip.mp4").parse_args()
clip = args.input or pan_clip(OUT / "pan.mp4")
out = dreamvideo.dream_video(
    clip, output_path(args.output), max_side=args.size, frames=24,
    coherence="flow",             # carry the previous frame's dream along the optical flow, kept whole:
                                  # only what is new in a frame is dreamed, so the dream holds to the end
    first_steps=12, steps="5",    # the first frame dreams fully, new content with 5 steps per octave
    step_size="0.012 + 0.006*sin(2*pi*t/2)",  # a schedule: the dream breathes every 2 seconds
    octaves=3, **model_options(args.weights, args.model))
print(f"wrote {out}")
