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
