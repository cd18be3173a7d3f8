"""Benchmark: one 960x540 frame of InceptionV3 DeepDream, the engine against a plain reference.

    python bench/bench_engine.py                  # the table of bench/RESULTS.md (~5-8 min on 2 cores)
    python bench/bench_engine.py --experiments    # + per-step variants (pure bf16, jit, BN unfolded)
    python bench/bench_engine.py --steps-only     # only the per-step timings (for threading / env runs)
    python bench/bench_engine.py --frames-only --backends tensorflow,jax,torch   # a frame per backend/precision

The reference is a re-implementation of the algorithm of keras-io's
``examples/generative/deep_dream.py``: a ``@tf.function`` gradient-ascent step called from a Python
loop, float32, the whole image, no tiling; loss per layer ``sum(square(act[:, 2:-2, 2:-2, :])) /
size(act)``, layers mixed4..mixed7 weighted 1, 1.5, 2, 2.5; 3 octaves at scale 1.4, 20 steps per
octave, step 0.01 on the gradient normalised by its mean absolute value, lost detail re-injected
after each octave. Unlike keras-io it has no ``max_loss`` early stop: both sides run every step, so
the work is identical. Ours is ``Dreamer.dream`` at the same settings (jitter 0, one 1024 tile).

Both run on the same random weights (a fixed seed) and the same frame, in one run: each frame
variant in its own worker process (one model per process, as in real use), the workers taking
turns round by round after one warm-up (tracing) each; the table gives medians and the median of
the per-round ratios, which survive the load drift of a shared machine better than absolute times.
The per-step table and the profile run in the parent process at the final octave size.

Backends: each (backend, precision) frame variant runs ``Dreamer.dream`` in its own worker started
with ``DREAMVIDEO_BACKEND`` set (Keras fixes its backend at import), on the very same weights
(saved once from the parent's model). The reference stays TensorFlow, as keras-io's.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import glob
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamvideo import models  # noqa: E402  (quiets TensorFlow's start-up logging)
from dreamvideo.engine import Dreamer, DreamSettings, octave_shapes  # noqa: E402
from dreamvideo.models import load_model  # noqa: E402
from dreamvideo.precision import resolve as resolve_precision  # noqa: E402
from dreamvideo.objectives import parse_objective  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

LAYERS = "mixed4:1.0,mixed5:1.5,mixed6:2.0,mixed7:2.5"
OCTAVES, SCALE, STEPS, STEP_SIZE = 3, 1.4, 20, 0.01


# ---------------------------------------------------------------- the reference (keras-io's algorithm)

class Reference:
    """keras-io DeepDream, re-written: a traced step, called ``STEPS`` times per octave from Python."""

    def __init__(self, net, layers=LAYERS):
        terms = [t.split(":") for t in layers.split(",")]
        self.weights = [float(w) for _, w in terms]
        self.extractor = keras.Model(net.input, [net.get_layer(n).output for n, _ in terms])
        self.step = tf.function(self._step)  # retraces once per octave size, like keras-io's

    def loss(self, img):
        total = tf.constant(0.0)
        for act, w in zip(self.extractor(img), self.weights):
            act = tf.cast(act, tf.float32)
            size = tf.reduce_prod(tf.cast(tf.shape(act), tf.float32))
            total += w * tf.reduce_sum(tf.square(act[:, 2:-2, 2:-2, :])) / size
        return total

    def _step(self, img, lr):
        with tf.GradientTape() as tape:
            tape.watch(img)
            loss = self.loss(img)
        g = tape.gradient(loss, img)
        g /= tf.maximum(tf.reduce_mean(tf.abs(g)), 1e-6)
        return loss, img + lr * g

    def __call__(self, frame, octaves=OCTAVES, scale=SCALE, steps=STEPS, step_size=STEP_SIZE):
        x = tf.constant(frame[None].astype(np.float32) / 127.5 - 1.0)
        h, w = frame.shape[:2]
        shapes = [(int(h / scale ** i), int(w / scale ** i)) for i in range(octaves)][::-1]
        lr = tf.constant(step_size)
        small = tf.image.resize(x, shapes[0])
        img = x
        for shape in shapes:
            img = tf.image.resize(img, shape)
            for _ in range(steps):  # all steps: no max_loss early stop
                _, img = self.step(img, lr)
            img += tf.image.resize(x, shape) - tf.image.resize(small, shape)  # the detail lost by shrinking
            small = tf.image.resize(x, shape)
        return np.clip(np.rint((img[0].numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- helpers

def cpu_name() -> str:
    try:
        for line in os.popen("lscpu").read().splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def frame(w: int, h: int) -> np.ndarray:
    img = cv2.imread(str(ROOT / "samples" / "cat.jpg"))
    if img is None:  # a textured stand-in
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 7) % 256], -1).astype(np.uint8)
        return img
    return cv2.resize(img[..., ::-1], (w, h), interpolation=cv2.INTER_AREA).copy()


def build(precision: str, fold: bool = True, policy: str | None = None, weights: str = "random"):
    """InceptionV3, random weights from a fixed seed (identical in every variant), or ``weights`` (a file)."""
    keras.utils.set_random_seed(0)
    saved = models._fold_batchnorm
    if not fold:
        models._fold_batchnorm = lambda net, keep=(): net
    try:
        if policy:  # e.g. a pure "bfloat16" policy instead of mixed_bfloat16
            models.DTYPE_POLICY, saved_pol = {**models.DTYPE_POLICY, precision: policy}, models.DTYPE_POLICY
            try:
                m = load_model("inception_v3", weights, precision=precision)
            finally:
                models.DTYPE_POLICY = saved_pol
        else:
            m = load_model("inception_v3", weights, precision=precision)
        d = Dreamer(m, parse_objective(LAYERS))
    finally:
        models._fold_batchnorm = saved
    return m, d


def conv_flops(feature_model, hw) -> float:
    """Forward FLOPs (2 x MACs) of every Conv2D up to the dreamed layers at input size ``hw``."""
    sub = feature_model.keras_model
    convs = [l for l in sub.layers if isinstance(l, keras.layers.Conv2D)]
    probe = keras.Model(sub.input, [l.output for l in convs])
    specs = probe.compute_output_spec(keras.KerasTensor((1, hw[0], hw[1], 3)))
    return float(sum(2 * np.prod(s.shape[1:3]) * np.prod(l.kernel.shape) for l, s in zip(convs, specs)))


def v1_profiler_flops(fn, hw) -> float | None:
    """Cross-check: TensorFlow's own op-statistics count on the frozen concrete graph."""
    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
        g = convert_variables_to_constants_v2(fn.get_concrete_function(
            tf.TensorSpec([1, hw[0], hw[1], 3], tf.float32))).graph
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        return float(tf.compat.v1.profiler.profile(g, options=opts).total_float_ops)
    except Exception:
        return None


