"""Live sound: the audio features of :mod:`dreamvideo.audio` computed online, over a short window
ending at the frame, so a schedule such as ``0.01*(1 + 2*onset)`` follows the room's music.

The offline features see the whole song: each is divided by its 99th percentile over the clip,
and beats come from librosa's tracker. Online, only what was heard so far is known: each feature is
divided by the loudest value heard so far (released by half every :data:`RELEASE` seconds, so a
quieter set later is not left dark), so online and offline agree once the song's loudest passage
has been heard; the bands' window ends at the frame's end instead of being centred on it (30 ms
earlier at 25 fps); onset strength is librosa's, on the last :data:`ONSET_WINDOW` seconds; beats
are the tempo librosa estimates on the last :data:`BEAT_HISTORY` seconds of onset strength, on the
phase that fits those onsets best (none in the first :data:`BEAT_WARMUP` seconds).
``smoothing`` is one-sided here (an exponential of that time constant): the future is unknown.

Convention: samples mono float32 in -1..1 at ``sr`` Hz, sample 0 at the start; frame ``f`` covers
``[f/fps, (f+1)/fps)`` seconds; features 0..1, as in :mod:`dreamvideo.audio`.
"""

from __future__ import annotations

import math
import os
import time
import subprocess
import sys
import threading
import wave

import numpy as np

from .. import audio as offline
from .. import ffmpeg
from ..errors import UserError
from ..settings import AUDIO_FEATURES

SR = 22050
RELEASE = 120.0
ONSET_WINDOW = 0.25
BEAT_HISTORY = 8.0
BEAT_WARMUP = 2.0
N_FFT = 2048  # librosa's onset STFT
REFIT = 0.5  # seconds between two fits of the beat grid


def _librosa():
    try:
        import librosa
    except ImportError:
        raise UserError('onset/beat features need librosa: pip install "dreamvideo[music]"') from None
    return librosa


_PREPARED = set()


def prepare(needed, sr: int = SR) -> None:
    """Import librosa and compile its onset and tempo code (numba, seconds on first use) when
    ``needed`` has onset or beat: before a live source starts, not while it plays."""
    if not set(needed) & {"onset", "beat"} or sr in _PREPARED:
        return
    librosa = _librosa()
    env = librosa.onset.onset_strength(y=np.zeros(N_FFT * 4, np.float32), sr=sr, hop_length=offline.HOP)
    librosa.feature.tempo(onset_envelope=np.r_[env, env, env].astype(np.float64), sr=sr, hop_length=offline.HOP)
    _PREPARED.add(sr)


