"""Temporal reuse: a flow frame dreams what is new in it, a zoom frame only fine detail; --full-frames
keeps the old way. Tiny random model (fast), and one real-weights check that the dream holds."""

from __future__ import annotations

import numpy as np
import pytest

from dreamvideo import cli
from dreamvideo.build import build_dreamer
from dreamvideo.coherence import VideoStepper, coherent_start, frames_with_flow, video_stepper
from dreamvideo.render import SourceFrame
from dreamvideo.reuse import FEATHER, FILL_REACH, rebuild_from
from dreamvideo.settings import SCHEDULED, VideoSettings, split_options, with_blend_default
from dreamvideo.timeline import Timeline, frame_seed
from dreamvideo.infinite import ZoomStepper
from helpers import MOBILENET_WEIGHTS, needs_weights, photo, tiny_model_file


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(tiny_model_file(tmp_path_factory.mktemp("reuse") / "tiny.keras"))


def stepper(model_opts, n, cost=None, **opts):
    """A video stepper; its crops planned by reuse's fixed rules unless ``cost`` (True: this machine's
    measured curve, or a CostCurve), so that what a test asserts of a plan does not hang on timings."""
    s = split_options("video", dict(model_opts, **dict(dict(full_frames=False), **opts)))
    st = video_stepper(build_dreamer(s["model"]), s["dream"].check(), s["video"], s["schedules"], fps=12,
                       nframes=n, seed=3)
    st._cost = cost
    return st


def run(st, frames):
    outs, plans = [], []
    for f in frames_with_flow(frames, "dis"):
        out = st.dream(f)
        st.keep(f, out)
        outs.append(out)
        plans.append(st.last)
    return outs, plans


def fast(tiny):
    return dict(model=tiny, layers="conv2", steps="4", octaves=2, enter_every=4)  # bands on frames 4, 8, ...


def moving_square(n=6, h=144, w=192):
    """A textured square moving 4 px right a frame over a still photo."""
    bg = np.ascontiguousarray(photo("astronaut")[100:100 + h, 100:100 + w])
    sq = np.ascontiguousarray(photo("coffee")[200:232, 200:232])
    frames = []
    for i in range(n):
        f = bg.copy()
        f[32:64, 20 + 4 * i:52 + 4 * i] = sq
        frames.append(f)
    return frames


def test_dreamed_area_follows_what_is_new(tiny):
    still = [np.ascontiguousarray(photo("astronaut")[100:196, 100:228])] * 5
    outs, plans = run(stepper(fast(tiny), 5), still)
    assert plans[0] is None  # frame 0: a whole dream
    assert all(p is not None and p.share == 0 and not p.boxes for p in plans[1:])  # nothing new, nothing dreamed
    assert np.abs(outs[-1].astype(float) - still[-1]).mean() > 0.5  # and the carried dream is still there
    # A still shot's dream stands still: the carried dream is kept as it is, not re-dreamed into a shimmer.
    assert max(np.abs(o.astype(int) - outs[0]).max() for o in outs[1:]) <= 1

    frames = moving_square()
    outs, plans = run(stepper(fast(tiny), len(frames), enter_every=1), frames)  # new content dreamed every frame
    for i, p in enumerate(plans[1:], 1):
        assert not p.cut and not p.whole and 0 < p.share < 0.5, (i, p.share)
        # The background the square uncovers (its trailing 4 px) is inside a dreamed crop; the far corner is not.
        covered = np.zeros(p.new.shape, bool)
        for y0, y1, x0, x1 in p.boxes:
            covered[y0:y1, x0:x1] = True
        assert covered[40:56, 20 + 4 * (i - 1):20 + 4 * i].all(), (i, p.boxes)
        assert not covered[110:, 130:].any(), (i, p.boxes)


