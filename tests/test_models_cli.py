import numpy as np
import pytest

from dreamvideo import cli
from dreamvideo.engine import Dreamer, DreamSettings, to_unit
from dreamvideo.models import load_model
from dreamvideo.objectives import layer

from helpers import MOBILENET_WEIGHTS, needs_weights, photo, tiny_model_file


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import imageio.v3 as iio

    d = tmp_path_factory.mktemp("cli")
    iio.imwrite(d / "cat.png", photo("chelsea")[::2, ::2])
    tiny_model_file(d / "tiny.keras")
    return d


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def frozen_graph(path):
    """A small GoogLeNet-like frozen graph: input placeholder, conv/relu/concat named like inception5h."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    rng = np.random.default_rng(0)
    w1 = tf.constant(rng.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.3, (3, 3, 8, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def net(x):
        a = tf.nn.relu(tf.nn.conv2d(x / 255.0, w1, 1, "SAME"), name="conv2d0")
        b = tf.nn.relu(tf.nn.conv2d(a, w2, 2, "SAME", name="mixed4d_3x3_bottleneck_pre_relu"))
        return tf.concat([b, b * 0.5], axis=3, name="mixed4c")

    gd = convert_variables_to_constants_v2(net.get_concrete_function()).graph.as_graph_def()
    path.write_bytes(gd.SerializeToString())
    return path


def test_inception5h_loader_on_a_small_frozen_graph(tmp_path):
    pb = frozen_graph(tmp_path / "tensorflow_inception_graph.pb")
    m = load_model("inception5h", weights=str(pb))
    names = {i.name: i.channels for i in m.layers}
    assert names["mixed4c"] == 16 and "mixed4d_3x3_bottleneck_pre_relu" in names
    d = Dreamer(m, layer("mixed4c"))
    img = photo("coffee")[::4, ::4]
    g, _ = d.gradient(to_unit(img), 512)
    assert np.abs(g).mean() > 0  # gradients flow through the imported graph
    out = d.dream(img, settings=DreamSettings(octaves=1, steps=4, step_size=0.05))
    assert np.abs(out.astype(float) - img).mean() > 1.0


def test_image_command_writes_output(files, capsys):
    out = files / "out.jpg"
    rc, _, err = run(capsys, "image", files / "cat.png", "-o", out, "--model", files / "tiny.keras",
                     "--layers", "conv2", "--octaves", "2", "--steps", "3", "-q")
    assert rc == 0, err
    import imageio.v3 as iio

    assert iio.imread(out).shape == (150, 226, 3)
    assert not list(files.glob("*.tmp*"))


@pytest.mark.parametrize("argv,code,needle", [
    (["image", "missing.png", "-o", "o.png"], 2, "missing.png"),
    (["image", "{d}/cat.png", "-o", "{d}/cat.png"], 2, "is the input"),
    (["image", "{d}/cat.png", "-o", "{d}/o.xyz"], 2, "extension"),
    (["image", "{d}/cat.png", "-o", "{d}/o.png", "--model", "incepshun"], 2, "did you mean"),
    (["image", "{d}/cat.png", "-o", "{d}/o.png", "--model", "{d}/tiny.keras", "--layers", "conv9"], 2, "conv1"),
    (["image", "{d}/cat.png", "-o", "{d}/o.png", "--model", "{d}/tiny.keras", "--layers", "conv2:99"], 2, "0..15"),
    (["image", "{d}/cat.png", "-o", "{d}/o.png", "--steps", "many"], 2, "--steps"),
    (["image", "{d}/cat.png", "-o", "{d}/o.png", "--model", "mobilenet_v2", "--weights", "{d}/cat.png"], 2, "weights"),
    (["image", "{d}/cat.png", "-o", "{d}/o.png", "--octave-scale", "0.5"], 2, "octave-scale"),
    (["video"], 2, "error"),
])
def test_user_mistakes_are_one_line_exit_2(files, capsys, argv, code, needle):
    rc, _, err = run(capsys, *[a.format(d=files) for a in argv])
    assert rc == code
    assert err.count("\n") == 1 and err.startswith("dreamvideo: error:") and needle in err
    assert "Traceback" not in err and not (files / "o.png").exists()


def test_imagenet_weights_offline_say_where_to_put_them(files, capsys, monkeypatch, tmp_path):
    import keras.src.utils.file_utils as fu

    def offline(*a, **k):
        raise Exception("URL fetch failure on https://example.invalid/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5: None")

    monkeypatch.setattr(fu, "get_file", offline)
    monkeypatch.setattr("keras.utils.get_file", offline)
    rc, _, err = run(capsys, "image", files / "cat.png", "-o", tmp_path / "o.png")
    assert rc == 1
    assert "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5" in err and "or pass a weights file (--weights)" in err


def test_layers_lists_channels(capsys):
    rc, out, _ = run(capsys, "layers", "--model", "inception_v3", "--filter", "mixed")
    assert rc == 0
    assert any(line.split()[:1] == ["mixed4"] and line.split()[-1] == "768" for line in out.splitlines())


@needs_weights
def test_a_dream_happened_with_imagenet_weights(tmp_path, capsys):
    """Real weights: the dreamed layer fires much more on the output than on the photo.

    Measured with the default settings on chelsea (300x451): mean activation x1.77, mean squared
    activation (what the l2 objective maximises) x2.7; block_10_expand_relu is a ReLU6, so its mean is capped.
    """
    import imageio.v3 as iio

    src, out = tmp_path / "cat.png", tmp_path / "dream.png"
    iio.imwrite(src, photo("chelsea"))
    rc, _, err = run(capsys, "image", src, "-o", out, "--model", "mobilenet_v2", "--weights", MOBILENET_WEIGHTS,
                     "--layers", "block_10_expand_relu", "-q")
    assert rc == 0, err
    m = load_model("mobilenet_v2", str(MOBILENET_WEIGHTS), precision="float32").select(["block_10_expand_relu"])
    act = lambda p: np.asarray(m(to_unit(iio.imread(p))[None])["block_10_expand_relu"])
    a_in, a_out = act(src), act(out)
    assert a_out.mean() > 1.5 * a_in.mean()
    assert (a_out ** 2).mean() > 2.2 * (a_in ** 2).mean()
    # Random weights dream noise, not structure: the same run with them barely moves this layer.
    rc, _, _ = run(capsys, "image", src, "-o", tmp_path / "noise.png", "--model", "mobilenet_v2", "--weights",
                   "random", "--layers", "block_10_expand_relu", "-q")
    assert rc == 0 and act(tmp_path / "noise.png").mean() < 1.2 * a_in.mean()