class OtherLoad:
    """CPU the *other* processes used while this ran, in cores (from /proc): a disturbed run shows it."""

    def __init__(self):
        self.t0, self.all0, self.own0 = time.perf_counter(), self._all(), self._own()

    @staticmethod
    def _all():
        try:
            v = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        except (OSError, ValueError):
            return float("nan")

    @staticmethod
    def _own():
        t = os.times()
        return t.user + t.system

    def cores(self) -> float:
        return ((self._all() - self.all0) - (self._own() - self.own0)) / max(time.perf_counter() - self.t0, 1e-9)


def timed(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        np.asarray(out[0] if isinstance(out, tuple) else out)
        ts.append(time.perf_counter() - t0)
    return ts


def step_fns(feature_call, weights):
    """(forward loss, forward + input gradient) of the weighted l2-mean objective, traced."""

    def loss(x):
        acts = feature_call(x)
        return tf.add_n([w * tf.reduce_mean(tf.square(tf.cast(a, tf.float32))) for a, w in zip(acts, weights)])

    @tf.function(reduce_retracing=True)
    def fwd(x):
        return loss(x)

    @tf.function(reduce_retracing=True)
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            l = loss(x)
        return tape.gradient(l, x)

    return fwd, grad


def op_profile(fn, x, reps=2):
    """Seconds per call by op category, from a TensorFlow profiler trace (op time summed over threads)."""
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:
        return None
    d = tempfile.mkdtemp(prefix="dv_prof_")
    try:
        tf.profiler.experimental.start(d)
        for _ in range(reps):
            np.asarray(fn(x))
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(glob.glob(d + "/**/*.xplane.pb", recursive=True)[0]).read_bytes())
    finally:
        shutil.rmtree(d, ignore_errors=True)
    cats = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for ev in line.events:
                name = plane.event_metadata[ev.metadata_id].name
                if ":" not in name or "::" in name:  # "node:OpType" only, not executor spans
                    continue
                op = name.rsplit(":", 1)[1]
                if "BackpropInput" in op:
                    c = "conv backward (input grad)"
                elif "Conv2D" in op:
                    c = "conv forward"
                elif "BackpropFilter" in op:
                    c = "conv filter grad (unwanted)"
                elif "Pool" in op:
                    c = "pooling fwd+bwd"
                elif op in ("Relu", "ReluGrad", "Mul", "AddV2", "Add", "Sub", "Cast", "Square", "BiasAdd", "AddN",
                            "Rsqrt", "FusedBatchNormV3", "FusedBatchNormGradV3", "Neg", "RealDiv", "Maximum"):
                    c = "elementwise (BN, relu, casts, adds)"
                elif op in ("StartRegion", "StopRegion", "Record", "ReadVariableOp"):
                    continue
                else:
                    c = "other (slice, concat, tile)"
                    if os.environ.get("BENCH_DEBUG"):  # noqa
                        print("other:", op, ev.duration_ps / 1e12)
                cats[c] += ev.duration_ps / 1e12 / reps
    return cats


