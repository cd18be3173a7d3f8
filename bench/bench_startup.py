"""Start-up cost of the command line: whole processes, as a user types them.

`dreamvideo --help`, `dreamvideo presets` and a usage error must not load TensorFlow (target: each
under 1 s as a whole process); `python -c "import tensorflow"` is timed alongside for scale.

    python bench/bench_startup.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = {
    "dreamvideo --help": ["-m", "dreamvideo.cli", "--help"],
    "dreamvideo presets": ["-m", "dreamvideo.cli", "presets"],
    "usage error (--octaves 0)": ["-m", "dreamvideo.cli", "image", "a.png", "-o", "b.png", "--octaves", "0"],
    "python -c 'import tensorflow' (for scale)": ["-c", "import tensorflow"],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args(argv)
    times = {k: [] for k in CASES}
    for _ in range(a.reps):  # rounds alternate the cases, so load drift hits all alike
        for name, args in CASES.items():
            t = time.perf_counter()
            subprocess.run([sys.executable, *args], capture_output=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            times[name].append(time.perf_counter() - t)
    load = os.getloadavg()[0]
    print(f"| command | median s ({a.reps} runs) | min s |\n| --- | ---: | ---: |")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} |")
    print(f"\n1-minute load average at the end: {load:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
