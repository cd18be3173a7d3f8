"""The web page's render queue: one background thread runs the long renders one at a time.

A render is a function ``run(progress)`` that calls ``progress(done, total)`` after each frame (the
same callback as the command line's bar, see :mod:`dreamvideo.render`). Cancelling makes that
callback raise KeyboardInterrupt, so the render finalizes a playable partial file and raises
``Interrupted``; a later ``resume`` of the job continues it. Nothing here knows Gradio or TensorFlow:
the page polls :meth:`Worker.snapshot` to draw the queue.

Every job runs in a daemon thread, so stopping the page never waits for a frame: :meth:`Worker.shutdown`
gives a running render a moment to reach its next frame (and finalize its partial), then abandons it
mid-frame: its finished frames stay in its work folder, and the same render started again resumes there.

Convention: times are seconds (``time.monotonic``), progress in frames.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..errors import DreamError, Interrupted

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = "queued", "running", "done", "failed", "cancelled", \
    "interrupted"
FINISHED = (DONE, FAILED, CANCELLED, INTERRUPTED)


@dataclass
class Job:
    """One queued render. ``run(progress, resume)`` returns the output path (or ``(path, note)``)."""

    id: int
    kind: str
    label: str
    output: Path
    run: Callable[[Callable[[int, Optional[int]], None], bool], Path]
    resume: bool = False
    state: str = QUEUED
    done: int = 0
    total: Optional[int] = None
    message: str = ""
    result: Optional[Path] = None  # the output file (also after an interruption: the playable partial)
    value: object = None  # what ``run`` returned (a plan's dict, a layer list)
    superseded: bool = False  # interrupted, and a later job continues the same output
    queued_at: float = field(default_factory=time.monotonic)
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    _first: Optional[tuple] = None  # (time, done) at the first progress call: resumed frames cost no time
    _cancel: threading.Event = field(default_factory=threading.Event)
    _finished: threading.Event = field(default_factory=threading.Event)

    @property
    def eta(self) -> Optional[float]:
        """Seconds left at the rate of the frames rendered so far in this run, or None before a frame."""
        if self.state != RUNNING or self._first is None or not self.total:
            return None
        t0, d0 = self._first
        made = self.done - d0
        if made <= 0:
            return None
        return (self.total - self.done) * (time.monotonic() - t0) / made

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def progress(self, done: int, total: Optional[int]) -> None:
        """The render's progress callback; raises KeyboardInterrupt once the job is cancelled."""
        if self._first is None:
            self._first = (time.monotonic(), done)
        self.done, self.total = done, total
        if self._cancel.is_set():
            raise KeyboardInterrupt

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._finished.wait(timeout)


