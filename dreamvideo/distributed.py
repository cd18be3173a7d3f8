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
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from . import io as dio
from .errors import DreamError, DreamFailure, SourceEnded, UserError
from .chunks import Chunk, crossfade, fade_weight, histogram_cuts, plan_chunks
from .raycluster import cluster, import_ray, limit_threads, worker_resources
from .settings import DistributedSettings
from .shipped import ship_input, ship_settings
from .urls import accepts_urls


@dataclass(frozen=True)
class ChunkJob:
    """What a worker needs to dream one chunk: the clip (shipped through the object store, see
    :mod:`dreamvideo.shipped`), its settings and timeline, and where to (re)start.

    ``resume_at``: the first frame to dream (``chunk.lead`` when starting); ``prev``: the dream of
    frame ``resume_at - 1`` when carrying on, else None. The timeline (every schedule's value per
    frame, audio features included) is the driver's: the soundtrack stays with the driver."""

    input: object  # a shipped.Shipped or ShippedFrames (a path only where the caller ships nothing)
    max_side: Optional[int]
    video: object
    dream: object
    sched: object
    seed: int
    fps: float
    nframes: int
    timeline: object
    chunk: Chunk
    resume_at: int
    prev: Optional[np.ndarray] = None


def dream_chunk(dreamer, job: ChunkJob):
    """Generator (in a worker): ``(frame index, dream)`` of each frame of ``job.chunk`` from
    ``job.resume_at`` on, dreamed in order with the carried dream as a single render would."""
    import itertools

    from .coherence import frames_with_flow, video_stepper
    from .jobs import open_video
    from .render import run_stepper
    from .reuse import rebuild_from
    from .shipped import local

    c = job.chunk
    # A chunk starts cold, as frame 0 does: its first frame gets `first_steps` too.
    stepper = video_stepper(dreamer, job.dream, job.video, job.sched, fps=job.fps, nframes=job.nframes,
                            seed=job.seed, first_index=c.lead, timeline=job.timeline)
    method = job.video.flow if job.video.coherence == "flow" else None
    # Carried on mid-chunk: the frames from the last band on are planned again (reuse.rebuild_from), each
    # kept with the last kept frame's dream (only the last one's is carried on: job.prev).
    skip = max(c.lead, rebuild_from(job.resume_at, job.video)) - c.lead
    with open_video(local(job.input), job.video, job.max_side, frames=c.end) as reader:
        # Every frame before the chunk is decoded and dropped: seeking by time could land a frame off.
        frames = frames_with_flow(itertools.islice(reader, c.lead, c.end), method, skip=skip, first_index=c.lead)
        for i, out in run_stepper(stepper, frames, job.resume_at, lambda i: job.prev):
            if i >= job.resume_at:  # final now: a stopped chunk resumes after them
                yield i, out


class ChunkWorker:
    """A Ray actor (see :func:`actor_class`): loads the model once, then dreams chunks."""

    def __init__(self, model, threads: int):
        self.error = None
        try:
            limit_threads(threads)
            from .build import build_dreamer
            from .shipped import local_settings

            t = time.perf_counter()
            self.dreamer = build_dreamer(local_settings(model))  # its files pulled to this node first
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

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def fetched(self) -> dict:
        """Bytes and files this worker pulled from the object store (see :mod:`dreamvideo.shipped`)."""
        from .shipped import fetched

        return fetched()


def actor_class(ray, resources: dict):
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
        self.queue = list(chunks)
        self.tries = {c.index: 0 for c in chunks}
        self.cond = threading.Condition()
        self.error: Optional[BaseException] = None
        self.finished = False
        self.stop = threading.Event()
        self.kept: dict[int, set] = collections.defaultdict(set)  # chunk index -> its frames kept (done ones too)
        self.running: dict = {}  # chunk index -> the actor dreaming it
        self.nodes: dict = {}  # id(actor) -> the Ray node it runs on
        self.ended: Optional[SourceEnded] = None  # the clip ended early: frames from .decoded on never come
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
        from ray.exceptions import ObjectLostError, RayActorError, RayTaskError

        idle, active = list(self.actors), {}
        # Frames are kept as PNGs by a few threads (OpenCV encodes without the GIL), so one driver keeps up
        # with many fast workers; the slots bound the frames waiting for them.
        pool = ThreadPoolExecutor(max_workers=min(4, len(self.actors) + 1), thread_name_prefix="dreamvideo-keep")
        self.slots = threading.Semaphore(2 * len(self.actors) + 2)
        saving: dict[int, list] = {}
        try:
            while (self.queue or active) and not self.stop.is_set() and self.error is None:
                while idle and self.queue:
                    c, actor = self.queue.pop(0), idle.pop(0)
                    active[self._submit(actor, c)] = (c, actor)
                    self.running[c.index] = actor
                if not active:
                    raise DreamFailure("every Ray worker died (or its node did); the frames done are kept: once a "
                                       "node is back, run the same command with --resume")
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
                        if isinstance(cause, SourceEnded):  # the frames before it are kept; so are later chunks'
                            del active[gen]
                            wait(saving.pop(c.index, []))
                            self.running.pop(c.index, None)
                            idle.append(actor)
                            with self.cond:
                                if self.ended is None or cause.decoded < self.ended.decoded:
                                    self.ended = cause
                                self.queue = [q for q in self.queue if q.lead < self.ended.decoded]
                                self.cond.notify_all()
                            continue
                        raise (cause if isinstance(cause, DreamError) else
                               DreamFailure(f"a worker failed on chunk {c.index}: {str(e).splitlines()[0]}")) from None
                    except (RayActorError, ObjectLostError) as e:  # a worker, or its node, died
                        with contextlib.suppress(Exception):
                            ray.cancel(gen)
                        del active[gen]
                        wait(saving.pop(c.index, []))  # so the retry starts after the last kept frame
                        self.running.pop(c.index, None)
                        self.tries[c.index] += 1
                        if self.tries[c.index] > self.MAX_TRIES:
                            raise DreamFailure(f"chunk {c.index} (frames {c.start}-{c.end - 1}) failed "
                                               f"{self.MAX_TRIES} times: {str(e).splitlines()[0]}") from None
                        self.queue.insert(0, c)  # carried on from its last kept frame
                        if _actor_gone(ray, actor, self.nodes.get(id(actor))):
                            # Its node is gone (Ray would restart it elsewhere only where a whole worker's
                            # share is free), or Ray gave up: the chunk goes to the next idle worker instead.
                            with contextlib.suppress(Exception):
                                ray.kill(actor, no_restart=True)
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

    def source(self, chunks, total: int):
        """The frame loop's source: ``SourceFrame(i)`` once frame ``i`` is kept (its owner's dream);
        raises the clip's :class:`SourceEnded` at the first frame past where it ended, so the frame
        loop finalizes the frames before it, as a single render does."""
        from .render import SourceFrame

        owner = {i: c for c in chunks for i in range(c.start, c.end)}
        for i in range(total):
            c = owner[i]
            with self.cond:
                while i not in self.kept[c.index] and not self.store.has(c, i):
                    if self.ended is not None and i >= self.ended.decoded:
                        raise self.ended
                    if self.finished and self.error is None and self.ended is not None:
                        raise self.ended  # a frame the chunk held back when its source ended
                    if self.error is not None or self.finished:
                        break  # said by wait_for, in the frame loop
                    self.cond.wait(0.2)
            yield SourceFrame(i)

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


