"""Playing a live run over OSC while a file plays, and rendering what was played: step size 0 and back
(the frames follow), a layer switch (the dream changes), a wrong value (one line back, the run goes
on), the performance file the recording leaves, and its offline render, whose frames change at the
source frames the changes applied at and match a render with each stretch's settings held."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from conftest import ffmpeg
from helpers import tiny_model_file

# coherence none and no jitter: every dream of the still frame with the same settings is the same
# image, so each stretch of the run is recognisable, live and offline.
SETTINGS = ["--layers", "conv2:1.0", "--steps", "2", "--octaves", "1", "--step-size", "0.05", "--jitter", "0",
            "--coherence", "none"]


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    d = tmp_path_factory.mktemp("perform")
    tiny_model_file(d / "tiny.keras")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-frames:v", "1", d / "still.png")
    ffmpeg("-loop", "1", "-framerate", "10", "-i", d / "still.png", "-t", "9", "-c:v", "libx264", "-qp", "0",
           "-pix_fmt", "yuv444p", d / "still.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "5", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           d / "moving.mp4")
    return d


def _frames(path):
    from dreamvideo.io import VideoReader

    with VideoReader(path) as r:
        return [f.astype(np.float32) for f in r]


class _Player(threading.Thread):
    """Sends OSC to the run once it answers, ``gap`` seconds apart; keeps every answer."""

    def __init__(self, port, messages, gap=1.6):
        super().__init__(daemon=True)
        self.port, self.messages, self.gap, self.answers = port, messages, gap, []

    def _send(self, s, addr, value):
        from pythonosc.osc_message_builder import OscMessageBuilder

        b = OscMessageBuilder(addr)
        b.add_arg(value)
        s.sendto(b.build().dgram, ("127.0.0.1", self.port))

    def _answer(self, s):
        from pythonosc.osc_message import OscMessage

        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                m = OscMessage(s.recv(65536))
            except socket.timeout:
                continue
            if m.address in ("/dreamvideo/ok", "/dreamvideo/error"):
                return m.address, m.params
        return None

    def run(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the run is up once it answers
            self._send(s, "/dreamvideo/step_size", 0.05)
            answer = self._answer(s)
            if answer and answer[0] == "/dreamvideo/ok":  # before the run plays: "starting"
                break
        time.sleep(self.gap)
        for addr, value in self.messages:
            self._send(s, addr, value)
            self.answers.append(self._answer(s))
            time.sleep(self.gap)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def played(kit, tmp_path_factory):
    """A live run of still.mp4 played over OSC: step size 0, back, a wrong value, another layer."""
    from dreamvideo.cli import main
    from dreamvideo.presets import read

    out = tmp_path_factory.mktemp("played")
    port = _free_port()
    player = _Player(port, [("/dreamvideo/step_size", 0.0), ("/dreamvideo/norm/step_size", 0.05),
                            ("/dreamvideo/steps", "2 +"), ("/dreamvideo/layers", "conv1:1.0")])
    player.start()
    import dreamvideo.models as models

    loads, load_model = [], models.load_model

    def counted(*args, **kw):
        loads.append(args)
        return load_model(*args, **kw)

    models.load_model = counted
    try:
        rc = main(["live", str(kit / "still.mp4"), "--record", str(out / "live.mp4"), "--osc", str(port), "--model",
                   str(kit / "tiny.keras"), *SETTINGS, "--no-page", "-q"])
    finally:
        models.load_model = load_model
    player.join(5)
    perf = out / "live.performance.toml"
    return {"rc": rc, "answers": player.answers, "loads": len(loads), "live": out / "live.mp4", "perf": perf,
            "toml": read(perf)[1],
            "dir": out}


def _changes(toml):
    """Source frames where step size and layers changed, from the performance's keys."""
    from dreamvideo.realtime.performance import split_keys

    steps = split_keys(toml["schedules"]["step_size"])
    weights = dict(i.split("=", 1) for i in toml["schedules"]["layer_weights"].split("; "))
    zero = next(f for f, v in steps if v == "0")
    back = next(f for f, v in steps if f > zero and v != "0")
    layer = next(f for f, v in split_keys(weights["conv1"]) if v == "1")
    return zero, back, layer


