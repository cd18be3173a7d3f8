"""Ray clusters without a shared disk (docs/machines.md).

    python bench/bench_ray_nodes.py ship  [--seconds 20]            # 1080p: whole clip or each chunk's range
    python bench/bench_ray_nodes.py nodes [--seconds 60] [--fps 4]  # 540p on 1 then 2 worker nodes, S3 vs disk
    python bench/bench_ray_nodes.py s3 [--seconds 10] [--fps 4]     # the S3 part alone

ship:  a generated 1920x1080 H.264 clip (x264 defaults: a keyframe every 250 frames at most). For a chunk
       starting at frame L, what a worker node needs before its first frame:
       - whole clip: its bytes, once per node (ray.put on the driver, pulled into the node's cache by a
         worker: timed on a local cluster), then the L frames before the chunk decoded and dropped;
       - chunk range: the driver cuts [L, end) without re-encoding (ffmpeg -ss before -i, -c copy: it starts
         at the keyframe before L), ships that, and the worker decodes from that keyframe.
nodes: a generated 960x540 clip with a tone, dreamed with a tiny random conv net (1 octave, 2 steps: the
       costs of shipping and streaming, not of a real model) by: one process (no Ray); a token cluster
       whose head offers no CPU with 1 worker node (1 CPU) in its own mount namespace seeing no driver
       file; the same plus a second worker node (1 CPU) on the driver's filesystem. Wall time of the
       command, its ratio to the one process, the driver's peak RSS (sampled every 0.2 s), and bytes shipped
       to each node (clip + model, once per node; frames come back raw). Then the clip read from a local S3
       server (moto, no Ray): time to first kept frame and wall time against the same clip on disk.
Needs root (unshare, mount) for ``nodes``; moto and s3fs for the S3 part.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers import stop_groups, tiny_model_file  # noqa: E402  (tests/ on the path first)


def ff(*args):
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                    *map(str, args)], check=True)


def make_clip(d: Path, a) -> Path:
    """The benchmark's clip in ``d``: 960x540 testsrc2 with a 440 Hz tone, ``a.seconds`` at ``a.fps``."""
    clip = d / "clip.mp4"
    ff("-f", "lavfi", "-i", f"testsrc2=size=960x540:rate={a.fps}:duration={a.seconds}", "-f", "lavfi", "-i",
       "sine=frequency=440", "-t", str(a.seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
       "-shortest", clip)
    return clip


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def decode_until(path, first: int) -> float:
    """Seconds until frame ``first`` of ``path`` is decoded (as a chunk's worker reads)."""
    from dreamvideo import io as dio

    t = time.perf_counter()
    with dio.VideoReader(path) as r:
        for i, _ in enumerate(r):
            if i >= first:
                break
    return time.perf_counter() - t


def ship(a):
    from dreamvideo import io as dio
    from dreamvideo.raycluster import cluster
    from dreamvideo.shipped import local, ship as put

    d = Path(tempfile.mkdtemp(prefix="bench_ship"))
    clip = d / "clip.mp4"
    ff("-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=24:duration={a.seconds}", "-c:v", "libx264",
       "-pix_fmt", "yuv420p", clip)
    n = dio.probe_video(clip).nframes
    size = clip.stat().st_size
    print(f"clip: 1920x1080, {n} frames at 24 fps, {size / 1e6:.1f} MB; load {loadavg()} on {os.cpu_count()} cores")
    with cluster() as ray:
        t = time.perf_counter()
        s = put(ray, clip)
        put_s = time.perf_counter() - t
        pull = ray.remote(num_cpus=1)(lambda s: (lambda t: (local(s), time.perf_counter() - t))(time.perf_counter()))
        _, pull_s = ray.get(pull.remote(s))
    print(f"whole clip: put {put_s:.2f} s, pulled into a node's cache {pull_s:.2f} s (one machine: no network)")
    print("\n| chunk starts at frame | whole: bytes | whole: decode to first frame (s) | range: bytes | "
          "range: cut on driver (s) | range: decode to first frame (s) |\n|---:|---:|---:|---:|---:|---:|")
    for frac in (0.0, 0.5, 0.9):
        lead = int(n * frac)
        end = min(n, lead + 240)
        seg = d / f"seg{lead}.mp4"
        t = time.perf_counter()
        ff("-ss", f"{lead / 24:.6f}", "-i", clip, "-t", f"{(end - lead) / 24:.6f}", "-c", "copy", "-an", seg)
        cut = time.perf_counter() - t
        whole_dec = decode_until(clip, lead)
        seg_dec = decode_until(seg, 0)
        print(f"| {lead} | {size / 1e6:.1f} MB | {whole_dec:.2f} | {seg.stat().st_size / 1e6:.1f} MB | {cut:.2f} | "
              f"{seg_dec:.2f} |")
    shutil.rmtree(d, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peak:
    """The peak RSS of a process, sampled every 0.2 s in a thread."""

    def __init__(self, pid):
        self.pid, self.peak, self.samples = pid, 0, []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        kb = int(line.split()[1])
                        self.peak = max(self.peak, kb)
                        self.samples.append(kb)
            except (OSError, ValueError):
                pass
            time.sleep(0.2)

    def end(self):
        self.stop.set()
        self.t.join()
        return self.peak / 1024


def timed(argv, env=None, first=None):
    """Wall seconds of a dreamvideo command, the driver's peak RSS (MB), and seconds until ``first`` exists."""
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "dreamvideo.cli", *map(str, argv), "-q"], cwd=ROOT,
                         env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    peak, seen = Peak(p.pid), None
    while p.poll() is None:
        if first is not None and seen is None and first().is_file():
            seen = time.perf_counter() - t
        time.sleep(0.02)
    err = p.stderr.read()
    wall = time.perf_counter() - t
    mb = peak.end()
    if p.returncode:
        raise SystemExit(f"{argv}: rc {p.returncode}: {err}")
    return wall, mb, seen


def nodes(a):
    import secrets

    d = Path(tempfile.mkdtemp(prefix="bench_nodes"))
    weights = Path(tempfile.mkdtemp(prefix="bench_weights"))
    clip = make_clip(d, a)
    tiny_model_file(weights / "tiny.keras")
    nframes = a.seconds * a.fps
    dream = ["--model", weights / "tiny.keras", "--layers", "conv2", "--octaves", "1", "--steps", "2"]
    print(f"clip: 960x540, {nframes} frames ({a.seconds} s at {a.fps} fps), {clip.stat().st_size / 1e6:.2f} MB; "
          f"model {(weights / 'tiny.keras').stat().st_size / 1e6:.2f} MB; load {loadavg()} on {os.cpu_count()} cores")
    rows = []
    one, mb, _ = timed(["video", clip, "-o", d / "one.mp4", *dream])
    rows.append(("one process, no Ray", one, mb, "-"))
    token = secrets.token_hex(32)
    port = free_port()
    rt = tempfile.mkdtemp(prefix="bnray", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": rt, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
           "PYTHONPATH": str(ROOT)}
    ray_bin = str(Path(sys.executable).parent / "ray")
    procs = []

    def start(argv):
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))

    frame_mb = 960 * 540 * 3 / 1e6
    shipped = (clip.stat().st_size + (weights / "tiny.keras").stat().st_size) / 1e6
    try:
        start([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false", "--block",
               "--disable-usage-stats"])
        start(["unshare", "-m", "--propagation", "private", "bash", "-c",
               f"mount -t tmpfs none {d} && mount -t tmpfs none {weights} && exec {ray_bin} start "
               f"--address=127.0.0.1:{port} --num-cpus=1 --block --disable-usage-stats"])
        time.sleep(12)
        addr = ["--ray-address", f"127.0.0.1:{port}"]
        renv = {"RAY_AUTH_TOKEN": token, "RAY_TMPDIR": rt}
        wall, mb, _ = timed(["video", clip, "-o", d / "n1.mp4", *dream, *addr, "--workers", "1"], renv)
        rows.append(("1 worker node (sees no driver file)", wall, mb,
                     f"{shipped:.2f} MB in, {nframes * frame_mb:.0f} MB of frames back"))
        start([ray_bin, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", "--block", "--disable-usage-stats"])
        time.sleep(10)
        wall, mb, _ = timed(["video", clip, "-o", d / "n2.mp4", *dream, *addr, "--workers", "2"], renv)
        rows.append(("2 worker nodes (one sees no driver file)", wall, mb,
                     f"{shipped:.2f} MB in each, ~{nframes * frame_mb / 2:.0f} MB of frames back from each"))
    finally:
        stop_groups(procs[::-1], grace=3)  # a worker node stops in under 3 s; the head would drain for 30 s
        shutil.rmtree(rt, ignore_errors=True)
    print("\n| render | wall (s) | / one process | driver peak RSS (MB) | bytes shipped per node |\n|---|---:|---:|---:|---|")
    for name, wall, mb, b in rows:
        print(f"| {name} | {wall:.1f} | {wall / one:.2f} | {mb:.0f} | {b} |")
    s3(a, d, clip, dream)
    shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(weights, ignore_errors=True)


def s3_only(a):
    """The S3 part alone, on its own clip (as ``nodes`` makes it)."""
    d = Path(tempfile.mkdtemp(prefix="bench_s3"))
    clip = make_clip(d, a)
    tiny_model_file(d / "tiny.keras")
    print(f"clip: 960x540, {a.seconds * a.fps} frames ({a.seconds} s at {a.fps} fps), {clip.stat().st_size / 1e6:.2f} MB;"
          f" load {loadavg()} on {os.cpu_count()} cores")
    s3(a, d, clip, ["--model", d / "tiny.keras", "--layers", "conv2", "--octaves", "1", "--steps", "2"])
    shutil.rmtree(d, ignore_errors=True)


def s3(a, d, clip, dream):
    moto = Path(sys.executable).parent / "moto_server"
    if not moto.exists():
        print("S3: skipped (pip install \"moto[server]\" s3fs)")
        return
    import s3fs

    from dreamvideo import urls

    port = free_port()
    server = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
           "AWS_DEFAULT_REGION": "us-east-1", "XDG_CACHE_HOME": str(d / "cache")}
    try:
        time.sleep(1.5)
        os.environ.update(env)
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("bucket")
        fs.put_file(str(clip), "bucket/clip.mp4")
        rows = []
        for name, src, out in (("disk", clip, d / "disk.mp4"), ("S3 (local server)", "s3://bucket/clip.mp4",
                                                                 "s3://bucket/out.mp4")):
            local_out = Path(urls.staged_output(out)) if urls.is_url(out) else Path(out)
            first = local_out.with_name(f".{local_out.name}.dreamwork") / "frames" / "000000.png"
            wall, _, seen = timed(["video", src, "-o", out, *dream], env, first=lambda f=first: f)
            rows.append((name, seen, wall))
        print("\n| clip read from | first frame kept (s) | wall (s) |\n|---|---:|---:|")
        for name, seen, wall in rows:
            print(f"| {name} | {seen:.1f} | {wall:.1f} |")
    finally:
        stop_groups([server], grace=5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("ship", "nodes", "s3"))
    ap.add_argument("--seconds", type=int, default=None)
    ap.add_argument("--fps", type=int, default=4)
    a = ap.parse_args()
    if a.what == "ship":
        a.seconds = a.seconds or 20
        ship(a)
    elif a.what == "s3":
        a.seconds = a.seconds or 10
        s3_only(a)
    else:
        a.seconds = a.seconds or 60
        nodes(a)


if __name__ == "__main__":
    main()
