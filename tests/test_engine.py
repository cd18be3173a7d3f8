import numpy as np
import pytest

from dreamvideo.engine import Dreamer, DreamSettings, octave_shapes, to_unit
from dreamvideo.errors import UserError
from dreamvideo.models import load_model
from dreamvideo.objectives import channel, layer, parse_objective

from helpers import photo, tiny_model_file

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
