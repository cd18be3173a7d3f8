"""The frame loop every moving render shares: read ahead, dream in order, save and encode behind.

A render pulls :class:`SourceFrame`\\ s from a source (decoded video frames with their optical flow,
or bare indices for a zoom, which makes its own frames), asks a :class:`Stepper` for each frame's
dream, keeps the dream in the work folder (so the render can resume) and encodes it. Decoding and
flow run ahead in a thread, PNG saving and encoding behind in another, so neither costs dream time.

Ctrl-C, SIGTERM (what job schedulers, containers and Ray send) and a progress callback that raises
KeyboardInterrupt all end a render the same way: the frames done so far become a playable file,
no temporary file or ffmpeg process is left, and :class:`Interrupted` says how to resume.

Convention: frames are ``H x W x 3`` uint8 RGB arrays; ``i`` is the 0-based output frame index.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Protocol

import numpy as np

from . import io as dio
from .errors import Interrupted, SourceEnded, UserError  # noqa: F401  (Interrupted: part of this module's API)
from .signals import Terminated, sigterm_as_interrupt

#: ``progress(done, total)``: frames finished so far (resumed ones included) of ``total`` (None if
#: unknown). Called once before the first frame and after every frame. Raising KeyboardInterrupt
#: from it cancels the render like Ctrl-C.
Progress = Callable[[int, Optional[int]], None]


@dataclass
class SourceFrame:
    """One input of the frame loop.

    ``image``: the source frame (H, W, 3 uint8), or None where the stepper makes its own (a zoom).
    ``flow``: (H, W, 2) float32 pixel offsets from this frame to the previous one, ``mask``: (H, W)
    float32 1 where the previous frame saw the pixel (forward-backward consistent), 0 where it is new;
    both None for the first frame, after a skipped (resumed) frame, or without flow coherence.
    """

    index: int
    image: Optional[np.ndarray] = None
    flow: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None


class Stepper(Protocol):
    """Makes a render's frames in order; the render calls, for each frame ``f`` in index order,
    either ``dream(f)`` or (a resumed frame) nothing, then always ``keep(f, out)`` with that frame's
    image (dreamed or loaded), so the stepper can carry state (the previous dream) from frame to
    frame. A stepper may also have ``settle(f, out) -> [(index, image), ...]``, called after
    ``keep`` for a dreamed frame: the frames final now, in order (it may hold some back to finish
    them with a later frame's dream), and ``drain()``: those still held when the frames end.
    Without them each dreamed frame is final as it is (see :func:`run_stepper`)."""

    def dream(self, frame: SourceFrame) -> np.ndarray:
        """The dream of ``frame``: (H, W, 3) uint8 RGB."""

    def keep(self, frame: SourceFrame, out: np.ndarray) -> None:
        """Remember ``out`` as the image of ``frame.index`` (before any settling)."""


def run_stepper(stepper, frames: Iterable[SourceFrame], resumed: int = 0,
                load: Callable[[int], np.ndarray] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """The loop that drives a :class:`Stepper`: ``(index, image)`` of each frame of ``frames`` once it
    is final, in order. Frames before ``resumed`` are not dreamed: ``load(index)`` gives their
    image (kept, so the stepper carries its state on), and they are yielded as they are. A frame
    the stepper holds back comes out later (see ``settle``); what it still holds when the frames
    end comes out last (``drain``). Every render, :func:`dreamvideo.jobs.dream_frames` and a Ray
    worker's chunk run this loop."""
    settle = getattr(stepper, "settle", None)
    for frame in frames:
        if frame.index < resumed:
            out = load(frame.index)
            stepper.keep(frame, out)
            yield frame.index, out
            continue
        out = stepper.dream(frame)
        stepper.keep(frame, out)
        # A loop, not `yield from`: Ray drives a worker's generator with send(), which a list's iterator lacks.
        for item in (settle(frame, out) if settle is not None else [(frame.index, out)]):
            yield item
    drain = getattr(stepper, "drain", None)
    for item in (drain() if drain is not None else []):
        yield item


@contextlib.contextmanager
def opencv_threads(n: int):
    """OpenCV (flow, PNG) runs with ``n`` threads within the block."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


class _Background:
    """Iterate ``make()`` in a thread through a bounded queue; its errors re-raise in the consumer."""

    _END = object()

    def __init__(self, make: Callable[[], Iterable], maxsize: int = 4):
        import queue

        self._q, self._stop = queue.Queue(maxsize), threading.Event()
        self._t = threading.Thread(target=self._run, args=(make,), daemon=True)
        self._t.start()

    def _put(self, item) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _run(self, make):
        it = None
        try:
            it = iter(make())
            for item in it:
                if not self._put((item, None)):
                    break
            self._put((self._END, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put((self._END, e))
        finally:
            close = getattr(it, "close", None)
            if close:
                close()  # ends the generator, which closes its reader and so ffmpeg

    def __iter__(self) -> Iterator:
        while True:
            item, err = self._q.get()
            if err is not None:
                raise err
            if item is self._END:
                return
            yield item

    def close(self):
        import queue

        self._stop.set()
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        self._t.join()


class _Sink:
    """Call ``fn(item)`` in a thread for each ``put``; an error re-raises on the next put or close."""

    def __init__(self, fn, maxsize: int = 4):
        import queue

        self._q, self._fn, self._err = queue.Queue(maxsize), fn, None
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while True:
            item = self._q.get()
            if item is None:
                return
            if self._err is None:
                try:
                    self._fn(item)
                except BaseException as e:  # noqa: BLE001 - handed to the producer
                    self._err = e

    def put(self, item):
        if self._err is not None:
            raise self._err
        self._q.put(item)

    def close(self):
        """Wait until everything put so far is done; re-raise a failure."""
        self._q.put(None)
        self._t.join()
        if self._err is not None:
            raise self._err


class TqdmProgress:
    """A :data:`Progress` callback drawing a tqdm bar (frames, fps, ETA) on stderr."""

    def __init__(self, desc: str, quiet: bool = False):
        self.desc, self.quiet, self.bar = desc, quiet, None

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total or None, initial=done, unit="frame", desc=self.desc, disable=self.quiet,
                            dynamic_ncols=True, smoothing=0.1)
        else:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def render(source: Callable[[], Iterable[SourceFrame]], stepper: Stepper, output, *, total: int, fps: float,
           size, quality, audio: str, audio_start: float, work, progress: Progress | None = None,
           quiet: bool = False, desc: str = "dreaming"):
    """Dream (or reload, when resuming) every frame of ``source()`` in order, save it in ``work``
    (a :class:`~dreamvideo.resume.WorkDir`) and encode it into ``output`` with ``audio`` from
    ``audio_start`` seconds. Returns the output path; raises :class:`Interrupted` after finalizing
    the frames done when stopped, and removes the work folder once the output is complete. A source
    that ends early (:class:`SourceEnded`) has the frames done finalized too, then re-raises, saying so."""
    writer = dio.VideoWriter(output, fps, size, quality=quality, audio=audio or None, audio_start=audio_start)
    resumed = work.done

    def save_and_write(job):  # behind the dream, in the sink's thread: PNG and encode cost no dream time
        i, out, keep = job
        if i >= resumed and keep:
            work.save(i, out)
        writer.write(out)

    own_bar = progress is None
    progress = progress or TqdmProgress(desc, quiet)
    done, stopped_by, ended = 0, "", None
    try:
        # OpenCV (flow, PNG) works behind the dream: one thread, so it takes a little of one core instead of
        # bursts on both that stall the dream's compute threads at their next barrier.
        with sigterm_as_interrupt(), opencv_threads(1):
            sink = _Sink(save_and_write)
            frames = _Background(source)
            try:
                progress(resumed, total)

                def noted():  # the source's frames, each noted for the resume check; one that ends early stops them
                    nonlocal ended
                    try:
                        for frame in frames:
                            work.note_source(frame)
                            yield frame
                    except SourceEnded as e:
                        ended = e

                # A frame the stepper holds is not saved yet: stopped now, the render resumes before
                # it, from a frame it left final. Held frames finished without the frames that never came
                # (after a source ended early) are shown, not kept to resume.
                for i, out in run_stepper(stepper, noted(), resumed, lambda i: work.load(i, size)):
                    sink.put((i, out, ended is None))
                    done = i + 1
                    if i >= resumed:
                        progress(done, total)
            finally:
                frames.close()
                if own_bar:
                    progress.close()
            sink.close()
    except KeyboardInterrupt as e:
        stopped_by = "SIGTERM" if isinstance(e, Terminated) else ""
        try:
            sink.close()
            if writer.count:
                writer.finish()
            else:
                writer.abort()
        except BaseException:  # a second Ctrl-C while finishing too: leave no temporaries (the frames are kept)
            writer.abort()
        raise Interrupted(done, total or done, output, work.path, stopped_by) from None
    except BaseException:
        with contextlib.suppress(BaseException):
            sink.close()
        writer.abort()
        raise
    if done == 0:
        writer.abort()
        raise ended or UserError("the input has no frames to render")
    try:
        with sigterm_as_interrupt():
            path = writer.finish()
    except BaseException:  # e.g. Ctrl-C while ffmpeg finalizes: no temporaries left; the work folder can resume
        writer.abort()
        raise
    if ended is not None:
        work.ended(ended.decoded)
        raise ended.finalized(done, path, work.path)
    work.remove()
    return path

