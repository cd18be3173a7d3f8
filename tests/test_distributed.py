"""Rendering across Ray workers: chunk plans, scene cuts, seams, batches, and real local Ray clusters.

The tests marked ``ray`` start a local Ray cluster of 2 CPUs themselves (through the command, as a
user would) with a tiny random model on a 3 s synthetic clip; everything else needs no Ray.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ffmpeg
from dreamvideo import io
from dreamvideo.batch import read_batch
from dreamvideo.chunks import Chunk, chunk_length, crossfade, fade_weight, histogram_cuts, plan_chunks
from dreamvideo.errors import UserError
from helpers import ROOT, stop_groups, tiny_model_file

CHUNK, OVERLAP = 12, 4  # a 36-frame clip: chunks [0,12) [8..12,24) [20..24,36), two seams


# ---------------------------------------------------------------- chunk plans (no Ray)

def covered(chunks) -> list[int]:
    return [i for c in chunks for i in range(c.start, c.end)]


@pytest.mark.parametrize("n,size,overlap,parts", [(1, 240, 12, 1), (100, 24, 4, 1), (1000, 240, 12, 8),
                                                  (37, 12, 4, 2), (500, 240, 12, 1)])
def test_chunks_cover_every_frame_once_in_order_with_bounded_lengths(n, size, overlap, parts):
    chunks = plan_chunks(n, size, overlap, parts=parts)
    assert covered(chunks) == list(range(n))
    length = chunk_length(n, size, overlap, parts)
    assert all(c.end - c.start <= length * 3 // 2 for c in chunks)
    assert chunks[0].lead == 0
    assert all(c.lead == c.start - min(overlap, p.end - p.start) for p, c in zip(chunks, chunks[1:]))


def test_more_workers_cut_a_short_clip_into_more_chunks_but_never_mostly_lead_in():
    assert len(plan_chunks(200, 240, 12, parts=1)) == 1
    assert len(plan_chunks(200, 240, 12, parts=4)) == 4
    assert all(c.end - c.start >= 48 for c in plan_chunks(200, 240, 12, parts=16))  # 4 overlaps at least


def test_boundaries_move_to_scene_cuts_and_a_chunk_at_a_cut_has_no_lead_in():
    chunks = plan_chunks(100, 24, 4, cuts=[30, 31, 70])
    assert covered(chunks) == list(range(100))
    starts = [c.start for c in chunks]
    assert 30 in starts and 70 in starts  # 24 -> 30 and 72 -> 70: within half a chunk
    assert all(c.overlap == 0 for c in chunks if c.start in (30, 70))
    assert all(c.lead == c.start - 4 for c in chunks if c.start not in (0, 30, 70))


def test_far_scene_cuts_leave_the_boundaries_alone():
    assert [c.start for c in plan_chunks(96, 24, 4, cuts=[3, 93])] == [0, 24, 48, 72]


def test_crossfade_weights_rise_evenly_and_blend_the_two_dreams():
    c = Chunk(1, 20, 24, 48)
    w = [fade_weight(c, i) for i in range(c.lead, c.start)]
    assert w == sorted(w) and 0 < w[0] and w[-1] < 1
    assert max(np.diff([0.0, *w, 1.0])) <= 1 / (c.overlap + 1) + 1e-9  # no step bigger than 1/(overlap+1)
    a, b = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 200, np.uint8)
    assert crossfade(a, b, 0.25).dtype == np.uint8 and int(crossfade(a, b, 0.25)[0, 0, 0]) == 50


# ---------------------------------------------------------------- scene cuts (no Ray)

def test_histogram_cuts_find_a_hard_cut_but_not_a_steady_pan():
    rng = np.random.default_rng(0)
    wide = np.concatenate([np.full((36, 200, 3), (200, 40, 40), np.uint8),
                           np.full((36, 200, 3), (40, 40, 200), np.uint8)], axis=1)
    pan = [np.ascontiguousarray(wide[:, 4 * i:4 * i + 64]) for i in range(30)]  # red slides out, blue in
    other = [np.clip(rng.normal(120, 10, (36, 64, 3)) + (0, 90, 0), 0, 255).astype(np.uint8) for _ in range(10)]
    assert histogram_cuts(pan + other) == [30]


def test_histogram_cuts_on_a_clip_with_a_cut(tmp_path):
    clip = tmp_path / "cut.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=12:duration=1", "-f", "lavfi",
           "-i", "mandelbrot=size=96x64:rate=12", "-filter_complex",
           "[1:v]trim=duration=1,setpts=PTS-STARTPTS[b];[0:v][b]concat=n=2:v=1[v]", "-map", "[v]",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", clip)
    with io.VideoReader(clip, max_side=64) as r:
        assert histogram_cuts(r) == [12]


# ---------------------------------------------------------------- batch files (no Ray)

def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_batch_file_defaults_presets_relative_paths_and_typed_options(tmp_path):
    (tmp_path / "song.mp4").write_bytes(b"")
    jobs = read_batch(write(tmp_path / "jobs.toml", """
        [defaults]
        max_side = 320
        steps = 8

        [[job]]
        kind = "video"
        input = "song.mp4"
        output = "out/a.mp4"
        seed = 3

        [[job]]
        kind = "zoom"
        from_noise = "64x48"
        output = "out/b.mp4"
        preset = "pulse"
        frames = 10
        color_match = false
        """))
    a, b = jobs
    assert (a.kind, a.input, a.output, a.seed, a.max_side) == ("video", str(tmp_path / "song.mp4"),
                                                                 str(tmp_path / "out/a.mp4"), 3, 320)
    assert dict(a.options)["steps"] == "8"  # a schedule in a moving render: the string "8"
    opts = dict(b.options)
    assert b.input is None and opts["frames"] == 10 and opts["color_match"] is False
    assert "zoom" in opts  # from the preset; the job's own keys win over it
    assert opts["steps"] == "8"


@pytest.mark.parametrize("text,why", [
    ('[[job]]\nkind = "video"\ninput = "a.mp4"\noutput = "b.mp4"\nstepz = "3"\n', "'stepz' is no option"),
    ('[[job]]\nkind = "movie"\ninput = "a.mp4"\noutput = "b.mp4"\n', "kind must be one of"),
    ('[[job]]\nkind = "video"\ninput = "a.mp4"\n', "give its output"),
    ('[[job]]\nkind = "zoom"\noutput = "b.mp4"\n', "give its input"),
    ('[[job]]\nkind = "image"\ninput = "a.png"\noutput = "o.png"\n[[job]]\nkind = "image"\ninput = "a.png"\n'
     'output = "o.png"\n', "as job 1 does"),
    ('[[job]]\nkind = "video"\ninput = "a.mp4"\noutput = "b.mp4"\noctaves = "many"\n', "is not a whole number"),
    ('[jobs]\nkind = "video"\n', "use [defaults] and [[job]]"),
    ("", "no [[job]] tables"),
    ("[[job]\n", "not valid TOML"),
])
def test_batch_file_mistakes_are_one_line_usage_errors(tmp_path, text, why):
    with pytest.raises(UserError, match=why.replace("[", r"\[").replace("(", r"\(")) as e:
        read_batch(write(tmp_path / "jobs.toml", text))
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- the command line without a cluster

def run_cli(capsys, *argv):
    from dreamvideo import cli

    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_workers_with_a_zoom_is_a_usage_error_that_says_why(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "zoom", "--from-noise", "64x48", "-o", tmp_path / "z.mp4", "--workers", "2")
    assert rc == 2 and "sequential" in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_workers_without_ray_names_the_install_command(tmp_path, capsys, monkeypatch, clips):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    rc, _, err = run_cli(capsys, "video", clips["clip"], "-o", tmp_path / "o.mp4", "--workers", "2")
    assert rc == 2 and 'pip install "dreamvideo[ray]"' in err and err.count("\n") == 1
    rc, _, err = run_cli(capsys, "batch", write(tmp_path / "j.toml", '[[job]]\nkind = "image"\ninput = "a.png"\n'
                                                                      'output = "b.png"\n'), "--workers", "1")
    assert rc == 2 and 'pip install "dreamvideo[ray]"' in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work folder left


# ---------------------------------------------------------------- on a local Ray cluster

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason='needs Ray: pip install "dreamvideo[ray]"')


@pytest.fixture(scope="module")
def ray_tmp():
    """A private Ray temp folder (short: Ray's socket paths must fit 107 bytes); every Ray process of
    these tests carries it in its environment, which is how :func:`ray_processes` finds them."""
    d = tempfile.mkdtemp(prefix="dvray", dir="/tmp")
    old = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = d
    yield d
    if old is None:
        os.environ.pop("RAY_TMPDIR", None)
    else:
        os.environ["RAY_TMPDIR"] = old
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def ray_processes(marker: str) -> list[int]:
    """Live processes whose environment holds ``RAY_TMPDIR=marker`` (Ray's, started by these tests)."""
    found, key = [], f"RAY_TMPDIR={marker}".encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if key in (d / "environ").read_bytes().split(b"\0"):
                state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(d.name))
        except (OSError, ValueError):
            continue
    return found


def no_ray_left(marker: str, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := ray_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    tiny_model_file(d / "tiny.keras")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=12", "-f", "lavfi", "-i", "sine=frequency=440",
           "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", d / "clip.mp4")
    return d


def dream_args(kit) -> list[str]:
    return ["--model", kit / "tiny.keras", "--layers", "conv2", "--octaves", "1", "--steps", "3", "--first-steps",
            "6", "--step-size", "0.03", "-q"]


def chunked(kit) -> list[str]:
    return ["--workers", "2", "--chunk-frames", str(CHUNK), "--chunk-overlap", str(OVERLAP)]


def frames(path) -> np.ndarray:
    with io.VideoReader(path) as r:
        return np.stack(list(r)).astype(np.float32)


@pytest.fixture(scope="module")
def renders(kit, ray_tmp):
    """The clip dreamed in this process, and the same dreamed in 3 chunks by 2 Ray workers (the
    command starts its own cluster), one of which is killed (``ray.kill``) 2 frames into the second
    chunk; the chunks handed out, and the Ray processes left once the chunked command returned."""
    import ray

    from dreamvideo import cli, distributed

    single, dist = kit / "single.mp4", kit / "dist.mp4"
    assert cli.main([str(a) for a in ["video", kit / "clip.mp4", "-o", single, *dream_args(kit)]]) == 0
    submitted, kills, dispatchers = [], [], []
    submit, save, init = distributed._Dispatcher._submit, distributed._ChunkStore.save, distributed._Dispatcher.__init__

    def record(self, actor, c):
        submitted.append((c.index, self.store.kept(c)))
        return submit(self, actor, c)

    def save_and_kill(self, c, i, frame):
        save(self, c, i, frame)
        if not kills and c.index == 1 and i == c.start + 2:  # a worker dies mid-chunk
            kills.append(i)
            ray.kill(dispatchers[0].running[c.index], no_restart=False)

    def remember(self, *a, **k):
        dispatchers.append(self)
        init(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(distributed._Dispatcher, "__init__", remember)
        mp.setattr(distributed._Dispatcher, "_submit", record)
        mp.setattr(distributed._ChunkStore, "save", save_and_kill)
        rc = cli.main([str(a) for a in ["video", kit / "clip.mp4", "-o", dist, *dream_args(kit), *chunked(kit)]])
    assert rc == 0
    return {"single": frames(single), "dist": frames(dist), "src": frames(kit / "clip.mp4"),
            "left": no_ray_left(ray_tmp), "out": dist, "submitted": submitted, "kills": kills}


@pytest.mark.ray
@needs_ray
def test_chunked_render_has_the_single_renders_frames_in_order_and_leaves_no_ray_process(renders, kit):
    single, dist = renders["single"], renders["dist"]
    assert dist.shape == single.shape == renders["src"].shape
    # each frame is nearest to the single render's frame of the same index: nothing lost, doubled or swapped
    d = np.abs(dist[:, None] - single[None]).mean(axis=(2, 3, 4))
    assert list(d.argmin(axis=1)) == list(range(len(dist)))
    assert renders["left"] == []
    assert not (kit / ".dist.mp4.dreamwork").exists()
    assert io.probe_video(renders["out"]).has_audio


@pytest.mark.ray
@needs_ray
def test_a_worker_killed_mid_chunk_is_restarted_and_carries_its_chunk_on(renders):
    assert renders["kills"] == [CHUNK + 2]
    again = [kept for c, kept in renders["submitted"] if c == 1][1:]
    assert again and again[0] >= OVERLAP + 2  # carried on from its last kept frame, not from the start
    assert len(renders["dist"]) == len(renders["single"])  # and the render completed (frames in order: above)


@pytest.mark.ray
@needs_ray
def test_seams_do_not_jump_more_than_frames_inside_chunks_and_the_dream_keeps_its_strength(renders):
    dist, single, src = renders["dist"], renders["single"], renders["src"]
    jump = np.abs(np.diff(dist, axis=0)).mean(axis=(1, 2, 3))  # jump[i]: frame i -> i + 1
    chunks = plan_chunks(len(dist), CHUNK, OVERLAP, parts=2)
    seam = {i for c in chunks[1:] for i in range(c.lead - 1, c.start)}  # into, through and out of each fade
    inside = [jump[i] for i in range(len(jump)) if i not in seam]
    assert max(jump[i] for i in seam) <= 1.5 * max(inside)
    strength = np.abs(dist - src).mean() / np.abs(single - src).mean()
    assert strength >= 0.8, strength


@pytest.mark.ray
@needs_ray
def test_sigterm_stops_cluster_and_render_then_resume_redoes_no_finished_chunk(kit, ray_tmp, renders, monkeypatch):
    from dreamvideo import cli, distributed

    out = kit / "stopped.mp4"
    # six short chunks: when the first is written, most of the clip is still to dream
    argv = ["video", kit / "clip.mp4", "-o", out, *dream_args(kit), "--workers", "2", "--chunk-frames", "6",
            "--chunk-overlap", "2"]
    p = subprocess.Popen([sys.executable, "-m", "dreamvideo.cli", *map(str, argv)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    work = kit / ".stopped.mp4.dreamwork"
    chunks = plan_chunks(36, 6, 2, parts=2)
    deadline = time.monotonic() + 240
    while p.poll() is None and not (work / "frames" / "000005.png").is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143 and "--resume" in err, err
    assert no_ray_left(ray_tmp) == []
    assert io.probe_video(out).nframes >= 6  # the frames written so far, playable
    finished = {c.index for c in chunks if (work / "chunks" / f"{c.index:04d}" / "done").is_file()
                or (work / "frames" / f"{c.end - 1:06d}.png").is_file()}
    assert 0 in finished and len(finished) < len(chunks)

    submitted = []
    submit = distributed._Dispatcher._submit

    def record(self, actor, c):
        submitted.append(c.index)
        return submit(self, actor, c)

    monkeypatch.setattr(distributed._Dispatcher, "_submit", record)
    assert cli.main([str(a) for a in [*argv, "--resume"]]) == 0
    assert not finished & set(submitted), (finished, submitted)
    assert frames(out).shape == renders["dist"].shape
    assert no_ray_left(ray_tmp) == []


@pytest.mark.ray
@needs_ray
def test_batch_renders_every_job_across_workers_and_resume_keeps_finished_ones(kit, ray_tmp, capsys):
    from dreamvideo.batch import run_batch_job

    io.write_image(kit / "still.png", (np.indices((48, 64)).sum(0)[..., None] * [3, 2, 1] % 256).astype(np.uint8))
    jobs = write(kit / "jobs.toml", """
        [defaults]
        model = "tiny.keras"
        layers = "conv2"
        octaves = 1
        steps = 2

        [[job]]
        kind = "video"
        input = "clip.mp4"
        output = "b/one.mp4"
        frames = 8

        [[job]]
        kind = "zoom"
        input = "still.png"
        output = "b/two.mp4"
        frames = 6
        seed = 2

        [[job]]
        kind = "image"
        input = "still.png"
        output = "b/three.png"
        """)
    (kit / "b").mkdir()
    rc, out, err = run_cli(capsys, "batch", jobs, "--workers", "2")
    assert rc == 0, err
    assert len(frames(kit / "b/one.mp4")) == 8 and len(frames(kit / "b/two.mp4")) == 6
    assert io.read_image(kit / "b/three.png").shape == (48, 64, 3)
    assert no_ray_left(ray_tmp) == []
    before = {p: p.stat().st_mtime_ns for p in (kit / "b").iterdir()}
    assert all(run_batch_job(job, resume=True).endswith("(kept)") for job in read_batch(jobs))
    assert {p: p.stat().st_mtime_ns for p in (kit / "b").iterdir()} == before


# ---------------------------------------------------------------- a cluster whose worker node sees no driver file

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_unshare() -> bool:
    try:
        return os.geteuid() == 0 and subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                                                    capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


needs_namespaces = pytest.mark.skipif(not can_unshare(), reason="a worker node in its own mount namespace needs "
                                                                "root and unshare (util-linux)")


class RayNodes:
    """A Ray cluster started by a test, with token authentication: a head that offers no CPU, and
    worker nodes, each in its own mount namespace with tmpfs over ``hidden`` (the driver's folders:
    its files are not there for that node). Every process carries ``RAY_TMPDIR`` (``ray_processes``)."""

    def __init__(self, ray_tmp: str, hidden: list, token: str):
        self.port, self.hidden = free_port(), [str(h) for h in hidden]
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
                    # a node that dies is known dead in about 3 s (Ray's default: 30 s)
                    "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3",
                    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.env.pop("RAY_AUTH_TOKEN_PATH", None)
        self.ray = str(Path(sys.executable).parent / "ray")
        self.head = self._start([self.ray, "start", "--head", f"--port={self.port}", "--num-cpus=0",
                                 "--include-dashboard=false", "--block", "--disable-usage-stats"])
        self.nodes = []

    def _start(self, argv):
        return subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def add_node(self, cpus: int = 2) -> subprocess.Popen:
        mounts = " && ".join(f"mount -t tmpfs none {h}" for h in self.hidden)
        node = self._start(["unshare", "-m", "--propagation", "private", "bash", "-c",
                            f"{mounts} && exec {self.ray} start --address={self.address} --num-cpus={cpus} "
                            f"--block --disable-usage-stats"])
        self.nodes.append(node)
        return node

    def wait_for(self, workers: int, timeout: float = 180.0) -> None:
        """Until ``workers`` nodes with CPUs are alive (asked through the command's own way in)."""
        from dreamvideo.raycluster import cluster

        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                with cluster(self.address) as ray:
                    while time.monotonic() < deadline:
                        alive = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")]
                        if len(alive) >= workers:
                            return
                        time.sleep(0.5)
            except UserError as e:  # the head is not up yet
                last = e
                time.sleep(0.5)
        raise AssertionError(f"{workers} Ray worker nodes did not join in {timeout} s (last: {last})")

    def stop(self) -> None:
        stop_groups([*self.nodes, self.head], grace=3)  # a worker node stops in under 3 s; the head would drain for 30 s


@pytest.fixture(scope="module")
def far(tmp_path_factory, ray_tmp, kit):
    """The clip and a model in folders a worker node cannot see (the driver's temp folder and the
    weights' folder under tmpfs there), and a token cluster with one such node; the driver finds the
    token through RAY_AUTH_TOKEN_PATH, as a user's shell would set it."""
    import secrets

    weights = Path(tempfile.mkdtemp(prefix="dvweights", dir="/tmp"))
    tiny_model_file(weights / "tiny.keras")
    token_file = weights.parent / f"{weights.name}.token"
    token = secrets.token_hex(32)
    token_file.write_text(token)
    hidden = [tmp_path_factory.getbasetemp(), weights]
    nodes = RayNodes(ray_tmp, hidden, token)
    old = {k: os.environ.get(k) for k in ("RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_file)
    os.environ.pop("RAY_AUTH_MODE", None)
    os.environ.pop("RAY_AUTH_TOKEN", None)
    try:
        nodes.add_node()
        nodes.wait_for(1)
        from dreamvideo.raycluster import cluster

        with cluster(nodes.address) as ray:  # the node truly sees none of them
            seen = ray.get(ray.remote(num_cpus=1)(lambda *ps: [os.path.exists(p) for p in ps]).remote(
                str(kit / "clip.mp4"), str(weights / "tiny.keras")))
        assert seen == [False, False]
        yield {"nodes": nodes, "weights": weights / "tiny.keras", "token_file": token_file}
    finally:
        nodes.stop()
        assert no_ray_left(ray_tmp) == []
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        import shutil

        shutil.rmtree(weights, ignore_errors=True)
        token_file.unlink(missing_ok=True)


def far_args(far) -> list[str]:
    return ["--model", far["weights"], *dream_args_after_model()]


def dream_args_after_model() -> list[str]:
    return ["--layers", "conv2", "--octaves", "1", "--steps", "3", "--first-steps", "6", "--step-size", "0.03", "-q"]


@pytest.mark.ray
@needs_ray
@needs_namespaces
def test_a_render_on_a_node_that_sees_no_driver_file_equals_a_local_render_with_the_same_plan(kit, far, capsys):
    local, across = kit / "far_local.mp4", kit / "far_across.mp4"
    plan = ["--workers", "2", "--chunk-frames", str(CHUNK), "--chunk-overlap", str(OVERLAP)]
    rc, _, err = run_cli(capsys, "video", kit / "clip.mp4", "-o", local, *far_args(far), *plan)
    assert rc == 0, err
    rc, _, err = run_cli(capsys, "video", kit / "clip.mp4", "-o", across, *far_args(far), *plan,
                         "--ray-address", far["nodes"].address)
    assert rc == 0, err
    assert err == ""  # no line of Ray's
    a, b = frames(local), frames(across)
    assert a.shape == b.shape and len(a) == 36
    assert np.array_equal(a, b)
    assert io.probe_video(across).has_audio


@pytest.mark.ray
@needs_ray
@needs_namespaces
def test_a_batch_on_a_node_that_sees_no_driver_file_brings_every_output_back(kit, far, capsys):
    io.write_image(kit / "far_still.png", (np.indices((48, 64)).sum(0)[..., None] * [1, 2, 3] % 256).astype(np.uint8))
    jobs = write(kit / "far_jobs.toml", f"""
        [defaults]
        model = "{far['weights']}"
        layers = "conv2"
        octaves = 1
        steps = 2

        [[job]]
        kind = "video"
        input = "clip.mp4"
        output = "far/one.mp4"
        frames = 8

        [[job]]
        kind = "zoom"
        input = "far_still.png"
        output = "far/two.mp4"
        frames = 6

        [[job]]
        kind = "image"
        input = "far_still.png"
        output = "far/three.png"
        """)
    (kit / "far").mkdir()
    rc, out, err = run_cli(capsys, "batch", jobs, "--ray-address", far["nodes"].address, "-q")
    assert rc == 0, err
    assert len(frames(kit / "far/one.mp4")) == 8 and len(frames(kit / "far/two.mp4")) == 6
    assert io.probe_video(kit / "far/one.mp4").has_audio
    assert io.read_image(kit / "far/three.png").shape == (48, 64, 3)
    assert sorted(p.name for p in (kit / "far").iterdir()) == ["one.mp4", "three.png", "two.mp4"]



@pytest.mark.ray
@needs_ray
@needs_namespaces
def test_doctor_lists_each_node_its_cpus_and_what_it_can_run(far, capsys):
    rc, out, err = run_cli(capsys, "doctor", "--ray-address", far["nodes"].address)
    assert rc == 0, err
    nodes = [line for line in out.splitlines() if line.strip().startswith("node ")]
    head = [line for line in nodes if " head:" in line]
    assert len(head) == 1 and "0 CPUs" in head[0] and "runs no worker" in head[0]
    assert any("2 CPUs" in line and "dreams on the CPU; runs workers" in line for line in nodes), out
    assert "1 node can run workers" in out


def raylet_of(pid: int) -> int:
    """The raylet a Ray worker process belongs to (its parent)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@contextlib.contextmanager
def the_node_of_chunk_1_dies():
    """While in it, the node dreaming chunk 1 of a render dies at the chunk's first kept frame: its
    raylet and the worker under it (which would otherwise stream on for a while), SIGKILL. Yields
    ``(killed, dispatchers)``: ``[the raylet's pid, its process name]`` once it has happened, and the
    renders' dispatchers."""
    import ray as ray_module

    from dreamvideo import distributed

    killed, dispatchers, pids = [], [], {}
    save, init = distributed._ChunkStore.save, distributed._Dispatcher.__init__

    def remember(self, *a, **k):
        dispatchers.append(self)
        init(self, *a, **k)
        # each worker's process, asked while idle (a call waits for the chunk an actor is dreaming)
        pids.update(zip(map(id, self.actors), ray_module.get([x.pid.remote() for x in self.actors])))

    def save_and_kill_node(self, c, i, frame):
        save(self, c, i, frame)
        # At its first kept frame: the worker is ahead by at most the frames the driver buffers (6) and
        # the generator's backpressure (4), less than the chunk's 16, so it dies mid-chunk.
        if not killed and c.index == 1 and i == c.lead:
            pid = pids[id(dispatchers[0].running[c.index])]
            killed.append(raylet_of(pid))
            killed.append(Path(f"/proc/{killed[0]}/comm").read_text().strip())
            os.kill(killed[0], signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(distributed._Dispatcher, "__init__", remember)
        mp.setattr(distributed._ChunkStore, "save", save_and_kill_node)
        yield killed, dispatchers


@pytest.mark.ray
@pytest.mark.slow
@needs_ray
@needs_namespaces
def test_a_node_killed_mid_render_has_its_chunk_carried_on_by_another_node_to_the_same_frames(kit, far, capsys):
    """Two worker nodes that see no driver file, one worker on each; the node dreaming chunk 1 dies
    (its raylet and worker killed) 1 frame into it. (Runs after the tests above: it leaves one node.)"""
    reference = kit / "far_across.mp4"
    plan = ["--chunk-frames", str(CHUNK), "--chunk-overlap", str(OVERLAP)]
    if not reference.is_file():
        rc, _, err = run_cli(capsys, "video", kit / "clip.mp4", "-o", reference, *far_args(far), "--workers", "2",
                             *plan, "--ray-address", far["nodes"].address)
        assert rc == 0, err
    far["nodes"].add_node(cpus=2)
    far["nodes"].wait_for(2)
    out = kit / "far_node_died.mp4"
    with the_node_of_chunk_1_dies() as (killed, dispatchers):
        rc, _, err = run_cli(capsys, "video", kit / "clip.mp4", "-o", out, *far_args(far), "--workers", "2", *plan,
                             "--ray-address", far["nodes"].address)
    assert rc == 0, err
    assert killed and err == ""
    assert killed[1] == "raylet", killed
    assert len(dispatchers[0].actors) == 1, dispatchers[0].tries  # the dead node's worker was let go; the other carried its chunk on
    assert np.array_equal(frames(out), frames(reference))


@pytest.mark.ray
@pytest.mark.slow
@needs_ray
@needs_namespaces
def test_when_the_only_worker_node_dies_the_render_stops_in_one_line_and_resume_carries_on(kit, far, capsys):
    """One worker node left (after the test above); it dies 1 frame into chunk 1: one line, the frames
    done kept; a new node joins and ``--resume`` finishes the same frames as the unfaulted render."""
    from dreamvideo import distributed

    far["nodes"].wait_for(1)
    submitted, submit = [], distributed._Dispatcher._submit
    out = kit / "far_only_died.mp4"
    argv = ["video", kit / "clip.mp4", "-o", out, *far_args(far), "--workers", "1", "--chunk-frames", str(CHUNK),
            "--chunk-overlap", str(OVERLAP), "--ray-address", far["nodes"].address]
    with the_node_of_chunk_1_dies() as (killed, _):
        rc, _, err = run_cli(capsys, *argv)
    assert killed and rc == 1 and err.count("\n") == 1 and "--resume" in err, err
    work = kit / ".far_only_died.mp4.dreamwork"
    assert len(list((work / "chunks").glob("*/*.png"))) + len(list((work / "frames").glob("*.png"))) >= CHUNK

    def record(self, actor, c):
        submitted.append((c.index, self.store.kept(c)))
        return submit(self, actor, c)

    far["nodes"].add_node(cpus=2)
    far["nodes"].wait_for(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(distributed._Dispatcher, "_submit", record)
        rc, _, err = run_cli(capsys, *argv, "--resume")
    assert rc == 0, err
    assert 0 not in [c for c, _ in submitted] and dict(submitted).get(1, 0) >= 1, submitted  # chunk 0 kept; 1 carried on
    reference = kit / "far_across.mp4"
    if reference.is_file():
        assert np.array_equal(frames(out), frames(reference))
