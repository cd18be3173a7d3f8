"""The engine on every Keras backend: TensorFlow here, JAX and PyTorch each in a subprocess (Keras
fixes its backend at import). The test install has all three (README: the torch extra)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dreamvideo import backends
from dreamvideo.errors import UserError

from helpers import MOBILENET_WEIGHTS, needs_weights, photo, tiny_model_file

HERE = Path(__file__).resolve().parent
BACKENDS = ["tensorflow", "jax", "torch"]


def on_backend(backend: str, *args, timeout: int = 300) -> dict:
    """Run tests/backend_checks.py on ``backend`` in a fresh process; its JSON result."""
    env = dict(os.environ, DREAMVIDEO_BACKEND=backend, KERAS_BACKEND=backend,
               PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(HERE / "backend_checks.py"), backend, *map(str, args)],
                       capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["keras_backend"] == backend
    return result


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    # Built once (on TensorFlow) so that every backend loads the very same weights.
    return tiny_model_file(tmp_path_factory.mktemp("m") / "tiny.keras")


_CHECKS = {}


@pytest.fixture(params=BACKENDS)
def checks(request, tiny_file):
    backend = request.param
    if backend not in _CHECKS:
        if "keras" in sys.modules and sys.modules["keras"].backend.backend() == backend:
            from backend_checks import engine_checks

            _CHECKS[backend] = engine_checks(str(tiny_file))
        else:
            _CHECKS[backend] = on_backend(backend, "engine", tiny_file)
    return backend, _CHECKS[backend]


def test_compiles_are_bounded(checks):
    backend, c = checks
    first, same_padded, new_sizes = c["counts"]
    if backend == "tensorflow":
        assert c["counts"] == [1, 1, 1]  # one graph for every size, step count and weight
    elif backend == "jax":
        assert first == 2  # one program per octave
        assert same_padded == first  # a smaller frame, more steps, other weights: no new program
        assert new_sizes <= first + 3
    else:
        assert c["counts"] == [0, 0, 0]  # eager


def test_torch_dreams_channels_first(checks):
    """On PyTorch a model is rebuilt channels-first (torch's convolution layout: nothing permuted)."""
    backend, c = checks
    assert c["data_format"] == ("channels_first" if backend == "torch" else "channels_last")


@pytest.mark.parametrize("checks", ["torch"], indirect=True)
def test_torch_memory_format_changes_no_result(checks):
    """PyTorch runs its channels-first convolutions on NHWC memory (oneDNN's and cuDNN's layout):
    the gradient is the one NCHW memory gives, to float rounding."""
    backend, c = checks
    assert c["nhwc_default"]
    assert c["memory_format_corr"] > 0.99999 and c["memory_format_max_diff"] < 1e-3


@pytest.mark.parametrize("checks", ["jax"], indirect=True)
def test_jax_sequential_tiles_change_no_result(checks):
    """JAX's tiles one after the other in a loop (bounded memory: a GPU's default) give the
    gradient and loss of the tiles unrolled in the program (the CPU's default)."""
    backend, c = checks
    assert c["map_max_diff"] < 1e-4 and abs(c["map_loss_ratio"] - 1) < 1e-5


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_no_host_reads_inside_an_octave(backend, tiny_file):
    """The steps of an octave queue on the device: reading a value back (which waits for the device)
    happens a fixed number of times per octave, whatever the step count, unless max_loss must be checked."""
    reads = on_backend(backend, "reads", tiny_file)["reads"]
    assert reads["6 steps"] == reads["1 steps"] <= 2  # the image and the loss, once
    assert reads["6 steps, max_loss"] >= reads["1 steps"] + 5  # the loss after every step


def test_same_seed_same_bytes(checks):
    _, c = checks
    assert c["same_seed_same_bytes"] and c["other_seed_differs"]
    assert c["change"] > 2.0


def test_tiles_match_whole_image(checks):
    _, c = checks
    assert c["tile_loss_ratio"] == pytest.approx(1.0, rel=0.05)
    assert c["tile_corr"] > 0.98


def test_start_image_and_step_map(checks):
    _, c = checks
    assert c["start_kept"]
    assert c["step_map_left"] < 0.05 * c["step_map_right"]  # no step where the map is 0


def test_tiny_engines_agree_across_backends(checks):
    """Same weights, same seed: the dream's strength matches TensorFlow's."""
    backend, c = checks
    if "tensorflow" not in _CHECKS:
        pytest.skip("needs the tensorflow result first")
    assert 0.7 < c["change"] / _CHECKS["tensorflow"]["change"] < 1.4


@pytest.mark.slow
@needs_weights
@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_look_matches_tensorflow(backend, tmp_path):
    """The shared MobileNetV2 weights dreamed on another backend: activation lift and strength within
    0.7-1.4x of TensorFlow's."""
    from backend_checks import look
    from dreamvideo.engine import to_unit
    from dreamvideo.models import load_model

    look(str(MOBILENET_WEIGHTS), str(tmp_path / "tensorflow.npy"))
    on_backend(backend, "look", MOBILENET_WEIGHTS, tmp_path / "other.npy")
    img = photo("coffee")[::3, ::3]
    ref, other = np.load(tmp_path / "tensorflow.npy"), np.load(tmp_path / "other.npy")
    m = load_model("mobilenet_v2", weights=str(MOBILENET_WEIGHTS), precision="float32").select(["block_10_expand_relu"])
    act = lambda x: float(np.mean(np.square(m.numpy(to_unit(x)[None])["block_10_expand_relu"])))
    lift_ref, lift = act(ref) / act(img), act(other) / act(img)
    strength_ref, strength = (float(np.abs(x.astype(float) - img).mean()) for x in (ref, other))
    assert lift_ref > 1.2  # a dream happened
    assert 0.7 < (lift - 1) / (lift_ref - 1) < 1.4
    assert 0.7 < strength / strength_ref < 1.4


# ---- choosing the backend and device ----

def test_unknown_backend_and_device_are_one_line_errors():
    with pytest.raises(UserError, match="unknown backend 'tensorfloe'; use one of auto, tensorflow, jax, torch"):
        backends.activate("tensorfloe")
    with pytest.raises(UserError, match="unknown device"):
        backends.activate("tensorflow", "tpu")


def test_missing_library_names_the_install(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda b: False)
    monkeypatch.setattr(backends, "_active", None)
    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as in a fresh process
    with pytest.raises(UserError, match=r'pip install "dreamvideo\[jax\]"'):
        backends.activate("jax")
    with pytest.raises(UserError, match="install PyTorch for your platform, see pytorch.org"):
        backends.activate("torch")


def test_keras_already_on_another_backend_is_a_clear_error():
    backends.activate("tensorflow")
    with pytest.raises(UserError, match="Keras is already running on tensorflow.*DREAMVIDEO_BACKEND=jax"):
        backends.activate("jax")


def test_gpu_asked_for_without_one_names_the_install():
    mod = backends.activate("tensorflow")
    if mod.start("auto") == "gpu":
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError, match=r"sees no GPU; install .*tensorflow\[and-cuda\]"):
        backends.activate("tensorflow", "gpu")


