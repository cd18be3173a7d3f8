"""Live sources: a camera, the screen, an ffmpeg URL or a file played at its own rate, read as they play.

Every source is one ffmpeg process (launched through :class:`dreamvideo.ffmpeg.Proc`) writing a
YUV4MPEG2 stream to a pipe: its header says the size and rate, whatever the device gives, so a
camera needs no probing first. A reader thread takes each frame as it comes and leaves only the
newest in a :class:`Latest` slot: a consumer slower than the source gets the newest frame, and the
frames it never took are counted as dropped, never queued (memory stays flat).

Convention: frames are ``H x W x 3`` uint8 RGB; ``seq`` is the source frame's 0-based number;
capture times are :func:`time.monotonic` seconds.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from .. import ffmpeg
from ..errors import DreamFailure, UserError

LOW_DELAY = ["-fflags", "nobuffer", "-flags", "low_delay"]
SCREEN_FPS = 25
SOUND_RATE = 22050  # Hz: a capture's own sound, as :mod:`.listen` takes it
MIN_SIDE = 16  # pixels: a smaller source is refused (a model's smallest input is larger anyway)
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp", "http", "https", "rtp")


class Latest:
    """A one-item slot: ``put`` replaces what is there (counting it in ``overwritten`` when nobody
    took it), ``take`` waits for an item nobody took yet. ``close`` wakes every waiter."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item, self._fresh, self.closed, self.overwritten = None, False, False, 0

    def put(self, item) -> None:
        with self._cond:
            if self._fresh:
                self.overwritten += 1
            self._item, self._fresh = item, True
            self._cond.notify_all()

    def take(self, timeout: float | None = None):
        """The newest item not taken yet, or None after ``timeout`` seconds or once closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._fresh or self.closed, timeout):
                return None
            if not self._fresh:
                return None
            self._fresh = False
            return self._item

    def pending(self) -> int:
        """Items waiting (0 or 1: the slot never holds more)."""
        with self._cond:
            return int(self._fresh)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


@dataclass(frozen=True)
class SourceSpec:
    """What to open: ``kind`` camera | screen | url | file, ``target`` the device, URL or path,
    ``args`` ffmpeg's input arguments, ``media`` the file or URL whose own sound goes with it (or "")."""

    kind: str
    target: str
    args: tuple
    media: str = ""


def parse_source(text: str, loop: bool = False) -> SourceSpec:
    """A SOURCE argument as ffmpeg input arguments; a missing file or an unknown device is a UserError."""
    text = str(text).strip()
    plat = sys.platform
    if text == "camera" or text.startswith("camera:") or text.startswith("/dev/video"):
        dev = text.split(":", 1)[1] if text.startswith("camera:") else ("0" if text == "camera" else text)
        if plat.startswith("linux"):
            path = dev if dev.startswith("/dev/") else f"/dev/video{dev}"
            if not os.path.exists(path):
                raise UserError(f"no camera at {path}; plug one in, or pass camera:N for /dev/videoN or a file")
            args = ("-f", "v4l2", "-i", path)
        elif plat == "darwin":
            args = ("-f", "avfoundation", "-framerate", "30", "-i", f"{dev}:none")
        elif plat.startswith("win"):
            args = ("-f", "dshow", "-i", f"video={dev}")
        else:
            raise UserError(f"no camera support on {plat}; pass a file or a URL")
        return SourceSpec("camera", dev, (*LOW_DELAY, *args))
    if text == "screen" or text.startswith("screen:"):
        rate = ("-framerate", str(SCREEN_FPS))
        if plat.startswith("linux"):
            display = text[len("screen:"):] if text.startswith("screen:") else os.environ.get("DISPLAY", "")
            if not display:
                raise UserError("no X display to capture ($DISPLAY is unset); run it in a desktop session")
            args = ("-f", "x11grab", *rate, "-i", display if ":" in display else f":{display}")
        elif plat == "darwin":
            args = ("-f", "avfoundation", *rate, "-i", "Capture screen 0:none")
        elif plat.startswith("win"):
            args = ("-f", "gdigrab", *rate, "-i", "desktop")
        else:
            raise UserError(f"no screen capture on {plat}; pass a file or a URL")
        return SourceSpec("screen", text, args)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme:
        if scheme not in URL_SCHEMES:
            raise UserError(f"cannot read {text}: use a {', '.join(s + '://' for s in URL_SCHEMES)} URL, a device "
                            "(camera, screen) or a file")
        check_url(text, "source")
        return SourceSpec("url", text, (*LOW_DELAY, "-i", text), media=text)
    if text.startswith("zoom:"):
        return _zoom_source(text[len("zoom:"):])
    path = Path(text)
    if text.startswith(("camera", "screen")) or not path.exists():
        raise UserError(f"source {text} is not a file, a device (camera, camera:N, screen) or a URL; check it")
    if path.is_dir():
        raise UserError(f"source {text} is a folder; pass a video file, a device, a URL or zoom:IMAGE")
    head = ffmpeg.header(path)
    info = ffmpeg.parse_header(head, path)  # a file ffmpeg cannot read as video: one line, now
    if _still(head, path, info):
        raise UserError(f"{text} is a still image: live plays moving sources; for a live zoom into it pass "
                        f"zoom:{text}")
    if not 0 < info.fps <= 1000:
        raise UserError(f"{text} says its frame rate is {info.fps:g} fps; re-encode it with a frame rate "
                        "(ffmpeg -i IN -r 25 OUT.mp4)")
    if min(info.width, info.height) < MIN_SIDE:
        raise UserError(f"{text} is {info.width}x{info.height} pixels: too small to dream; use a source at least "
                        f"{MIN_SIDE} px a side")
    # Paced by the reader (see Capture), not by ffmpeg's -re: its decoder hands the first and last
    # frames over in bursts.
    loops = ("-stream_loop", "-1") if loop else ()
    return SourceSpec("file", str(path), (*loops, "-i", ffmpeg.ff_path(path)), media=str(path))


