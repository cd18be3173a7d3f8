"""Grow an infinite zoom from a photo: each frame is the last dream zoomed, turned, dreamed again.

    python samples/infinite_zoom.py [PHOTO] [-o samples/out/infinite_zoom.mp4] [--weights FILE]

Without PHOTO it uses samples/cat.jpg. Weights: see samples/sample_utils.py.
"""

from sample_utils import CAT, model_options, output_path, parser

import dreamvideo

args = parser(__doc__, "infinite_zoom.mp4").parse_args()
out = dreamvideo.zoom(
    args.input or CAT, output_path(args.output), max_side=args.size, frames=36, fps=12,
    zoom="1.03",                                    # 3 % closer every frame
    angle="0:(0), 18:(1), 35:(-1)",                  # keyframes: turn one way, then the other
    dx="4*sin(2*pi*t/3)",                           # an expression of t (seconds): drift sideways
    first_steps=12, steps="4", step_size="0.012",
    octaves=3, **model_options(args.weights, args.model))
print(f"wrote {out}")