class OnlineFeatures:
    """Audio features of frame ``f`` from the samples up to its end (``push`` them as they come)."""

    def __init__(self, fps: float, needed=None, sr: int = SR, smoothing: float = 0.0, keep: float = BEAT_HISTORY + 2):
        self.fps, self.sr, self.smoothing = float(fps), int(sr), float(smoothing)
        self.names = set(AUDIO_FEATURES) if needed is None else set(needed) & set(AUDIO_FEATURES)
        prepare(self.names, sr)
        self._y = np.zeros(0, np.float32)
        self._offset = 0  # absolute index of self._y[0]
        self._keep = int(keep * sr)
        self._lock = threading.Lock()
        self._ref: dict[str, float] = {}
        self._ref_at: dict[str, float] = {}
        self._env: dict[int, float] = {}  # absolute onset hop -> strength, final once fully heard
        self._smooth: dict[str, float] = {}
        self._last_frame = None
        self._grid = None  # (when fitted, (a beat time, period)) in seconds

    @property
    def heard(self) -> float:
        """Seconds of samples pushed so far."""
        return (self._offset + self._y.size) / self.sr

    def push(self, samples: np.ndarray) -> None:
        with self._lock:
            y = np.concatenate([self._y, np.asarray(samples, np.float32).ravel()])
            cut = max(0, y.size - self._keep) if self._keep else 0
            self._y, self._offset = y[cut:], self._offset + cut

    def _span(self, a: int, b: int) -> np.ndarray:
        """Samples [a, b) (absolute), zeros where not heard or no longer kept."""
        out = np.zeros(max(0, b - a), np.float32)
        lo, hi = max(a, self._offset), min(b, self._offset + self._y.size)
        if hi > lo:
            out[lo - a:hi - a] = self._y[lo - self._offset:hi - self._offset]
        return out

    def _norm(self, name: str, raw: float, t: float, floor: float) -> float:
        ref = self._ref.get(name, 0.0) * 0.5 ** (max(0.0, t - self._ref_at.get(name, t)) / RELEASE)
        ref = max(ref, raw)
        self._ref[name], self._ref_at[name] = ref, t
        return float(np.clip(raw / max(ref, floor), 0.0, 1.0))

    def at(self, f: int) -> dict[str, float]:
        """``{feature: value}`` of frame ``f`` (call in frame order; a frame twice gives the same)."""
        with self._lock:
            return self._at(int(f))

    def _at(self, f: int) -> dict[str, float]:
        if self._last_frame is not None and self._last_frame[0] == f:
            return dict(self._last_frame[1])
        sr, fps = self.sr, self.fps
        a, b = int(round(f * sr / fps)), int(round((f + 1) * sr / fps))
        t = (f + 1) / fps
        out = {}
        if "rms" in self.names:
            y = self._span(a, b)
            out["rms"] = self._norm("rms", float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) if y.size else 0.0, t,
                                    offline.SILENCE)
        bands = [n for n in offline.BANDS if n in self.names]
        if bands:
            from scipy import fft
            from scipy.signal.windows import blackmanharris

            length = fft.next_fast_len(int(0.1 * sr), real=True)
            y = self._span(b - length, b)
            freqs = fft.rfftfreq(length, 1.0 / sr)
            window = blackmanharris(length).astype(np.float32)
            power = np.abs(fft.rfft(y * window)) ** 2
            scale = 2.0 / (length * float(np.sum(window ** 2)))
            raw = {}
            for n in bands:
                lo, hi = offline.BANDS[n]
                raw[n] = float(np.sqrt(scale * power[(freqs >= max(lo, 1e-9)) & (freqs < hi)].sum()))
            loud = max(max(self._ref.get(n, 0.0), raw[n]) for n in bands)
            for n in bands:
                out[n] = self._norm(n, raw[n], t, max(offline.SILENCE, offline.BAND_FLOOR * loud))
        if self.names & {"onset", "beat"}:
            peak = self._onsets(a, b)
            if "onset" in self.names:
                out["onset"] = self._norm("onset", peak, t, 1e-6)
            if "beat" in self.names:
                out["beat"] = self._beat(f)
        if self.smoothing > 0:
            k = 1.0 - math.exp(-1.0 / (self.smoothing * fps))
            for n, v in out.items():
                out[n] = self._smooth[n] = self._smooth.get(n, v) + k * (v - self._smooth.get(n, v))
        self._last_frame = (f, dict(out))
        return out

    def _onsets(self, a: int, b: int) -> float:
        """librosa's onset strength over the last window (hops aligned to the offline ones); the
        largest value centred in [a, b), and the fully heard values kept for the beat."""
        librosa = _librosa()
        hop = offline.HOP
        s0 = (max(0, b - int(ONSET_WINDOW * self.sr) - N_FFT) // hop) * hop
        y = self._span(s0, b)
        y = np.pad(y, (0, max(0, N_FFT - y.size)))
        env = librosa.onset.onset_strength(y=y, sr=self.sr, hop_length=hop)
        centres = s0 + np.arange(env.size) * hop
        for c, v in zip(centres, env):
            if N_FFT // 2 <= c - s0 and c + N_FFT // 2 <= b:  # its window lies in what was heard
                self._env[int(c // hop)] = float(v)
        first = int(b / hop) - int(BEAT_HISTORY * self.sr / hop)
        for k in [k for k in self._env if k < first]:
            del self._env[k]
        inside = env[(centres >= a) & (centres < b)]
        return float(inside.max()) if inside.size else 0.0

    def _beat(self, f: int) -> float:
        """1 on the frame of the latest beat of the fitted grid, halving every BEAT_HALF_LIFE s after."""
        if not self._env or (f + 1) / self.fps < BEAT_WARMUP:
            return 0.0
        now = (f + 1) / self.fps
        if self._grid is None or now - self._grid[0] >= REFIT:
            self._grid = (now, self._fit())
        last_beat, step = self._grid[1]
        if step is None:
            return 0.0
        last = last_beat + step * np.floor((now - last_beat) / step)  # the grid goes on past the last fit
        since = f - math.floor(last * self.fps)
        return float(0.5 ** (since / (offline.BEAT_HALF_LIFE * self.fps))) if since >= 0 else 0.0

    def _fit(self):
        """(a beat time, the beat period) in seconds fitted to the kept onset strength, or (0, None)."""
        librosa = _librosa()
        hop, sr = offline.HOP, self.sr
        k0 = min(self._env)
        env = np.zeros(max(self._env) - k0 + 1)
        for k, v in self._env.items():
            env[k - k0] = v
        bpm = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=sr, hop_length=hop))[0])
        if not bpm > 0:
            return 0.0, None
        period = 60.0 / bpm * sr / hop  # hops
        phases = np.arange(0.0, period, 0.5)
        ks = [np.arange(p, env.size, period) for p in phases]
        score = [env[np.rint(k).astype(int).clip(0, env.size - 1)].sum() for k in ks]
        grid = ks[int(np.argmax(score))]
        return float((k0 + grid[-1]) * hop / sr), period * hop / sr


