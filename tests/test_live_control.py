"""Playing a live run, its parts alone: the live settings and their checks, scenes and fades, OSC
over loopback, MIDI maps and learn mode (mido messages, and a real port on JACK's dummy driver), NDI
sent and received on this machine, and a performance's schedules."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from dreamvideo.errors import UserError


def _controls(**kw):
    from dreamvideo.realtime.control import Controls

    values = {"step_size": "0.01", "steps": "3", "blend": "1.0", "layers": "conv2:1.0", "layer_weights": ""}
    return Controls(values, {"calm": {"step_size": "0.03", "steps": "1"}, "wild": {"layers": "conv1:1.0"}}, **kw)


def test_norm_maps_onto_the_fader_span_and_wrong_values_are_one_line():
    from dreamvideo.realtime.control import KNOBS, from_norm, to_norm, validate

    assert from_norm("step_size", 0.25) == "0.25"  # step size: its whole range, 0..1
    assert from_norm("steps", 0.5) == "15" and from_norm("steps", 1) == "30"  # steps: the span of KNOBS' play
    assert to_norm("zoom", from_norm("zoom", 0.75)) == pytest.approx(0.75)
    assert validate("steps", 4) == "4" and validate("zoom", "1.0 + 0.02*beat") == "1.0 + 0.02*beat"
    for name, value, words in [("step_size", 5, "from 0 to 1"), ("stepsize", 1, "did you mean step_size"),
                               ("steps", "3 +", "steps"), ("layers", "conv2:x:y", "conv2")]:
        with pytest.raises(UserError) as e:
            validate(name, value)
        assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="from 0 to 1"):
        from_norm("steps", 1.5)
    from dreamvideo.settings import LIVE_PARAMS

    assert {p.name for p in LIVE_PARAMS} <= set(KNOBS)  # the run's one list, and text besides
    assert validate("octaves", "2") == "2" and KNOBS["octaves"].section == "dream"
    with pytest.raises(UserError, match="whole number"):
        validate("octaves", "1 + t")  # an engine setting takes no schedule


def test_a_change_applies_at_the_next_dream_and_is_logged_at_its_frame():
    c = _controls()
    c.set("step_size", 0.02)
    c.set("steps", "5")
    assert c.take(12) == {"step_size": "0.02", "steps": "5"}
    assert c.take(13) == {}
    with pytest.raises(UserError):
        c.set("steps", -1)
    assert c.message.startswith("refused: `steps`") and c.values["steps"] == "5"
    assert c.take(14) == {}  # the refused value changed nothing
    assert c.log == [(12, "step_size", "0.02"), (12, "steps", "5")]


def test_a_scene_crossfades_its_numbers_and_switches_its_text():
    c = _controls(fps=10, fade=1.0)
    c.scene("calm")
    first = c.take(20)
    assert first == {"step_size": "0.01", "steps": "3"}  # the fade starts where the values stood
    assert c.take(25)["step_size"] == "0.02"
    assert c.take(30) == {"step_size": "0.03", "steps": "1"} and not c.fading
    assert c.fades_log == [(20, 30, "step_size", 0.01, 0.03), (20, 30, "steps", 3.0, 1.0)]
    c.scene("wild")
    assert c.take(31) == {"layers": "conv1:1.0"}  # text: at the next dream
    with pytest.raises(UserError, match="unknown scene 'clam'; did you mean calm"):
        c.scene("clam")


def test_a_scene_on_the_beat_waits_for_it():
    c = _controls(on="beat")
    c.scene("calm")
    assert c.take(5) == {} and c.take(6, beat=False) == {}
    assert c.take(7, beat=True) == {"step_size": "0.03", "steps": "1"}


def _osc(sock, addr, *args):
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(addr)
    for a in args:
        b.add_arg(a)
    sock.sendto(b.build().dgram, addr_of_server)
    m = OscMessage(sock.recv(65536))
    return m.address, m.params


addr_of_server = None


def test_osc_over_loopback_sets_maps_refuses_and_feeds_back():
    global addr_of_server
    from pythonosc.osc_message import OscMessage

    from dreamvideo.realtime.osc import OscControl, parse_address

    assert parse_address("9000") == ("127.0.0.1", 9000) and parse_address("0.0.0.0:7000") == ("0.0.0.0", 7000)
    with pytest.raises(UserError, match="--osc takes"):
        parse_address("host:")
    c = _controls()
    osc = OscControl(c, "127.0.0.1", 0)
    addr_of_server = osc.address
    try:
        with pytest.raises(UserError, match="cannot listen for OSC"):
            OscControl(c, "127.0.0.1", osc.address[1])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        assert _osc(s, "/dreamvideo/step_size", 0.02) == ("/dreamvideo/ok", ["step_size = 0.02 (osc)"])
        assert _osc(s, "/dreamvideo/norm/steps", 0.5)[1] == ["steps = 15 (osc)"]
        assert _osc(s, "/dreamvideo/layers", "conv1:1.0,conv2:2.0")[0] == "/dreamvideo/ok"
        assert _osc(s, "/dreamvideo/zoom", "0:(1), 48:(1.05)")[0] == "/dreamvideo/ok"
        for bad in [("/dreamvideo/step_size", 3.0), ("/dreamvideo/steps", "3 +"), ("/dreamvideo/nope", 1),
                    ("/dreamvideo/norm/layers", 0.5), ("/other", 1), ("/dreamvideo/scene", "none")]:
            address, params = _osc(s, *bad)
            assert address == "/dreamvideo/error" and len(params) == 1 and "\n" not in params[0], bad
        assert c.take(1) == {"step_size": "0.02", "steps": "15", "layers": "conv1:1.0,conv2:2.0",
                             "zoom": "0:(1), 48:(1.05)"}
        osc.status("live: shown 10.0 fps", 10.0, 2.5, 120.0)
        got = {m.address: m.params for m in (OscMessage(s.recv(65536)) for _ in range(3))}
        assert got["/dreamvideo/fps"] == [10.0, 2.5] and got["/dreamvideo/status"] == ["live: shown 10.0 fps"]
    finally:
        osc.close()
    # --osc-feedback: the figures go to that address, not the sender
    fb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fb.bind(("127.0.0.1", 0))
    fb.settimeout(3)
    osc = OscControl(c, "127.0.0.1", 0, feedback=fb.getsockname())
    try:
        s.sendto(b"", osc.address)  # not OSC at all: ignored, the server goes on
        from pythonosc.udp_client import SimpleUDPClient

        SimpleUDPClient(*osc.address).send_message("/dreamvideo/steps", 4)
        assert OscMessage(fb.recv(65536)).params == ["steps = 4 (osc)"]
    finally:
        osc.close()


def test_midi_map_and_learn_through_mido_messages(capsys):
    import mido

    from dreamvideo.realtime.midi import MidiMap, parse_map

    c = _controls()
    learned = []
    m = MidiMap(c, parse_map({"cc21": "step_size 0 0.05", "cc22": "steps", "note36": "scene calm",
                              "note37": "layers conv1:1.0"}), learn=learned.append)
    assert m(mido.Message("control_change", control=21, value=127)) == "step_size = 0.05 (midi)"
    assert m(mido.Message("control_change", control=22, value=127)) == "steps = 30 (midi)"
    assert m(mido.Message("note_on", note=37, velocity=90)) == "layers = conv1:1.0 (midi)"
    assert m(mido.Message("note_on", note=36, velocity=90)) == "scene calm (midi)"
    assert m(mido.Message("control_change", control=99, value=3)) is None  # not mapped: learn still prints it
    assert learned[0] == "midi: cc21 = 127 (channel 1)" and learned[-1] == "midi: cc99 = 3 (channel 1)"
    assert c.take(3)["layers"] == "conv1:1.0"
    for table, words in [({"cc200": "steps"}, "ccN or noteN"), ({"cc1": "stepz"}, "did you mean steps"),
                         ({"cc1": "steps 0 99999"}, "`steps` must be"), ({"note1": "steps"}, "a note sets a value"),
                         ({"cc1": "layers"}, "map it to a note"), ({"note1": "scene"}, "names no scene")]:
        with pytest.raises(UserError, match=words):
            parse_map(table)


@pytest.fixture(scope="module")
def jack():
    """A JACK server on the dummy driver (no sound hardware): real MIDI ports."""
    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed (apt-get install jackd2; .ci/run does)")
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    name = f"dvtest{os.getpid()}"
    env["JACK_DEFAULT_SERVER"] = name
    proc = subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    time.sleep(1.0)
    yield name
    if old is None:
        os.environ.pop("JACK_DEFAULT_SERVER", None)
    else:
        os.environ["JACK_DEFAULT_SERVER"] = old
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


def test_midi_through_a_real_jack_port(jack, monkeypatch):
    import mido

    from dreamvideo.realtime.midi import MidiMap, open_input, parse_map

    monkeypatch.setenv("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    be = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
    out = be.open_output("pads", virtual=True)  # a controller's port
    c = _controls()
    learned = []
    port = open_input("pads", MidiMap(c, parse_map({"cc21": "step_size 0 0.05"}), learn=learned.append))
    try:
        time.sleep(0.2)
        out.send(mido.Message("control_change", control=21, value=127))
        deadline = time.monotonic() + 3
        while not learned and time.monotonic() < deadline:
            time.sleep(0.01)
        assert learned == ["midi: cc21 = 127 (channel 1)"]
        assert c.take(1) == {"step_size": "0.05"}
        with pytest.raises(UserError, match="no MIDI input port 'drums'; the ports: "):
            open_input("drums", print)
    finally:
        port.close()
        out.close()


def test_no_midi_port_is_one_line(monkeypatch, capfd):
    from dreamvideo.realtime.midi import open_input

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    monkeypatch.setenv("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    with pytest.raises(UserError) as e:
        open_input("", print)
    assert str(e.value).startswith("no MIDI input port on this machine") and "\n" not in str(e.value)
    assert capfd.readouterr().err == ""  # JACK's own complaints do not reach the terminal


def test_ndi_sent_and_received_on_this_machine():
    NDIlib = pytest.importorskip("NDIlib")
    from dreamvideo.realtime.ndi import NdiSender, find

    rng = np.random.default_rng(0)
    frames = [np.repeat(np.repeat(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), 10, 0), 10, 1) for _ in range(4)]
    name = f"dvtest-{os.getpid()}"
    sender = NdiSender(name, 10.0, (160, 120))
    rc = NDIlib.RecvCreateV3()
    rc.color_format = NDIlib.RECV_COLOR_FORMAT_BGRX_BGRA
    recv = NDIlib.recv_create_v3(rc)
    src = find(name)  # by name, at 127.0.0.1: loopback only, mDNS finds nothing (ndi.py's note)
    assert src is not None
    NDIlib.recv_connect(recv, src)
    got, stale = [], 0
    try:
        deadline = time.monotonic() + 15
        while len(got) < len(frames) and time.monotonic() < deadline:
            want = frames[len(got)]
            sender.write(want)  # again until it arrives
            kind, v, _, _ = NDIlib.recv_capture_v2(recv, 200)
            if kind == NDIlib.FRAME_TYPE_VIDEO:
                frame = np.copy(v.data[..., 2::-1])
                NDIlib.recv_free_video_v2(recv, v)
                # NDI is lossy (255 -> ~251); a connection may first hand over a frame of a source
                # this process closed before (the same port), never after ours began to arrive.
                if frame.shape == want.shape and np.abs(frame.astype(int) - want).mean() < 6:
                    got.append(frame)
                elif got and np.abs(frame.astype(int) - frames[len(got) - 1]).mean() >= 6:
                    stale += 100  # neither this frame nor the one before: wrong
                elif not got:
                    stale += 1
    finally:
        NDIlib.recv_destroy(recv)
        sender.close()
    assert len(got) == len(frames) and stale < 100
    assert "ms to send" in sender.describe()


def test_a_performance_curve_holds_each_change_from_its_frame():
    from dreamvideo.realtime.performance import curve, layer_curves, split_keys
    from dreamvideo.schedule import Schedule

    text = curve("3", [(312, "5")])
    assert text == "0:(3), 311:(3), 312:(5)"
    v = Schedule.parse(curve("0.01", [(10, "0.02"), (40, "0.03")], [(20, 30, 0.02, 0.04)]), "s").values(50, 10)
    assert np.allclose(v[:10], 0.01) and np.allclose(v[10:20], 0.02) and np.allclose(v[30:40], 0.04)
    assert np.allclose(v[25], 0.03) and np.allclose(v[40:], 0.03)
    e = Schedule.parse(curve("1", [(5, "1 + f")]), "e").values(8, 10)  # an expression from its frame on
    assert list(e) == [1, 1, 1, 1, 1, 6, 7, 8]
    assert split_keys("0:(1 + sin(t)), 48:(2)") == [(0, "1 + sin(t)"), (48, "2")]
    layers, weights = layer_curves("conv1:1.0", "", [(30, "conv2:2.0")], [])
    assert layers == "conv1:1.0,conv2:1.0"
    w = {k.strip(): Schedule.parse(v, k).values(40, 10) for k, _, v in (x.partition("=") for x in weights.split(";"))}
    assert (w["conv1"][:30] == 1).all() and (w["conv1"][30:] == 0).all()
    assert (w["conv2"][:30] == 0).all() and (w["conv2"][30:] == 2).all()
