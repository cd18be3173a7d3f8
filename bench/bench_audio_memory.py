"""Peak memory and time of `dreamvideo plan` over a long song: the audio features are computed block by
block, so memory stays flat however long the song.

    python bench/bench_audio_memory.py [--minutes 120] [--keep DIR]

Makes a click-and-bass song of that length with the bundled ffmpeg (22050 Hz mono WAV), then runs
`dreamvideo plan zoom --from-noise 64x48 --audio song.wav --frames 0` (every audio feature the plan
plots, as long as the song at 25 fps) in a child process and prints its peak resident memory
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``) and wall time. Results: bench/RESULTS.md, "Long audio".
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def song(path: Path, seconds: float) -> Path:
    """A 120 bpm click over a 55 Hz bass that swells every 10 s, and a quiet 700 Hz tone."""
    import imageio_ffmpeg

    expr = ("0.4*sin(2*PI*55*t)*(1+0.5*sin(2*PI*0.1*t))+0.6*lt(mod(t\\,0.5)\\,0.03)*sin(2*PI*3000*t)"
            "+0.05*sin(2*PI*700*t)")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc='{expr}':s=22050:d={seconds:g}", "-c:a", "pcm_s16le", str(path)], check=True)
    return path


def plan_peak(audio: Path, out: Path, env=None) -> tuple[float, float, int]:
    """(peak MiB, seconds, exit code) of a child `dreamvideo plan` over ``audio``."""
    argv = [sys.executable, "-c", "import sys; from dreamvideo.cli import main; sys.exit(main(sys.argv[1:]))",
            "plan", "zoom", "--from-noise", "64x48", "-o", str(out), "--audio", str(audio), "--frames", "0", "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    rc = subprocess.run(argv, cwd=ROOT, env=env).returncode
    took = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far (KiB on Linux)
    if peak <= before:
        print("note: an earlier child peaked higher; run once per process for an exact figure", file=sys.stderr)
    return peak / 1024, took, rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--keep", default=None, help="make the song in this folder (and keep it) instead of a temporary one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(args.keep or tmp).resolve()
        d.mkdir(parents=True, exist_ok=True)
        wav = d / f"song-{args.minutes:g}min.wav"
        if not wav.exists():
            t = time.perf_counter()
            song(wav, args.minutes * 60)
            print(f"made {wav.name} ({wav.stat().st_size / 2 ** 20:.0f} MiB) in {time.perf_counter() - t:.0f} s")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        peak, took, rc = plan_peak(wav, d / "plan.png", env)
        try:
            import librosa  # noqa: F401
            feats = "rms onset beat low mid high"
        except ImportError:
            feats = "rms low mid high (no librosa: no onset/beat)"
        print(f"plan of a {args.minutes:g}-minute song ({feats}): peak {peak:.0f} MiB, {took:.1f} s, exit {rc}")
        return rc


if __name__ == "__main__":
    sys.exit(main())