def test_what_a_moving_object_uncovers_waits_for_the_band_and_is_then_dreamed(tiny):
    frames = moving_square(9)
    outs, plans = run(stepper(fast(tiny), len(frames)), frames)  # enter_every 4: bands on frames 4 and 8
    for i in (1, 2, 3, 5, 6, 7):  # what the square uncovers is filled from the dream around it, and waits
        p = plans[i]
        assert not p.boxes and p.starts_waiting.any() and not (p.starts_waiting & ~p.waiting).any(), i
    assert plans[1].waiting.sum() < plans[2].waiting.sum() < plans[3].waiting.sum()  # earlier ones wait too
    for i in (4, 8):  # a band: everything uncovered since the last one is dreamed now
        covered = np.zeros(plans[i].new.shape, bool)
        for y0, y1, x0, x1 in plans[i].boxes:
            covered[y0:y1, x0:x1] = True
        assert covered[40:56, 20 + 4 * (i - 4):20 + 4 * i].all(), (i, plans[i].boxes)
        waited = plans[i - 1].waiting  # most stay where they were (the background stands still)
        assert (waited & plans[i].new).sum() >= 0.75 * waited.sum() and not plans[i].waiting.any()


def test_a_resumed_reuse_render_rebuilds_what_waits_for_the_band(tiny):
    """Resumed at frame 6, the render plans frames 5 (after the band at 4) again, so frame 8's band
    dreams what they left waiting, as the uninterrupted render did: the same bytes."""
    frames = moving_square(10)
    whole, plans = run(stepper(fast(tiny), len(frames)), frames)
    assert plans[5].waiting.any()  # the resume point falls where content waits

    def resumed(skip):
        st, outs = stepper(fast(tiny), len(frames)), []
        for f in frames_with_flow(frames, "dis", skip=skip):
            out = whole[f.index] if f.index < 6 else st.dream(f)  # as render: saved frames are loaded
            st.keep(f, out)
            outs.append(out)
        return outs

    assert rebuild_from(6, VideoSettings(full_frames=False, enter_every=4)) == 5
    assert all(np.array_equal(a, b) for a, b in zip(whole, resumed(5)))
    # Without those frames' flow nothing would wait at the band: frame 8 would differ.
    assert not np.array_equal(whole[8], resumed(6)[8])


def test_a_blend_below_1_re_dreams_the_carried_dream_instead_of_fading_it(tiny):
    still = [np.ascontiguousarray(photo("astronaut")[100:196, 100:228])] * 8

    def strength(**opts):
        outs, _ = run(stepper(fast(tiny), len(still), blend="0.8", **opts), still)
        return [np.abs(o.astype(float) - still[0]).mean() for o in outs]

    kept, faded = strength(), strength(upkeep_step=0.0)  # upkeep_step 0: no upkeep at all
    assert faded[-1] < 0.4 * faded[0], faded  # 0.8 ** 7 of it left
    assert kept[-1] > 0.7 * kept[0] and kept[-1] > 2 * faded[-1], (kept, faded)


def test_a_sliver_the_flow_lost_keeps_the_dreams_texture_and_strength(tiny):
    """A 2 px line the flow rejects (changed, inside the frame) is filled from the carried dream
    around it, not dreamed: with its texture, so it does not show as a pale line (and is not carried
    on pale, frame after frame)."""
    src = np.ascontiguousarray(photo("astronaut")[100:196, 100:228])
    st = stepper(fast(tiny), 2)
    # A carried dream of fine texture (as real weights dream it): +-12 levels, a new sign each pixel.
    texture = np.where(np.random.default_rng(0).random(src.shape) < 0.5, -12, 12)
    st.keep(SourceFrame(0, src), np.clip(src.astype(int) + texture, 0, 255).astype(np.uint8))
    changed = src.copy()
    changed[:, 60:62] = src[:, 90:92]
    mask = np.ones(src.shape[:2], np.float32)
    mask[:, 60:62] = 0
    out = st.dream(SourceFrame(1, changed, np.zeros(src.shape[:2] + (2,), np.float32), mask))
    filled = st.last.fill | st.last.starts_waiting  # (rows where the changed line looks like the old one are carried)
    rows = filled[:, 60:62].all(axis=1)
    assert rows.mean() > 0.5 and not st.last.boxes
    strength = np.abs(out[rows].astype(float) - changed[rows]).mean(axis=(0, 2))
    assert strength[60:62].mean() >= 0.8 * strength[50:58].mean(), strength[50:70].round(1)