def _node_dead(ray, node: Optional[str]) -> bool:
    """True when the Ray node ``node`` (an id) is known to have died."""
    if not node:
        return False
    try:
        return any(n.get("NodeID") == node and not n.get("Alive") for n in ray.nodes())
    except Exception:  # noqa: BLE001 - the cluster cannot say: not known dead
        return False


def _actor_gone(ray, actor, node: Optional[str] = None, wait: float = 60.0) -> bool:
    """True once Ray has given up restarting ``actor``, or its node (``node``, an id) died; False once
    it answers again (restarted)."""
    from ray.exceptions import GetTimeoutError

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            ray.get(actor.pid.remote(), timeout=2)
            return False
        except GetTimeoutError:  # restarting, or waiting for room: unless its node is known dead
            if _node_dead(ray, node):
                return True
        except Exception:  # noqa: BLE001 - dead for good (or unreachable: the same to us)
            return True
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


@accepts_urls
def dream_video(input, output, *, seed: int = 0, max_side: Optional[int] = None, resume: bool = False,
                quiet: bool = False, distributed: DistributedSettings = DistributedSettings(), **options) -> Path:
    """:func:`dreamvideo.jobs.dream_video` across Ray workers (see the module's docstring).

    ``distributed``: workers, cluster address, chunk length and overlap. ``options`` as for
    :func:`dreamvideo.jobs.dream_video`. Returns the output path; raises
    :class:`~dreamvideo.render.Interrupted` after finalizing the frames written when stopped.
    """
    from .jobs import carries_audio, prepare_video, soundtrack
    from .render import SourceFrame, render
    from .resume import WorkDir, fingerprint

    ds = distributed.check()
    import_ray()
    s, reader = prepare_video(input, output, options, max_side)
    model, dream, video, sched = s["model"], s["dream"], s["video"], s["schedules"]
    reader.close()
    info = reader.info
    if info.nframes < 1:
        raise UserError(f"cannot tell how many frames {input} has; pass --frames N to render with workers")
    if video.frames and video.frames > info.nframes + 1:
        raise UserError(f"`frames` {video.frames} is more than the {info.nframes} frames of {input} in that "
                        f"range; use {info.nframes} or fewer")
    total = info.nframes
    audio, audio_start = soundtrack(input, video, info)
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
            # No worker opens a path of the driver's: the clip and the model's files go through the object store.
            shipped: dict = {}
            actors = [actor_class(ray, resources).remote(ship_settings(ray, model, shipped), threads)
                      for _ in range(n)]
            clip = ship_input(ray, input, shipped)
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
                return ChunkJob(clip, max_side, video, dream, sched, seed, info.fps, total, s["timeline"], c,
                                resume_at, prev)

            dispatcher = _Dispatcher(ray, actors, todo, store, make_job, bar)
            with contextlib.suppress(Exception):  # where each runs, to tell a dead node from a restarting worker
                dispatcher.nodes = dict(zip(map(id, actors), ray.get([a.node.remote() for a in actors], timeout=60)))
            for c in needed:
                dispatcher.kept[c.index].update(i for i in range(c.lead, c.end) if store.has(c, i))
            dispatcher.start()
            stepper = _InOrder(chunks, store, dispatcher, lambda i: (work.frames / f"{i:06d}.png").is_file())
            try:
                path = render(lambda: dispatcher.source(chunks, total), stepper, output, total=total,
                              fps=info.fps, size=(info.width, info.height), quality=video.quality or None,
                              audio=audio if carries_audio(video, output) else "", audio_start=audio_start, work=work,
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
    from .jobs import open_video

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
