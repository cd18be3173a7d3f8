import numpy as np
import pytest

from dreamvideo.engine import Dreamer, DreamSettings, octave_shapes, to_unit
from dreamvideo.errors import UserError
from dreamvideo.models import load_model
from dreamvideo.objectives import channel, layer, parse_objective

from helpers import MOBILENET_WEIGHTS, needs_weights, photo, tiny_model_file

FAST = DreamSettings(octaves=2, steps=3, step_size=0.02, tile_size=512)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_model(model_file=str(tiny_model_file(tmp_path_factory.mktemp("m") / "tiny.keras")), precision="float32")


@pytest.fixture(scope="module")
def img():
    return photo("chelsea")[::2, ::2].copy()  # 150 x 226


def test_dream_changes_image_and_keeps_shape(tiny, img):
    out = Dreamer(tiny, layer("conv2")).dream(img, settings=FAST)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(float) - img).mean() > 2.0


def test_no_retrace_across_sizes_steps_and_weights(tiny, img):
    d = Dreamer(tiny, layer("conv2") + 2.0 * layer("conv3"))
    d.dream(img, settings=FAST)
    d.dream(img[:101, :77], settings=DreamSettings(octaves=3, steps=2, tile_size=64))
    d.dream(img, settings=FAST, weights=[0.5, 1.0])
    assert d.trace_count == 1


