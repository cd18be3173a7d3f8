"""Per-frame audio features that drive music-reactive schedules (``1 + 0.04*beat``).

Convention: samples are mono float32 in -1..1 at ``sr`` Hz, sample 0 being ``start`` seconds into
the file; output frame ``i`` covers the seconds ``[i/fps, (i+1)/fps)`` of those samples. Features
are float32 arrays of length ``nframes`` in 0..1, one value per frame:

* ``rms``: loudness, the RMS of the frame's samples;
* ``onset``: librosa onset strength (spectral flux), the frame's peak;
* ``beat``: 1.0 on the frame holding a tracked beat (librosa ``beat_track``), halving every
  :data:`BEAT_HALF_LIFE` = 0.12 s until the next beat;
* ``low`` / ``mid`` / ``high``: amplitude below 200 Hz, 200-2000 Hz and above 2000 Hz
  (FFT of a 0.1 s Blackman-Harris window around the frame's centre).

Each feature but ``beat`` is divided by its 99th percentile over the clip and clipped at 1, so a
few peaks do not flatten the rest. Floors on that divisor keep silence dark instead of amplifying
noise: -80 dBFS for ``rms`` and the bands, and a band is never scaled up by more than 40 dB
relative to the loudest band. Frames past the end of the audio are silent (0). ``smoothing`` is
the sigma, in seconds, of a gaussian blur over time applied to every feature.

``rms`` and the bands need only numpy and scipy; ``onset`` and ``beat`` need librosa
(``pip install "dreamvideo[music]"``), imported only when asked for.

The features are computed block by block as the audio is decoded (:class:`_Features`): memory stays
bounded (a few blocks of samples, and the song's log-mel spectrogram spilled to a temporary file for
the onsets) however long the song, and the values are those of the whole signal at once.
"""

import os
import tempfile

import numpy as np

from .errors import DreamFailure, UserError
from .settings import AUDIO_FEATURES

BEAT_HALF_LIFE = 0.12
BANDS = {"low": (0.0, 200.0), "mid": (200.0, 2000.0), "high": (2000.0, np.inf)}
SILENCE = 1e-4  # -80 dBFS, under any real recording's noise floor
BAND_FLOOR = 0.01  # -40 dB: quieter bands stay dark rather than scaled up to full
HOP = 256  # onset hop: ~12 ms at 22050 Hz, several per frame; beat tracking is steadier than at 512
_NEED_LIBROSA = 'onset/beat features need librosa: pip install "dreamvideo[music]"'
_CHUNK = 2048  # frames per FFT batch, bounding memory on long songs
N_FFT = 2048  # librosa's onset STFT
N_MELS = 128
TOP_DB = 80.0  # librosa's power_to_db: the log-mel spectrogram is floored this far below its maximum
BLOCK = 1 << 19  # samples decoded per block (~24 s at 22050 Hz)


def _check_load(path, sr, start, duration):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"audio file {path} not found; check the path")
    if int(sr) != sr or sr <= 0:
        raise UserError(f"the audio sample rate must be a positive whole number, not {sr!r}")
    if not start >= 0 or (duration is not None and not duration > 0):
        raise UserError(f"the audio start ({start!r}) must be >= 0 and the duration ({duration!r}) > 0")
    return path


def _decoded(path, sr=22050, start=0.0, duration=None, block=BLOCK):
    """Mono float32 samples of ``path``'s first audio track at ``sr`` Hz, in blocks of ``block`` samples."""
    path = _check_load(path, sr, start, duration)
    from . import ffmpeg

    args = ["-v", "error", "-ss", f"{start:.6f}", "-i", ffmpeg.ff_path(path), "-map", "0:a:0", "-ac", "1",
            "-ar", str(int(sr)), "-f", "f32le"]
    args += ["-t", f"{duration:.6f}"] if duration is not None else []
    rest, total = b"", 0
    try:
        for piece in ffmpeg.stream(args + ["pipe:1"], "audio", block * 4):
            data = rest + piece
            whole = len(data) // 4 * 4
            rest = data[whole:]
            if whole:
                total += whole // 4
                yield np.frombuffer(data[:whole], dtype="<f4").astype(np.float32)
    except ffmpeg.Failed as e:
        if "matches no streams" in e.text:
            raise UserError(f"{path} has no audio track; pass a soundtrack (`audio`) that has one") from None
        raise DreamFailure(f"ffmpeg could not decode the audio of {path}: {e.tail}; check that the file plays") from None
    if total == 0:
        raise UserError(f"{path} has no audio after {start:g} s; choose an audio start inside the track")


