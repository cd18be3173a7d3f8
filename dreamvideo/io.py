"""Reading and writing videos and image sequences, through the ffmpeg binary that imageio-ffmpeg bundles;
atomic outputs. Still images are :mod:`dreamvideo.images` (re-exported here).

Convention: frames and images are HxWx3 uint8 RGB numpy arrays (C-contiguous, writable);
sizes are given as (width, height) in pixels; times (start, end, durations) are in seconds;
fps is frames per second.

Every output is written atomically (see :func:`atomic_output`): the final name only appears
once the file is complete, so an interrupted run never leaves a half-written file under the
name the user asked for. Every ffmpeg process is ended (and reaped) when its reader or writer
is closed, including on exceptions and KeyboardInterrupt. ffmpeg runs in its own session so a
Ctrl-C in the terminal reaches only Python, which then decides to finish or abort the file.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import shutil
import subprocess
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

from dreamvideo.errors import DreamFailure, SourceEnded, UserError
from dreamvideo.ffmpeg import SEQUENCE_FPS, Proc, VideoInfo, ff_path, has_audio, header, parse_header
from dreamvideo.ffmpeg import require_audio
from dreamvideo.images import (IMAGE_EXTS, check_frame, check_image, fit_max_side, image_size, is_image_path,
                               read_image, read_png, write_image, write_png)

#: This module's names, and the still-image ones of :mod:`dreamvideo.images` it passes on, so ``io`` stays the
#: one import for reading and writing media.
__all__ = ["VIDEO_EXTS", "WRITE_VIDEO_EXTS", "is_video_path", "check_frames_folder", "remove_stale_temporaries",
           "atomic_output", "probe_video", "even_size", "VideoReader", "VideoWriter", "require_audio", "IMAGE_EXTS",
           "check_frame", "check_image", "fit_max_side", "image_size", "is_image_path", "read_image", "read_png",
           "write_image", "write_png"]

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".gif", ".avi", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
WRITE_VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".gif")
_FRAME_NAME = "frame_{:06d}.png"
_FRAME_RE = re.compile(r"frame_\d+\.png")
# swscale's default fast rounding darkens every RGB<->YUV round trip by about one level.
_SWS = "accurate_rnd+full_chroma_int"


# ----------------------------------------------------------------------------- paths


def is_video_path(path) -> bool:
    """True for video extensions, .gif included (animated output)."""
    return Path(str(path)).suffix.lower() in VIDEO_EXTS


def is_folder_path(path) -> bool:
    """True for an output that names a folder of PNG frames: it ends in a slash or has no extension."""
    s = str(path)
    return s.endswith(("/", os.sep)) or Path(s).suffix == ""


def check_frames_folder(path) -> None:
    """A folder output for PNG frames may replace only a previous frames folder, never a user's other files."""
    final = Path(str(path))
    if final.is_file():
        raise UserError(f"output {final} is a file; give a folder name for PNG frames")
    if final.is_dir() and any(not _FRAME_RE.fullmatch(p.name) for p in final.iterdir()):
        raise UserError(f"output folder {final} already holds other files; choose a new or empty folder")