def matmul_gflops(dtype, n=2048, reps=10):
    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)
    f = tf.function(lambda a, b: tf.matmul(a, b))
    f(a, b).numpy()
    return 2 * n ** 3 / np.median(timed(lambda: f(a, b), reps)) / 1e9


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="960x540", help="frame WxH")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per variant (median reported)")
    ap.add_argument("--unfolded", action="store_true", help="also time whole frames with BatchNorm unfolded (before)")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-op profile")
    ap.add_argument("--experiments", action="store_true", help="also time per-step variants: pure bf16, jit_compile")
    ap.add_argument("--steps-only", action="store_true", help="only the per-step timings")
    ap.add_argument("--frames-only", action="store_true", help="only the whole-frame timings")
    ap.add_argument("--inter", type=int, default=0, help="tf inter-op threads (0 = TF default)")
    ap.add_argument("--intra", type=int, default=0, help="tf intra-op threads (0 = TF default)")
    ap.add_argument("--backends", default="tensorflow",
                    help="frame variants on these Keras backends, comma-separated (tensorflow,jax,torch)")
    ap.add_argument("--precisions", default="",
                    help="frame precisions per backend, comma-separated (default: float32 and what auto picks on "
                         "tensorflow; with --backends other than tensorflow alone: float32,bfloat16)")
    a = ap.parse_args(argv)
    if a.inter:
        tf.config.threading.set_inter_op_parallelism_threads(a.inter)
    if a.intra:
        tf.config.threading.set_intra_op_parallelism_threads(a.intra)
    w, h = (int(v) for v in a.size.lower().split("x"))
    auto = resolve_precision("auto")
    cmd = "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:] if argv is None else ["bench/bench_engine.py", *argv])
    print(f"# dreamvideo engine benchmark, {datetime.date.today()}")
    print(f"`{cmd}`  \nCPU: {cpu_name()}, {os.cpu_count()} cores; TensorFlow {tf.__version__}, Keras {keras.__version__}; "
          f"precision auto = {auto}; TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(default)')}; "
          f"threads inter/intra = {tf.config.threading.get_inter_op_parallelism_threads()}/"
          f"{tf.config.threading.get_intra_op_parallelism_threads()} (0 = TF default)")
    print(f"Frame {w}x{h}, InceptionV3 random weights, {LAYERS}, {OCTAVES} octaves x {SCALE}, {STEPS} steps, "
          f"step {STEP_SIZE}, no early stop.\n", flush=True)

    t_setup = time.perf_counter()
    m32, d32 = build("float32")
    _, dbf = build(auto)
    ref = Reference(m32.net)
    weights = [float(t.split(":")[1]) for t in LAYERS.split(",")]
    shapes = octave_shapes((h, w), OCTAVES, SCALE, m32.min_side)
    frame_flops = sum(2 * STEPS * conv_flops(d32.model, s) for s in shapes)  # forward + input gradient
    final_flops = conv_flops(d32.model, (h, w))

    steps = None
    if not a.frames_only:
        steps, x = steps_section(a, d32, dbf, ref, weights, auto, w, h, final_flops)
    if not a.steps_only:
        weights_file = Path(tempfile.mkdtemp(prefix="dv_bench_")) / "inception_v3_random.weights.h5"
        m32.net.save_weights(str(weights_file))  # every worker, every backend: these very weights
        try:
            frames_section(a, auto, w, h, frame_flops, str(weights_file))
        finally:
            shutil.rmtree(weights_file.parent, ignore_errors=True)
    # The profile last, so the profiler cannot disturb any timing above.
    if steps and not a.no_profile:
        profile_section(auto, steps, x)
    print(f"\nTotal bench time {time.perf_counter() - t_setup:.0f} s.")
    return 0