def test_osc_plays_the_run_and_a_wrong_value_is_one_line(played, kit):
    assert played["rc"] == 0
    answers = played["answers"]
    assert [a[0] for a in answers] == ["/dreamvideo/ok", "/dreamvideo/ok", "/dreamvideo/error", "/dreamvideo/ok"]
    assert answers[1][1] == ["step_size = 0.05 (osc)"]  # norm 0.05 of step size's 0..1
    assert len(answers[2][1]) == 1 and "\n" not in answers[2][1][0] and "steps" in answers[2][1][0]
    zero, back, layer = _changes(played["toml"])
    assert 0 < zero < back < layer
    live = _frames(played["live"])
    src = live[0]  # shown before any dream: the source as the recording encodes it
    assert len(live) >= layer + 10  # the run went on after the wrong value, to the source's end
    d = [float(np.abs(f - src).mean()) for f in live]
    lag = 4  # a dream lands a frame or two after the frame it was made on
    assert min(d[lag:zero]) > 2.0  # dreamed
    assert max(d[zero + lag:back]) < 1.0  # step size 0: the source itself (the dreamed frames: over 2)
    assert min(d[back + lag:layer]) > 2.0  # dreamed again
    a, b = live[layer - 1], live[-1]
    same = float(np.abs(live[layer - 1] - live[layer - 3]).mean())  # one layer: the same dream again
    assert float(np.abs(a - b).mean()) > max(1.0, 5 * same)  # another layer, another dream of the frame
    assert float(np.abs(live[zero - 1] - a).mean()) < 1.5  # back to the same dream as before
    assert played["loads"] == 1  # the layer switch used the model already built


def test_the_performance_renders_offline_with_the_changes_at_their_frames(played, kit):
    from dreamvideo.cli import main

    toml = played["toml"]
    perf = toml["performance"]
    assert perf["source"] == str((kit / "still.mp4").resolve()) and perf["changes"] == 4  # the ready ping too
    out = played["dir"]
    master, held_a, held_b = out / "master.mp4", out / "a.mp4", out / "b.mp4"
    src = str(kit / "still.mp4")
    assert main(["video", src, "--preset", str(played["perf"]), "-o", str(master), "-q"]) == 0
    assert main(["video", src, "--model", str(kit / "tiny.keras"), *SETTINGS, "-o", str(held_a), "-q"]) == 0
    b_settings = [x if x != "conv2:1.0" else "conv1:1.0" for x in SETTINGS]
    assert main(["video", src, "--model", str(kit / "tiny.keras"), *b_settings, "-o", str(held_b), "-q"]) == 0
    zero_settings = [x if x != "0.05" else "0" for x in SETTINGS]
    assert main(["video", src, "--model", str(kit / "tiny.keras"), *zero_settings, "-o", str(out / "0.mp4"), "-q"]) == 0
    m, a, b = _frames(master), _frames(held_a), _frames(held_b)
    source = _frames(out / "0.mp4")[0]
    zero, back, layer = _changes(toml)
    assert len(m) == len(a) == 90

    def close(x, y):
        return float(np.abs(x - y).mean()) < 1.0

    assert all(close(m[f], a[f]) for f in range(zero))
    assert all(close(m[f], source) for f in range(zero, back))
    assert all(close(m[f], a[f]) for f in range(back, layer))
    assert all(close(m[f], b[f]) for f in range(layer, len(m)))
    assert not close(a[0], b[0]) and not close(a[0], source)


def test_presets_marks_a_performance(played, capsys):
    from dreamvideo.cli import main

    assert main(["presets", str(played["perf"])]) == 0
    out = capsys.readouterr().out
    assert "performance of still.mp4" in out and "(performance)" in out


