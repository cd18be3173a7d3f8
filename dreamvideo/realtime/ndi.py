"""NDI out (``--ndi NAME``): every shown frame as an NDI video source that VJ software (Resolume,
OBS, TouchDesigner, vMix) on the network picks up, at the show rate. Through ndi-python
(``NDIlib``), which bundles the NDI runtime (``pip install "dreamvideo[live]"``).

NDI finds sources by mDNS; on a machine with only loopback a receiver finds nothing by itself and
must be pointed at ``127.0.0.1:5961`` (ndi-python: ``Source(url_address="127.0.0.1:5961")``, or
``extra_ips = "127.0.0.1"`` when finding). Spout (Windows) and Syphon (macOS) are not sent: they
could not be tried on the machines this was built on.

Convention: frames are ``H x W x 3`` uint8 RGB; sent as BGRX; times in seconds.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import UserError

INSTALL = ('NDI out needs ndi-python (it bundles the NDI runtime; built for Linux x86-64, Windows x64 and macOS '
           'arm64): pip install "dreamvideo[live]"')


def _lib():
    try:
        import NDIlib
    except ImportError:
        raise UserError(INSTALL) from None
    return NDIlib


def check(name: str) -> None:
    """A one-line UserError now (before the model loads) when NDI cannot be sent, or ``name`` is empty."""
    if not str(name).strip():
        raise UserError("--ndi needs a source name (what VJ software lists), e.g. --ndi dreamvideo")
    if not _lib().initialize():
        raise UserError("the NDI runtime does not start on this machine (its CPU lacks SSE4.2, or the library "
                        "is broken); reinstall ndi-python or drop --ndi")


class NdiSender:
    """An NDI source named ``name`` sending each written frame at ``fps`` (``size`` = (width, height)).
    :attr:`send_seconds` is the time spent sending (the status shows its mean per frame)."""

    def __init__(self, name: str, fps: float, size):
        check(name)
        ndi = self._ndi = _lib()
        cs = ndi.SendCreate()
        cs.ndi_name = str(name)
        cs.clock_video = False  # the show loop holds the rate; NDI's clock would block it
        self._send = ndi.send_create(cs)
        if self._send is None:
            raise UserError(f"cannot create the NDI source {name!r}; choose another --ndi name")
        self.name, self.frames, self.send_seconds = str(name), 0, 0.0
        from fractions import Fraction

        rate = Fraction(fps).limit_denominator(1001)
        self._frame = ndi.VideoFrameV2()
        self._frame.FourCC = ndi.FOURCC_VIDEO_TYPE_BGRX
        self._frame.frame_rate_N, self._frame.frame_rate_D = rate.numerator, rate.denominator
        w, h = size
        self._buf = np.empty((h, w, 4), np.uint8)
        self._buf[..., 3] = 255

    def write(self, frame: np.ndarray) -> None:
        t0 = time.monotonic()
        self._buf[..., 0], self._buf[..., 1], self._buf[..., 2] = frame[..., 2], frame[..., 1], frame[..., 0]
        self._frame.data = self._buf
        self._frame.timecode = int(time.time() * 1e7)  # NDI's 100 ns units: a receiver reads the latency
        self._ndi.send_send_video_v2(self._send, self._frame)
        self.frames += 1
        self.send_seconds += time.monotonic() - t0

    def describe(self) -> str:
        ms = 1000.0 * self.send_seconds / max(1, self.frames)
        return f"ndi {self.name}: {self.frames} frames, {ms:.1f} ms to send"

    def close(self) -> None:
        if self._send is not None:
            self._ndi.send_destroy(self._send)
            self._send = None


def find(name: str, timeout: float = 5.0, ips: str = "127.0.0.1"):
    """The NDI source called ``name`` (its full name is ``HOST (name)``), looked for at ``ips`` too
    (a loopback-only machine finds nothing by mDNS), or None after ``timeout`` seconds. For receivers:
    tests, benchmarks."""
    ndi = _lib()
    ndi.initialize()
    fc = ndi.FindCreate()
    fc.extra_ips = ips
    finder = ndi.find_create_v2(fc)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ndi.find_wait_for_sources(finder, 200)
            for src in ndi.find_get_current_sources(finder):
                if src.ndi_name.endswith(f"({name})"):
                    out = ndi.Source()
                    out.ndi_name, out.url_address = src.ndi_name, src.url_address
                    return out
        return None
    finally:
        ndi.find_destroy(finder)