def _still(head: str, path: Path, info) -> bool:
    """Whether ffmpeg's header of ``path`` shows a still image (an image codec, one frame)."""
    import re

    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"):
        return True
    return bool(re.search(r"Video: (png|mjpeg|bmp|tiff|webp|jpegls)\b.*", head)) and info.nframes <= 1 and \
        not re.search(r"Duration: (?!00:00:00\.0|N/A)", head)


def check_url(url: str, role: str) -> None:
    """A one-line UserError for a ``role`` URL (source, stream) without a host, or with a port that is not one."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UserError(f"the {role} URL {url} is malformed ({e}); write it as SCHEME://HOST:PORT") from None
    if not parts.hostname and not (parts.scheme in ("udp", "rtp") and port):
        raise UserError(f"the {role} URL {url} has no host; write it as {parts.scheme}://HOST:PORT")
    if parts.scheme in ("udp", "tcp", "srt", "rtp") and port is None:
        raise UserError(f"the {role} URL {url} has no port; write it as {parts.scheme}://HOST:PORT")


def read_path(text: str) -> str | None:
    """The file a SOURCE argument reads, which a live run must never write: a file source, or a
    zoom's start image; None for a device, a URL or ``zoom:noise``."""
    text = str(text).strip()
    if text.startswith("zoom:"):
        text = text[len("zoom:"):]
        return None if text == "noise" or text.startswith("noise:") else text
    return None if "://" in text or not os.path.isfile(text) else text


#: The size of ``zoom:noise`` (``zoom:noise:WxH`` for another); ``--max-side`` bounds it.
ZOOM_NOISE = "640x360"


def _zoom_source(what: str) -> SourceSpec:
    """``zoom:IMAGE`` / ``zoom:noise`` / ``zoom:noise:WxH``: a live infinite zoom (target: the image's
    path, or ``noise:WxH``)."""
    if what == "noise" or what.startswith("noise:"):
        from .adapter import zoom_noise_size

        w, h = zoom_noise_size(what[len("noise:"):] if what.startswith("noise:") else ZOOM_NOISE)
        return SourceSpec("zoom", f"noise:{w}x{h}", ())
    if not what:
        raise UserError("zoom: needs an image or noise after it: zoom:IMAGE, zoom:noise or zoom:noise:WxH")
    if not Path(what).is_file():
        raise UserError(f"zoom:{what}: no such image; check the path, or use zoom:noise")
    from ..images import check_image

    check_image(what)  # not an image, or too large: one line now, before any model loads
    return SourceSpec("zoom", what, ())


def _scale(max_side: int | None) -> str:
    even = "trunc(iw/2)*2:trunc(ih/2)*2"
    if not max_side:
        return f"scale={even}"
    m = int(max_side)
    return (f"scale='if(gte(iw,ih),trunc(min({m},iw)/2)*2,-2)':'if(gte(iw,ih),-2,trunc(min({m},ih)/2)*2)'"
            ":flags=area")