class _Staged:
    """A temporary sibling of an output path, committed over it with os.replace (atomic on one filesystem)."""

    def __init__(self, path):
        self.final = Path(str(path))
        self.is_dir = is_folder_path(path)
        parent = self.final.absolute().parent
        if not parent.is_dir():
            raise UserError(f"output folder {parent} does not exist; create it or choose another output path")
        if not os.access(parent, os.W_OK):
            raise UserError(f"output folder {parent} is not writable; choose another output path")
        if self.is_dir:
            check_frames_folder(self.final)
            self.temp = _new_folder(parent, f"{self.final.name}.tmp-")
        else:
            if self.final.is_dir():
                raise UserError(f"output {self.final} is a folder; give a file name with an extension")
            self.temp = parent / f"{self.final.stem}.tmp-{secrets.token_hex(4)}{self.final.suffix}"

    def commit(self) -> Path:
        if self.is_dir and self.final.is_dir():
            trash = self.final.with_name(f"{self.final.name}.old-{secrets.token_hex(4)}")
            os.replace(self.final, trash)
            os.replace(self.temp, self.final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.temp, self.final)
        return self.final

    def discard(self) -> None:
        if self.is_dir:
            shutil.rmtree(self.temp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.temp.unlink()


def _new_folder(parent: Path, prefix: str) -> Path:
    """A new folder ``<prefix><8 hex>`` made with the umask's permissions, like any folder the user makes
    (``tempfile.mkdtemp`` would make it private: 0700)."""
    while True:
        folder = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def remove_stale_temporaries(path) -> list[Path]:
    """Delete what a killed run (SIGKILL, power loss) left of an earlier write of ``path``: its staged
    temporaries (``out.tmp-1a2b3c4d.mp4``, ``out.tmp-1a2b3c4d.video.mp4``, or a ``frames.tmp-xxxxxxxx``
    folder holding only frame PNGs). Only names that :class:`_Staged` makes are touched."""
    final = Path(str(path))
    parent = final.absolute().parent
    if is_folder_path(path):
        pattern = re.compile(re.escape(final.name) + r"\.tmp-[a-z0-9_]{8}")
    else:
        pattern = re.compile(re.escape(final.stem) + r"\.tmp-[0-9a-f]{8}(\.video)?" + re.escape(final.suffix))
    removed = []
    for p in parent.iterdir() if parent.is_dir() else ():
        if not pattern.fullmatch(p.name) or p.is_symlink():
            continue
        if p.is_dir() and all(_FRAME_RE.fullmatch(q.name) for q in p.iterdir()):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
        elif p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary Path next to `path` (same extension, e.g. ``out.tmp-1a2b3c4d.mp4``).

    On normal exit it is renamed over `path`; on any exception (KeyboardInterrupt included) it is
    removed and the exception re-raised. A path ending in '/' or without extension is a folder:
    the temporary is then a folder too. Raises UserError if the parent folder is missing or not
    writable, or if a folder output would replace a folder holding anything but frame_*.png files.
    """
    staged = _Staged(path)
    try:
        yield staged.temp
    except BaseException:
        staged.discard()
        raise
    staged.commit()


# ----------------------------------------------------------------------------- image sequences


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _sequence_files(path) -> list[Path] | None:
    """The images of a folder or glob pattern, naturally sorted (frame2 before frame10); None if not a sequence."""
    s = str(path)
    if os.path.isdir(s):
        files = [p for p in Path(s).iterdir() if is_image_path(p)]
    elif glob.has_magic(s) and not os.path.exists(s):
        files = [Path(p) for p in glob.glob(s) if is_image_path(p)]
    else:
        return None
    if not files:
        raise UserError(f"no images found in {path}; pass a folder or glob pattern of {'/'.join(IMAGE_EXTS)} files")
    return sorted(files, key=_natural_key)


def probe_video(path, fps: float | None = None) -> VideoInfo:
    """Describe a video file, or an image sequence (a folder of images or a glob like 'frames/*.png').

    A sequence plays at `fps` (default 25) and has no audio; for a video file `fps` is ignored.
    nframes is estimated from duration x fps. Raises UserError when the input cannot be read.
    """
    files = _sequence_files(path)
    if files is not None:
        fps = float(fps or SEQUENCE_FPS)
        w, h = image_size(files[0])  # from the header: nothing is decoded yet
        return VideoInfo(w, h, fps, len(files), len(files) / fps, False)
    return parse_header(header(path), path)


def even_size(w: int, h: int, max_side: int | None) -> tuple[int, int]:
    """Output size: longer side <= max_side (if given), aspect kept, both sides even (>= 2).

    Rounding to even changes each side by at most 1 px beyond the exact aspect ratio, so an odd
    161x121 source becomes 160x120 (a rescale by under 1 %)."""
    long_, short = max(w, h), min(w, h)
    target = min(long_, max_side) if max_side else long_
    new_long = max(2, target // 2 * 2)
    new_short = max(2, int(round(short * new_long / long_ / 2)) * 2)
    return (new_long, new_short) if w >= h else (new_short, new_long)


# ----------------------------------------------------------------------------- reading


class VideoReader:
    """Iterate over the frames of a video file or image sequence as HxWx3 uint8 RGB arrays.

    start/end (seconds) trim the input (ffmpeg input seeking), frames caps the count, max_side
    downscales (INTER_AREA / ffmpeg area) so the longer side is <= max_side, and sizes are always
    rounded to even numbers (H.264 yuv420p needs them; see even_size). fps resamples a video to
    that rate (dropping/duplicating frames) or sets the rate of an image sequence (default 25).
    Videos come out at a constant frame rate. `.info` describes the output: size after scaling,
    fps, estimated nframes and duration after trimming, and whether the source has audio.

    Use as a context manager: leaving it ends ffmpeg, on errors and Ctrl-C too.
    Raises UserError for unreadable inputs or when no frame is decoded, DreamFailure when
    decoding fails mid-stream.
    """

    def __init__(self, path, start=None, end=None, frames=None, max_side=None, fps=None):
        self.path, self.start, self.end, self.frames = path, float(start or 0.0), end, frames
        finite = np.isfinite(self.start) and (end is None or np.isfinite(float(end)))  # nan compares False
        if not finite or self.start < 0 or (end is not None and end <= self.start):
            raise UserError(f"invalid time range start={start} end={end}; use 0 <= start < end (seconds)")
        if fps and not (np.isfinite(float(fps)) and float(fps) > 0):
            raise UserError(f"invalid fps {fps}; use a positive frame rate")
        if frames is not None and frames < 1:
            raise UserError(f"invalid frame count {frames}; use a positive number of frames")
        if max_side is not None and max_side < 2:
            raise UserError(f"invalid max_side {max_side}; use at least 2 pixels")
        self._files = _sequence_files(path)
        src = probe_video(path, fps)
        if src.duration and self.start >= src.duration:
            raise UserError(f"start {self.start:g}s is past the end of {path} ({src.duration:.2f}s); use a smaller start")
        self.src, self.fps = src, float(fps or src.fps)
        w, h = even_size(src.width, src.height, max_side)
        stop = min(src.duration, end) if end is not None and src.duration else (end or src.duration)
        n = int(round((stop - self.start) * self.fps)) if stop else 0
        n = min(n, frames) if frames and n else (frames or n)
        self.info = VideoInfo(w, h, self.fps, n, n / self.fps, src.has_audio)
        if self._files is not None:  # a frame too large to decode is a usage error now, not mid-render
            check_image(self._files[0], size=(w, h))
        self._proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        """End the ffmpeg process (if any); safe to call more than once."""
        if self._proc is not None:
            self._proc.close()
            self._proc = None

    def __iter__(self):
        count = 0
        try:
            for frame in self._iter_sequence() if self._files is not None else self._iter_video():
                yield frame
                count += 1
                if self.frames and count >= self.frames:
                    break
        finally:  # also when the caller stops iterating early
            self.close()
        if count == 0:
            raise UserError(f"no frames decoded from {self.path} (start={self.start:g}s, end={self.end}); "
                            "check the time range and that the file holds video")

    def _iter_sequence(self):
        first = round(self.start * self.fps)
        last = len(self._files) if self.end is None else round(self.end * self.fps)
        size = (self.info.width, self.info.height)
        for f in self._files[first:last]:
            got = image_size(f)
            if got != (self.src.width, self.src.height):
                raise UserError(f"image {f} is {got[0]}x{got[1]} but the sequence is "
                                f"{self.src.width}x{self.src.height}; make all frames the same size")
            yield read_image(f, size=size)

    def _iter_video(self):
        w, h = self.info.width, self.info.height
        args = ["-loglevel", "error"] + (["-ss", f"{self.start:.6f}"] if self.start else [])
        if self.end is not None:
            args += ["-t", f"{self.end - self.start:.6f}"]
        filters = [f"fps={self.fps:g}"] if self.fps != self.src.fps else []
        if (w, h) != (self.src.width, self.src.height):
            filters.append(f"scale={w}:{h}:flags=area+{_SWS}")
        args += ["-i", ff_path(self.path), "-map", "0:v:0", "-an", "-sn"]
        args += ["-vf", ",".join(filters)] if filters else []
        args += ["-frames:v", str(self.frames)] if self.frames else []
        args += ["-sws_flags", f"bicubic+{_SWS}", "-fps_mode", "cfr", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        self.close()
        self._proc = proc = Proc(args, stdout=subprocess.PIPE)
        nbytes, count = w * h * 3, 0
        while True:
            buf = bytearray(nbytes)  # a fresh buffer per frame keeps yielded frames independent and writable
            got = proc.p.stdout.readinto(buf)
            while got and got < nbytes:
                more = proc.p.stdout.readinto(memoryview(buf)[got:])
                if not more:
                    break
                got += more
            if got == nbytes:
                count += 1
                yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
                continue
            rc = proc.p.wait()
            if (got or rc != 0) and count == 0:
                raise DreamFailure(f"decoding {self.path} failed: {proc.error_tail()}; re-encode the video "
                                   "(e.g. ffmpeg -i in.mp4 out.mp4) and try again")
            # ffmpeg exits 0 on a truncated file (a cut download): errors logged and frames missing tell it.
            if got or rc != 0 or (count + 1 < self.info.nframes and proc.error_tail() != "no error message"):
                raise SourceEnded(self.path, count, max(count, self.info.nframes), proc.error_tail())
            return


# ----------------------------------------------------------------------------- writing


class VideoWriter:
    """Write HxWx3 uint8 RGB frames to a video, GIF or folder of PNG frames, atomically.

    The kind follows the extension: .mp4/.mov/.mkv (H.264, yuv420p, tagged BT.709, quality =
    CRF, default 18), .webm (VP9, CRF default 32), .gif (one palette per clip, quality ignored),
    or a folder (no extension or trailing '/') of frame_000001.png... `size` (width, height)
    defaults to the first frame's; odd sizes are rounded to even for H.264/VP9 (<= 1 px rescale).

    `audio` names a media file whose first audio stream, trimmed to [audio_start,
    audio_start + audio_duration] seconds, goes with the video; it is padded with silence or cut
    to end exactly with the video. A source without audio gives a silent output; GIF and
    PNG-folder outputs ignore audio with a warning. `.has_audio` tells whether audio is added.

    As a context manager it calls finish() on success and abort() on an exception. On Ctrl-C a
    caller may call finish() itself to keep a playable partial video; __exit__ is then a no-op.
    """

    def __init__(self, path, fps, size=None, quality=None, audio=None, audio_start=0.0, audio_duration=None):
        self.path = Path(str(path))
        self.kind = "frames" if is_folder_path(path) else self.path.suffix.lower()
        if self.kind not in WRITE_VIDEO_EXTS + ("frames",):
            raise UserError(f"cannot write video {path}: unknown extension '{self.kind}'; "
                            f"use one of {' '.join(WRITE_VIDEO_EXTS)} or a folder for PNG frames")
        if not fps or fps <= 0:
            raise UserError(f"invalid fps {fps}; use a positive frame rate")
        self.fps, self.size, self.quality = float(fps), tuple(size) if size else None, quality
        self.has_audio = False
        if audio is not None:
            if self.kind in (".gif", "frames"):
                warnings.warn(f"{self.path.name}: {self.kind.strip('.')} output has no audio track; audio ignored",
                              stacklevel=2)
            else:
                self.has_audio = has_audio(header(audio, "audio source"))
        self._audio = (str(audio), float(audio_start or 0.0), audio_duration) if self.has_audio else None
        self._staged = _Staged(path)
        # With audio, the video is encoded alone first and muxed with the audio in finish(): ffmpeg's
        # single-pass `apad -shortest` races and sometimes overshoots the video by a fraction of a second.
        t = self._staged.temp
        self._video = t.with_name(f"{t.stem}.video{t.suffix}") if self._audio else t
        self._proc = None
        self.count = 0
        self._state = "open"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._state == "open":
            self.abort() if exc_type else self.finish()
        return False

    def write(self, frame) -> None:
        """Append one HxWx3 uint8 RGB frame of the writer's size."""
        frame = check_frame(frame)
        if self._state != "open":
            raise DreamFailure(f"writer for {self.path} is already closed; open a new VideoWriter")
        self.size = self.size or (frame.shape[1], frame.shape[0])
        if frame.shape[1::-1] != self.size:
            raise DreamFailure(f"frame is {frame.shape[1]}x{frame.shape[0]} but {self.path} is "
                               f"{self.size[0]}x{self.size[1]}; resize frames to the writer's size")
        self.count += 1
        if self.kind == "frames":
            write_png(self._staged.temp / _FRAME_NAME.format(self.count), frame)
            return
        if self._proc is None:
            self._proc = Proc(self._encode_args(), stdin=subprocess.PIPE)
        try:
            self._proc.p.stdin.write(np.ascontiguousarray(frame).data)
        except OSError:  # BrokenPipeError: ffmpeg has exited
            self._proc.p.wait()
            raise DreamFailure(f"ffmpeg stopped while writing {self.path}: {self._proc.error_tail()}; "
                               "check the output path, free disk space and the options") from None

    def _encode_args(self) -> list[str]:
        w, h = self.size
        args = ["-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                "-framerate", str(Fraction(self.fps).limit_denominator(1001)), "-i", "-"]
        if self.kind == ".gif":
            # One palette for the whole clip, tuned to the moving parts (stats_mode=diff).
            return args + ["-vf", "split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a",
                           "-loop", "0", ff_path(self._video)]
        # Tag BT.709 explicitly: players assume it for untagged video, and ffmpeg would convert with BT.601.
        vf = (f"scale={w // 2 * 2 or 2}:{h // 2 * 2 or 2}:flags={_SWS}:out_color_matrix=bt709:out_range=tv,"
              "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv")
        if self.kind == ".webm":
            codec = ["-c:v", "libvpx-vp9", "-crf", str(self.quality or 32), "-b:v", "0", "-row-mt", "1",
                     "-deadline", "good", "-cpu-used", "4"]
        else:
            codec = ["-c:v", "libx264", "-crf", str(self.quality or 18), "-preset", "medium"]
        return args + ["-vf", vf, "-pix_fmt", "yuv420p", *codec, *self._container_flags(), ff_path(self._video)]

    def _container_flags(self) -> list[str]:
        return ["-movflags", "+faststart"] if self.kind in (".mp4", ".mov") else []

    def _mux_audio(self) -> None:
        """Copy the encoded video and add the trimmed audio, padded with silence and cut to the video's length."""
        src, start, dur = self._audio
        acodec = ["-c:a", "libopus", "-b:a", "128k"] if self.kind == ".webm" else ["-c:a", "aac", "-b:a", "192k"]
        args = ["-loglevel", "error", "-i", ff_path(self._video), "-ss", f"{start:.6f}"]
        args += (["-t", f"{float(dur):.6f}"] if dur else []) + ["-i", ff_path(src), "-map", "0:v:0", "-map", "1:a:0"]
        args += ["-c:v", "copy", *acodec, "-af", "apad", "-t", f"{self.count / self.fps:.6f}"]
        self._proc = Proc(args + self._container_flags() + [ff_path(self._staged.temp)])
        self._wait("add audio to")

    def _wait(self, doing: str) -> None:
        """Close the running ffmpeg's input, wait for it to finish, and abort with DreamFailure if it failed."""
        proc, self._proc = self._proc, None
        if proc.p.stdin:
            with contextlib.suppress(OSError):
                proc.p.stdin.close()
        rc = proc.wait()
        tail = proc.error_tail() if rc else ""
        proc.close()
        if rc:
            self.abort()
            raise DreamFailure(f"ffmpeg failed to {doing} {self.path}: {tail}; check the output options")

    def finish(self) -> Path:
        """Let ffmpeg finalize the file and move it into place; returns the final path."""
        if self._state == "finished":
            return self.path
        if self._state != "open":
            raise DreamFailure(f"writer for {self.path} was aborted; nothing to finish")
        if self.count == 0:
            self.abort()
            raise DreamFailure(f"no frames were written to {self.path}; check that the input produced frames")
        if self._proc is not None:
            self._wait("write")
        if self._audio:
            self._mux_audio()
            self._video.unlink()
        self._state = "finished"
        return self._staged.commit()

    def abort(self) -> None:
        """Stop ffmpeg at once and delete the partial output; safe to call more than once."""
        if self._proc is not None:
            self._proc.close()
            self._proc = None
        if self._state == "open":
            self._staged.discard()
            if self._audio:
                with contextlib.suppress(FileNotFoundError):
                    self._video.unlink()
            self._state = "aborted"