def audio_input_args(source: str) -> list[str]:
    """ffmpeg input arguments of an ``--audio-in``: ``default`` (the system's microphone), a device
    name (pulse on Linux, avfoundation on macOS, dshow on Windows), a URL, or a file (played at its pace)."""
    if "://" in source:
        return ["-fflags", "nobuffer", "-i", source]
    if os.path.isfile(source):  # a song played along, at its own pace
        return ["-re", "-i", ffmpeg.ff_path(source)]
    if sys.platform.startswith("linux"):
        return ["-f", "pulse", "-i", source]
    if sys.platform == "darwin":
        return ["-f", "avfoundation", "-i", f":{0 if source == 'default' else source}"]
    if sys.platform.startswith("win"):
        return ["-f", "dshow", "-i", f"audio={source}"]
    raise UserError(f"no audio input support on {sys.platform}; pass a URL or drop --audio-in")


class AudioIn:
    """Sound as it comes (a device or a URL, through ffmpeg): pushed into ``features`` and, with
    ``wav``, written to that file (16-bit mono) for the recording. ``error``: a one-line
    :class:`~dreamvideo.errors.DreamFailure` once the input fails (ffmpeg ends with an error: the
    device went away, the sound server stopped), for the show loop to raise; a file played along
    that ends is no failure (silence follows)."""

    def __init__(self, source: str, features: OnlineFeatures | None, wav=None, feed=None):
        self.source, self.features, self.error = source, features, None
        self._feed, self._proc, self._lock = feed, None, threading.Lock()
        self.heard_at = time.monotonic()  # when sound last came
        self._played = "://" not in source and os.path.isfile(source)  # a song played along: its end is no failure
        if feed is None:
            args = ["-loglevel", "error", *audio_input_args(source), "-map", "0:a:0", "-ac", "1", "-ar", str(SR),
                    "-f", "f32le", "-"]
            self._proc = ffmpeg.Proc(args, stdout=subprocess.PIPE)
        self._wav = None
        if wav is not None:
            self._file = open(wav, "wb")
            self._wav = wave.open(self._file, "wb")
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(SR)
            self._wav.writeframes(b"")  # the header now: the recorder checks the file before any sound comes
            self._file.flush()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-audio", daemon=True)
        if feed is not None:  # a capture's own sound, from its ffmpeg (see sources.Capture)
            feed.on_sound = self._take
        else:
            self._thread.start()

    def silent_for(self) -> float:
        """Seconds since sound last came from a device or a URL that is still open (0 for a file
        played along, or a capture's own sound: its pictures say when it stalls)."""
        if self._played or self._feed is not None or not self._thread.is_alive():
            return 0.0
        return time.monotonic() - self.heard_at

    def _take(self, y: np.ndarray) -> None:
        self.heard_at = time.monotonic()
        with self._lock:
            if self._stop.is_set():
                return
            if self.features is not None:
                self.features.push(y)
            if self._wav is not None:
                self._wav.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())

    def _run(self):
        from ..errors import DreamFailure

        out = self._proc.p.stdout
        try:
            while not self._stop.is_set():
                buf = out.read(4096)
                if not buf:
                    break
                self._take(np.frombuffer(buf[: len(buf) // 4 * 4], "<f4"))
            if not self._stop.is_set():
                rc = self._proc.p.wait()
                # A device or a stream never ends on its own (ffmpeg may exit 0 after a demuxing error).
                if (rc or not self._played) and not self._stop.is_set():
                    self.error = DreamFailure(f"the sound input {self.source} stopped: {self._proc.error_tail()}; "
                                              "check the device or sound server (--audio-in)")
        except Exception as e:  # noqa: BLE001 - handed to the show loop
            if not self._stop.is_set():
                self.error = DreamFailure(f"the sound input {self.source} failed: {e}")

    def close(self) -> None:
        with self._lock:
            self._stop.set()
        if self._feed is not None:
            self._feed.on_sound = None
        if self._proc is not None:
            self._proc.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._wav is not None:
            self._wav.close()  # the header's sizes patched
            self._file.close()
            self._wav = None