class LiveSource(Protocol):
    """A live source as the show loop uses it (a capture, :class:`Capture`, or a zoom,
    :class:`~.zooming.ZoomSource`):

    - ``width``, ``height`` (pixels) and ``fps`` (frames per second), known once it is made;
    - ``frames``: a :class:`Latest` of ``(seq, capture time, frame)``, the newest frame only;
      ``received`` frames so far; ``ended`` once it sends no more; ``error``: its thread's failure,
      for the show loop to raise; ``convert_seconds``: its thread's time making frames;
    - ``sound``: the file or URL whose sound goes with its frames ("" for none);
    - ``motion()``: how its frames move, a callable ``(src, landed, seq=) -> shown`` that puts the
      last dream on frame ``seq`` (``landed``: ``(seq, dreamed src, dream)`` when one has just landed,
      else None): the flow carry for a capture, the composed moves for a zoom; its ``dreams_shown``
      says whether the next dream starts from the frame shown (a zoom) or from the source frame;
    - ``start()`` (returns itself) and ``close()`` (safe more than once; ends its ffmpeg)."""

    width: int
    height: int
    fps: float
    frames: Latest
    received: int
    ended: bool
    error: BaseException | None
    convert_seconds: float
    sound: str

    def motion(self) -> Callable: ...

    def start(self) -> "LiveSource": ...

    def close(self) -> None: ...


class Feed:
    """What every live source offers the show loop: ``frames`` (a :class:`Latest` of ``(seq, capture
    time, frame)``), ``received``, ``error`` (a failure of its thread, for the consumer to raise),
    ``ended``, ``convert_seconds`` (the thread's time making frames). A subclass's thread runs
    :meth:`_serve` with its loop, which hands each frame to :meth:`_publish`."""

    def _start_feed(self, name: str) -> None:
        self.frames, self.received, self.error, self.ended = Latest(), 0, None, False
        self.convert_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _publish(self, t: float, frame: np.ndarray) -> None:
        self.frames.put((self.received, t, frame))
        self.received += 1

    def _serve(self) -> None:
        try:
            self._run()
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            if not self._stop.is_set():
                self.error = e
        finally:
            self.ended = True
            self.frames.close()

    def _end_feed(self) -> None:
        self._stop.set()
        self.frames.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class _NoSound(Exception):
    """A stream opened for its sound too has none."""