def format_seconds(s: Optional[float]) -> str:
    if s is None:
        return "--:--"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class Worker:
    """A queue of renders and the one thread that runs them, oldest first.

    ``submit`` returns at once; ``cancel`` stops a running job at its next frame (the partial output
    is finalized) or drops a queued one; ``resume`` queues an interrupted job again to continue it;
    ``shutdown`` cancels everything and waits for the thread.
    """

    def __init__(self, keep: int = 50, on_abandon: Optional[Callable[[], None]] = None):
        self._jobs: list[Job] = []
        self._now: dict[int, Job] = {}  # jobs of run_now (by id(job)), each in its own thread
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._stopping = False
        self._keep = keep  # finished jobs kept in the list shown on the page
        self._on_abandon = on_abandon  # called once jobs are abandoned mid-frame (to end their ffmpeg processes)
        self._thread = threading.Thread(target=self._loop, name="dreamvideo-ui-worker", daemon=True)
        self._thread.start()

    def submit(self, kind: str, label: str, output, run, resume: bool = False) -> Job:
        with self._lock:
            if self._stopping:
                raise RuntimeError("the render queue is shut down")
            job = Job(next(self._ids), kind, label, Path(output), run, resume=resume)
            for old in self._jobs:  # an interrupted render of the same output is continued by this one
                if old.state == INTERRUPTED and old.output == job.output and not old.superseded:
                    old.superseded = True
                    old.message = f"stopped after {old.done}/{old.total} frames; continued by job #{job.id}"
            self._jobs.append(job)
            self._trim()
            self._lock.notify_all()
            return job

    def run_now(self, kind: str, label: str, output, run) -> Job:
        """Run ``run`` at once in a thread of its own, not behind the queue's renders (a plan of curves
        loads no model); not shown in the queue (its id is 0). :meth:`shutdown` ends it too."""
        with self._lock:
            if self._stopping:
                raise RuntimeError("the render queue is shut down")
            job = Job(0, kind, label, Path(output), run, state=RUNNING, started_at=time.monotonic())
            self._now[id(job)] = job
        threading.Thread(target=self._run, args=(job,), name=f"dreamvideo-ui-{kind}", daemon=True).start()
        return job

    def get(self, job_id: int) -> Optional[Job]:
        with self._lock:
            return next((j for j in self._jobs if j.id == job_id), None)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs)

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job; False if it has already finished (or is unknown)."""
        with self._lock:
            job = next((j for j in self._jobs if j.id == job_id), None)
            if job is None or job.state in FINISHED:
                return False
            job._cancel.set()
            if job.state == QUEUED:
                self._finish(job, CANCELLED, "cancelled before it started")
            return True

    def resume(self, job_id: int) -> Optional[Job]:
        """Queue an interrupted job again with ``resume=True``: it continues from its last finished frame."""
        with self._lock:
            job = next((j for j in self._jobs if j.id == job_id), None)
        if job is None or job.state != INTERRUPTED or job.superseded:
            return None
        return self.submit(job.kind, job.label, job.output, job.run, resume=True)

    def shutdown(self, timeout: float = 0.5) -> list[Job]:
        """Cancel every job. A running render that reaches its next frame within ``timeout`` seconds
        finalizes its partial output; one still mid-frame then is abandoned (its daemon thread is left to
        the process's exit, ``on_abandon`` is called) and marked interrupted, so that nothing waits on it.
        Returns the abandoned jobs."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping = True
            for job in [*self._jobs, *self._now.values()]:
                if job.state not in FINISHED:
                    job._cancel.set()
                    if job.state == QUEUED:
                        self._finish(job, CANCELLED, "cancelled: the page was stopped")
            self._lock.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        for job in list(self._now.values()):
            job.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            abandoned = [j for j in [*self._jobs, *self._now.values()] if j.state not in FINISHED]
            for job in abandoned:
                self._finish(job, INTERRUPTED, f"stopped with the page after {job.done}/{job.total or '?'} "
                             "frames; the same render started again resumes from there")
        if abandoned and self._on_abandon is not None:
            self._on_abandon()
        return abandoned

    def snapshot(self) -> list[dict]:
        """The queue for display, oldest first: id, kind, label, state, done, total, fraction, eta (s),
        elapsed (s), message, result (path or None), output."""
        now = time.monotonic()
        out = []
        for j in self.jobs():
            end = j.finished_at or now
            out.append({"id": j.id, "kind": j.kind, "label": j.label, "state": j.state, "done": j.done,
                        "total": j.total, "fraction": j.fraction, "eta": j.eta,
                        "elapsed": (end - j.started_at) if j.started_at else 0.0, "message": j.message,
                        "result": j.result, "output": j.output, "resume": j.resume,
                        "superseded": j.superseded})
        return out

    # -------------------------------------------------------------- the thread

    def _trim(self) -> None:
        finished = [j for j in self._jobs if j.state in FINISHED]
        for j in finished[: max(0, len(finished) - self._keep)]:
            self._jobs.remove(j)

    def _finish(self, job: Job, state: str, message: str = "", result=None) -> None:
        if job._finished.is_set():  # abandoned by shutdown: what its thread does after is not shown
            return
        job.state, job.message, job.result = state, message, result
        job.finished_at = time.monotonic()
        job._finished.set()
        self._lock.notify_all()

    def _next(self) -> Optional[Job]:
        with self._lock:
            while True:
                job = next((j for j in self._jobs if j.state == QUEUED), None)
                if job is not None:
                    job.state, job.started_at = RUNNING, time.monotonic()
                    return job
                if self._stopping:
                    return None
                self._lock.wait()

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            self._run(job)

    def _run(self, job: Job) -> None:
        try:
            result = job.run(job.progress, job.resume)
        except Interrupted as e:
            partial = Path(str(e.output))
            with self._lock:
                self._finish(job, INTERRUPTED, f"stopped after {e.done}/{e.total} frames; the partial "
                             f"video is playable; Render again (same settings) or Resume continues it",
                             partial if partial.exists() else None)
            return
        except KeyboardInterrupt:  # cancelled outside the frame loop (start-up, final encode)
            with self._lock:
                self._finish(job, CANCELLED, "cancelled")
            return
        except DreamError as e:
            with self._lock:
                self._finish(job, FAILED, str(e))
            return
        except Exception as e:  # a bug: the page keeps serving; the traceback goes to the terminal
            traceback.print_exc(file=sys.stderr)
            with self._lock:
                self._finish(job, FAILED, f"{type(e).__name__}: {e}")
            return
        finally:
            with self._lock:
                self._now.pop(id(job), None)
        note = ""
        if isinstance(result, tuple):  # (output, a note for the queue)
            result, note = result
        with self._lock:
            job.value = result
            self._finish(job, DONE, note, Path(result) if isinstance(result, (str, Path)) else None)
