"""A music video: an infinite zoom that jumps on the beat and dreams harder on onsets.

    python samples/music_video.py [PHOTO] [--audio SONG] [-o samples/out/music_video.mp4] [--weights FILE]

Without --audio it makes a 4-second 120 bpm click-and-bass track; without PHOTO it uses
samples/cat.jpg. It first plots the schedules and audio features (music_video.plan.png) so you can
see what the render will do, then renders with the song muxed in. Weights: see samples/sample_utils.py.
"""

from sample_utils import CAT, OUT, click_track, model_options, output_path, parser

import dreamvideo

p = parser(__doc__, "music_video.mp4")
p.add_argument("--audio", help="soundtrack (any format ffmpeg reads; default: a synthetic click track)")
p.add_argument("--seconds", type=float, default=4.0, help="length of the video (default: %(default)s)")
args = p.parse_args()
song = args.audio or click_track(OUT / "click.wav", seconds=args.seconds)
fps = 12
options = {
    **dreamvideo.preset_options("pulse", "zoom"),      # the shipped look; everything below overrides it
    **model_options(args.weights, args.model),
    "audio": str(song), "fps": fps, "frames": int(args.seconds * fps),
    "zoom": "1.0 + 0.06*beat",              # beat: 1 on each beat, halving every 0.12 s
    "step_size": "0.01*(1 + 2*onset)",      # onset: how sharply the sound starts, 0..1
    "steps": "4", "first_steps": 10,
}
output = output_path(args.output)
curves = dreamvideo.plan_render("zoom", args.input or CAT, output, max_side=args.size, **options)
print(f"wrote {curves['plot']} ({', '.join(curves['panels'])})")
out = dreamvideo.zoom(args.input or CAT, output, max_side=args.size, **options)
print(f"wrote {out}")