def pan_plan(index, speed, every=4, h=108, w=192, waiting=None):
    """The reuse plan of frame ``index`` of a pan ``speed`` px right a frame: the last ``speed``
    columns entered the frame (the previous frame never saw them); ``waiting``: what the frames
    before left waiting, moved with the pan."""
    from dreamvideo.reuse import reuse_plan
    from dreamvideo.settings import VideoSettings

    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = speed
    mask = np.ones((h, w), np.float32)
    mask[:, w - speed:] = 0
    return reuse_plan(mask, VideoSettings(full_frames=False, enter_every=every), 45, 0.0, flow, index, waiting)


def pan_plans(frames, speed, every=4):
    """The plans of frames 1.. of that pan, each given what the one before left waiting."""
    plans, waiting = [], None
    for i in range(1, frames):
        if waiting is not None:
            waiting = np.roll(waiting, -speed, axis=1)
            waiting[:, -speed:] = False
        plans.append(pan_plan(i, speed, every, waiting=waiting))
        waiting = plans[-1].waiting
    return plans


def test_entering_strips_are_dreamed_in_one_band_every_few_frames():
    plans = pan_plans(6, 3)
    # Frames between bands dream nothing: the 3 px strip is filled from the dream beside it.
    for i in (1, 2, 3, 5):
        p = plans[i - 1]
        assert not p.boxes and p.share == 0 and p.starts_waiting[:, -3:].all() and not p.new.any(), i
        assert p.waiting[:, -3 * (i % 4):].all() and not p.waiting[:, :-3 * (i % 4)].any(), i
    # On a band frame all that entered since the last band (12 px) is dreamed, in one crop; no more
    # (a margin of the carried dream dreamed again would pop).
    band = plans[3]
    assert band.new[:, -12:].all() and not band.new[:, :-12].any() and not band.waiting.any()
    assert band.was_waiting[:, -12:-3].all() and not band.was_waiting[:, -3:].any()
    assert len(band.boxes) == 1 and band.boxes[0][3] == 192 and not band.whole
    # One band per frame: every frame dreams its own strip, in a crop as wide as a band's.
    every = pan_plan(1, 3, every=1)
    assert every.new[:, -3:].all() and every.boxes == band.boxes
    # A strip too wide to fill from its neighbours (a fast move) is dreamed when it enters.
    fast_move = FILL_REACH + 2
    assert pan_plan(1, fast_move).new[:, -fast_move:].all()


def test_an_entering_strip_gets_the_carried_dream_mirrored_in():
    from dreamvideo.reuse import mirror_fill

    residual = np.zeros((4, 10, 3), np.float32)
    residual[..., 0] = np.arange(10)  # a ramp to tell the columns apart
    strip = np.zeros((4, 10), bool)
    strip[:, 7:] = True
    out = mirror_fill(residual, strip, ~strip)
    assert out[0, 7:, 0].tolist() == [5, 4, 3]  # mirrored across column 6: the texture, not a blur or a copy
    assert np.array_equal(out[:, :7], residual[:, :7])


def test_a_cut_is_dreamed_afresh(tiny):
    a = np.ascontiguousarray(photo("astronaut")[100:196, 100:228])
    b = np.ascontiguousarray(photo("coffee")[100:196, 100:228])
    frames = [a, a, b, b]
    st = stepper(fast(tiny), 4)
    outs, plans = run(st, frames)
    assert plans[2].cut and plans[2].share == 1.0 and not plans[3].cut
    fresh = st.dreamer.dream(b, None, st.tl.settings(st.dream_settings, 2), seed=frame_seed(3, 2),
                             weights=st.tl.weights(2))
    assert np.array_equal(outs[2], fresh)  # nothing of the astronaut's dream leaks into the new shot