class Capture(Feed):
    """A :class:`LiveSource` read through ffmpeg (a camera, the screen, a URL, a file). The header is
    read when it is made: ``width``, ``height``, ``fps`` from the stream; a source that sends no
    video within ``timeout`` seconds is a one-line :class:`DreamFailure`. With ``sound``, the same
    ffmpeg also decodes its sound (given to ``on_sound``; ``sound`` is "" once it has none), so a
    stream's address is opened once. :meth:`start` starts the
    reader; ``close()`` ends ffmpeg (the camera is released). A file is decoded ahead and each frame
    released at its time (frame k at k / fps after the first), as a camera would deliver it; its
    capture time is that moment."""

    def __init__(self, spec: SourceSpec, max_side: int | None = None, timeout: float = 20.0, sound: bool = False):
        self.spec, self.sound = spec, spec.media
        self.on_sound = None  # with ``sound``: given each chunk of its sound (mono float32 at SOUND_RATE Hz)
        self._sound_pipe = self._sound_thread = None
        self._start_feed("live-capture")
        video = ["-map", "0:v:0", "-an", "-sn", "-vf", _scale(max_side) + ",format=yuv420p", "-f", "yuv4mpegpipe",
                 "-"]
        try:
            if sound:  # its sound from the same process: a stream's address is opened once
                try:
                    self._launch(video, timeout, sound=True)
                except _NoSound:  # ffmpeg refused at once, having read nothing: opened again without
                    self.sound = ""
                    self._launch(video, timeout)
            else:
                self._launch(video, timeout)
        except BaseException:
            self._close_sound()
            raise
        self._publishing = threading.Event()
        if spec.kind != "file":
            # A device or a stream is drained from now on (its frames thrown away until start()): left
            # unread while the model loads, its pipe would fill and the first frames shown be stale.
            self._thread.start()

    def _launch(self, video: list, timeout: float, sound: bool = False) -> None:
        args, fds = [*self.spec.args, *video], ()
        if sound:
            r, w = os.pipe()
            args += ["-map", "0:a:0?", "-vn", "-ac", "1", "-ar", str(SOUND_RATE), "-f", "f32le", f"pipe:{w}"]
            fds = (w,)
        try:
            self._proc = ffmpeg.Proc(["-loglevel", "error", *args], stdout=subprocess.PIPE, pass_fds=fds)
        finally:
            if sound:
                os.close(w)
        if sound:
            self._sound_pipe = os.fdopen(r, "rb", buffering=0)
            self._sound_thread = threading.Thread(target=self._read_sound, name="live-capture-sound", daemon=True)
            self._sound_thread.start()  # drained from now on, or ffmpeg would stall on a full pipe
        try:
            self.width, self.height, self.fps = self._header(timeout)
        except BaseException as e:
            nothing = sound and isinstance(e, UserError) and "does not contain any stream" in self._proc.stderr_text()
            self._proc.close()
            self._close_sound()
            if nothing:
                raise _NoSound() from None
            raise

    def _read_sound(self) -> None:
        pipe, rest = self._sound_pipe, b""
        with contextlib.suppress(OSError, ValueError):
            while True:
                buf = pipe.read(16384)
                if not buf:
                    return
                buf, rest = rest + buf, b""
                cut = len(buf) // 4 * 4
                buf, rest = buf[:cut], buf[cut:]
                push = self.on_sound
                if push is not None and buf:
                    push(np.frombuffer(buf, "<f4"))

    def _close_sound(self) -> None:
        """After ffmpeg ended (its end of the pipe closed, so the reader sees the end)."""
        if self._sound_thread is not None:
            self._sound_thread.join(5)
        if self._sound_pipe is not None:
            with contextlib.suppress(OSError):
                self._sound_pipe.close()
        self._sound_pipe = self._sound_thread = None

    def start(self) -> "Capture":
        self._publishing.set()
        if not self._thread.is_alive() and not self.ended:
            self._thread.start()
        return self

    def motion(self) -> Callable:
        from .adapter import FlowCarry

        return FlowCarry()

    def _header(self, timeout: float):
        got: list = []

        def read():  # in a thread: a pipe read has no timeout of its own
            out, line = self._proc.p.stdout, b""
            with contextlib.suppress(OSError, ValueError):
                while not line.endswith(b"\n") and len(line) <= 4096:
                    c = out.read(1)
                    if not c:
                        break
                    line += c
            got.append(line)

        reader = threading.Thread(target=read, name="live-header", daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            self._proc.close()  # unblocks the read
            reader.join(5)
            raise DreamFailure(f"{self.spec.target} sent no video in {timeout:g} s; check that the source is up "
                               "and sending (or raise --source-timeout)")
        line = got[0]
        if not line.endswith(b"\n"):
            self._proc.p.wait()
            raise UserError(f"cannot read {self.spec.target}: {self._proc.error_tail()}; check the source")
        fields = dict((t[:1], t[1:]) for t in line.decode("ascii", "replace").split()[1:])
        num, _, den = fields.get("F", "25:1").partition(":")
        fps = float(num) / float(den or 1) if float(num) > 0 and float(den or 1) > 0 else 0.0
        if not 0 < fps <= 1000:
            raise UserError(f"{self.spec.target} says its frame rate is {fps:g} fps; re-encode it with a frame rate "
                            "(ffmpeg -i IN -r 25 OUT.mp4)")
        w, h = int(fields["W"]), int(fields["H"])
        if min(w, h) < MIN_SIDE:
            raise UserError(f"{self.spec.target} is {w}x{h} pixels: too small to dream; use a source at least "
                            f"{MIN_SIDE} px a side")
        return w, h, fps

    def _run(self):
        import cv2

        w, h, out = self.width, self.height, self._proc.p.stdout
        n = w * h * 3 // 2
        start = None
        while not self._stop.is_set():
            tag = out.readline()
            if not tag:
                break
            if not tag.startswith(b"FRAME"):
                raise DreamFailure(f"the source {self.spec.target} sent a broken stream; check it")
            buf = out.read(n)
            if len(buf) < n:
                break
            if not self._publishing.is_set():
                continue
            t = time.monotonic()
            if self.spec.kind == "file":  # played at its own rate, frame k at k / fps
                start = t if start is None else start
                due = start + self.received / self.fps
                if due > t and self._stop.wait(due - t):
                    break
                t = max(due, t)
            c0 = time.perf_counter()
            yuv = np.frombuffer(buf, np.uint8).reshape(h * 3 // 2, w)
            rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)
            self.convert_seconds += time.perf_counter() - c0
            self._publish(t, rgb)

    def close(self) -> None:
        """End ffmpeg and the readers; safe to call more than once."""
        self._stop.set()
        self._proc.close()  # first: the reader may be waiting on its pipe
        self._end_feed()
        self._close_sound()