def test_crops_of_many_sizes_keep_the_compiled_programs_bounded(tiny, img):
    """Reuse and live dream crops of ever new sizes: the backend compiles (or traces) at most one
    program per padded shape, and TensorFlow's one graph takes every size (a count that stays 1)."""
    rng = np.random.default_rng(0)
    d = Dreamer(tiny, layer("conv2"))
    sizes = [(int(rng.integers(20, 140)), int(rng.integers(20, 200))) for _ in range(16)]
    for h, w in sizes:
        d.ascend(to_unit(img[:h, :w]), 1, 0.01, 512, 4)
    pm = d.loop.pad_multiple
    bound = 1 if pm == 1 else len({(-(-h // pm), -(-w // pm)) for h, w in sizes})
    assert d.trace_count <= bound < len(sizes), (d.trace_count, bound)


def test_seed_gives_identical_bytes(tiny, img):
    d = Dreamer(tiny, layer("conv3"))
    a = d.dream(img, settings=FAST, seed=7)
    b = d.dream(img, settings=FAST, seed=7)
    c = d.dream(img, settings=FAST, seed=8)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_tiled_gradient_matches_whole_image(tiny):
    d = Dreamer(tiny, layer("conv3"))
    x = to_unit(photo("astronaut")[::2, ::2])  # 256 x 256
    whole, loss_w = d.gradient(x, tile_size=1024)
    tiled, loss_t = d.gradient(x, tile_size=128)  # 2 x 2 tiles
    assert loss_t == pytest.approx(loss_w, rel=0.05)
    # Away from the seams at 128 the two agree closely.
    keep = np.ones(x.shape[:2], bool)
    keep[112:144] = False
    keep[:, 112:144] = False
    r = np.corrcoef(whole[keep].ravel(), tiled[keep].ravel())[0, 1]
    assert r > 0.98


def test_tiles_leave_no_seam(tiny):
    """A large image dreamed in small tiles shows no seam at the tile borders."""
    img = photo("astronaut")[::2, ::2]
    out = Dreamer(tiny, layer("conv2")).dream(img, settings=DreamSettings(octaves=1, steps=8, step_size=0.03,
                                                                          tile_size=128))
    diff = np.abs(out.astype(float) - img).mean(axis=(0, 2))  # change per column
    assert diff[126:130].mean() < 2.0 * np.median(diff)


def test_start_image_is_where_the_ascent_begins(tiny, img):
    d = Dreamer(tiny, layer("conv2"))
    s0 = DreamSettings(octaves=1, steps=0)
    start = np.full_like(img, 128)
    assert np.array_equal(d.dream(img, start=start, settings=s0), start)


def test_images_smaller_than_the_model_are_dreamed_at_their_own_size(tiny):
    for h, w in ((1, 1), (5, 7)):
        flat = np.full((h, w, 3), 100, np.uint8)
        out = Dreamer(tiny, layer("conv1")).dream(flat, settings=FAST)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
        assert np.abs(out.astype(float) - flat).mean() > 1.0  # dreamed, not handed back untouched


def test_octave_shapes_smallest_first_and_respect_min_side():
    assert octave_shapes((540, 960), 3, 1.4, 75) == [(275, 489), (385, 685), (540, 960)]
    assert octave_shapes((100, 100), 4, 2.0, 75) == [(100, 100)]


def test_objective_strings_and_composition():
    o = parse_objective("mixed4:1.0,mixed5:1.5")
    assert o == layer("mixed4") + 1.5 * layer("mixed5")
    assert parse_objective("mixed4c:97") == channel("mixed4c", 97)
    assert parse_objective("mixed4c:97:2.0").terms[0].weight == 2.0
    assert (2 * o).weights == [2.0, 3.0]
    with pytest.raises(UserError):
        parse_objective("mixed4:abc")


def test_unknown_layer_and_channel_suggest(tiny):
    with pytest.raises(UserError, match="did you mean conv2"):
        Dreamer(tiny, layer("conv22"))
    with pytest.raises(UserError, match="channels 0..15"):
        Dreamer(tiny, channel("conv2", 16))


def test_channel_objective_raises_that_channel(tiny, img):
    d = Dreamer(tiny, channel("conv3", 5))
    out = d.dream(img, settings=DreamSettings(octaves=1, steps=10, step_size=0.02))
    act = lambda x: np.asarray(d.model(to_unit(x)[None])["conv3"])[..., 5].mean()
    assert act(out) > act(img)


def test_feature_model_stops_at_deepest_layer(tiny):
    sub = tiny.select(["conv2"])
    assert "conv3" not in [l.name for l in sub.keras_model.layers]


def test_a_guided_dream_moves_towards_the_guide_images_features(tiny, img):
    from dreamvideo.objectives import guide

    coffee = photo("coffee")[::4, ::4]
    out = Dreamer(tiny, guide("conv2"), guide_image=coffee).dream(img, settings=FAST)
    conv2 = tiny.select(["conv2"])

    def features(x):
        a = np.asarray(conv2(to_unit(x)[None])["conv2"])[0]
        return a.reshape(-1, a.shape[-1])

    target = features(coffee).mean(0)
    assert (features(out) @ target).mean() > 1.3 * (features(img) @ target).mean()
    unguided = Dreamer(tiny, layer("conv2")).dream(img, settings=FAST)
    assert np.abs(unguided.astype(float) - out).mean() > 2.0  # the guide, not the layer alone, shaped it


def test_settings_checked():
    with pytest.raises(UserError, match="`octave_scale`"):
        DreamSettings(octave_scale=0.5).check()


# The lift of block_10 / block_13 (mean square activation, dream over photo) that the engine gave before
# its step was compiled with frozen weights and forward-convolution gradients (commit 223d001,
# TensorFlow, this test's settings): the look must not change with the speed.
BASE_LIFT = {"float32": (1.3862, 1.6531), "bfloat16": (1.4068, 1.6763)}


@needs_weights
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_activation_lift_with_imagenet_weights_is_the_base_commits(precision):
    import cv2

    from dreamvideo import backends

    if backends.active()[0] != "tensorflow":
        pytest.skip("the base lift was measured on TensorFlow")
    m = load_model("mobilenet_v2", weights=str(MOBILENET_WEIGHTS), precision=precision)
    d = Dreamer(m, parse_objective("block_10_expand_relu:1.0,block_13_expand_relu:1.0"))
    img = cv2.resize(photo("coffee"), (192, 128), interpolation=cv2.INTER_AREA)
    out = d.dream(img, settings=DreamSettings(octaves=2, steps=8), seed=0)

    def score(x):
        a = d.model.numpy(to_unit(x)[None])
        return np.array([np.mean(np.square(a[k])) for k in ("block_10_expand_relu", "block_13_expand_relu")])

    lift = score(out) / score(img)
    assert np.allclose(lift, BASE_LIFT[precision], rtol=0.03), (lift, BASE_LIFT[precision])


def test_between_steps_dreams_the_same_bytes_and_takes_a_change_mid_dream(tiny, img):
    from dreamvideo.engine import between_steps

    d = Dreamer(tiny, layer("conv3"))
    plain = d.dream(img, settings=FAST, seed=3)
    calls = []

    def same():
        calls.append(1)
        return 1.0, FAST.steps, FAST.steps

    with between_steps(same):
        hooked = d.dream(img, settings=FAST, seed=3)
    assert np.array_equal(hooked, plain)  # one step a call: the same ascent
    assert len(calls) == 2 * FAST.steps  # before each octave and each step

    def stops_after_the_first_octave():  # a step size of 0 (and 1 step) sent once the first octave ran
        calls.append(1)
        late = len(calls) > FAST.steps
        return (0.0 if late else 1.0), FAST.steps, (1 if late else FAST.steps)

    calls.clear()
    with between_steps(stops_after_the_first_octave):
        changed = d.dream(img, settings=FAST, seed=3)
    assert len(calls) == FAST.steps + 1  # the second octave ran 1 step, of size 0
    assert np.abs(changed.astype(float) - plain).mean() > 0.5  # the finest octave's steps are not in it


def _tensorflow_only():
    from dreamvideo import backends

    if backends.active()[0] != "tensorflow":
        pytest.skip("TensorFlow's wide and narrow runners")


@needs_weights
def test_the_narrow_and_wide_runners_dream_the_same_bytes(monkeypatch):
    """The runner is chosen by timing, so it must never change a frame: a small dream (where narrow
    is picked) and a large one give the same bytes on either runner (bfloat16, where both run), or,
    on a CPU where they differ, the chooser finds it and keeps the wide runner alone."""
    import cv2

    _tensorflow_only()
    m = load_model("mobilenet_v2", weights=str(MOBILENET_WEIGHTS), precision="bfloat16")
    objective = parse_objective("block_10_expand_relu:1.0,block_13_expand_relu:1.0")
    dreamers = {}
    for mode in ("0", "only"):
        monkeypatch.setenv("DREAMVIDEO_TF_NARROW", mode)
        dreamers[mode] = Dreamer(m, objective)
    assert dreamers["0"].loop._ascend.chooser.runners == ("wide",)
    assert dreamers["only"].loop._ascend.chooser.runners == ("narrow",)
    monkeypatch.setenv("DREAMVIDEO_TF_NARROW", "auto")
    chosen = Dreamer(m, objective)
    for size in ((96, 64), (256, 144), (480, 270)):
        img = cv2.resize(photo("coffee"), size, interpolation=cv2.INTER_AREA)
        settings = DreamSettings(octaves=2, steps=3)
        wide, narrow = (dreamers[k].dream(img, settings=settings, seed=1) for k in ("0", "only"))
        assert np.abs(wide.astype(float) - img).mean() > 2.0
        runs = [chosen.dream(img, settings=settings, seed=1) for _ in range(3)]  # both runners tried per octave
        assert all(r.tobytes() == wide.tobytes() for r in runs), size  # whichever runs, the same frame
        if wide.tobytes() != narrow.tobytes():  # a CPU whose one-thread convolutions round differently
            assert chosen.loop._ascend.chooser.runners == ("wide",), size
    assert Dreamer(load_model("mobilenet_v2", weights=str(MOBILENET_WEIGHTS), precision="float32"),
                   objective).loop._ascend.chooser.runners == ("wide",)  # float32 rounds by thread count


def test_the_runner_chooser_takes_the_faster_per_size_and_stays_bounded():
    _tensorflow_only()
    from dreamvideo.backends.tensorflow import _Chooser

    c = _Chooser()
    speed = {"wide": lambda px: 0.004 + px * 1e-8, "narrow": lambda px: 0.001 + px * 4e-8}  # crossover 100k px
    rng = np.random.default_rng(0)
    picks = []
    for _ in range(3000):
        px = int(np.exp(rng.uniform(np.log(16 * 16), np.log(1920 * 1080))))  # crops of every size
        runner = c.pick(px)
        picks.append((px, runner))
        c.record(px, runner, speed[runner](px) * rng.uniform(1.0, 1.1))
    late = picks[-1000:]  # all but the rechecks (1 call in 64) on the faster runner

    def share(runner, small):
        calls = [r for px, r in late if (px < 50_000 if small else px > 200_000)]
        return sum(r == runner for r in calls) / len(calls)

    assert share("narrow", small=True) > 0.95 and share("wide", small=False) > 0.95
    assert len(c.table) <= 2 * np.log2(1920 * 1080) + 1  # buckets of sqrt 2: bounded however many sizes come
    assert c.choice(1920 * 1080) == "wide" and c.choice(96 * 64) == "narrow"


def test_a_narrow_runner_that_differs_is_dropped_and_its_frame_never_shown(monkeypatch):
    _tensorflow_only()
    import os

    if (os.cpu_count() or 1) < 2:
        pytest.skip("the narrow runner needs several cores")
    monkeypatch.setenv("DREAMVIDEO_TF_NARROW", "auto")
    m = load_model("mobilenet_v2", "random", precision="bfloat16")  # model files run in float32
    d = Dreamer(m, parse_objective("block_3_expand_relu"))
    frozen = d.loop._ascend
    assert frozen.chooser.runners == ("wide", "narrow")
    frozen._trace()
    session, names = frozen._narrow_session()

    class Rounding:  # a session whose convolutions round one level differently
        def run(self, outs, feeds):
            out = session.run(outs, feeds)
            return [out[0] + np.float32(1e-3), out[1]]

        def close(self):
            session.close()

    frozen._session = (Rounding(), names)
    x = to_unit(photo("chelsea")[:64, :96])
    first = d.ascend(x, 2, 0.01, 512, 0)[0]  # wide (each runner is tried in turn)
    second = d.ascend(x, 2, 0.01, 512, 0)[0]  # narrow, checked against wide: differs
    assert np.array_equal(first, second)
    assert frozen.chooser.runners == ("wide",) and frozen._session is None  # its session freed