def steps_section(a, d32, dbf, ref, weights, auto, w, h, final_flops):
    # ---- per-step timings at the final octave size
    x = tf.random.uniform([1, h, w, 3], -1.0, 1.0, seed=1)
    names = [t.split(":")[0] for t in LAYERS.split(",")]

    def feats(dreamer):  # the engine's own (selected, folded) feature model
        def call(v):
            acts = dreamer.model(v)
            return [acts[n] for n in names]
        return call

    steps = {
        "reference f32 (BN unfolded)": step_fns(lambda v: ref.extractor(v), weights),
        "ours f32": step_fns(feats(d32), weights),
        f"ours {auto}": step_fns(feats(dbf), weights),
    }
    steps[f"ours {auto}, BN unfolded (before)"] = step_fns(feats(build(auto, fold=False)[1]), weights)
    if a.experiments:
        if auto == "bfloat16":
            steps["ours bfloat16, pure bf16 policy"] = step_fns(feats(build(auto, policy="bfloat16")[1]), weights)
        fx, gx = step_fns(feats(dbf), weights)
        steps[f"ours {auto}, jit_compile"] = (tf.function(fx.python_function, jit_compile=True),
                                              tf.function(gx.python_function, jit_compile=True))
    for fwd, grad in steps.values():  # trace
        fwd(x), grad(x)
        np.asarray(grad(x))
    st = {k: ([], []) for k in steps}
    load = OtherLoad()
    for _ in range(max(3, a.reps)):
        for k, (fwd, grad) in steps.items():
            st[k][0].extend(timed(lambda: fwd(x), 1))
            st[k][1].extend(timed(lambda: grad(x), 1))
    print(f"## One step at the final octave ({w}x{h}); {final_flops / 1e9:.1f} GFLOP conv forward, "
          f"{2 * final_flops / 1e9:.1f} GFLOP forward + input gradient (analytic, conv layers)\n")
    print("| variant | forward s | forward+gradient s | gradient only s | GFLOP/s (fwd+grad) |")
    print("|---|---:|---:|---:|---:|")
    for k, (tf_, tg) in st.items():
        f_, g_ = np.median(tf_), np.median(tg)
        print(f"| {k} | {f_:.3f} | {g_:.3f} | {g_ - f_:.3f} | {2 * final_flops / g_ / 1e9:.0f} |")
    print(f"\nOther processes used {load.cores():.2f} of {os.cpu_count()} cores meanwhile.", flush=True)
    mm = {dt.name: matmul_gflops(dt) for dt in (tf.float32, tf.bfloat16)}
    print(f"Matmul 2048x2048 @ 2048x2048, same run: float32 {mm['float32']:.0f} GFLOP/s, "
          f"bfloat16 {mm['bfloat16']:.0f} GFLOP/s.")
    xf = v1_profiler_flops(steps["ours f32"][1], (h, w))
    if xf:
        print(f"Cross-check, tf.compat.v1.profiler float_operation on the frozen f32 gradient graph: "
              f"{xf / 1e9:.1f} GFLOP (analytic conv count {2 * final_flops / 1e9:.1f}).")
    print(flush=True)

    return steps, x


