"""The dream side of live mode: schedules evaluated as the frames come, the dream thread, and the
``--target-fps`` controller.

The dream thread dreams the newest frame the show loop offers it; frames offered while it is busy
replace each other in a one-item slot (counted as not dreamed), so the engine never works through a
backlog. Each dream is the video stepper's (temporal reuse: the carried dream is kept and only
what is new in the frame is dreamed) with ``enter_every`` 1: offline a band of entering content
waits for a few frames, the frames in between held back until it is dreamed; live cannot hold a
frame, and it need not: a dream comes only every few source frames, so what entered since the
last one is already one strip, dreamed by the next dream.

Convention: frames are ``H x W x 3`` uint8 RGB; ``seq`` the source frame's number; times in
seconds (:func:`time.monotonic`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..errors import UserError
from ..settings import AUDIO_FEATURES, DreamSettings, Schedules, field_range
from .sources import Latest

MOVES = ("zoom", "angle", "dx", "dy")  # a live zoom's, per frame
LIVE_SCHEDULED = ("step_size", "steps", "blend", *MOVES)


class LiveTimeline:
    """Per-frame values as the video stepper reads them (``value``, ``weights``, ``settings``),
    evaluated when asked: ``t`` is seconds since the start (frame ``f`` at ``fps``), the audio
    features are the online ones of that frame. :meth:`update` swaps schedules while it runs.
    ``controls`` (a :class:`~.controls.LiveControls`): a value a controller holds replaces its
    schedule or engine setting; the dream thread calls :meth:`refresh` at the start of each dream,
    so one dream sees one set of values (a zoom's moves read them per frame)."""

    def __init__(self, schedules: Schedules, fps: float, terms, features=None, controls=None):
        from .controls import LiveControls

        self.fps, self.terms, self.features = float(fps), list(terms), features
        self.controls = controls if controls is not None else LiveControls()
        self.steps_cap = None  # the controller's: at most this many steps
        self._held = self.controls.values()
        self._parse(schedules)

    def refresh(self) -> None:
        """Take the controls' values now (the start of a dream)."""
        self._held = self.controls.values()

    def _parse(self, schedules: Schedules) -> None:
        from ..schedule import Schedule

        sched = {k: Schedule.parse(getattr(schedules, k), k, schedules.interp) for k in LIVE_SCHEDULED}
        term_sched = {}
        for item in filter(str.strip, schedules.layer_weights.split(";")):
            name, eq, text = item.partition("=")
            idx = [i for i, t in enumerate(self.terms) if t.layer == name.strip()]
            if not eq or not idx:
                layers = ", ".join(dict.fromkeys(t.layer for t in self.terms)) or "none"
                raise UserError(f"`layer_weights` item {item.strip()!r} must be LAYER=SCHEDULE with a layer "
                                f"of `layers` ({layers})")
            for i in idx:
                term_sched[i] = Schedule.parse(text.strip(), f"weight of {name.strip()}", schedules.interp)
        uses = set().union(*(s.names for s in [*sched.values(), *term_sched.values()])) & set(AUDIO_FEATURES)
        if uses and self.features is None:
            raise UserError("a schedule uses audio features but there is no sound: pass a source with sound or "
                            "`audio_in`")
        if uses and not uses <= self.features.names:
            raise UserError(f"a schedule uses {', '.join(sorted(uses - self.features.names))}, which this run does "
                            "not compute; restart it with that schedule")
        self.schedules, self._sched, self._term_sched = schedules, sched, term_sched

    def update(self, **schedules) -> None:
        """New schedule texts (``step_size="0.02"``), checked whole before any is used."""
        self._parse(replace(self.schedules, **schedules))

    def _feats(self, f: int):
        if self.features is None:
            return None
        return {k: np.array([v]) for k, v in self.features.at(f).items()}

    def value(self, name: str, f: int) -> float:
        if name in self._held:
            return float(self._held[name])
        return self._sched[name].at(f, self.fps, self._feats(f) if self._sched[name].needs_audio else None)

    def weights(self, f: int) -> list[float]:
        return [self._term_sched[i].at(f, self.fps, self._feats(f)) if i in self._term_sched else t.weight
                for i, t in enumerate(self.terms)]

    def moves(self, f: int) -> tuple[float, float, float, float]:
        """A live zoom's move of frame ``f``: ``(zoom, angle, dx, dy)``, each held in its range."""
        held = self.controls.values()
        return tuple(min(max(float(held[name]) if name in held else self.value(name, f), lo), hi)
                     for name, (lo, hi) in zip(MOVES, _MOVE_RANGES))

    def settings(self, base: DreamSettings, f: int) -> DreamSettings:
        steps = max(0, int(round(self.value("steps", f))))
        if self.steps_cap is not None:
            steps = min(steps, self.steps_cap)
        engine = {k: self._held[k] for k in ("octaves", "octave_scale") if k in self._held}
        return replace(base, step_size=max(0.0, self.value("step_size", f)), steps=steps, **engine)


_MOVE_RANGES = [field_range(Schedules, name)[0] or (-np.inf, np.inf) for name in MOVES]


@dataclass
class Level:
    """One rung of the controller's ladder: steps at most, octaves, and the share of the size dreamed."""

    steps: int
    octaves: int
    scale: float = 1.0

    def describe(self) -> str:
        size = f", size {self.scale:.0%}" if self.scale < 1 else ""
        return f"{self.steps} steps x {self.octaves} octaves{size}"


def ladder(steps: int, octaves: int) -> list[Level]:
    """Rungs from the settings down: fewer steps (to one), then fewer octaves, then a smaller dream."""
    rungs = [Level(s, octaves) for s in range(max(1, steps), 0, -1)]
    rungs += [Level(1, o) for o in range(octaves - 1, 0, -1)]
    return rungs + [Level(1, 1, 0.75), Level(1, 1, 0.5)]


class Controller:
    """Holds ``target`` dreamed frames per second: one rung down the ladder when dreams take over
    10% longer than 1/target (averaged), one up when they would still fit at the rung above
    (under 70%), waiting :data:`SETTLE` dreams after each change."""

    SETTLE = 3

    def __init__(self, target: float, steps: int, octaves: int):
        self.target, self.rungs, self.at = float(target), ladder(steps, octaves), 0
        self._mean, self._wait = None, 0

    @property
    def level(self) -> Level:
        return self.rungs[self.at]

    def observe(self, period: float) -> bool:
        """A dream's period (seconds from the start of one dream to the next); True when the level changed."""
        self._mean = period if self._mean is None else 0.6 * self._mean + 0.4 * period
        if self._wait:
            self._wait -= 1
            return False
        goal = 1.0 / self.target
        move = 1 if self._mean > 1.1 * goal and self.at + 1 < len(self.rungs) else \
            -1 if self._mean < 0.7 * goal and self.at > 0 else 0
        if move:
            self.at += move
            self._mean, self._wait = None, self.SETTLE
        return bool(move)


class DreamWorker:
    """The dream thread: ``offer(seq, src)`` the newest shown frame; ``landed`` (a :class:`Latest`)
    gets ``(seq, src, dream)`` as each dream is done. ``make(level)`` builds a video engine (see
    :mod:`.adapter`) for a controller level, or for None (no controller); ``before(seq, engine)`` runs at
    the start of each dream (live changes apply there, then the timeline's :meth:`LiveTimeline.refresh`;
    ``engine`` is None when a new one is about to be made). A failure of the thread is kept in
    ``error`` for the show loop to raise."""

    def __init__(self, make, fps: float, controller: Controller | None = None, before=None):
        self._make, self.fps, self.controller, self._before = make, fps, controller, before
        self.slot, self.landed = Latest(), Latest()
        self.dreams, self.error = 0, None
        self.timing = {"flow": 0.0, "dream": 0.0}
        self._stop, self._restart = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-dream", daemon=True)
        self._thread.start()

    def offer(self, seq: int, src: np.ndarray) -> None:
        self.slot.put((seq, src))

    def restart(self) -> None:
        """The next dream starts a new engine (new settings), from the frame alone."""
        self._restart.set()

    @property
    def skipped(self) -> int:
        """Shown frames offered while the engine was busy and never dreamed."""
        return self.slot.overwritten

    def _run(self):
        from ..flow import FlowEstimator

        try:
            level = self.controller.level if self.controller else None
            engine = None
            flows = FlowEstimator("dis")
            prev = None
            started = None
            while not self._stop.is_set():
                item = self.slot.take(0.1)
                if item is None:
                    continue
                seq, src = item
                t0 = time.monotonic()
                if started is not None and self.controller is not None and self.controller.observe(t0 - started):
                    level, engine, prev = self.controller.level, None, None
                started = t0
                if self._restart.is_set():
                    self._restart.clear()
                    engine, prev = None, None
                if self._before is not None:  # the controls' values for this whole dream
                    self._before(seq, engine)
                if engine is None:
                    engine = self._make(level, seq)
                small = src
                if level is not None and level.scale < 1:
                    h, w = src.shape[:2]
                    size = (max(32, int(w * level.scale) // 2 * 2), max(32, int(h * level.scale) // 2 * 2))
                    small = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
                if prev is not None and prev.shape != small.shape:  # the source changed size
                    engine, prev = self._make(level, seq), None
                flow = mask = None
                if prev is not None and engine.uses_flow:
                    flow, mask = flows.pair(prev, small)
                t1 = time.monotonic()
                out = engine.step(seq, small, flow, mask)
                t2 = time.monotonic()
                prev = small
                if small is not src:  # the dream's residual, back at the frame's size
                    res = out.astype(np.float32) - small.astype(np.float32)
                    res = cv2.resize(res, src.shape[1::-1], interpolation=cv2.INTER_LINEAR)
                    out = np.clip(np.rint(src.astype(np.float32) + res), 0, 255).astype(np.uint8)
                self.timing["flow"] += t1 - t0
                self.timing["dream"] += t2 - t1
                self.dreams += 1
                self.landed.put((seq, src, out))
        except BaseException as e:  # noqa: BLE001 - handed to the show loop
            self.error = e
        finally:
            self.landed.close()

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the dream in progress (a compiled step cannot be cut short)."""
        self._stop.set()
        self.slot.close()
        self._thread.join(timeout)