def load_audio(path, sr=22050, start=0.0, duration=None):
    """Decode any container's first audio track to ``(mono float32 samples, sr)`` with ffmpeg."""
    return np.concatenate(list(_decoded(path, sr, start, duration))), int(sr)


def _librosa():
    try:
        import librosa
    except ImportError:
        raise UserError(_NEED_LIBROSA) from None
    return librosa


def _blocks_of(samples, block=BLOCK):
    y = np.asarray(samples, dtype=np.float32).ravel()
    return (y[i:i + block] for i in range(0, max(1, y.size), block))


class _Onsets:
    """librosa's onset strength (``onset_strength(y, sr, hop_length=HOP)``: the mean over 128 mel bands
    of the rise of the log-mel spectrogram, floored :data:`TOP_DB` below its maximum), fed block by
    block. The spectrogram goes to a temporary file until the end, when its maximum is known."""

    def __init__(self, sr):
        self.librosa, self.sr, self.done, self.top = _librosa(), sr, 0, -np.inf
        self.spill = tempfile.TemporaryFile()

    def need(self) -> int:
        """The first sample a later STFT frame still reads."""
        return self.done * HOP - N_FFT // 2

    def feed(self, window, end: int, eof: bool) -> None:
        """Compute the STFT frames whose samples lie before sample ``end`` (all of them at ``eof``);
        ``window(a, b)`` gives samples ``a..b-1``, zeros outside the signal."""
        size = max(end, N_FFT)  # librosa pads a signal shorter than one window to it
        last = 1 + size // HOP if eof else max(0, (end - N_FFT // 2) // HOP + 1)
        for k0 in range(self.done, last, 2048):
            k1 = min(last, k0 + 2048)
            seg = window(k0 * HOP - N_FFT // 2, (k1 - 1) * HOP + N_FFT // 2)
            mel = self.librosa.feature.melspectrogram(y=seg, sr=self.sr, n_fft=N_FFT, hop_length=HOP, center=False,
                                                      fmax=0.5 * self.sr)
            db = (10.0 * np.log10(np.maximum(1e-10, mel))).astype(np.float32)
            self.top = max(self.top, float(db.max()))
            self.spill.write(np.ascontiguousarray(db.T).tobytes())
        self.done = max(self.done, last)

    def envelope(self):
        """The onset envelope and the time of each value, in seconds."""
        self.spill.seek(0)
        flux, prev = [], None
        while True:
            data = self.spill.read(4096 * N_MELS * 4)
            if not data:
                break
            rows = np.maximum(np.frombuffer(data, np.float32).reshape(-1, N_MELS), self.top - TOP_DB)
            both = rows if prev is None else np.vstack([prev, rows])
            flux.append(np.mean(np.maximum(0.0, np.diff(both, axis=0)), axis=1))
            prev = rows[-1:]
        self.spill.close()
        env = np.concatenate([np.zeros(1 + N_FFT // (2 * HOP), np.float32), *flux])[: self.done].astype(np.float32)
        return env, self.librosa.times_like(env, sr=self.sr, hop_length=HOP)


def _onset_envelope(samples, sr):
    """librosa's onset strength and the time of each value, in seconds."""
    f = _Features(sr, 0.0, 0, {"onset"})
    for block in _blocks_of(samples):
        f.feed(block)
    f.finish()
    return f.onsets.envelope()


def _tempo(env, sr):
    """librosa's tempo estimate for ``env`` (``beat_track``'s own), its tempogram averaged block by
    block: the whole tempogram of a two-hour song would take gigabytes."""
    librosa = _librosa()
    from scipy.signal import get_window

    win = int(librosa.time_to_frames(8.0, sr=sr, hop_length=HOP))  # tempo()'s ac_size
    window = get_window("hann", win, fftbins=True)[:, None]
    padded = np.pad(env, win // 2, mode="linear_ramp", end_values=[0, 0])
    total = np.zeros(win)
    for a in range(0, env.size, 1024):
        b = min(env.size, a + 1024)
        frames = librosa.util.frame(padded[a:b + win - 1], frame_length=win, hop_length=1)[:, : b - a]
        tg = librosa.util.normalize(librosa.autocorrelate(frames * window, axis=-2), norm=np.inf, axis=-2)
        total += tg.sum(axis=-1)
    return librosa.feature.tempo(tg=(total / max(1, env.size))[:, None], sr=sr, hop_length=HOP)


def _beats(env, sr):
    if not env.any():
        return np.zeros(0)
    _, beats = _librosa().beat.beat_track(onset_envelope=env, sr=sr, hop_length=HOP, bpm=_tempo(env, sr),
                                          units="time")
    return np.asarray(beats, dtype=np.float64)


def beat_times(samples, sr):
    """Seconds (from sample 0) of the beats librosa tracks in ``samples``."""
    return _beats(_onset_envelope(samples, sr)[0], sr)


def _needed(needed):
    # Names that are not audio features are ignored, so a Schedule's .names can be passed as is.
    return set(AUDIO_FEATURES) if needed is None else set(needed) & set(AUDIO_FEATURES)


def _normalise(x, floor):
    ref = max(float(np.percentile(x, 99)) if x.size else 0.0, floor)
    return np.clip(x / ref, 0.0, 1.0)


class _Features:
    """The raw per-frame features of ``nframes`` frames at ``fps``, computed as blocks of samples
    arrive (:meth:`feed`, then :meth:`finish`): RMS between the frames' sample edges, the bands'
    amplitude in a ~0.1 s Blackman-Harris window around each frame's centre (-92 dB sidelobes, so a
    100 Hz tone does not leak into ``mid``; its ~35 ms effective width still resolves 25-30 fps),
    and the onset spectrogram. Only the samples later frames still read are kept."""

    def __init__(self, sr, fps, nframes, names):
        self.sr, self.names, self.n = sr, names, int(nframes)
        self.edges = np.round(np.arange(self.n + 1) * (sr / fps)).astype(np.int64) if self.n else np.zeros(1, np.int64)
        self.centres = (self.edges[:-1] + self.edges[1:]) // 2
        self.bands = [b for b in BANDS if b in names]
        self.length = 0
        if self.bands:
            from scipy import fft
            from scipy.signal.windows import blackmanharris

            self.length = fft.next_fast_len(int(0.1 * sr), real=True)
            freqs = fft.rfftfreq(self.length, 1.0 / sr)
            self.masks = {b: (freqs >= max(BANDS[b][0], 1e-9)) & (freqs < BANDS[b][1]) for b in self.bands}
            self.window = blackmanharris(self.length).astype(np.float32)
            self.scale = 2.0 / (self.length * float(np.sum(self.window ** 2)))  # Parseval: mean square
        starts = self.centres - self.length // 2
        self.first = np.minimum(self.edges[:-1], starts) if self.bands else self.edges[:-1]
        self.last = np.maximum(self.edges[1:], starts + self.length) if self.bands else self.edges[1:]
        self.rms = np.zeros(self.n) if "rms" in names else None
        self.levels = {b: np.zeros(self.n) for b in self.bands}
        self.onsets = _Onsets(sr) if names & {"onset", "beat"} else None
        self.buf, self.off, self.total, self.done = np.zeros(0, np.float32), 0, 0, 0

    def _window(self, a, b):
        """Samples ``a..b-1`` of the signal so far: zeros before 0 and past its end."""
        out = np.zeros(max(0, b - a), np.float32)
        lo, hi = max(a, self.off), min(b, self.off + self.buf.size)
        if hi > lo:
            out[lo - a:hi - a] = self.buf[lo - self.off:hi - self.off]
        return out

    def feed(self, block, eof=False):
        self.buf = np.concatenate([self.buf, np.asarray(block, np.float32)])
        self.total = self.off + self.buf.size
        end = self.total
        upto = self.n if eof else int(np.searchsorted(self.last, end, side="right"))
        if upto > self.done:
            self._frames(self.done, upto)
            self.done = upto
        if self.onsets is not None:
            self.onsets.feed(self._window, end, eof)
        keep = min(int(self.first[self.done]) if self.done < self.n else end,
                   self.onsets.need() if self.onsets is not None else end)
        if keep > self.off:
            self.buf = self.buf[min(keep - self.off, self.buf.size):]
            self.off = keep

    def finish(self):
        self.feed(np.zeros(0, np.float32), eof=True)

    def _frames(self, a, b):
        """Raw RMS and band levels of frames ``a..b-1`` (silence past the end of the signal)."""
        if self.rms is not None:
            e0, e1 = int(self.edges[a]), int(self.edges[b])
            y = self._window(e0, e1).astype(np.float64)
            power = np.concatenate([[0.0], np.cumsum(y ** 2)])
            d = np.diff(power[self.edges[a:b + 1] - e0])
            self.rms[a:b] = np.sqrt(np.maximum(d, 0.0) / np.maximum(np.diff(self.edges[a:b + 1]), 1))
        if self.bands:
            n = self.length
            for c in range(a, b, _CHUNK):
                cs = self.centres[c:min(b, c + _CHUNK)]
                starts = np.minimum(cs - n // 2, self.total)  # a window past the end reads only zeros
                s0 = int(starts.min())
                seg = self._window(s0, int(starts.max()) + n)
                power = np.abs(_rfft(seg[(starts - s0)[:, None] + np.arange(n)] * self.window)) ** 2
                for band, m in self.masks.items():
                    self.levels[band][c:c + cs.size] = np.sqrt(self.scale * power[:, m].sum(axis=1))


def _rfft(x):
    from scipy import fft

    return fft.rfft(x, axis=1)


def _frame_peaks(values, times, fps, nframes):
    """The largest value inside each frame's span; frames no value falls in are interpolated."""
    out = np.full(nframes, -np.inf)
    b = np.floor(times * fps).astype(np.int64)
    ok = (b >= 0) & (b < nframes)
    np.maximum.at(out, b[ok], values[ok])
    empty = np.flatnonzero(np.isneginf(out))
    out[empty] = np.interp((empty + 0.5) / fps, times, values, left=0.0, right=0.0)
    return out


def _beat_pulse(beats, fps, nframes):
    frames = np.floor(np.asarray(beats) * fps).astype(np.int64)
    frames = frames[(frames >= 0) & (frames < nframes)]
    last = np.full(nframes, -1, dtype=np.int64)
    last[frames] = frames
    last = np.maximum.accumulate(last)
    since = np.arange(nframes) - last
    return np.where(last >= 0, 0.5 ** (since / (BEAT_HALF_LIFE * fps)), 0.0)


def _check_args(fps, nframes, sr=1, smoothing=0.0):
    if not fps > 0 or int(nframes) != nframes or nframes < 0 or not sr > 0 or not smoothing >= 0:
        raise UserError(f"audio features need fps > 0, nframes >= 0, sr > 0 and smoothing >= 0, "
                        f"not fps={fps!r}, nframes={nframes!r}, sr={sr!r}, smoothing={smoothing!r}")


def _features(blocks, sr, fps, nframes, smoothing, names):
    """The features (see the module doc) of the samples in ``blocks``, consumed one by one."""
    nframes = int(nframes)
    f = _Features(sr, fps, nframes, names)
    for block in blocks:
        f.feed(block)
    f.finish()
    out = {}
    if f.onsets is not None:
        env, times = f.onsets.envelope()
        if "onset" in names:
            out["onset"] = _normalise(_frame_peaks(env, times, fps, nframes), 1e-6)
        if "beat" in names:
            out["beat"] = _beat_pulse(_beats(env, sr), fps, nframes)
    if f.rms is not None:
        out["rms"] = _normalise(f.rms, SILENCE)
    if f.bands:
        loudest = max((np.percentile(v, 99) for v in f.levels.values() if v.size), default=0.0)
        for b, v in f.levels.items():
            out[b] = _normalise(v, max(SILENCE, BAND_FLOOR * loudest))
    if smoothing > 0 and nframes:
        from scipy.ndimage import gaussian_filter1d

        out = {k: gaussian_filter1d(v, smoothing * fps, mode="nearest") for k, v in out.items()}
    return {k: np.clip(out[k], 0.0, 1.0).astype(np.float32) for k in AUDIO_FEATURES if k in out}


def audio_features(samples, sr, fps, nframes, smoothing=0.0, needed=None):
    """Features (see the module doc) for ``nframes`` frames at ``fps``; only ``needed`` ones if given."""
    names = _needed(needed)
    _check_args(fps, nframes, sr, smoothing)
    return _features(_blocks_of(samples), sr, fps, nframes, smoothing, names)


def features_for(path, fps, nframes, start=0.0, smoothing=0.0, needed=None):
    """Decode ``path`` from ``start`` s for ``nframes`` frames and compute the (needed) features."""
    names = _needed(needed)
    if names & {"onset", "beat"}:
        _librosa()  # fail before a long decode
    if not fps > 0 or int(nframes) != nframes or nframes < 0:
        raise UserError(f"audio features need fps > 0 and nframes >= 0, not fps={fps!r}, nframes={nframes!r}")
    if nframes == 0 or not names:
        return {k: np.zeros(int(nframes), dtype=np.float32) for k in AUDIO_FEATURES if k in names}
    if not smoothing >= 0:
        _check_args(fps, nframes, 1, smoothing)
    sr = 22050
    return _features(_decoded(path, sr, start=start, duration=nframes / fps), sr, fps, nframes, smoothing, names)
