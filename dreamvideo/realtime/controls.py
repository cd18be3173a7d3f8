"""The settings a live run plays with now, in one thread-safe place: what a controller (the page's
sliders, OSC, MIDI) changes while the run goes on.

``controls = session.controls`` (or :class:`~dreamvideo.realtime.push.PushLive`'s); then
``controls.set("step_size", 0.02)`` or ``controls.set("steps", "4")`` from any thread. The names and
ranges are :data:`dreamvideo.settings.LIVE_PARAMS`; a wrong name or value raises a one-line
:class:`~dreamvideo.errors.UserError` and changes nothing. A value set replaces that setting's
schedule (or the engine setting) with a constant from the next dream on (a live run's step size and steps
from the next step of the dream running); a zoom's moves (``zoom``,
``angle``, ``dx``, ``dy``) from the next frame. ``clear(name)`` hands the setting back to its
schedule. ``values()`` is a consistent copy, ``version`` counts the changes.
"""

from __future__ import annotations

import threading

from ..settings import check_live


class LiveControls:
    """``set(name, value) -> typed value``, ``get(name, default)``, ``clear(name)``, ``values()``,
    ``version`` (see the module). Thread-safe: readers see every change whole."""

    def __init__(self, **initial):
        self._lock = threading.Lock()
        self._values: dict = {}
        self.version = 0
        for name, value in initial.items():
            self.set(name, value)

    def set(self, name: str, value):
        """Validate ``value`` (a number or its text) for live setting ``name`` and hold it; returns the
        typed value. A one-line UserError (nothing changed) for an unknown name or a value out of range."""
        typed = check_live(name, value)
        with self._lock:
            self._values[name] = typed
            self.version += 1
        return typed

    def get(self, name: str, default=None):
        with self._lock:
            return self._values.get(name, default)

    def clear(self, name: str) -> None:
        """Give ``name`` back to its schedule (or engine setting)."""
        with self._lock:
            if self._values.pop(name, None) is not None:
                self.version += 1

    def values(self) -> dict:
        """``{name: typed value}`` of every setting a controller holds now."""
        with self._lock:
            return dict(self._values)