def profile_section(auto, steps, x):
    profs = {k: op_profile(steps[k][1], x) for k in ("reference f32 (BN unfolded)", "ours f32",
                                                     f"ours {auto}, BN unfolded (before)", f"ours {auto}")}
    if all(p is not None for p in profs.values()):
        cats = sorted({c for p in profs.values() for c in p}, key=lambda c: -profs[f"ours {auto}"].get(c, 0))
        print("## Where a forward+gradient step's op time goes (TF profiler, op time summed over threads, s)\n")
        print("| op category | " + " | ".join(profs) + " |")
        print("|---|" + "---:|" * len(profs))
        for c in cats:
            print(f"| {c} | " + " | ".join(f"{p.get(c, 0):.3f} ({100 * p.get(c, 0) / sum(p.values()):.0f}%)"
                                           for p in profs.values()) + " |")
        print("| total | " + " | ".join(f"{sum(p.values()):.3f}" for p in profs.values()) + " |\n", flush=True)


FRAME_VARIANTS = {  # key -> (label, precision, BN folded); "ref" is the reference
    "ref": ("reference f32 (keras-io algorithm, Python step loop)", "float32", False),
    "f32": ("ours f32", "float32", True),
    "auto": ("ours {auto} (precision auto)", "auto", True),
    "f32-unfolded": ("ours f32, BN unfolded (before)", "float32", False),
    "auto-unfolded": ("ours {auto}, BN unfolded (before)", "auto", False),
}


def variant(key: str):
    """(label, backend, precision, BN folded) of a frame variant: a FRAME_VARIANTS key (TensorFlow) or
    ``backend:precision``."""
    if key in FRAME_VARIANTS:
        label, precision, fold = FRAME_VARIANTS[key]
        return label, "tensorflow", precision, fold
    backend, precision = key.split(":")
    return f"ours {backend} {precision}", backend, precision, True


def _frame_worker(conn, key, w, h, inter, intra, weights_file):
    """One variant in its own process, as a real run holds one model: build, warm up, then time a
    frame each time the parent asks. The variants take turns, so they never share the CPU."""
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    img = frame(w, h)
    _, backend, precision, fold = variant(key)
    from dreamvideo import backends, precision as prec

    assert backends.active()[0] == backend and keras.backend.backend() == backend
    auto = prec.choose(announce=False).precision  # what auto means on this backend (measured, cached)
    if key == "ref":
        run = partial(Reference(build("float32", fold=False, weights=weights_file)[0].net), img)
    else:
        settings = DreamSettings(octaves=OCTAVES, octave_scale=SCALE, steps=STEPS, step_size=STEP_SIZE, jitter=0,
                                 tile_size=1024, max_loss=0.0, reinject=True)
        p = auto if precision == "auto" else precision
        run = partial(build(p, fold=fold, weights=weights_file)[1].dream, img, settings=settings)
    t0 = time.perf_counter()
    run()
    conn.send((time.perf_counter() - t0, auto))
    while conn.recv():
        load = OtherLoad()
        conn.send((timed(run, 1)[0], load.cores()))


