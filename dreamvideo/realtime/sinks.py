"""Where live frames go, any together: a recording, a stream, a virtual camera, a local page.

Each sink takes every shown frame (``write(frame)``), in order, at the source's rate, and
``close()`` finishes it: the recording is finalized playable (with sound), the stream's ffmpeg
ends, the camera device is released, the page stops. Sinks are opened before the model loads, so
a missing driver or a busy port is a one-line error at once.

Convention: frames are ``H x W x 3`` uint8 RGB of the sink's ``size`` (width, height); fps in
frames per second.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from .. import ffmpeg
from ..errors import DreamFailure, UserError

VCAM_DRIVER = ("no virtual camera driver found: on Linux install and load v4l2loopback "
               "(apt install v4l2loopback-dkms; modprobe v4l2loopback), on Windows or macOS install OBS Studio "
               "and start its virtual camera once")
VCAM_INSTALL = 'the virtual camera needs pyvirtualcam: pip install "dreamvideo[live]"'


class Recorder:
    """An .mp4/.mkv recording (H.264 at ``quality`` CRF) with ``audio`` (a media file, or None) muxed
    and cut to the video's length; written under a temporary name and renamed when finalized."""

    def __init__(self, path, fps: float, size, quality: int | None = None, audio: str | None = None):
        from ..io import VideoWriter

        parent = Path(path).absolute().parent
        if not parent.is_dir():
            raise UserError(f"folder {parent} does not exist; create it or record elsewhere")
        self.path = Path(path)
        self._writer = VideoWriter(path, fps, size, quality=quality, audio=audio or None)

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def close(self) -> Path | None:
        """Finalize the recording (nothing is left when no frame came); returns its path or None."""
        if self._writer.count:
            return self._writer.finish()
        self._writer.abort()
        return None


class RecordLock:
    """One live run per recording: an OS file lock on a hidden ``.NAME.live-lock`` beside it (the
    lock offline renders take on their work folder, :mod:`dreamvideo.resume`). A second run
    recording to the same file is a one-line :class:`UserError`; :meth:`release` removes the file.
    A killed run's lock is released by the OS, so a stale file never blocks."""

    def __init__(self, path):
        import os

        from ..resume import _try_lock

        p = Path(path).absolute()
        self.path = p.with_name(f".{p.name}.live-lock")
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot record to {path}: {e.strerror or e}; record elsewhere") from None
        if not _try_lock(self._fd):
            os.close(self._fd)
            self._fd = None
            raise UserError(f"{path} is being recorded by another live run; wait for it to end or record to "
                            "another file")

    def release(self) -> None:
        import os

        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def stream_args(url: str, fps: float, size) -> list[str]:
    """ffmpeg arguments: raw RGB frames on stdin to low-latency H.264 at ``url`` (udp/srt as MPEG-TS, rtmp as FLV)."""
    w, h = size
    rate = str(Fraction(fps).limit_denominator(1001))
    scheme = url.split("://", 1)[0].lower()
    fmt = "flv" if scheme.startswith("rtmp") else "mpegts"
    target = url + ("&" if "?" in url else "?") + "pkt_size=1316" if scheme == "udp" and "pkt_size" not in url else url
    return ["-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", rate,
            "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
            "-g", str(max(1, round(fps))), "-bf", "0", "-f", fmt, target]


