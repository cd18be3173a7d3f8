"""A long live run: is it flat? ``zoom:noise`` driven by a song (``--audio-in``), recorded, for
``--minutes``; resident memory, latency and frame rates per ``--every`` minutes.

    python bench/bench_live_soak.py [--minutes 30] [--every 5] [--out /tmp/live_soak]

The song is made here (31 minutes: a 220 Hz tone pulsing at 120 bpm, louder every fourth beat), played
along at its pace (``--audio-in song.wav``). The zoom: ``zoom:noise --max-side 256 --fps 10 --zoom
"1.005 + 0.02*rms"``, MobileNetV2 with the shared ImageNet weights, 2 octaves x 3 steps, ``--record``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WEIGHTS = Path(os.environ.get("DREAMVIDEO_SHARED", ROOT.parent / "shared")) / "models" / \
    "mobilenet_v2_imagenet.weights.h5"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> int:
    import imageio_ffmpeg

    from dreamvideo.realtime.session import LiveSession
    from dreamvideo.settings import LiveSettings, ZoomSettings, split_options

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--every", type=float, default=5.0)
    p.add_argument("--out", default="/tmp/live_soak")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    song = out / "song.wav"
    secs = int(a.minutes * 60 + 60)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=220:sample_rate=22050:duration={secs}", "-af",
                    "volume='0.1+0.9*lt(mod(t,0.5),0.1)*(0.5+0.5*lt(mod(t,2),0.5))':eval=frame", "-ac", "1",
                    str(song)], check=True)
    from dataclasses import replace

    sections = split_options("video", dict(model="mobilenet_v2", weights=str(WEIGHTS), precision="float32",
                                           octaves=2, steps="3"))
    sections["schedules"] = replace(sections["schedules"], zoom="1.005 + 0.02*rms")
    sections["zoom"] = ZoomSettings(fps=10)
    session = LiveSession("zoom:noise", LiveSettings(record=str(out / "soak.mp4"), no_page=True,
                                                     duration=a.minutes * 60, audio_in=str(song)),
                          sections, max_side=256)
    print(f"soak: {a.minutes:g} min of zoom:noise at 256 px, 10 fps, driven by {song.name}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print("| minutes | resident MB | latency median / p95 ms | shown fps | dreamed fps | dropped | load (1 min) |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    t0 = time.monotonic()
    mark, lat0, shown0, dreamed0, dropped0 = t0 + a.every * 60, 0, 0, 0, 0
    for _ in session:
        now = time.monotonic()
        if now >= mark:
            s = session.stats
            lat = np.array(s.latencies[lat0:]) * 1000 if len(s.latencies) > lat0 else np.zeros(1)
            span = a.every * 60
            print(f"| {(now - t0) / 60:.0f} | {rss_mb():.0f} | {np.median(lat):.0f} / {np.percentile(lat, 95):.0f} | "
                  f"{(s.shown - shown0) / span:.1f} | {(s.dreamed - dreamed0) / span:.1f} | {s.dropped - dropped0} | "
                  f"{os.getloadavg()[0]:.2f} |", flush=True)
            mark, lat0, shown0, dreamed0, dropped0 = mark + span, len(s.latencies), s.shown, s.dreamed, s.dropped
    print(session.stats.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