def test_ndi_out_sends_every_shown_frame_as_recorded(kit, tmp_path, capsys):
    NDIlib = pytest.importorskip("NDIlib")
    from dreamvideo.cli import main

    got, stop = [], threading.Event()
    NAME = f"dreamvideo-test-{time.monotonic_ns() % 100000}"

    def receive():
        rc = NDIlib.RecvCreateV3()
        rc.color_format = NDIlib.RECV_COLOR_FORMAT_BGRX_BGRA
        recv = NDIlib.recv_create_v3(rc)
        from dreamvideo.realtime.ndi import find

        src = None
        while src is None and not stop.is_set():  # the run's source appears once its model has loaded
            src = find(NAME, timeout=0.5)
        try:
            if src is not None:
                NDIlib.recv_connect(recv, src)
            while src is not None and not stop.is_set():
                kind, v, _, _ = NDIlib.recv_capture_v2(recv, 100)
                if kind == NDIlib.FRAME_TYPE_VIDEO:
                    got.append(np.copy(v.data[..., 2::-1]).astype(np.float32))
                    NDIlib.recv_free_video_v2(recv, v)
        finally:
            NDIlib.recv_destroy(recv)

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    rec = tmp_path / "ndi.mp4"
    try:
        rc = main(["live", str(kit / "moving.mp4"), "--ndi", NAME, "--record", str(rec), "--duration", "4",
                   "--model", str(kit / "tiny.keras"), *[x if x != "none" else "flow" for x in SETTINGS], "--no-page"])
    finally:
        time.sleep(0.5)
        stop.set()
        t.join(10)
    assert rc == 0
    assert f"ndi {NAME}:" in capsys.readouterr().err  # the status says what NDI sent, and its time
    recorded = _frames(rec)
    assert len(recorded) == 40 and len(got) >= 10  # once the receiver connected: every frame after
    # Each received frame is the recording's frame at the same place (the nearest of all, by far: the
    # neighbours are 11+ levels away): compared at a quarter size, as both are lossy in colour (NDI's
    # 4:2:2 and its levels, 255 -> ~251; the recording's H.264 4:2:0), about 4 levels apart.
    import cv2

    def small(f):
        return cv2.resize(f, (40, 30), interpolation=cv2.INTER_AREA)

    got, recorded = [small(f) for f in got], [small(f) for f in recorded]
    # A connection may first hand over a frame of a source this process closed before (the same port).
    while got and min(float(np.abs(r - got[0]).mean()) for r in recorded) > 6.0:
        got.pop(0)
    assert len(got) >= 10
    first = int(np.argmin([np.abs(r - got[0]).mean() for r in recorded]))
    assert first + len(got) == len(recorded)
    for i, g in enumerate(got):
        d = [float(np.abs(g - r).mean()) for r in recorded]
        assert int(np.argmin(d)) == first + i and d[first + i] < 6.0, (i, d[first + i])