def test_backend_from_environment(monkeypatch):
    monkeypatch.delenv("DREAMVIDEO_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backends.default_backend() == "jax"  # a set KERAS_BACKEND is honoured
    monkeypatch.setenv("KERAS_BACKEND", "numpy")
    assert backends.default_backend() == "auto"  # not one we dream on
    monkeypatch.setenv("DREAMVIDEO_BACKEND", "torch")
    assert backends.default_backend() == "torch"


def _fresh_process(monkeypatch, hardware, seen):
    """As if no backend were chosen yet, on a machine with ``hardware`` whose libraries see ``seen``."""
    monkeypatch.setattr(backends, "_active", None)
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.setattr(backends, "gpu_hardware", lambda: hardware)
    monkeypatch.setattr(backends, "gpus_seen", lambda b: tuple(seen.get(b, ())))
    monkeypatch.setattr(backends, "installed", lambda b: True)


@pytest.mark.parametrize("hardware,seen,chosen", [
    (None, {}, "tensorflow"),  # a CPU machine: TensorFlow (oneDNN) is the fastest there
    ("NVIDIA", {"tensorflow": ["GPU:0"], "torch": ["H200"]}, "tensorflow"),  # TensorFlow sees it
    ("NVIDIA", {"torch": ["H200"], "jax": ["cuda:0"]}, "torch"),  # plain `pip install dreamvideo`: TF without CUDA
    ("NVIDIA", {"jax": ["cuda:0"]}, "jax"),
    ("AMD", {}, "tensorflow"),  # nobody sees it: the CPU, and a hint (below)
])
def test_auto_backend_takes_the_one_that_sees_a_gpu(monkeypatch, hardware, seen, chosen):
    _fresh_process(monkeypatch, hardware, seen)
    name, why = backends.choose_backend()
    assert name == chosen
    assert ("sees the GPU" in why) == bool(seen)


def test_an_idle_gpu_is_named_with_its_fix(monkeypatch):
    monkeypatch.setattr(backends, "gpu_hardware", lambda: "NVIDIA")
    assert 'has an NVIDIA GPU, but tensorflow runs on the CPU; to dream on the GPU: pip install "tensorflow[and-cuda]"' \
        in backends.idle_gpu_hint("tensorflow")
    assert "download.pytorch.org/whl/cu" in backends.idle_gpu_hint("torch")
    monkeypatch.setattr(backends, "gpu_hardware", lambda: None)
    assert backends.idle_gpu_hint("tensorflow") is None


def test_doctor_lists_every_backend_and_the_idle_gpu(monkeypatch):
    from dreamvideo.doctor import doctor
    from dreamvideo.settings import ModelSettings

    backends.activate("tensorflow")
    monkeypatch.setattr(backends, "gpu_hardware", lambda: "NVIDIA")
    monkeypatch.setattr(backends, "gpus_seen", lambda b: ("NVIDIA H200",) if b == "torch" else ())
    monkeypatch.setattr(backends, "_active", ("tensorflow", "cpu"))
    text = doctor(ModelSettings(backend="auto", device="auto", precision="float32"))
    assert "backend:    tensorflow" in text and "Keras already runs on tensorflow" in text
    assert "torch:      installed; sees NVIDIA H200" in text
    assert "tensorflow: installed; sees no GPU, only the CPU" in text
    assert "gpu idle:   this machine has an NVIDIA GPU, but tensorflow runs on the CPU" in text


def test_backend_flag_on_the_command_line(tmp_path):
    """`--backend jax` picks JAX in a fresh process (the CLI imports no Keras before it parses)."""
    import imageio.v3 as iio

    if not backends.installed("jax"):
        pytest.skip("jax is not installed")
    iio.imwrite(tmp_path / "cat.png", photo("chelsea")[::4, ::4])
    model = tiny_model_file(tmp_path / "tiny.keras")
    code = ("import sys; from dreamvideo import cli; rc = cli.main(sys.argv[1:]); import keras; "
            "print(keras.backend.backend()); "
            "sys.exit(rc)")
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "DREAMVIDEO_BACKEND")}
    env["PYTHONPATH"] = str(HERE.parent)
    r = subprocess.run([sys.executable, "-c", code, "image", str(tmp_path / "cat.png"), "-o", str(tmp_path / "o.png"),
                        "--model", str(model), "--layers", "conv2", "--octaves", "1", "--steps", "2", "-q",
                        "--backend", "jax", "--device", "cpu"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "jax"
    assert (tmp_path / "o.png").is_file()


# ---- the original DeepDream graph on every backend ----

@pytest.fixture(scope="module")
def graph_pb(tmp_path_factory):
    from helpers import inception_like_graph

    return inception_like_graph(tmp_path_factory.mktemp("g") / "tensorflow_inception_graph.pb")


@pytest.mark.parametrize("backend", BACKENDS)
def test_frozen_graph_as_keras_matches_tensorflow_graph(backend, graph_pb, tmp_path):
    """inception5h's ops (Conv2D, BiasAdd, Relu, MaxPool, LRN, ConcatV2, AvgPool) rebuilt as a Keras model
    give the TensorFlow graph's own activations, on every backend."""
    from backend_checks import graph
    from helpers import GRAPH_LAYERS, graph_activations

    x = np.random.default_rng(0).uniform(-117, 138, (1, 37, 50, 3)).astype(np.float32)  # odd sizes: SAME padding
    np.save(tmp_path / "x.npy", x)
    if backend == "tensorflow":
        graph(str(graph_pb), str(tmp_path / "x.npy"), str(tmp_path / "acts.npz"))
    else:
        on_backend(backend, "graph", graph_pb, tmp_path / "x.npy", tmp_path / "acts.npz")
    got = np.load(tmp_path / "acts.npz")
    want = graph_activations(graph_pb, x)
    for name in GRAPH_LAYERS:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4 * np.abs(want[name]).max(),
                                   err_msg=name)


def test_graph_reader_needs_no_tensorflow(graph_pb):
    """The .pb is read by dreamvideo's own wire-format reader: the same nodes and weights TensorFlow sees."""
    import tensorflow as tf

    from dreamvideo.graphdef import attr_value, parse_graph_def

    nodes = parse_graph_def(graph_pb.read_bytes())
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(graph_pb.read_bytes())
    assert [(n.name, n.op, n.inputs) for n in nodes] == [(n.name, n.op, list(n.input)) for n in gd.node]
    for n, ref in zip(nodes, gd.node):
        if n.op == "Const":
            np.testing.assert_array_equal(attr_value(n.attr["value"]), tf.make_ndarray(ref.attr["value"].tensor))


def test_not_a_graph_is_a_one_line_error(tmp_path):
    from dreamvideo.models import load_model

    bad = tmp_path / "tensorflow_inception_graph.pb"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(UserError, match="is not a TensorFlow frozen graph"):
        load_model("inception5h", weights=str(bad), precision="float32")


# ---- --precision auto, doctor ----

def test_precision_auto_is_measured_cached_and_told_once(capsys, monkeypatch, tmp_path):
    from dreamvideo import precision

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    first = precision.choose()
    err = capsys.readouterr().err
    assert f"--precision auto = {first.precision}" in err and "measured" in err
    assert set(first.timings) >= {"float32", "bfloat16"} and not first.cached
    again = precision.choose()
    assert again.cached and again.precision == first.precision
    assert capsys.readouterr().err == ""  # told once
    assert precision.cache_path() == tmp_path / "dreamvideo" / "precision.json" and precision.cache_path().is_file()


@pytest.mark.parametrize("bf16_speedup,expected", [(1.03, "float32"), (1.6, "bfloat16"), (0.6, "float32")])
def test_precision_needs_a_clear_margin(monkeypatch, bf16_speedup, expected):
    from dreamvideo import precision

    monkeypatch.setattr(precision, "_probe", lambda p: p)  # the "run" is its precision's name
    monkeypatch.setattr(precision, "_timed", lambda p: 0.1 if p == "float32" else 0.1 / bf16_speedup)
    best, reason, _ = precision.measure("cpu")
    assert best == expected
    assert f"{bf16_speedup:.2f}x" in reason


def test_a_clearly_slower_precision_is_timed_no_further(monkeypatch):
    from dreamvideo import precision

    timed = []
    monkeypatch.setattr(precision, "_probe", lambda p: p)
    monkeypatch.setattr(precision, "_timed", lambda p: timed.append(p) or (0.1 if p == "float32" else 0.5))
    best, reason, timings = precision.measure("cpu")
    assert best == "float32" and "bfloat16 0.20x" in reason
    assert timed.count("bfloat16") == 1 and timed.count("float32") == precision.PROBE_ROUNDS


def test_doctor_shows_backend_device_and_precision():
    from dreamvideo.doctor import doctor
    from dreamvideo.settings import ModelSettings

    text = doctor(ModelSettings(backend="tensorflow", device="auto", precision="auto"))
    assert "backend:    tensorflow" in text and "keras" in text
    assert "device:     cpu" in text or "device:     gpu" in text
    assert "precision:  auto = " in text and "float32" in text
