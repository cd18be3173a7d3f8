"""Error types that the CLI turns into one-line messages.

A :class:`UserError` is a mistake the user can fix (bad flag, missing file): exit code 2.
A :class:`DreamFailure` is a runtime failure (ffmpeg died, a file is corrupt): exit code 1.
Both carry a message that names the problem and, where there is one, the fix.
"""


class DreamError(Exception):
    """Base of all dreamvideo errors that are reported as one line."""

    exit_code = 1


class UserError(DreamError, ValueError):
    """The user asked for something impossible or wrong; exit code 2."""

    exit_code = 2


class DreamFailure(DreamError, RuntimeError):
    """Something failed at run time (decode, encode, model load); exit code 1."""

    exit_code = 1


class Interrupted(DreamError):
    """A render stopped by Ctrl-C, SIGTERM or a cancelling progress callback: what was done is
    finalized as a playable file and the work folder keeps the state to resume."""

    exit_code = 130

    def __init__(self, done: int, total: int, output, workdir, signal_name: str = ""):
        self.done, self.total, self.output, self.workdir = done, total, output, workdir
        self.signal_name = signal_name
        if signal_name == "SIGTERM":
            self.exit_code = 143  # 128 + SIGTERM, as a shell reports a process ended by it
        what = f"stopped by {signal_name}" if signal_name else "interrupted"
        super().__init__(f"{what} after {done}/{total} frames; {output} holds them, "
                         f"and {workdir} keeps the state to resume")


class SourceEnded(DreamFailure):
    """A source that ended before its last frame (a truncated download, a corrupt tail): raised by the
    reader after its last good frame; the frame loop then finalizes the frames done and says so."""

    def __init__(self, path, decoded: int, expected: int, detail: str = ""):
        self.path, self.decoded, self.expected, self.detail = path, decoded, expected, detail
        self.output = None
        super().__init__(f"decoding {path} stopped after {decoded} of {expected} frames: {detail}; the file looks "
                         f"truncated or damaged: re-download or re-encode it")

    def finalized(self, written: int, output, workdir) -> "SourceEnded":
        """The message once the ``written`` frames done are a playable ``output`` (``workdir`` keeps them)."""
        self.output = output
        self.head = (f"{self.path} ended after {self.decoded} of {self.expected} frames (the file looks truncated "
                     f"or damaged); wrote the {written} frames done to {output}, and {workdir} keeps them")
        self.args = (f"{self.head}; once the file is whole again, `resume` continues",)
        return self


def as_flags(message) -> str:
    """A message as the command line and the web page show it: a setting named `field_name` (in
    backquotes, as the core names it) becomes its flag, --field-name."""
    import re

    return re.sub(r"`([a-z][a-z0-9_]*)`", lambda m: "--" + m[1].replace("_", "-"), str(message))
