import subprocess
import sys

import imageio_ffmpeg
import numpy as np
import pytest
from scipy.io import wavfile

from dreamvideo.audio import audio_features, beat_times, features_for, load_audio
from dreamvideo.errors import DreamFailure, UserError
from dreamvideo.schedule import AUDIO_FEATURES

SR, FPS = 22050, 25
CLICKS = np.arange(0.5, 9.0, 0.5)  # 120 bpm


def click_track(seconds=9.0):
    y = np.zeros(int(seconds * SR), np.float32)
    burst = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(int(0.01 * SR)) / SR)
    for c in CLICKS[CLICKS < seconds]:
        i = int(round(c * SR))
        y[i:i + burst.size] += burst
    return y


def tone(freq, seconds=3.0, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def ffmpeg(*args):
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    wavfile.write(d / "clicks.wav", SR, (click_track() * 32767).astype(np.int16))
    video = ["-f", "lavfi", "-i", "color=c=black:s=64x64:r=25:d=3"]
    ffmpeg(*video, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3",
           "-c:v", "mpeg4", "-c:a", "aac", "-shortest", d / "sine.mp4")
    ffmpeg(*video, "-an", "-c:v", "mpeg4", d / "silent.mp4")
    (d / "garbage.wav").write_bytes(b"RIFF this is not audio" * 50)
    return d


@pytest.fixture(scope="module")
def click_features():
    return audio_features(click_track(), SR, FPS, 225)


def test_load_wav_and_slice(media):
    y, sr = load_audio(media / "clicks.wav")
    assert sr == SR and y.dtype == np.float32 and abs(y.size - 9 * SR) < 10
    assert 0.7 < np.abs(y).max() <= 1.0
    part, _ = load_audio(media / "clicks.wav", start=2.25, duration=1.5)
    assert abs(part.size - 1.5 * SR) < 10
    first = np.flatnonzero(np.abs(part) > 0.1)[0] / SR  # the click at 2.5 s
    assert first == pytest.approx(0.25, abs=0.002)


def test_mp4_audio_track(media):
    y, sr = load_audio(media / "sine.mp4", sr=16000)
    assert sr == 16000 and abs(y.size / sr - 3.0) < 0.1
    f = features_for(media / "sine.mp4", FPS, 75, needed=["rms", "low", "mid", "high", "t"])
    assert set(f) == {"rms", "low", "mid", "high"}
    assert np.median(f["mid"]) > 0.9 and np.median(f["low"]) < 0.1 and np.median(f["high"]) < 0.1
    assert np.median(f["rms"]) > 0.9


def test_missing_audio_is_a_user_error(media):
    with pytest.raises(UserError, match=r"has no audio track; pass a soundtrack \(`audio`\)"):
        load_audio(media / "silent.mp4")
    with pytest.raises(UserError, match="not found"):
        load_audio(media / "nope.wav")
    with pytest.raises(DreamFailure, match="could not decode"):
        load_audio(media / "garbage.wav")


def test_beats_every_half_second():
    beats = beat_times(click_track(), SR)
    assert len(beats) >= 14
    gaps = np.diff(beats)
    assert np.median(gaps) == pytest.approx(0.5, abs=1 / FPS)
    assert np.all(np.abs(gaps - 0.5) < 1 / FPS)
    nearest = np.min(np.abs(beats[:, None] - CLICKS[None, :]), axis=1)
    assert np.all(nearest < 1 / FPS)


def test_beat_and_onset_follow_the_clicks(click_features):
    beat, onset, rms = click_features["beat"], click_features["onset"], click_features["rms"]
    clicks = np.floor(CLICKS * FPS).astype(int)
    peaks = np.flatnonzero(beat == 1.0)
    assert len(peaks) >= 14
    assert np.all(np.min(np.abs(peaks[:, None] - clicks[None, :]), axis=1) <= 1)
    assert np.all(beat[clicks[1:-1] + 6] < 0.35)  # ~0.24 s later: two 0.12 s half-lives
    for c in clicks:
        assert onset[c - 1:c + 2].max() > 0.3 and rms[c - 1:c + 2].max() > 0.5
    assert np.all(onset[clicks[:-1] + 6] < 0.2) and np.all(rms[clicks[:-1] + 6] < 0.01)


def test_rms_loud_quiet_silent():
    rng = np.random.default_rng(0)
    noise = rng.uniform(-0.5, 0.5, 5 * SR).astype(np.float32)
    y = np.concatenate([noise[:2 * SR], np.zeros(2 * SR, np.float32), 0.1 * noise[:SR]])
    rms = audio_features(y, SR, FPS, 125, needed=["rms"])["rms"]
    assert rms[:49].min() > 0.9 and rms[51:99].max() < 0.01
    assert np.median(rms[101:]) == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize("freq, lit, dark", [(100, "low", ["mid", "high"]), (5000, "high", ["low", "mid"])])
def test_a_tone_lights_its_own_band_and_leaves_the_others_dark(freq, lit, dark):
    f = audio_features(tone(freq), SR, FPS, 75, needed=["low", "mid", "high"])
    assert np.median(f[lit]) > 0.9
    for d in dark:
        assert np.median(f[d]) < 0.05


def test_shapes_ranges_padding_and_smoothing(click_features):
    for k in AUDIO_FEATURES:
        v = click_features[k]
        assert v.dtype == np.float32 and v.shape == (225,) and v.min() >= 0 and v.max() <= 1
    y = click_track(4.0)
    long = audio_features(y, SR, FPS, 150, needed=["rms", "low", "mid", "high"])  # 6 s of frames, 4 s of audio
    for v in long.values():
        assert v.shape == (150,) and np.all(v[102:] == 0)
    smooth = audio_features(y, SR, FPS, 100, smoothing=0.1, needed=["rms"])["rms"]
    assert 0 <= smooth.min() and smooth.max() <= 1
    assert np.abs(np.diff(smooth)).sum() < np.abs(np.diff(long["rms"][:100])).sum() / 2
    assert audio_features(y, SR, FPS, 0)["beat"].shape == (0,)


def test_start_offset_shifts_frames(media):
    rms = features_for(media / "clicks.wav", FPS, 50, start=0.25, needed=["rms"])["rms"]
    assert np.argmax(rms) in (6, 7)  # the click at 0.5 s is 0.25 s into the slice


def test_without_librosa(media, monkeypatch):
    monkeypatch.setitem(sys.modules, "librosa", None)
    f = features_for(media / "clicks.wav", FPS, 50, needed={"rms", "high"})
    assert set(f) == {"rms", "high"}
    msg = 'onset/beat features need librosa: pip install "dreamvideo[music]"'
    with pytest.raises(UserError) as info:
        features_for(media / "clicks.wav", FPS, 50, needed=["beat"])
    assert str(info.value) == msg
    with pytest.raises(UserError, match="need librosa"):
        audio_features(click_track(2.0), SR, FPS, 50)
