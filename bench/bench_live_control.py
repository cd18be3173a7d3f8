"""Playing a live run: control latency, control load, NDI out.

    python bench/bench_live_control.py [--seconds 60] [--only latency load ndi]

Each run plays ``samples/clip.mp4`` (looped) through ``dreamvideo.live`` at 256 px with MobileNetV2
(the offline ImageNet weights in ../shared/models), ``block_10_expand_relu``, 2 octaves x 3 steps,
as ``dreamvideo live samples/clip.mp4 --loop --max-side 256 ... --no-page`` would, in this process:

- ``latency``: an OSC message every 2 s toggles ``/dreamvideo/step_size`` between 0.02 and 0.03; the
  latency of one is from its sending to the first shown frame carried from a dream that took it
  (the dream thread's log of the source frame each change applied at, and the show loop's record of
  which dream each shown frame came from). The target: at most one dream period (1 / dreamed fps)
  plus 50 ms.
- ``load``: 100 OSC messages a second (``/dreamvideo/norm/step_size`` with a new value each) for
  ``--seconds``, against the same run with none: source frames dropped and the resident memory
  every 10 s (the target: no frame dropped for the messages, memory flat).
- ``ndi``: ``--ndi`` with a receiver in this process (found by name at 127.0.0.1): frames received
  against frames shown, and each frame's latency (the NDI timecode the sender stamps, in wall
  time, to its arrival): the target is every shown frame, at most one frame period later than the
  recording's (the sink written just before it).
- ``soak`` (``--only soak --seconds 1800``): ``zoom:noise:256x144`` at 10 fps moved by a song's
  ``low`` (``--audio-in`` a click track), recorded, an OSC change every 2 s and NDI out with a
  receiver; per 5 minutes: resident memory, show latency, control latency, NDI frames and latency.

The machine's load average is printed: other jobs on a shared machine make every figure pessimistic.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WEIGHTS = Path(os.environ.get("DREAMVIDEO_SHARED", ROOT.parent / "shared")) / "models" / \
    "mobilenet_v2_imagenet.weights.h5"
OPTS = dict(model="mobilenet_v2", weights=str(WEIGHTS), layers="block_10_expand_relu:1.0", octaves=2, steps="3",
            step_size="0.02")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def play(seconds: float, sender=None, **extra):
    """Run live for ``seconds``; returns (session, {source frame: time shown})."""
    from dreamvideo.realtime.rig import Rig
    from dreamvideo.realtime.session import LiveSession
    from dreamvideo.settings import LiveSettings, PlaySettings, split_options

    live = LiveSettings(no_page=True, loop=True, duration=seconds)
    session = LiveSession(str(ROOT / "samples" / "clip.mp4"), live, split_options("video", dict(OPTS)),
                          max_side=256, rig=Rig(PlaySettings(**extra)))
    shown = {}
    started = threading.Event()
    if sender is not None:
        threading.Thread(target=sender, args=(session, started), daemon=True).start()
    for t, _ in session:
        shown[int(round(t * session.fps))] = time.monotonic()  # by source frame (dropped ones are skipped)
        started.set()
    return session, shown


def osc_send(port, addr, value):
    from pythonosc.udp_client import SimpleUDPClient

    SimpleUDPClient("127.0.0.1", port).send_message(addr, value)


def ndi_receive(name: str, stop: threading.Event, on_frame) -> None:
    """Receive the NDI source ``name`` on this machine until ``stop``; ``on_frame(seconds late)`` for each video frame."""
    import NDIlib

    from dreamvideo.realtime.ndi import find

    rc = NDIlib.RecvCreateV3()
    rc.color_format = NDIlib.RECV_COLOR_FORMAT_BGRX_BGRA
    recv = NDIlib.recv_create_v3(rc)
    src = None
    while src is None and not stop.is_set():
        src = find(name, timeout=0.5)
    if src is not None:
        NDIlib.recv_connect(recv, src)
    while src is not None and not stop.is_set():
        kind, v, _, _ = NDIlib.recv_capture_v2(recv, 100)
        if kind == NDIlib.FRAME_TYPE_VIDEO:
            on_frame(time.time() - v.timecode / 1e7)
            NDIlib.recv_free_video_v2(recv, v)
    NDIlib.recv_destroy(recv)


def bench_latency(seconds: float) -> None:
    port = free_port()
    sent = []

    def sender(session, started):
        started.wait(120)
        time.sleep(2)
        value = 0.03
        while session.worker is not None:
            sent.append(time.monotonic())
            osc_send(port, "/dreamvideo/step_size", value)
            value = 0.05 - value
            time.sleep(2)

    session, shown = play(seconds, sender, osc=str(port))
    log = [seq for seq, name, _ in session.rig.controls.log if name == "step_size"]
    lat = []
    for t_sent, seq in zip(sent, log):
        # the first shown frame whose dream was made on source frame >= seq (it took the change)
        at = next((s for s, dreamed in session.landed_at if dreamed >= seq), None)
        if at is not None and at in shown:
            lat.append(shown[at] - t_sent)
    period = session.stats.seconds / max(1, session.stats.dreamed)
    lat_ms = 1000 * np.array(lat)
    print(f"latency: {len(lat)} changes, OSC message -> first frame shown from a dream with it: median "
          f"{np.median(lat_ms):.0f} ms, max {lat_ms.max():.0f} ms; dream period {1000 * period:.0f} ms "
          f"(target: <= {1000 * period + 50:.0f} ms); {session.stats.line()}")


def bench_load(seconds: float) -> None:
    for rate in (0, 100):
        port = free_port()
        rss, count = [], [0]

        def sender(session, started, rate=rate, port=port):
            from pythonosc.udp_client import SimpleUDPClient

            c = SimpleUDPClient("127.0.0.1", port)
            started.wait(120)
            t0 = time.monotonic()
            next_rss = t0
            while session.worker is not None:
                now = time.monotonic()
                if now >= next_rss:
                    rss.append(round(rss_mb()))
                    next_rss += 10
                if rate:
                    c.send_message("/dreamvideo/norm/step_size", 0.01 + 0.02 * ((count[0] % 50) / 50))
                    count[0] += 1
                    time.sleep(max(0.0, t0 + count[0] / rate - time.monotonic()))
                else:
                    time.sleep(0.05)

        session, _ = play(seconds, sender, osc=str(port))
        print(f"load {rate} msg/s: {count[0]} sent, {session.rig.controls.changes} dreams took a change, "
              f"{session.stats.dropped} source frames dropped, RSS every 10 s (MB): {rss}; {session.stats.line()}")


def bench_ndi(seconds: float) -> None:
    name = f"bench-{os.getpid()}"
    got, stop = [], threading.Event()

    def receive():
        ndi_receive(name, stop, lambda late: got.append(late))

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    session, shown = play(seconds, ndi=name)
    time.sleep(0.5)
    stop.set()
    t.join(5)
    ms = 1000 * np.array(got)
    period = 1000 / session.fps
    print(f"ndi: {len(got)} received of {len(shown)} shown (the receiver connects once the source appears), "
          f"latency median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms "
          f"(a frame period: {period:.0f} ms); {session.rig.ndi.describe()}; {session.stats.line()}")


def bench_soak(seconds: float) -> None:
    """``zoom:noise:256x144`` driven by a song (``--audio-in``, its ``low`` moving the zoom), recorded,
    an OSC change every 2 s (step size and zoom taking turns) and NDI out with a receiver: per
    5 minutes, resident memory, the show latency, the control latency and the NDI frames."""
    sys.path.insert(0, str(ROOT / "samples"))
    from sample_utils import click_track

    from dreamvideo.realtime.rig import Rig
    from dreamvideo.realtime.session import LiveSession
    from dreamvideo.settings import LiveSettings, PlaySettings, ZoomSettings, split_options

    out = Path("/tmp/bench_live_soak")
    out.mkdir(exist_ok=True)
    song = click_track(out / "song.wav", seconds=seconds + 30)
    port, name = free_port(), f"soak-{os.getpid()}"
    live = LiveSettings(no_page=True, duration=seconds, audio_in=str(song), record=str(out / "soak.mp4"))
    opts = dict(OPTS, zoom="1.005 + 0.02*low")
    sections = split_options("video", opts)
    sections["zoom"] = ZoomSettings(fps=10)
    session = LiveSession("zoom:noise:256x144", live, sections, rig=Rig(PlaySettings(osc=str(port), ndi=name)))
    ndi_got, sent, stop, started = [], [], threading.Event(), threading.Event()

    def receive():
        ndi_receive(name, stop, lambda late: ndi_got.append((time.monotonic(), late)))

    def sender():
        started.wait(300)
        k = 0
        while not stop.is_set() and session.worker is not None:
            addr, value = [("/dreamvideo/step_size", 0.02 if k % 4 < 2 else 0.03),
                           ("/dreamvideo/zoom", "1.005 + 0.02*low" if k % 4 < 2 else "1.01 + 0.02*low")][k % 2]
            sent.append((time.monotonic(), addr))
            osc_send(port, addr, value)
            k += 1
            time.sleep(2)

    threading.Thread(target=receive, daemon=True).start()
    threading.Thread(target=sender, daemon=True).start()
    shown, lat, rss = {}, [], []
    t0 = None
    for t, _ in session:
        now = time.monotonic()
        if t0 is None:
            t0 = now
            started.set()
        seq = int(round(t * session.fps))
        shown[seq] = now
        lat.append((now, session.stats.latencies[-1]))
        if not rss or now - rss[-1][0] >= 60:
            rss.append((now, rss_mb()))
    stop.set()
    log = [seq for seq, n, _ in session.rig.controls.log]
    control = []
    for (t_sent, _), seq in zip(sent, log):
        at = next((s for s, dreamed in session.landed_at if dreamed >= seq), None)
        if at in shown:
            control.append((t_sent, shown[at] - t_sent))
    window = 300.0
    print(f"soak {seconds:.0f} s: {session.stats.line()}")
    print("| minutes | RSS MB (at the end) | show latency median / p95 ms | control latency median ms "
          "| NDI frames / shown | NDI latency median / p95 ms |")
    end = lat[-1][0] if lat else t0
    for k in range(max(1, int(np.ceil((end - t0) / window - 0.01)))):
        a, b = t0 + k * window, t0 + (k + 1) * window
        r = [m for t, m in rss if a <= t < b] or [float("nan")]
        ls = 1000 * np.array([x for t, x in lat if a <= t < b] or [np.nan])
        cs = 1000 * np.array([x for t, x in control if a <= t < b] or [np.nan])
        nd = 1000 * np.array([x for t, x in ndi_got if a <= t < b] or [np.nan])
        n_shown = sum(1 for t, _ in lat if a <= t < b)
        print(f"| {k * 5}-{k * 5 + 5} | {r[-1]:.0f} | {np.median(ls):.0f} / {np.percentile(ls, 95):.0f} | "
              f"{np.median(cs):.0f} | {len([1 for t, _ in ndi_got if a <= t < b])} / {n_shown} | "
              f"{np.median(nd):.1f} / {np.percentile(nd, 95):.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--only", nargs="*", default=["latency", "load", "ndi"],
                    help="latency, load, ndi, and soak (not by default: --seconds 1800 for the 30 minutes)")
    args = ap.parse_args()
    print(f"load average: {os.getloadavg()}")
    for name in args.only:
        {"latency": bench_latency, "load": bench_load, "ndi": bench_ndi, "soak": bench_soak}[name](args.seconds)
        print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