def test_full_frames_reproduces_the_whole_frame_dream(tiny):
    frames = moving_square(4)
    st = stepper(fast(tiny), 4, full_frames=True)
    outs, _ = run(st, frames)
    prev_src = prev = None
    for f, got in zip(frames_with_flow(frames, "dis"), outs):  # the algorithm before reuse, written out
        i = f.index
        start = coherent_start("flow", f.image, prev_src, prev, st.tl.value("blend", i), f.flow, f.mask)
        step_map = None if start is None else st.video.carry_step + (1 - st.video.carry_step) * (1 - f.mask)
        want = st.dreamer.dream(f.image, start, st.tl.settings(st.dream_settings, i), seed=frame_seed(3, i),
                                weights=st.tl.weights(i), step_map=step_map)
        assert np.array_equal(got, want), i
        prev_src, prev = f.image, want


def test_zoom_reuse_dreams_fine_detail_and_full_frames_everything(tiny):
    img = np.ascontiguousarray(photo("coffee")[::6, ::6][:64, :96])
    steps = {}
    for full in (False, True):
        s = split_options("zoom", dict(model=tiny, layers="conv2", full_frames=full, steps="10", octaves=3))
        dreamer = build_dreamer(s["model"])
        tl = Timeline(s["schedules"], 25, 3, dreamer.objective.terms, use=SCHEDULED["zoom"])
        st = ZoomStepper(dreamer, s["dream"], s["zoom"], tl, 0, img)
        steps[full] = [(st.settings(i).octaves, st.settings(i).steps) for i in range(3)]
        frames = list(st.frames(3))
        assert not np.array_equal(frames[1], frames[2])
    assert steps[True] == [(3, 10)] * 3
    assert steps[False] == [(3, 10), (1, 5), (1, 5)]  # the finest octave, half the steps


