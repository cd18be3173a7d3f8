"""Renders across workers on Ray: one long video cut into chunks, or many jobs at once.

A video is cut into chunks (:func:`plan_chunks`) of about ``chunk_frames`` frames, at scene cuts
where there are some (:func:`histogram_cuts`). Each chunk is dreamed by a Ray actor that loaded the
model once; a chunk that does not start at a scene cut starts ``chunk_overlap`` frames early (its
*lead-in*), so its carried dream is built by its first frame, and those lead-in frames are
cross-faded with the previous chunk's last frames (:func:`crossfade`) so the seam does not jump.

The actors stream their frames back as they make them; the driver keeps each one in the work folder
at once (``.<output>.dreamwork/chunks/``), so a stopped render loses no finished frame, and the
frame loop every render shares (:func:`dreamvideo.render.render`) writes them in order with the
audio. The driver holds only the frames in flight (a few per worker): its memory does not grow with
the clip. A worker that dies has its chunk carried on (from its last kept frame) by the restarted
actor; ``resume=True`` after the driver itself was stopped redoes no finished chunk.

Per-frame seeds are global (``frame_seed(seed, frame index)``) and every chunk reads its own source
frames, so a chunk's frames do not depend on which worker made them, or when. (The plan itself gives
short clips shorter chunks when there are more workers; a resumed render keeps its first plan.)

Ray is imported here only, and only when a command asks for workers or a cluster. A cluster this
module starts (``workers=N``) listens on localhost only and is shut down when the command ends,
Ctrl-C and SIGTERM included; ``ray_address`` joins a running cluster, which is left running.

Convention: frames are ``H x W x 3`` uint8 RGB; frame indices are 0-based indices of output frames
(of the whole clip); chunk ranges are half-open, ``[start, end)``.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import shutil
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from . import io as dio
from .errors import DreamError, DreamFailure, UserError
from .settings import DistributedSettings

RAY_INSTALL = 'pip install "dreamvideo[ray]"'


# ---------------------------------------------------------------- chunks, scene cuts, cross-fade (no Ray)

@dataclass(frozen=True)
class Chunk:
    """A piece of a clip: it dreams frames ``[lead, end)`` and owns (writes) frames ``[start, end)``;
    frames ``[lead, start)`` are its lead-in, cross-faded with the previous chunk's last frames."""

    index: int
    lead: int
    start: int
    end: int

    @property
    def overlap(self) -> int:
        return self.start - self.lead

    @property
    def frames(self) -> int:
        """How many frames its worker dreams (lead-in included)."""
        return self.end - self.lead


def chunk_length(nframes: int, chunk_frames: int, overlap: int, parts: int = 1) -> int:
    """The chunk length for ``parts`` workers: ``chunk_frames`` at most, short enough that every
    worker gets a chunk, but at least 4 overlaps long (shorter chunks would be mostly lead-in)."""
    return max(1, min(chunk_frames, max(math.ceil(nframes / max(1, parts)), 4 * overlap)))


