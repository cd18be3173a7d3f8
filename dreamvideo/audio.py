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
"""

import os

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


def load_audio(path, sr=22050, start=0.0, duration=None):
    """Decode any container's first audio track to ``(mono float32 samples, sr)`` with ffmpeg."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"audio file {path} not found; check the path")
    if int(sr) != sr or sr <= 0:
        raise UserError(f"the audio sample rate must be a positive whole number, not {sr!r}")
    if not start >= 0 or (duration is not None and not duration > 0):
        raise UserError(f"the audio start ({start!r}) must be >= 0 and the duration ({duration!r}) > 0")
    from . import ffmpeg

    args = ["-v", "error", "-ss", f"{start:.6f}", "-i", ffmpeg.ff_path(path), "-map", "0:a:0", "-ac", "1",
            "-ar", str(int(sr)), "-f", "f32le"]
    args += ["-t", f"{duration:.6f}"] if duration is not None else []
    try:
        out = ffmpeg.run(args + ["pipe:1"], "audio")
    except ffmpeg.Failed as e:
        if "matches no streams" in e.text:
            raise UserError(f"{path} has no audio track; pass a soundtrack (`audio`) that has one") from None
        raise DreamFailure(f"ffmpeg could not decode the audio of {path}: {e.tail}; check that the file plays") from None
    samples = np.frombuffer(out, dtype="<f4", count=len(out) // 4).astype(np.float32)
    if samples.size == 0:
        raise UserError(f"{path} has no audio after {start:g} s; choose an audio start inside the track")
    return samples, int(sr)


def _librosa():
    try:
        import librosa
    except ImportError:
        raise UserError(_NEED_LIBROSA) from None
    return librosa


def _onset_envelope(samples, sr):
    """librosa's onset strength and the time of each value, in seconds."""
    librosa = _librosa()
    y = np.pad(samples, (0, max(0, 2048 - samples.size)))  # shorter than one STFT window
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP)
    return env, librosa.times_like(env, sr=sr, hop_length=HOP)


def _beats(env, sr):
    _, beats = _librosa().beat.beat_track(onset_envelope=env, sr=sr, hop_length=HOP, units="time")
    return np.asarray(beats, dtype=np.float64)


def beat_times(samples, sr):
    """Seconds (from sample 0) of the beats librosa tracks in ``samples``."""
    samples = np.asarray(samples, dtype=np.float32).ravel()
    return _beats(_onset_envelope(samples, sr)[0], sr)


def _needed(needed):
    # Names that are not audio features are ignored, so a Schedule's .names can be passed as is.
    return set(AUDIO_FEATURES) if needed is None else set(needed) & set(AUDIO_FEATURES)


def _normalise(x, floor):
    ref = max(float(np.percentile(x, 99)) if x.size else 0.0, floor)
    return np.clip(x / ref, 0.0, 1.0)


def _rms(y, edges):
    """RMS of the samples between consecutive ``edges`` (silence past the end)."""
    power = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    cut = power[np.minimum(edges, y.size)]
    return np.sqrt(np.maximum(np.diff(cut), 0.0) / np.maximum(np.diff(edges), 1))


def _bands(y, sr, centres, names):
    """Amplitude in each band of a ~0.1 s Blackman-Harris window around each centre sample.

    The window is longer than a frame and has -92 dB sidelobes, so a 100 Hz tone does not leak
    into ``mid``; its effective width (~35 ms) still resolves frames at 25-30 fps.
    """
    from scipy import fft
    from scipy.signal.windows import blackmanharris

    length = fft.next_fast_len(int(0.1 * sr), real=True)
    freqs = fft.rfftfreq(length, 1.0 / sr)
    masks = {b: (freqs >= max(lo, 1e-9)) & (freqs < hi) for b, (lo, hi) in BANDS.items() if b in names}
    window = blackmanharris(length).astype(np.float32)
    scale = 2.0 / (length * float(np.sum(window ** 2)))  # Parseval: mean square of the windowed samples
    padded = np.concatenate([np.zeros(length, np.float32), y, np.zeros(length, np.float32)])
    out = {b: np.zeros(len(centres)) for b in masks}
    for c in range(0, len(centres), _CHUNK):
        first = np.clip(centres[c:c + _CHUNK] - length // 2, -length, y.size) + length
        power = np.abs(fft.rfft(padded[first[:, None] + np.arange(length)] * window, axis=1)) ** 2
        for b, m in masks.items():
            out[b][c:c + _CHUNK] = np.sqrt(scale * power[:, m].sum(axis=1))
    return out


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


def audio_features(samples, sr, fps, nframes, smoothing=0.0, needed=None):
    """Features (see the module doc) for ``nframes`` frames at ``fps``; only ``needed`` ones if given."""
    names = _needed(needed)
    if not fps > 0 or int(nframes) != nframes or nframes < 0 or not sr > 0 or not smoothing >= 0:
        raise UserError(f"audio features need fps > 0, nframes >= 0, sr > 0 and smoothing >= 0, "
                        f"not fps={fps!r}, nframes={nframes!r}, sr={sr!r}, smoothing={smoothing!r}")
    y, nframes = np.asarray(samples, dtype=np.float32).ravel(), int(nframes)
    out = {}
    if names & {"onset", "beat"}:
        env, times = _onset_envelope(y, sr)
        if "onset" in names:
            out["onset"] = _normalise(_frame_peaks(env, times, fps, nframes), 1e-6)
        if "beat" in names:
            out["beat"] = _beat_pulse(_beats(env, sr), fps, nframes)
    edges = np.round(np.arange(nframes + 1) * (sr / fps)).astype(np.int64)
    if "rms" in names:
        out["rms"] = _normalise(_rms(y, edges), SILENCE)
    if names & set(BANDS):
        levels = _bands(y, sr, (edges[:-1] + edges[1:]) // 2, names)
        loudest = max((np.percentile(v, 99) for v in levels.values() if v.size), default=0.0)
        for b, v in levels.items():
            out[b] = _normalise(v, max(SILENCE, BAND_FLOOR * loudest))
    if smoothing > 0 and nframes:
        from scipy.ndimage import gaussian_filter1d

        out = {k: gaussian_filter1d(v, smoothing * fps, mode="nearest") for k, v in out.items()}
    return {k: np.clip(out[k], 0.0, 1.0).astype(np.float32) for k in AUDIO_FEATURES if k in out}


def features_for(path, fps, nframes, start=0.0, smoothing=0.0, needed=None):
    """Decode ``path`` from ``start`` s for ``nframes`` frames and compute the (needed) features."""
    names = _needed(needed)
    if names & {"onset", "beat"}:
        _librosa()  # fail before a long decode
    if not fps > 0 or int(nframes) != nframes or nframes < 0:
        raise UserError(f"audio features need fps > 0 and nframes >= 0, not fps={fps!r}, nframes={nframes!r}")
    if nframes == 0 or not names:
        return {k: np.zeros(int(nframes), dtype=np.float32) for k in AUDIO_FEATURES if k in names}
    samples, sr = load_audio(path, start=start, duration=nframes / fps)
    return audio_features(samples, sr, fps, nframes, smoothing=smoothing, needed=names)