def frames_section(a, auto, w, h, frame_flops, weights_file):
    # ---- whole frames: each variant in its own process (one model per process, as in real use:
    # several models in one process evict each other's oneDNN primitives from TF's 1024-entry
    # per-thread cache, which slowed the engine by up to 50% in an all-in-one-process bench)
    chosen = [b.strip() for b in a.backends.split(",") if b.strip()]
    if chosen == ["tensorflow"] and not a.precisions:
        keys = ["ref", "f32", "auto"] + (["f32-unfolded", "auto-unfolded"] if a.unfolded else [])
    else:
        precisions = [p.strip() for p in (a.precisions or "float32,bfloat16").split(",") if p.strip()]
        keys = ["ref"] + [f"{b}:{p}" for b in chosen for p in precisions]
    ctx = mp.get_context("spawn")
    workers, warm, autos = {}, {}, {}
    for k in keys:  # start one at a time, so the warm-ups do not overlap
        parent, child = ctx.Pipe()
        backend = variant(k)[1]
        saved = {v: os.environ.get(v) for v in ("DREAMVIDEO_BACKEND", "KERAS_BACKEND")}
        os.environ["DREAMVIDEO_BACKEND"] = os.environ["KERAS_BACKEND"] = backend  # read by the spawned child
        try:
            proc = ctx.Process(target=_frame_worker, args=(child, k, w, h, a.inter, a.intra, weights_file),
                               daemon=True)
            proc.start()
        finally:
            for v, val in saved.items():
                os.environ.pop(v, None) if val is None else os.environ.__setitem__(v, val)
        warm[k], autos[backend] = parent.recv()
        workers[k] = (proc, parent)
    times = {k: [] for k in keys}
    others = {k: [] for k in keys}
    for _ in range(a.reps):
        for k in keys:
            workers[k][1].send(True)
            t, o = workers[k][1].recv()
            times[k].append(t)
            others[k].append(o)
    for proc, conn in workers.values():
        conn.send(False)
        proc.join(timeout=30)
    print(f"## One {w}x{h} frame ({OCTAVES} octaves, {STEPS} steps each, {frame_flops / 1e9:.0f} GFLOP of conv "
          f"forward + input gradient), median of {a.reps}, variants taking turns\n")
    print("| variant | first call s (trace) | frame s (median) | runs s (other load, cores) | speed-up vs reference "
          "| GFLOP/s |")
    print("|---|---:|---:|---|---:|---:|")
    for k, ts in times.items():
        ratio = np.median(np.array(times["ref"]) / np.array(ts))  # per-round ratio, then the median
        runs = ", ".join(f"{t:.2f} ({o:.1f})" for t, o in zip(ts, others[k]))
        label, backend, precision, _ = variant(k)
        label = label.format(auto=autos.get(backend, auto))
        if k not in FRAME_VARIANTS and precision == autos.get(backend):
            label += " (= auto)"
        print(f"| {label} | {warm[k]:.1f} | {np.median(ts):.2f} | {runs} | "
              f"{ratio:.2f}x | {frame_flops / np.median(ts) / 1e9:.0f} |")
    print(f"\nEach variant runs in its own process; speed-up = median over rounds of (reference time / variant "
          f"time) in the same round. Other load: CPU used by all other processes during that run, in cores "
          f"(mean {np.mean([o for v in others.values() for o in v]):.2f} of {os.cpu_count()}); a disturbed run "
          f"shows there. precision auto, measured per backend: "
          + ", ".join(f"{b} = {p}" for b, p in autos.items()) + ".")


if __name__ == "__main__":
    sys.exit(main())