def test_midi_plays_a_run_from_a_real_port_and_learn_prints(kit, tmp_path, capsys, monkeypatch):
    import shutil
    import subprocess

    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed (apt-get install jackd2; .ci/run does)")
    import mido

    from dreamvideo.cli import main
    from dreamvideo.presets import read

    name = f"dvperf{time.monotonic_ns() % 100000}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    monkeypatch.setenv("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    jack = subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(1.0)
        (tmp_path / "rig.toml").write_text('[midi]\ncc21 = "step_size 0 0.1"\nnote36 = "scene calm"\n\n'
                                           '[scenes]\ncalm = "gentle-video"\n')
        out = mido.Backend("mido.backends.rtmidi/UNIX_JACK").open_output("pads", virtual=True)

        done = threading.Event()

        def play():  # a performer's hands, until the run ends (those before it plays are refused)
            while not done.is_set():
                out.send(mido.Message("control_change", control=21, value=0))
                time.sleep(0.3)
                out.send(mido.Message("note_on", note=36, velocity=100))
                time.sleep(0.3)

        t = threading.Thread(target=play, daemon=True)
        t.start()
        rc = main(["live", str(kit / "still.mp4"), "--midi", "pads", "--midi-learn", "--preset",
                   str(tmp_path / "rig.toml"), "--record", str(tmp_path / "m.mp4"), "--duration", "5", "--model",
                   str(kit / "tiny.keras"), *SETTINGS, "--no-page", "-q"])
        done.set()
        t.join(10)
        out.close()
    finally:
        import os
        import signal

        os.killpg(jack.pid, signal.SIGTERM)
        jack.wait(10)
    assert rc == 0
    err = capsys.readouterr().err
    assert "midi: cc21 = 0 (channel 1)" in err and "midi: note36 on (velocity 100, channel 1)" in err
    sched = read(tmp_path / "m.performance.toml")[1]["schedules"]
    assert ":(0)" in sched["step_size"]  # cc21 at 0: step size 0 from its frame
    assert sched["steps"] != "2"  # the scene's steps (gentle-video) from the note's frame