@pytest.mark.parametrize("flag,value", [("--cut", "1.5"), ("--upkeep-steps", "-1"), ("--detail-steps", "2")])
def test_bad_reuse_settings_are_one_line_usage_errors(tiny, tmp_path, capsys, flag, value):
    kind = "zoom" if flag == "--detail-steps" else "video"
    rc = cli.main([kind, str(tmp_path / "in.png"), "-o", str(tmp_path / "out.mp4"), flag, value, "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and flag.strip("-").replace("-", "_") in err.replace("-", "_")


@pytest.mark.slow
@needs_weights
def test_real_dream_holds_its_strength_over_60_frames():
    import cv2

    h, w, n = 72, 128, 60
    big = cv2.resize(photo("astronaut"), (2 * w + 3 * n, 2 * h))
    frames = [np.ascontiguousarray(big[20 + i // 2:20 + i // 2 + h, 3 * i:3 * i + w]) for i in range(n)]
    model = dict(model="mobilenet_v2", weights=str(MOBILENET_WEIGHTS), layers="block_10_expand_relu:1.0,"
                 "block_13_expand_relu:1.0", steps="10")
    outs, plans = run(stepper(model, n), frames)
    assert all(p is not None and not p.cut for p in plans[1:])
    none = stepper(model, n, coherence="none")
    strength = [np.abs(o.astype(float) - f).mean() for o, f in zip(outs, frames)]
    idx = range(0, n, 6)
    ref = {i: np.abs(none.dream(SourceFrame(i, frames[i])).astype(float) - frames[i]).mean() for i in idx}
    last = [i for i in idx if i >= 3 * n // 4]
    assert np.mean([strength[i] for i in idx]) >= 0.8 * np.mean(list(ref.values())), (strength, ref)
    assert np.mean([strength[i] for i in last]) >= 0.8 * np.mean([ref[i] for i in last]), (strength, ref)


def test_plan_says_what_a_render_will_dream(tiny, tmp_path, capsys):
    from dreamvideo import io
    from dreamvideo.plan import plan_render

    folder = tmp_path / "square"
    folder.mkdir()
    for i, f in enumerate(moving_square(8)):
        io.write_image(folder / f"f{i:02d}.png", f)
    work = plan_render("video", folder, tmp_path / "p.png", model=tiny, layers="conv2", full_frames=False)["work"]
    assert work["pairs"] == 7 and work["cuts"] == 0 and 0 < work["dreamed"] < 0.6 and work["cost"] < 0.7
    full = plan_render("video", folder, tmp_path / "p.png", model=tiny, layers="conv2", full_frames=True)["work"]
    assert full["cost"] == 1.0
    rc = cli.main(["plan", "zoom", str(folder / "f00.png"), "-o", str(tmp_path / "z.png"), "--model", tiny,
                   "--layers", "conv2", "--frames", "5"])
    out = capsys.readouterr().out
    assert rc == 0 and "work: frames after the first dream the finest 1 octave(s) at 10 steps: ~28%" in out, out


def test_plans_estimate_is_what_the_render_dreams(tiny, tmp_path):
    """`plan` plans the frames with the render's own planner: the same share dreamed, frame by frame."""
    from dreamvideo import io
    from dreamvideo.plan import plan_render

    folder, frames = tmp_path / "square", moving_square(10)
    folder.mkdir()
    for i, f in enumerate(frames):
        io.write_image(folder / f"f{i:02d}.png", f)
    work = plan_render("video", folder, tmp_path / "p.png", **fast(tiny))["work"]
    _, plans = run(stepper(fast(tiny), len(frames)), frames)
    assert work["pairs"] == 9 and work["shares"] == [p.share for p in plans[1:]]
    assert any(work["shares"]) and not all(work["shares"])  # bands dream, the frames between them wait


def test_a_zoom_in_gets_upkeep_for_the_fine_detail_its_magnification_blurs():
    from dreamvideo.reuse import growth, upkeep_steps
    from dreamvideo.settings import VideoSettings

    h, w = 108, 192
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    zoom = np.dstack([(gx - w / 2) * (1 / 1.02 - 1), (gy - h / 2) * (1 / 1.02 - 1)])  # 2% a frame
    pan = np.zeros((h, w, 2), np.float32) + (3.0, 1.0)
    v = VideoSettings(full_frames=False)
    assert abs(growth(zoom) - 0.02) < 0.002 and growth(pan) == 0 and growth(-zoom) == 0  # zoom-out: no growth
    assert upkeep_steps(v, growth(pan)) == v.upkeep_steps
    assert upkeep_steps(v, growth(zoom)) >= v.upkeep_steps + 4
    assert upkeep_steps(v, 0.04) > upkeep_steps(v, 0.02)


def test_new_regions_far_apart_are_dreamed_in_one_call(tiny):
    """Two new regions in one frame: one dream call for both crops (a canvas holding them apart)."""
    from dreamvideo.reuse import CANVAS_GAP, pack_crops

    boxes = [(0, 63, 0, 63), (10, 90, 100, 170), (0, 50, 0, 250)]
    (ch, cw), spots = pack_crops(boxes, 256)
    placed = [(y, y + b[1] - b[0], x, x + b[3] - b[2]) for b, (y, x) in zip(boxes, spots)]
    assert all(0 <= y0 and y1 <= ch and 0 <= x0 and x1 <= cw for y0, y1, x0, x1 in placed) and cw <= 256
    for i, p in enumerate(placed):
        for q in placed[i + 1:]:  # apart by the gap at least, one way or the other
            assert p[1] + CANVAS_GAP <= q[0] or q[1] + CANVAS_GAP <= p[0] or \
                p[3] + CANVAS_GAP <= q[2] or q[3] + CANVAS_GAP <= p[2], (p, q)

    bg = np.ascontiguousarray(photo("astronaut")[100:244, 100:356])
    frames = [bg.copy(), bg.copy()]
    frames[1][20:44, 20:44] = photo("coffee")[200:224, 200:224]  # two patches change, far apart
    frames[1][100:124, 200:224] = photo("coffee")[300:324, 300:324]
    st = stepper(fast(tiny), 2, enter_every=1)  # dreamed at once, not left to a band
    calls = []
    dream = st.dreamer.dream
    st.dreamer.dream = lambda *a, **k: calls.append(a[0].shape) or dream(*a, **k)
    outs, plans = run(st, frames)
    crops = [c for c in calls[1:] if c != frames[1].shape]  # (a whole-frame call is upkeep)
    assert len(plans[1].boxes) == 2 and len(crops) == 1, (plans[1].boxes, calls)
    (y0, y1, x0, x1), (b0, b1, c0, c1) = plans[1].boxes
    assert crops[0][:2] == (max(y1 - y0, b1 - b0), x1 - x0 + CANVAS_GAP + c1 - c0)


def test_a_chunk_carried_on_mid_band_dreams_what_an_unbroken_chunk_dreams(tiny, tmp_path):
    """A Ray worker that dies mid-chunk is carried on from its last kept frame: with reuse it must
    rebuild what waits for the band (frames 5 and 6 here) to dream frame 8 as the unbroken chunk."""
    from dreamvideo.chunks import Chunk
    from dreamvideo.distributed import ChunkJob, dream_chunk
    from dreamvideo.io import VideoWriter

    path = tmp_path / "square.mp4"
    with VideoWriter(path, 12, (192, 144)) as vw:
        for f in moving_square(12):
            vw.write(f)
    s = split_options("video", dict(fast(tiny), full_frames=False))
    dreamer = build_dreamer(s["model"])
    sched = with_blend_default(s["schedules"], s["video"])

    def job(resume_at, prev=None):
        return ChunkJob(str(path), None, s["video"], s["dream"], sched, 3, 12.0, 12, None, Chunk(0, 0, 0, 12),
                        resume_at, prev)

    whole = dict(dream_chunk(dreamer, job(0)))
    carried = dict(dream_chunk(dreamer, job(7, whole[6])))
    assert sorted(carried) == list(range(7, 12))
    assert all(np.array_equal(whole[i], carried[i]) for i in carried)


def pan_frames(n, speed=3, h=96, w=128):
    """A pan ``speed`` px a frame to the right over a photo: content enters at the right edge."""
    img = photo("astronaut")
    return [np.ascontiguousarray(img[100:100 + h, 60 + speed * i:60 + speed * i + w]) for i in range(n)]


def test_a_pans_entering_content_shows_the_bands_dream_from_the_frame_it_enters_on(tiny):
    """Between bands the entering strip is mirror-filled and dreamed at the next band (every 4th
    frame); a render holds those frames and shows the band's dream in them, so it does not pop."""
    frames = pan_frames(9)
    st, raw, shown, waits = stepper(fast(tiny), 9), {}, {}, {}
    for f in frames_with_flow(frames, "dis"):
        out = st.dream(f)
        st.keep(f, out)
        raw[f.index], waits[f.index] = out, st.state.waiting
        ready = st.settle(f, out)
        assert [i for i, _ in ready] == sorted(set(range(f.index + 1)) - set(shown)) if ready else f.index % 4
        shown.update(ready)
    assert not st.drain() and sorted(shown) == list(range(9))
    assert all(np.array_equal(shown[i], raw[i]) for i in (0, 4, 8))  # band frames are as dreamed

    def jump(outs):  # frame 7's 9 waiting columns against the same content in band frame 8
        return np.abs(outs[8][:, -12:-3].astype(float) - outs[7][:, -9:]).mean()

    assert jump(shown) < 0.4 * jump(raw), (jump(shown), jump(raw))
    # What entered at frame 5 shows there as the band of frame 8 dreams it, 9 px further left.
    assert np.abs(shown[5][:, -3:].astype(float) - shown[8][:, -12:-9]).mean() < 0.4 * \
        np.abs(raw[5][:, -3:].astype(float) - raw[8][:, -12:-9]).mean()
    # Only the waiting pixels change: the carried dream around them is as dreamed.
    changed = (shown[7] != raw[7]).any(axis=2)
    assert changed.any() and not (changed & ~waits[7]).any() and waits[7][:, -9:].mean() > 0.95
    # Frames that end while content waits: the last one dreams it, as a band would.
    st, last = stepper(fast(tiny), 7), {}
    for f in frames_with_flow(frames[:7], "dis"):
        out = st.dream(f)
        st.keep(f, out)
        last.update(st.settle(f, out))
    assert sorted(last) == list(range(5))
    last.update(st.drain())
    assert sorted(last) == list(range(7))
    import cv2

    changed = (last[6] != raw[6]).any(axis=2)
    near = cv2.dilate(waits[6].astype(np.uint8), np.ones((2 * FEATHER + 1,) * 2, np.uint8)).astype(bool)
    assert changed.any() and not (changed & ~near).any()  # what waited, feathered in
    assert np.abs(last[6][:, -9:-3].astype(float) - last[5][:, -6:]).mean() < 0.4 * \
        np.abs(raw[6][:, -9:-3].astype(float) - raw[5][:, -6:]).mean()


def test_a_render_stopped_while_frames_wait_resumes_to_the_same_bytes(tiny, tmp_path, capsys, monkeypatch):
    """Frames held for the band's dream are saved with it: Ctrl-C leaves the frames before them, and
    the resumed render (carried on from a frame shown with the band's dream put back, or not) makes
    the bytes of an unbroken one."""
    from dreamvideo.io import VideoWriter, read_image

    clip = tmp_path / "square.mp4"
    with VideoWriter(clip, 12, (192, 144)) as vw:
        for f in moving_square(12):
            vw.write(f)
    args = ["video", str(clip), "--no-full-frames", "--seed", "7", "--model", tiny, "--layers", "conv2",
            "--steps", "4", "--octaves", "2", "--enter-every", "4", "-q"]
    settle, held = VideoStepper.settle, []

    def spy(self, frame, out):
        ready = settle(self, frame, out)
        held.extend([] if ready else [frame.index])
        return ready

    monkeypatch.setattr(VideoStepper, "settle", spy)
    assert cli.main(args + ["-o", str(tmp_path / "whole")]) == 0
    assert 5 in held and 6 in held, held  # they wait for frame 8's band
    dream = VideoStepper.dream

    def stop(self, frame):
        if frame.index == 7:
            raise KeyboardInterrupt
        return dream(self, frame)

    monkeypatch.setattr(VideoStepper, "dream", stop)
    assert cli.main(args + ["-o", str(tmp_path / "parts")]) == 130
    saved = sorted(p.name for p in (tmp_path / "parts").glob("*.png"))
    assert len(saved) == 5, saved  # frames 0-4: 5 and 6 were held, not saved
    monkeypatch.undo()
    assert cli.main(args + ["-o", str(tmp_path / "parts"), "--resume"]) == 0
    capsys.readouterr()
    whole, parts = sorted((tmp_path / "whole").iterdir()), sorted((tmp_path / "parts").iterdir())
    assert [p.name for p in whole] == [p.name for p in parts] and len(whole) == 12
    for a, b in zip(whole, parts):
        assert np.array_equal(read_image(a), read_image(b)), a.name


def test_content_entering_at_the_bottom_waits_until_its_band_though_the_flow_falls_short_at_the_edge(tiny):
    """A tilt 1 px a frame: each frame a row enters at the bottom. Optical flow falls short a row or
    two from the frame's edge; the rows that wait must stay waiting until the band dreams them (lost,
    they were carried as mirrored rows and streaked for good)."""
    img = photo("coffee")
    frames = [np.ascontiguousarray(img[100 + i:196 + i, 100 + 2 * i:228 + 2 * i]) for i in range(6)]
    _, plans = run(stepper(fast(tiny), 6, enter_every=6), frames)
    waits = plans[5].waiting
    assert waits[-5:, :100].mean() > 0.95, waits[-6:, :100].mean(axis=1)  # the rows that entered at frames 1-5


def test_crops_are_planned_by_what_they_cost_on_this_machine():
    """canvases() puts crops on one canvas or each alone by the cost curve it is given: a big floor
    per call shares one canvas however badly the crops pack; cost by pixels only dreams them alone."""
    from dreamvideo.cost import CostCurve
    from dreamvideo.reuse import canvases

    boxes = [(0, 64, 0, 256), (64, 256, 192, 256)]  # a pan's bottom and right bands: they pack badly
    floor_bound = CostCurve(floor=0.05, per_pixel=1e-9)
    pixel_bound = CostCurve(floor=0.0, per_pixel=1e-6)
    assert len(canvases(boxes, 256, floor_bound.step)) == 1
    assert len(canvases(boxes, 256, pixel_bound.step)) == 2


def test_the_cost_curve_fits_the_floor_and_the_per_pixel_cost_and_is_measured_once(tiny, monkeypatch, tmp_path):
    from dreamvideo import cost
    from dreamvideo.settings import DreamSettings

    c = cost.fit([(64, 64), (128, 128), (256, 256)], [0.010 + 1e-7 * s * s for s in (64, 128, 256)])
    assert abs(c.floor - 0.010) < 1e-6 and abs(c.per_pixel - 1e-7) < 1e-10
    # a dream's cost sums its octaves: 2 octaves x 4 steps of 144x192 and 102x137 (scale 1.4)
    assert abs(c.dream((144, 192), DreamSettings(octaves=2, steps=4), 32)
               - 4 * (2 * 0.010 + 1e-7 * (144 * 192 + 102 * 137))) < 1e-9

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing measured yet
    st = stepper(fast(tiny), 2, cost=True)
    measured = []
    real = cost.measure
    monkeypatch.setattr(cost, "measure", lambda d, **k: measured.append(1) or real(d, sides=(32, 256), rounds=2))
    first = st.cost
    assert measured == [1] and first.floor >= 0 and first.per_pixel > 0
    st2 = stepper(fast(tiny), 2, cost=True)  # a new dreamer: read from the cache, not measured again
    assert st2.cost == first and measured == [1]


def test_a_frame_whose_crops_cost_more_than_it_is_dreamed_whole(tiny):
    """With a floor per step that dwarfs the per-pixel cost, two crops cost more than one whole
    frame: the stepper dreams the frame whole (one call); by pixels alone it dreams the crops."""
    from dreamvideo.cost import CostCurve

    bg = np.ascontiguousarray(photo("astronaut")[100:244, 100:356])
    frames = [bg.copy(), bg.copy()]
    frames[1][20:44, 20:44] = photo("coffee")[200:224, 200:224]
    frames[1][100:124, 200:224] = photo("coffee")[300:324, 300:324]
    shapes = {}
    for name, curve in (("floor", CostCurve(1.0, 1e-9)), ("pixels", CostCurve(0.0, 1e-6))):
        st = stepper(fast(tiny), 2, curve, enter_every=1)
        calls = []
        dream = st.dreamer.dream
        st.dreamer.dream = lambda *a, **k: calls.append(a[0].shape) or dream(*a, **k)
        _, plans = run(st, frames)
        shapes[name] = (plans[1].whole, calls[1:])
    assert shapes["floor"] == (True, [frames[1].shape]), shapes
    crops = [c for c in shapes["pixels"][1] if c != frames[1].shape]  # (a whole-frame call is upkeep)
    assert not shapes["pixels"][0] and len(crops) == 2, shapes  # by pixels, each crop alone
