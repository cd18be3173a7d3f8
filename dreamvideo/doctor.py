"""``dreamvideo doctor``: what the engine will run on here, and why.

Shows the backend and its library versions, the device (and its name), which backends are
installed, and what ``--precision auto`` means on this machine with the measurement behind it
(measuring it now if it was never measured for this backend, device and library versions).
"""

from __future__ import annotations


def doctor(ms) -> str:
    """A report for ``ms`` (a ModelSettings: its ``backend``, ``device`` and ``precision``); one fact a line."""
    from . import backends

    mod = backends.activate(ms.backend, ms.device)
    name, device = backends.active()
    lines = [
        f"backend:    {name} ({mod.versions()})"
        + (f"; KERAS_BACKEND={backends.KERAS_BACKEND_AT_START} was set"
           if backends.KERAS_BACKEND_AT_START else ""),
        f"device:     {device}: {mod.device_name(device)} (asked: {ms.device})",
        "installed:  " + ", ".join(f"{b} {'yes' if backends.installed(b) else 'no (' + backends.INSTALL[b] + ')'}"
                                   for b in backends.BACKENDS),
    ]
    from .precision import cache_path, choose

    choice = choose(announce=False)
    timing = ", ".join(f"{p} {t * 1000:.1f} ms" for p, t in choice.timings.items() if t)
    how = "cached" if choice.cached else "measured now"
    if ms.precision == "auto":
        lines.append(f"precision:  auto = {choice.precision} ({how}): {choice.reason}")
    else:
        lines.append(f"precision:  {ms.precision} (asked); auto would be {choice.precision} ({how}): {choice.reason}")
    lines.append(f"probe step: {timing} (a small conv net, {cache_path()})")
    return "\n".join(lines)