def test_control_mistakes_are_one_line_before_the_model_loads(kit, tmp_path, capsys, monkeypatch):
    from dreamvideo.cli import main

    monkeypatch.setenv("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    (tmp_path / "bad.toml").write_text('[midi]\ncc21 = "stepsize"\n')
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    cases = [(["--midi"], "no MIDI input port on this machine"),
             (["--midi", "x", "--preset", str(tmp_path / "bad.toml")], "did you mean step_size"),
             (["--osc", "70000"], "--osc takes [HOST:]PORT"),
             (["--osc", str(busy.getsockname()[1])], "cannot listen for OSC"),
             (["--scene", "calm"], "--scene takes NAME=PRESET"),
             (["--scene", "calm=nosuch"], "unknown preset 'nosuch'"),
             (["--midi-learn"], "--midi-learn needs --midi"),
             (["--scene-on", "beat", "--scene", "a=classic"], "no sound")]
    for flags, words in cases:
        t0 = time.monotonic()
        rc = main(["live", str(kit / "still.mp4"), "--model", "inception_v3", "--weights", "/nonexistent.h5",
                   *flags, "--no-page", "-q"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and words in err, (flags, err)
        assert time.monotonic() - t0 < 20
    busy.close()


def test_a_scene_crossfades_in_the_run_and_the_performance_and_the_source_is_recorded(kit, tmp_path):
    import dreamvideo
    from dreamvideo.presets import read
    from dreamvideo.realtime.performance import split_keys
    from dreamvideo.schedule import Schedule

    (tmp_path / "calm.toml").write_text("step_size = 0.2\nsteps = 3\n")
    port = _free_port()
    player = _Player(port, [("/dreamvideo/scene", "calm")], gap=1.0)
    player.start()
    opts = dict(model=str(kit / "tiny.keras"), layers="conv2:1.0", steps="2", octaves=1, step_size="0.05", jitter=0,
                coherence="none")
    frames = [f for _, f in dreamvideo.live(str(kit / "still.mp4"), record=str(tmp_path / "s.mp4"), osc=str(port),
                                            scene=f"calm={tmp_path / 'calm.toml'}", scene_fade=1.0,
                                            record_source=str(tmp_path / "raw.mp4"), duration=6, **opts)]
    player.join(5)
    assert player.answers == [("/dreamvideo/ok", ["scene calm (osc)"])]
    sched = read(tmp_path / "s.performance.toml")[1]["schedules"]
    keys = split_keys(sched["step_size"])
    (start, a), (end, b) = next((k, k2) for k, k2 in zip(keys, keys[1:]) if k[1] == "0.05" and k2[1] == "0.2")
    assert end - start == 10  # a second's crossfade at 10 fps, in source frames
    v = Schedule.parse(sched["step_size"], "s").values(60, 10)
    assert v[start] == pytest.approx(0.05) and v[start + 5] == pytest.approx(0.125) and v[end:].min() == 0.2
    assert split_keys(sched["steps"])[-1][1] == "3"
    raw, rec = _frames(tmp_path / "raw.mp4"), _frames(tmp_path / "s.mp4")
    assert len(raw) == len(rec) == len(frames) == 60
    src = rec[0]  # shown before any dream: the source as a recording encodes it
    assert max(float(np.abs(f - src).mean()) for f in raw) < 1.0  # the undreamed capture
    assert float(np.abs(rec[-1] - src).mean()) > 2.0


def test_a_live_zoom_performance_renders_with_dreamvideo_zoom(kit, tmp_path):
    from dreamvideo.cli import main
    from dreamvideo.presets import read
    from dreamvideo.realtime.performance import split_keys

    port = _free_port()
    player = _Player(port, [("/dreamvideo/zoom", "1.1"), ("/dreamvideo/zoom", "0:(1.1), 50:(20)")], gap=1.0)
    player.start()
    rc = main(["live", "zoom:noise:64x48", "--fps", "10", "--record", str(tmp_path / "z.mp4"), "--duration", "4",
               "--osc", str(port), "--model", str(kit / "tiny.keras"), "--layers", "conv2:1.0", "--steps", "2",
               "--octaves", "1", "--zoom", "1.02", "--no-page", "-q"])
    player.join(5)
    assert rc == 0 and player.answers[0] == ("/dreamvideo/ok", ["zoom = 1.1 (osc)"])
    assert player.answers[1][0] == "/dreamvideo/error" and "from 0.1 to 10" in player.answers[1][1][0]
    perf = tmp_path / "z.performance.toml"
    toml = read(perf)[1]
    assert toml["performance"]["source"] == "zoom:noise:64x48" and toml["zoom"]["from_noise"] == "64x48"
    keys = split_keys(toml["schedules"]["zoom"])
    assert keys[0] == (0, "1.02") and keys[-1][1] == "1.1" and 0 < keys[-1][0] < 40
    assert main(["zoom", "--preset", str(perf), "-o", str(tmp_path / "m.mp4"), "-q"]) == 0
    assert len(_frames(tmp_path / "m.mp4")) == toml["zoom"]["frames"] == 40


def test_a_scene_on_the_beat_switches_on_a_beat_of_the_sound(kit, tmp_path):
    import sys

    from dreamvideo.realtime.rig import Rig
    from dreamvideo.realtime.session import LiveSession
    from dreamvideo.settings import LiveSettings, PlaySettings, split_options
    from helpers import ROOT

    sys.path.insert(0, str(ROOT / "samples"))
    from sample_utils import click_track

    click_track(tmp_path / "song.wav", seconds=8.0, bpm=120)
    ffmpeg("-loop", "1", "-framerate", "10", "-i", kit / "still.png", "-i", tmp_path / "song.wav", "-t", "8",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", tmp_path / "beat.mp4")
    (tmp_path / "calm.toml").write_text("steps = 3\n")
    port = _free_port()
    player = _Player(port, [("/dreamvideo/scene", "calm")], gap=0.5)
    player.start()
    sections = split_options("video", dict(model=str(kit / "tiny.keras"), layers="conv2:1.0", steps="2", octaves=1,
                                           step_size="0.05", jitter=0, coherence="none"))
    session = LiveSession(str(tmp_path / "beat.mp4"), LiveSettings(no_page=True, duration=7), sections,
                          rig=Rig(PlaySettings(osc=str(port), scene=(f"calm={tmp_path / 'calm.toml'}",),
                                               scene_on="beat")))
    for _ in session:
        pass
    player.join(5)
    assert player.answers == [("/dreamvideo/ok", ["scene calm at the next beat (osc)"])]
    switched = [seq for seq, name, text in session.rig.controls.log if name == "steps" and text == "3"]
    assert len(switched) == 1
    beat = session.timeline.features.at(switched[0])["beat"]
    assert beat > 0.5  # it waited for a beat of the song