def plan_chunks(nframes: int, chunk_frames: int, overlap: int, cuts: Iterable[int] = (), parts: int = 1) -> list[Chunk]:
    """Cut ``nframes`` frames into chunks of about :func:`chunk_length` frames.

    A boundary moves to the scene cut nearest to it within half a chunk (``cuts``: indices of the
    first frame of each new shot); a chunk that starts at a scene cut has no lead-in (there is no
    dream to carry across a cut), the others start ``overlap`` frames early (never before the previous
    chunk's start, never before a cut). The last chunk is at most 1.5 chunks long.
    """
    if nframes < 1:
        return []
    if chunk_frames < 1 or overlap < 0:
        raise UserError("`chunk_frames` must be at least 1 and `chunk_overlap` 0 or more")
    size = chunk_length(nframes, chunk_frames, overlap, parts)
    half = max(1, size // 2)
    cutset = sorted({int(c) for c in cuts if 0 < int(c) < nframes})
    bounds, s = [0], 0
    while nframes - s > size + size // 2:
        lo, hi = s + half, min(s + size + size // 2, nframes - half)
        near = [c for c in cutset if lo <= c <= hi]
        b = min(near, key=lambda c: (abs(c - (s + size)), c)) if near else s + size
        bounds.append(b)
        s = b
    bounds.append(nframes)
    chunks = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        lead = a
        if k and a not in cutset:
            lead = max(bounds[k - 1], a - overlap, *[c for c in cutset if c < a])
        chunks.append(Chunk(k, lead, a, b))
    return chunks


def frame_histogram(frame: np.ndarray, bins: int = 4) -> np.ndarray:
    """A normalized joint RGB histogram (``bins``^3 values summing to 1) of a (small) frame."""
    q = (frame.reshape(-1, 3).astype(np.int32) * bins) >> 8
    h = np.bincount((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], minlength=bins ** 3).astype(np.float64)
    return h / max(1.0, h.sum())


def histogram_cuts(frames: Iterable[np.ndarray], threshold: float = 0.35, ratio: float = 3.0) -> list[int]:
    """Indices of the frames that start a new shot (a scene cut), from a cheap colour-histogram
    difference: half the L1 distance between consecutive frames' histograms (0 same colours, 1 none
    shared) must be at least ``threshold`` and ``ratio`` times the median of the 8 differences
    before it (a fast pan changes colours steadily, a cut at once). Give small frames (64 px)."""
    cuts, prev, recent = [], None, []
    for i, frame in enumerate(frames):
        h = frame_histogram(frame)
        if prev is not None:
            d = 0.5 * float(np.abs(h - prev).sum())
            base = float(np.median(recent)) if recent else 0.0
            if d >= threshold and d >= ratio * max(base, 0.02):
                cuts.append(i)
            recent = (recent + [d])[-8:]
        prev = h
    return cuts


def crossfade(prev: np.ndarray, new: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * prev + weight * new`` of two uint8 frames, rounded."""
    out = (1.0 - weight) * prev.astype(np.float32) + weight * new.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def fade_weight(chunk: Chunk, i: int) -> float:
    """The weight of ``chunk``'s own dream at lead-in frame ``i`` (``lead <= i < start``): it rises
    linearly from 1/(overlap+1) to overlap/(overlap+1), so no step between frames is larger than
    1/(overlap+1) of the difference between the two chunks' dreams."""
    return (i - chunk.lead + 1) / (chunk.overlap + 1)


# ---------------------------------------------------------------- Ray: import, cluster, workers

def import_ray():
    """The ``ray`` module, or a one-line UserError naming the install command."""
    try:
        import ray
    except ImportError:
        raise UserError(f"rendering with workers needs Ray; install it with: {RAY_INSTALL}") from None
    return ray


def _sigterm_raises():
    """SIGTERM raises :class:`~dreamvideo.signals.Terminated` (Ctrl-C's careful way out); returns the
    handler that was there. ``ray.init`` installs its own handler (exit at once), which would skip
    the partial file and leave the cluster to ``atexit``."""
    import signal

    from .signals import Terminated

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def cluster(address: str = ""):
    """A Ray session for one command: joins ``address`` (``auto`` or ``HOST:PORT``) or starts a
    local cluster of this machine's CPUs (and GPUs) on localhost, without the dashboard; a cluster
    started here is shut down on leaving the block, however it is left. Yields the ``ray`` module.
    If Ray is already initialized (a caller's own session), it is used and left as it is."""
    import logging
    import signal

    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    from ray._private import ray_constants  # private, but the only switch for a localhost-only node

    cluster_mode = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    logging.getLogger("ray").setLevel(logging.ERROR)  # Ray's start-up notes would break the one progress line
    before = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        if address:
            _check_reachable(address)
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise UserError(f"cannot join the Ray cluster at {address}: {str(e).splitlines()[0].rstrip('.')}; "
                                f"start it with `ray start --head` or use --workers N") from None
        else:
            if cluster_mode is not None:
                ray_constants.ENABLE_RAY_CLUSTER = False  # every Ray process binds to 127.0.0.1 only
            try:
                ray.init(num_cpus=_cpu_count(), object_store_memory=_object_store_bytes(), **kwargs)
            except Exception as e:  # noqa: BLE001 - Ray raises a plain Exception when its start-up times out
                raise DreamFailure(f"the local Ray cluster did not start: {str(e).splitlines()[0]}; "
                                   f"if the machine is busy, try again later") from None
        _sigterm_raises()
        yield ray
    finally:
        try:
            with contextlib.suppress(Exception):
                ray.shutdown()  # also after a failed start, whose half-started processes it ends
        finally:
            if cluster_mode is not None:
                ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
            if before is not None:
                signal.signal(signal.SIGTERM, before)


def _check_reachable(address: str) -> None:
    """A ``HOST:PORT`` that does not answer is a one-line UserError at once (Ray would retry for minutes)."""
    import socket

    if address == "auto":  # the cluster `ray start` recorded last (or RAY_ADDRESS), which may be long gone
        try:
            from ray._private.services import canonicalize_bootstrap_address

            address = canonicalize_bootstrap_address("auto") or ""
        except Exception:  # noqa: BLE001 - private API: let ray.init find it and say what it says
            return
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise UserError(f"cannot reach a Ray cluster at {address}: {e.strerror or e}; start one there with "
                        f"`ray start --head`, or use --workers N for a local one") from None


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _object_store_bytes() -> int:
    # Frames pass through it a few per worker at a time; Ray's default (30% of RAM) is far more than
    # that and slows the start. Past this, Ray spills to disk rather than failing.
    return 1 << 30


def worker_resources(ray, workers: int) -> tuple[int, dict]:
    """How many workers to run and the Ray resources of each: one GPU per worker where the cluster
    has GPUs (``workers`` 0: one per GPU), else the CPUs divided between them (0: one per node)."""
    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), max(1.0, float(res.get("CPU", 1)))
    if gpus:
        n = workers or gpus
        return n, {"num_gpus": min(1.0, gpus / n), "num_cpus": max(0.01, min(1.0, cpus / n))}
    n = workers or max(1, len([x for x in ray.nodes() if x.get("Alive")]))
    return n, {"num_cpus": cpus / n}


def limit_threads(threads: int) -> None:
    """Give this process's TensorFlow and OpenCV ``threads`` compute threads (workers share a machine's
    cores; TensorFlow would take them all in each worker). Before TensorFlow makes its first op."""
    import cv2

    cv2.setNumThreads(1)  # flow and PNG run beside the dream
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    except (ImportError, RuntimeError):  # no TensorFlow backend, or it already started (threads then fixed)
        pass


@dataclass(frozen=True)
class ChunkJob:
    """What a worker needs to dream one chunk: the clip, its settings, and where to (re)start.

    ``resume_at``: the first frame to dream (``chunk.lead`` when starting); ``prev``: the dream of
    frame ``resume_at - 1`` when carrying on, else None."""

    input: str
    max_side: Optional[int]
    video: object
    dream: object
    sched: object
    seed: int
    fps: float
    nframes: int
    audio: str
    audio_start: float
    chunk: Chunk
    resume_at: int
    prev: Optional[np.ndarray] = None


def dream_chunk(dreamer, job: ChunkJob):
    """Generator (in a worker): ``(frame index, dream)`` of each frame of ``job.chunk`` from
    ``job.resume_at`` on, dreamed in order with the carried dream as a single render would."""
    import itertools

    from .coherence import VideoStepper, frames_with_flow
    from .render import open_video
    from .settings import SCHEDULED
    from .timeline import Timeline

    c = job.chunk
    timeline = Timeline(job.sched, job.fps, job.nframes, dreamer.objective.terms, job.audio or None,
                        job.audio_start, use=SCHEDULED["video"])
    stepper = VideoStepper(dreamer, job.dream, job.video, timeline, job.seed)
    stepper.first_index = c.lead  # a chunk starts cold, as frame 0 does: it gets `first_steps` too
    method = job.video.flow if job.video.coherence == "flow" else None
    skip = job.resume_at - c.lead
    reader = open_video(job.input, job.video, job.max_side, frames=c.end)
    with reader:
        # Every frame before the chunk is decoded and dropped: seeking by time could land a frame off.
        frames = itertools.islice(reader, c.lead, c.end)
        for frame in frames_with_flow(frames, method, skip=skip, first_index=c.lead):
            if frame.index < job.resume_at:
                if frame.index == job.resume_at - 1:
                    stepper.keep(frame, job.prev)
                continue
            out = stepper.dream(frame)
            stepper.keep(frame, out)
            yield frame.index, out


class ChunkWorker:
    """A Ray actor (see :func:`_actor_class`): loads the model once, then dreams chunks."""

    def __init__(self, model, threads: int):
        self.error = None
        try:
            limit_threads(threads)
            from .build import build_dreamer

            t = time.perf_counter()
            self.dreamer = build_dreamer(model)
            self.load_s = time.perf_counter() - t
        except Exception as e:  # noqa: BLE001 - reported by ready(), once, instead of restarting in a loop
            self.error = e

    def ready(self) -> float:
        """Seconds the model took to load; raises the loading error if it failed."""
        if self.error is not None:
            raise self.error
        return self.load_s

    def dream_chunk(self, job: ChunkJob):
        yield from dream_chunk(self.dreamer, job)

    def pid(self) -> int:
        return os.getpid()


def _actor_class(ray, resources: dict):
    return ray.remote(max_restarts=3, max_task_retries=0, **resources)(ChunkWorker)


# ---------------------------------------------------------------- the driver of a chunked video

class _ChunkStore:
    """The raw frames the workers made, kept in the work folder as they arrive:
    ``chunks/CCCC/NNNNNN.png`` (frame N as chunk C dreamed it) and ``chunks/CCCC/done``."""

    def __init__(self, path: Path):
        self.path = path

    def folder(self, c: Chunk) -> Path:
        return self.path / f"{c.index:04d}"

    def frame_path(self, c: Chunk, i: int) -> Path:
        return self.folder(c) / f"{i:06d}.png"

    def save(self, c: Chunk, i: int, frame: np.ndarray) -> None:
        self.folder(c).mkdir(parents=True, exist_ok=True)
        dio.write_png(self.frame_path(c, i), frame, fast=True)

    def load(self, c: Chunk, i: int) -> np.ndarray:
        return dio.read_png(self.frame_path(c, i))

    def has(self, c: Chunk, i: int) -> bool:
        return self.frame_path(c, i).is_file()

    def kept(self, c: Chunk) -> int:
        """How many frames of ``c`` from its lead-in on are kept without a gap."""
        n = 0
        while n < c.frames and self.has(c, c.lead + n):
            n += 1
        return n

    def mark_done(self, c: Chunk) -> None:
        with contextlib.suppress(FileNotFoundError):  # all written already, and dropped
            (self.folder(c) / "done").touch()

    def is_done(self, c: Chunk) -> bool:
        return (self.folder(c) / "done").is_file() or self.kept(c) == c.frames

    def drop(self, c: Chunk) -> None:
        shutil.rmtree(self.folder(c), ignore_errors=True)


class _Dispatcher:
    """In a thread: hands chunks to idle workers in order, takes the frames they stream back, keeps
    them in the store, and retries the chunk of a worker that died (from its last kept frame)."""

    MAX_TRIES = 3

    def __init__(self, ray, actors, chunks, store: _ChunkStore, make_job, bar):
        self.ray, self.actors, self.store, self.make_job, self.bar = ray, list(actors), store, make_job, bar
        self.pending = list(chunks)
        self.tries = {c.index: 0 for c in chunks}
        self.cond = threading.Condition()
        self.error: Optional[BaseException] = None
        self.finished = False
        self.stop = threading.Event()
        self.kept: dict[int, set] = collections.defaultdict(set)  # chunk index -> its frames kept (done ones too)
        self.running: dict = {}  # chunk index -> the actor dreaming it
        self.thread = threading.Thread(target=self._run, name="dreamvideo-chunks", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _submit(self, actor, c: Chunk):
        kept = self.store.kept(c)
        resume_at = c.lead + kept
        prev = self.store.load(c, resume_at - 1) if kept else None
        return actor.dream_chunk.options(_generator_backpressure_num_objects=4).remote(
            self.make_job(c, resume_at, prev))

    def _keep(self, c: Chunk, i: int, out: np.ndarray) -> None:
        """In a pool thread: keep frame ``i`` of ``c`` (PNG encoding is the driver's one per-frame cost)."""
        try:
            self.store.save(c, i, out)
        except BaseException as e:  # noqa: BLE001 - handed to the frame loop
            with self.cond:
                self.error = self.error or e
                self.cond.notify_all()
            return
        finally:
            self.slots.release()
        with self.cond:
            self.kept[c.index].add(i)
            self.cond.notify_all()
        if self.bar is not None:
            self.bar.update(1)

    def _run(self):
        from concurrent.futures import ThreadPoolExecutor, wait

        ray = self.ray
        from ray.exceptions import RayActorError, RayTaskError

        idle, active = list(self.actors), {}
        # Frames are kept as PNGs by a few threads (OpenCV encodes without the GIL), so one driver keeps up
        # with many fast workers; the slots bound the frames waiting for them.
        pool = ThreadPoolExecutor(max_workers=min(4, len(self.actors) + 1), thread_name_prefix="dreamvideo-keep")
        self.slots = threading.Semaphore(2 * len(self.actors) + 2)
        saving: dict[int, list] = {}
        try:
            while (self.pending or active) and not self.stop.is_set() and self.error is None:
                while idle and self.pending:
                    c, actor = self.pending.pop(0), idle.pop(0)
                    active[self._submit(actor, c)] = (c, actor)
                    self.running[c.index] = actor
                if not active:
                    raise DreamFailure("every Ray worker died; see the Ray logs (/tmp/ray/session_latest/logs)")
                ready, _ = ray.wait(list(active), num_returns=1, timeout=0.2)
                for gen in ready:
                    c, actor = active[gen]
                    try:
                        i, out = ray.get(next(gen))
                    except StopIteration:
                        del active[gen]
                        wait(saving.pop(c.index, []))
                        self.running.pop(c.index, None)
                        self.store.mark_done(c)
                        idle.append(actor)
                        continue
                    except RayTaskError as e:
                        cause = getattr(e, "cause", None)
                        raise (cause if isinstance(cause, DreamError) else
                               DreamFailure(f"a worker failed on chunk {c.index}: {str(e).splitlines()[0]}")) from None
                    except RayActorError as e:
                        del active[gen]
                        wait(saving.pop(c.index, []))  # so the retry starts after the last kept frame
                        self.running.pop(c.index, None)
                        self.tries[c.index] += 1
                        if self.tries[c.index] > self.MAX_TRIES:
                            raise DreamFailure(f"chunk {c.index} (frames {c.start}-{c.end - 1}) failed "
                                               f"{self.MAX_TRIES} times: {str(e).splitlines()[0]}") from None
                        self.pending.insert(0, c)  # carried on from its last kept frame
                        if _actor_gone(ray, actor):
                            self.actors.remove(actor)
                        else:
                            idle.append(actor)  # Ray restarts it (max_restarts); calls wait for it
                        continue
                    self.slots.acquire()
                    saving.setdefault(c.index, []).append(pool.submit(self._keep, c, i, out))
            if self.error is not None:
                raise self.error
        except BaseException as e:  # noqa: BLE001 - handed to the frame loop in the main thread
            with self.cond:
                self.error = self.error or e
                self.cond.notify_all()
        finally:
            for gen in active:
                with contextlib.suppress(Exception):
                    ray.cancel(gen)
            pool.shutdown(wait=True)
            with self.cond:
                self.finished = True
                self.cond.notify_all()

    def wait_for(self, c: Chunk, i: int) -> None:
        """Block until frame ``i`` of chunk ``c`` is kept; re-raises a failure of the dispatcher."""
        with self.cond:
            while i not in self.kept[c.index]:
                if self.error is not None:
                    raise self.error
                if self.finished:
                    if self.store.has(c, i):
                        return
                    raise DreamFailure(f"frame {i} of chunk {c.index} never came back from the workers")
                self.cond.wait(0.2)  # a timeout, so Ctrl-C and SIGTERM reach the main thread

    def close(self):
        self.stop.set()
        self.thread.join()


def _actor_gone(ray, actor) -> bool:
    """True once Ray has given up restarting ``actor``."""
    try:
        ray.get(actor.pid.remote(), timeout=60)
        return False
    except Exception:  # noqa: BLE001 - dead for good (or unreachable: the same to us)
        return True


class _InOrder:
    """The :class:`~dreamvideo.render.Stepper` of a chunked render: frame ``i`` is the frame its
    chunk made, cross-faded over a lead-in with the next chunk's dream; frames come from the store
    as the workers finish them. Once a chunk's last frame is written, its raw frames are dropped."""

    def __init__(self, chunks, store: _ChunkStore, dispatcher: _Dispatcher, written):
        self.chunks, self.store, self.dispatcher, self.written = chunks, store, dispatcher, written
        self.owner = {}
        for c in chunks:
            for i in range(c.start, c.end):
                self.owner[i] = c
        self.next_of = {c.index: n for c, n in zip(chunks, chunks[1:])}
        self.to_drop: list[Chunk] = []

    def _frame(self, c: Chunk, i: int) -> np.ndarray:
        self.dispatcher.wait_for(c, i)
        return self.store.load(c, i)

    def dream(self, frame) -> np.ndarray:
        i = frame.index
        c = self.owner[i]
        out = self._frame(c, i)
        n = self.next_of.get(c.index)
        if n is not None and n.lead <= i < n.start:
            out = crossfade(out, self._frame(n, i), fade_weight(n, i))
        return out

    def keep(self, frame, out) -> None:
        i = frame.index
        c = self.owner[i]
        if i == c.end - 1:
            self.to_drop.append(c)
        # The frame loop saves each frame in the work folder behind the dream: drop a chunk's own
        # frames only once its last one is there, so a stop in between still has every frame.
        while self.to_drop and self.written(self.to_drop[0].end - 1):
            self.store.drop(self.to_drop.pop(0))


def _kept_frames(store: _ChunkStore, chunks) -> int:
    return sum(store.kept(c) for c in chunks)


def dream_video(input, output, *, seed: int = 0, max_side: Optional[int] = None, resume: bool = False,
                quiet: bool = False, distributed: DistributedSettings = DistributedSettings(), **options) -> Path:
    """:func:`dreamvideo.jobs.dream_video` across Ray workers (see the module's docstring).

    ``distributed``: workers, cluster address, chunk length and overlap. ``options`` as for
    :func:`dreamvideo.jobs.dream_video`. Returns the output path; raises
    :class:`~dreamvideo.render.Interrupted` after finalizing the frames written when stopped.
    """
    from .render import SourceFrame, check_video_output, open_video, render, soundtrack
    from .resume import WorkDir, fingerprint
    from .settings import check_moving, split_options, with_blend_default

    ds = distributed.check()
    import_ray()
    s = split_options("video", options)
    model, dream, video = s["model"], s["dream"].check(), s["video"]
    sched = with_blend_default(s["schedules"], video.coherence)
    check_video_output(input, output)
    check_moving(video)
    if video.audio:
        dio.require_audio(video.audio)
    reader = open_video(input, video, max_side)
    reader.close()
    info = reader.info
    if info.nframes < 1:
        raise UserError(f"cannot tell how many frames {input} has; pass --frames N to render with workers")
    if video.frames and video.frames > info.nframes + 1:
        raise UserError(f"`frames` {video.frames} is more than the {info.nframes} frames of {input} in that "
                        f"range; use {info.nframes} or fewer")
    total = info.nframes
    audio, audio_start = soundtrack(input, video, info)
    carries = video.audio or Path(str(output)).suffix.lower() in (".mp4", ".mov", ".mkv", ".webm")
    # The chunks change the picture (seams), so a chunked render resumes only a chunked render.
    fp = fingerprint("video", input, model=model, dream=dream, video=video, sched=sched, seed=seed,
                     max_side=max_side, chunk_frames=ds.chunk_frames, chunk_overlap=ds.chunk_overlap)
    work = WorkDir(output, fp, resume)
    store = _ChunkStore(work.path / "chunks")
    ok = False
    try:
        if not resume:
            shutil.rmtree(store.path, ignore_errors=True)
        with cluster(ds.ray_address) as ray:
            n, resources = worker_resources(ray, ds.workers)
            chunks = _load_plan(work.path, resume)
            cutter = None
            if chunks is None:
                cutter = _Background(lambda: _scene_cuts(input, video, total, ds.chunk_frames))
            threads = max(1, int(resources.get("num_cpus", 1))) if "num_gpus" not in resources else 2
            actors = [_actor_class(ray, resources).remote(model, threads) for _ in range(n)]
            if chunks is None:
                chunks = plan_chunks(total, ds.chunk_frames, ds.chunk_overlap, cutter.result(), parts=n)
                _save_plan(work.path, chunks)
            _wait_ready(ray, actors)
            needed = [c for c in chunks if c.end > work.done]
            todo = [c for c in needed if not store.is_done(c)]
            bar = None
            if not quiet:
                from tqdm import tqdm

                bar = tqdm(total=sum(c.frames for c in needed), initial=_kept_frames(store, needed), unit="frame",
                           desc=f"dreaming ({n} workers, {len(chunks)} chunks)", dynamic_ncols=True, smoothing=0.1)

            def make_job(c, resume_at, prev):
                return ChunkJob(str(input), max_side, video, dream, sched, seed, info.fps, total, audio,
                                audio_start, c, resume_at, prev)

            dispatcher = _Dispatcher(ray, actors, todo, store, make_job, bar)
            for c in needed:
                dispatcher.kept[c.index].update(i for i in range(c.lead, c.end) if store.has(c, i))
            dispatcher.start()
            stepper = _InOrder(chunks, store, dispatcher, lambda i: (work.frames / f"{i:06d}.png").is_file())
            try:
                path = render(lambda: (SourceFrame(i) for i in range(total)), stepper, output, total=total,
                              fps=info.fps, size=(info.width, info.height), quality=video.quality or None,
                              audio=audio if carries else "", audio_start=audio_start, work=work,
                              progress=lambda done, t: None, quiet=True)
            finally:
                dispatcher.close()
                if bar is not None:
                    bar.close()
        ok = True
        return path
    finally:
        if not ok:
            if work.done == 0 and not any(work.frames.glob("*.png")) and not any(store.path.glob("*/*.png")):
                work.remove()  # nothing to resume: leave no folder behind
            else:
                work.release()


def _wait_ready(ray, actors) -> None:
    """Wait until every worker has loaded the model; a loading error is raised as itself."""
    from ray.exceptions import RayTaskError

    try:
        ray.get([a.ready.remote() for a in actors])
    except RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, DreamError):
            raise cause from None
        raise DreamFailure(f"a Ray worker could not load the model: {str(e).splitlines()[0]}") from None


def _scene_cuts(input, video, total: int, chunk_frames: int):
    """Scene cuts of the clip read small (only when there is more than one chunk to place)."""
    from .render import open_video

    if total <= chunk_frames:
        yield []
        return
    with open_video(input, video, 64) as small:
        yield histogram_cuts(small)


def _save_plan(path: Path, chunks) -> None:
    import json

    tmp = path / "chunks.json.tmp"
    tmp.write_text(json.dumps([[c.index, c.lead, c.start, c.end] for c in chunks]))
    tmp.replace(path / "chunks.json")


def _load_plan(path: Path, resume: bool):
    """The chunks a resumed render was cut into (kept, so another worker count cuts no new seams)."""
    import json

    f = path / "chunks.json"
    if not resume or not f.is_file():
        return None
    return [Chunk(*row) for row in json.loads(f.read_text())]


class _Background:
    """Run a generator's first value in a thread (scene cuts while the cluster starts)."""

    def __init__(self, make):
        self._value, self._error = None, None
        self._t = threading.Thread(target=self._run, args=(make,), daemon=True)
        self._t.start()

    def _run(self, make):
        try:
            self._value = next(iter(make()))
        except BaseException as e:  # noqa: BLE001 - re-raised in result()
            self._error = e

    def result(self):
        self._t.join()
        if self._error is not None:
            raise self._error
        return self._value


# ---------------------------------------------------------------- batches of independent jobs

BATCH_KINDS = ("image", "video", "zoom")
_BATCH_KEYS = ("kind", "input", "output", "preset")


@dataclass(frozen=True)
class BatchJob:
    """One ``[[job]]`` of a batch file: a job of ``kind`` with its typed flat ``options``."""

    number: int
    kind: str
    input: Optional[str]
    output: str
    seed: int = 0
    max_side: Optional[int] = None
    options: tuple = ()  # ((name, value), ...): hashable, picklable

    @property
    def label(self) -> str:
        return f"job {self.number} ({self.output})"


def _batch_value(kind: str, key: str, value, label: str):
    """A batch file's ``key = value`` typed as the field of that name in a ``kind`` job's settings."""
    from . import presets
    from .settings import KIND_SECTIONS, MOVING, SECTIONS, TOP_LEVEL

    if key in TOP_LEVEL:
        return presets._top_value(key, value, label)
    homes = [s for s in KIND_SECTIONS[kind] if key in {f.name for f in fields(SECTIONS[s])}]
    if kind != "image" and key in MOVING:
        homes = ["schedules"]  # a moving render schedules its steps and step size
    if not homes:
        every = sorted({f.name for s in KIND_SECTIONS[kind] for f in fields(SECTIONS[s])} | set(TOP_LEVEL)
                       | set(_BATCH_KEYS))
        raise UserError(f"{label}: {key!r} is no option of a {kind} job{presets._nearest(key, every)}")
    f = {x.name: x for x in fields(SECTIONS[homes[0]])}[key]
    if isinstance(value, (dict, list)):
        raise UserError(f"{label}: {key} must be a string, a number or true/false, not {value!r}")
    try:
        return presets._convert(f, value, label, key)
    except (ValueError, TypeError):
        want = {"int": "a whole number", "float": "a number"}.get(type(f.default).__name__, "valid")
        raise UserError(f"{label}: {key} = {value!r} is not {want}") from None


def read_batch(path) -> list[BatchJob]:
    """The jobs of a batch file (TOML): an optional ``[defaults]`` table every job starts from, then
    one ``[[job]]`` table per job with ``kind`` (image, video or zoom), ``input`` (not for a zoom with
    ``from_noise``), ``output``, optionally ``preset`` (a name or a .toml file), ``seed``,
    ``max_side`` and any option of that kind's command by its field name (``steps = "12"``,
    ``layers = "mixed4"``, ``zoom = "1.0 + 0.04*beat"``, ``color_match = false``). The job's own
    keys win over its preset's, which win over the defaults. Relative paths are from the batch
    file's folder. Mistakes are one-line UserErrors naming the job."""
    from . import presets

    path = Path(str(path))
    try:
        with open(path, "rb") as fh:
            data = presets.tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"batch file {path} not found") from None
    except presets.tomllib.TOMLDecodeError as e:
        raise UserError(f"batch file {path}: not valid TOML: {str(e).splitlines()[0]}") from None
    except OSError as e:
        raise UserError(f"cannot read batch file {path}: {e.strerror or e}") from None
    extra = set(data) - {"defaults", "job"}
    if extra:
        raise UserError(f"batch file {path}: unknown table or key {sorted(extra)[0]!r}; use [defaults] and [[job]]")
    defaults, tables = data.get("defaults", {}), data.get("job", [])
    if not isinstance(defaults, dict) or not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UserError(f"batch file {path}: write [defaults] once and one [[job]] table per job")
    if not tables:
        raise UserError(f"batch file {path} has no [[job]] tables; add one per render")
    here = path.parent

    def where(p):
        return str(p if Path(p).is_absolute() else here / p)

    jobs, outputs = [], {}
    for n, table in enumerate(tables, 1):
        merged = {**defaults, **table}
        label = f"{path.name} job {n}"
        kind = merged.pop("kind", None)
        if kind not in BATCH_KINDS:
            raise UserError(f"{label}: kind must be one of {', '.join(BATCH_KINDS)}, not {kind!r}")
        output = merged.pop("output", None)
        if not isinstance(output, str) or not output:
            raise UserError(f"{label}: give its output file, e.g. output = \"out/{n}.mp4\"")
        inp = merged.pop("input", None)
        if inp is not None and not isinstance(inp, str):
            raise UserError(f"{label}: input must be a file name (a string), not {inp!r}")
        opts, top = {}, {"seed": 0, "max_side": None}
        preset = merged.pop("preset", None)
        if preset is not None:
            p = str(preset)
            for section, values in presets.resolve(where(p) if p.endswith(".toml") else p, kind).items():
                (top if section is None else opts).update(values)
        for key, value in merged.items():
            v = _batch_value(kind, key, value, label)
            (top if key in top else opts)[key] = v
        for key in ("guide", "audio", "model", "weights"):
            if isinstance(opts.get(key), str) and opts[key] and (here / opts[key]).exists():
                opts[key] = where(opts[key])  # files, not names ("imagenet", "inception_v3")
        out = where(output)
        if Path(out).resolve() in outputs:
            raise UserError(f"{label} writes {output}, as job {outputs[Path(out).resolve()]} does; give each "
                            f"job its own output")
        outputs[Path(out).resolve()] = n
        if inp is None and not (kind == "zoom" and opts.get("from_noise")):
            raise UserError(f"{label}: give its input file (or, for a zoom, from_noise = \"WxH\")")
        jobs.append(BatchJob(n, kind, where(inp) if inp else None, out, top["seed"], top["max_side"],
                             tuple(sorted(opts.items()))))
    return jobs


def run_batch_job(job: BatchJob, resume: bool, progress=None) -> str:
    """Run one job (in a worker). With ``resume``, a job whose work folder is there carries on and a
    job whose output is there and complete is skipped. Returns what became of it, one line."""
    from . import jobs as J
    from .resume import workdir_path

    opts = dict(job.options)
    work = workdir_path(job.output)
    if job.kind == "image":
        if resume and Path(job.output).is_file():
            return f"{job.output} (kept)"
        if progress:
            progress(0, 1)
        J.dream_image(job.input, job.output, seed=job.seed, max_side=job.max_side, **opts)
        if progress:
            progress(1, 1)
        return str(job.output)
    carry_on = resume and (work / "settings.json").is_file()
    if resume and not carry_on and Path(job.output).exists():
        return f"{job.output} (kept)"
    run = J.dream_video if job.kind == "video" else J.zoom
    return str(run(job.input, job.output, seed=job.seed, max_side=job.max_side, resume=carry_on, quiet=True,
                   progress=progress, **opts))


def _batch_task(job: BatchJob, resume: bool, threads: int):
    """Generator task: runs the job in a thread and yields ``("progress", done, total)`` as it goes,
    then ``("done", line)``. When Ray cancels it, the job is stopped the careful way (a playable
    partial file, the work folder kept for ``--resume``)."""
    import queue

    limit_threads(threads)
    q, cancel = queue.Queue(), threading.Event()

    def progress(done, total):
        if cancel.is_set():
            raise KeyboardInterrupt
        q.put(("progress", done, total))

    def work():
        try:
            q.put(("done", run_batch_job(job, resume, progress)))
        except BaseException as e:  # noqa: BLE001 - raised in the task
            q.put(("error", e))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item[0] == "error":
                raise item[1]
            yield item
            if item[0] == "done":
                return
    finally:
        cancel.set()
        t.join(timeout=30)


def batch(path, *, distributed: DistributedSettings = DistributedSettings(), resume: bool = False,
          quiet: bool = False) -> list[str]:
    """Render the jobs of a batch file (:func:`read_batch`) across Ray workers, each job on one
    worker, with one progress bar over all their frames. Returns one line per job. A job that fails
    does not stop the others; the first failure is raised once all have ended."""
    ds = distributed.check()
    import_ray()
    from ray.exceptions import RayTaskError

    jobs = read_batch(path)
    if not ds.ray_address:  # on another cluster the files are where its nodes see them
        for job in jobs:
            if job.input and not Path(job.input).exists() and not any(ch in job.input for ch in "*?["):
                raise UserError(f"{job.label}: input {job.input} not found; check the path (relative paths "
                                f"are from the batch file's folder)")
    bar = None
    results: dict[int, str] = {}
    errors: dict[int, BaseException] = {}
    with cluster(ds.ray_address) as ray:
        n, resources = worker_resources(ray, ds.workers)
        threads = max(1, int(resources.get("num_cpus", 1))) if "num_gpus" not in resources else 2
        task = ray.remote(**resources, max_retries=1)(_batch_task)
        if not quiet:
            from tqdm import tqdm

            bar = tqdm(total=None, unit="frame", desc=f"{len(jobs)} jobs on {n} workers", dynamic_ncols=True,
                       smoothing=0.1)
        done_frames, totals = {}, {}
        active = {task.remote(job, resume, threads): job for job in jobs}
        try:
            while active:
                ready, _ = ray.wait(list(active), num_returns=1, timeout=0.5)
                for gen in ready:
                    job = active[gen]
                    try:
                        item = ray.get(next(gen))
                    except StopIteration:
                        del active[gen]
                        continue
                    except RayTaskError as e:
                        cause = getattr(e, "cause", None)
                        errors[job.number] = cause if isinstance(cause, Exception) else e
                        del active[gen]
                        continue
                    if item[0] == "progress":
                        done_frames[job.number], totals[job.number] = item[1], item[2] or 0
                    else:
                        results[job.number] = item[1]
                    if bar is not None:
                        bar.total = sum(totals.values()) or None
                        bar.n = sum(done_frames.values())
                        bar.set_postfix_str(f"{len(results)}/{len(jobs)} jobs done", refresh=False)
                        bar.refresh()
        except BaseException:
            for gen in active:
                with contextlib.suppress(Exception):
                    ray.cancel(gen)  # each job finalizes its partial file and keeps its work folder
            _drain(ray, list(active), 20.0)
            raise
        finally:
            if bar is not None:
                bar.close()
    if errors:
        first = min(errors)
        e = errors[first]
        job = jobs[first - 1]
        msg = f"{job.label}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        if len(errors) > 1:
            msg += f" ({len(errors)} of {len(jobs)} jobs failed; the others are done)"
        raise (UserError(msg) if isinstance(e, UserError) else DreamFailure(msg))
    return [results.get(job.number, "") for job in jobs]


def _drain(ray, gens: list, seconds: float) -> None:
    """Wait up to ``seconds`` for cancelled generator tasks to end (they finalize their files)."""
    deadline = time.monotonic() + seconds
    while gens and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            ready, _ = ray.wait(gens, num_returns=1, timeout=0.5)
            for g in ready:
                try:
                    next(g)
                except StopIteration:
                    gens.remove(g)
                except Exception:  # noqa: BLE001 - ended anyhow
                    gens.remove(g)
