"""OSC control of a live run (``--osc [HOST:]PORT``, python-osc, UDP).

Addresses (the settings' field names, :data:`.control.KNOBS`):

- ``/dreamvideo/<setting> VALUE``: a number, or text (``"mixed4:1.0,mixed5:2.0"``, a schedule);
- ``/dreamvideo/norm/<setting> X``: ``X`` in 0..1 mapped onto the setting's fader span (faders,
  Resolume-style controllers);
- ``/dreamvideo/scene NAME``: switch scene.

Every message is answered with ``/dreamvideo/ok LINE`` or ``/dreamvideo/error LINE`` (one line), and
the status figures go out every half second as ``/dreamvideo/status LINE`` and
``/dreamvideo/fps SHOWN DREAMED`` and ``/dreamvideo/latency MS``, to each of the latest 8 senders (at
the port it sent from) or to ``--osc-feedback HOST:PORT``. A wrong message never stops the run.
"""

from __future__ import annotations

import threading

from ..errors import UserError

PREFIX = "/dreamvideo/"
MAX_PEERS = 8  # the status goes to the latest this many senders
INSTALL = 'OSC control needs python-osc: pip install "dreamvideo[live]"'


def parse_address(text: str, what: str = "--osc", default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``[HOST:]PORT`` as ``(host, port)``; a one-line UserError naming ``what`` otherwise."""
    text = str(text).strip()
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or default_host
    try:
        n = int(port)
    except ValueError:
        n = -1
    if not 0 < n < 65536 or not host:
        raise UserError(f"{what} takes [HOST:]PORT with a port from 1 to 65535, not {text!r}")
    return host, n


class OscControl:
    """A UDP OSC server on ``(host, port)`` driving ``controls`` (:class:`.control.Controls`), in its
    own thread until :meth:`close`. ``feedback``: ``(host, port)`` the status goes to instead of the
    senders. A port in use is a one-line UserError at once."""

    def __init__(self, controls, host: str = "127.0.0.1", port: int = 9000, feedback=None):
        try:
            from pythonosc.dispatcher import Dispatcher
            from pythonosc.osc_server import BlockingOSCUDPServer
        except ImportError:
            raise UserError(INSTALL) from None
        self.controls, self.feedback = controls, feedback
        self.received = 0
        self._peers: dict = {}  # the latest senders, oldest first (a script may send from a new port each time)
        self._lock = threading.Lock()
        d = Dispatcher()
        d.set_default_handler(self._handle, needs_reply_address=True)
        try:
            self._server = BlockingOSCUDPServer((host, port), d)
        except OSError as e:
            raise UserError(f"cannot listen for OSC on {host}:{port} ({e.strerror}); pass another --osc port") from None
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="live-osc", daemon=True)
        self._thread.start()

    def _handle(self, sender, address: str, *args) -> None:
        self.received += 1
        with self._lock:
            peer = tuple(sender[:2])
            self._peers.pop(peer, None)
            self._peers[peer] = True
            while len(self._peers) > MAX_PEERS:
                del self._peers[next(iter(self._peers))]
        try:
            line = self._apply(address, args)
        except UserError as e:
            self._send(sender, "error", str(e))
        else:
            self._send(sender, "ok", line)

    def _apply(self, address: str, args) -> str:
        if not address.startswith(PREFIX):
            raise UserError(f"unknown OSC address {address!r}; use {PREFIX}<setting>, {PREFIX}norm/<setting> or "
                            f"{PREFIX}scene")
        path = address[len(PREFIX):]
        if len(args) != 1:
            raise UserError(f"{address} takes one value, not {len(args)}")
        value = args[0]
        if isinstance(value, float):  # OSC floats are 32-bit: 0.02 arrives as 0.0199999995...
            value = float(f"{value:.7g}")
        if path == "scene":
            return self.controls.scene(value, via="osc")
        if path.startswith("norm/"):
            return self.controls.set_norm(path[len("norm/"):], value, via="osc")
        if "/" in path:
            raise UserError(f"unknown OSC address {address!r}; use {PREFIX}<setting>, {PREFIX}norm/<setting> or "
                            f"{PREFIX}scene")
        return self.controls.set(path, value, via="osc")

    def _targets(self, sender=None) -> list:
        if self.feedback is not None:
            return [self.feedback]
        if sender is not None:
            return [tuple(sender[:2])]
        with self._lock:
            return list(self._peers)

    def _send(self, sender, what: str, *values) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        msg = OscMessageBuilder(PREFIX + what)
        for v in values:
            msg.add_arg(v)
        data = msg.build().dgram
        for target in self._targets(sender):
            try:
                self._server.socket.sendto(data, target)
            except OSError:  # a controller that went away: it gets the next one when it sends again
                pass

    def status(self, line: str, shown_fps: float = 0.0, dreamed_fps: float = 0.0, latency_ms: float = 0.0) -> None:
        """Send the status figures to every sender so far (or the feedback address)."""
        self._send(None, "status", line)
        self._send(None, "fps", float(shown_fps), float(dreamed_fps))
        self._send(None, "latency", float(latency_ms))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