class Streamer:
    """Low-latency H.264 to a ``udp://``, ``srt://`` or ``rtmp://`` URL (one ffmpeg, fed raw frames)."""

    def __init__(self, url: str, fps: float, size):
        self.url = url
        self._proc = ffmpeg.Proc(stream_args(url, fps, size), stdin=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        try:
            self._proc.p.stdin.write(np.ascontiguousarray(frame).data)
        except OSError:
            self._proc.p.wait()
            raise DreamFailure(f"the stream to {self.url} stopped: {self._proc.error_tail()}; check the URL "
                               "and that the receiver is up") from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._proc.p.stdin.close()
        try:
            self._proc.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._proc.close()


def check_virtual_camera() -> None:
    """A one-line UserError now (before the model loads) when pyvirtualcam or, on Linux, a
    v4l2loopback device is missing; elsewhere the driver is found when the camera opens."""
    import glob
    import importlib.util
    import sys

    if importlib.util.find_spec("pyvirtualcam") is None:
        raise UserError(VCAM_INSTALL)
    if sys.platform.startswith("linux"):
        names = []
        for name in glob.glob("/sys/class/video4linux/video*/name"):
            with contextlib.suppress(OSError):
                names.append(Path(name).read_text().lower())
        if not any("loopback" in n or "dummy" in n or "obs" in n for n in names):
            raise UserError(VCAM_DRIVER)


class VirtualCamera:
    """The frames as a system camera (pyvirtualcam): OBS, Zoom and Meet see it."""

    def __init__(self, fps: float, size):
        try:
            import pyvirtualcam
        except ImportError:
            raise UserError(VCAM_INSTALL) from None
        try:
            self._cam = pyvirtualcam.Camera(width=size[0], height=size[1], fps=fps,
                                            fmt=pyvirtualcam.PixelFormat.RGB)
        except RuntimeError:
            raise UserError(VCAM_DRIVER) from None
        self.device = self._cam.device

    def write(self, frame: np.ndarray) -> None:
        self._cam.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        self._cam.close()


PAGE_HTML = b"""<!doctype html><html><head><meta charset="utf-8"><title>dreamvideo live</title>
<style>body{margin:0;background:#111;color:#ddd;font:14px system-ui,sans-serif;text-align:center}
img{max-width:100vw;max-height:92vh}</style></head><body><img id="live" src="/stream" alt="dreamed frames">
<div id="status">starting...</div><div id="controls"></div><script>
(function load(){fetch('/controls.js').then(r=>{if(!r.ok)throw 0;return r.text()}).then(t=>{
const s=document.createElement('script');s.textContent=t;document.body.append(s)}).catch(()=>setTimeout(load,1000))})();
</script><script>
setInterval(async()=>{try{const r=await fetch('/status');document.getElementById('status').textContent=await r.text()}
catch(e){document.getElementById('status').textContent='stopped'}},500);</script></body></html>"""


class PageServer:
    """A local page (127.0.0.1 only) showing the newest frame as an MJPEG stream and the status line.

    Frames are encoded only while someone watches, once per frame whoever watches; a slow viewer
    gets the newest frame, never a backlog. :attr:`extra`: an object whose ``get(path)`` and
    ``post(path, body)`` answer other paths with ``(content type, bytes)`` or None (the controls)."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self._cond = threading.Condition()
        self._frame, self._count, self._jpeg, self._jpeg_of, self.status, self._closed = None, 0, b"", -1, "", False
        self.extra = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path == "/":
                    self._send(b"text/html; charset=utf-8", PAGE_HTML)
                elif self.path == "/status":
                    self._send(b"text/plain; charset=utf-8", owner.status.encode())
                elif self.path == "/frame.jpg":
                    self._send(b"image/jpeg", owner._wait_jpeg(-1)[1])
                elif self.path == "/stream":
                    self.send_response(200)
                    self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    seen = -1
                    with contextlib.suppress(OSError):
                        while True:
                            seen, jpeg = owner._wait_jpeg(seen)
                            if not jpeg:
                                return
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                             + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                else:
                    self._answer(owner.extra.get(self.path) if owner.extra is not None else None)

            def do_POST(self):
                size = min(int(self.headers.get("Content-Length") or 0), 1 << 16)
                body = self.rfile.read(size) if size > 0 else b""
                self._answer(owner.extra.post(self.path, body) if owner.extra is not None else None)

            def _answer(self, got):
                if got is None:
                    self.send_error(404)
                else:
                    self._send(got[0].encode(), got[1])

            def _send(self, kind: bytes, body: bytes):
                self.send_response(200)
                self.send_header("Content-Type", kind.decode())
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise UserError(f"cannot serve the live page on {host}:{port} ({e.strerror}); pass another "
                            "--page-port or --no-page") from None
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="live-page", daemon=True)
        self._thread.start()

    def _wait_jpeg(self, seen: int) -> tuple[int, bytes]:
        import cv2

        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._frame is not None and self._count != seen), 5.0)
            if self._closed or self._frame is None:
                return seen, b""
            if self._jpeg_of != self._count:
                ok, buf = cv2.imencode(".jpg", self._frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
                self._jpeg, self._jpeg_of = buf.tobytes(), self._count
            return self._count, self._jpeg

    def write(self, frame: np.ndarray) -> None:
        with self._cond:
            self._frame, self._count = frame, self._count + 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
