"""``dreamvideo doctor``: what the engine will run on here, and why.

Shows the backend and its library versions and why it was chosen, the device (and its name), each
backend with whether it is installed and the GPUs it sees, one line when the machine has a GPU the
chosen backend cannot use (with the install that fixes it), and what ``--precision auto`` means on
this machine with the measurement behind it (measuring it now if it was never measured for this
backend, device and library versions).
"""

from __future__ import annotations


def doctor(ms) -> str:
    """A report for ``ms`` (a ModelSettings: its ``backend``, ``device`` and ``precision``); one fact a line."""
    from . import backends

    asked = (ms.backend or "auto").strip().lower()
    why = backends.choose_backend()[1] if asked == "auto" else "asked"
    mod = backends.activate(ms.backend, ms.device)
    name, device = backends.active()
    hardware = backends.gpu_hardware()
    lines = [
        f"backend:    {name} ({mod.versions()}): {'auto, ' if asked == 'auto' else ''}{why}"
        + (f"; KERAS_BACKEND={backends.KERAS_BACKEND_AT_START} was set"
           if backends.KERAS_BACKEND_AT_START else ""),
        f"device:     {device}: {mod.device_name(device)} (asked: {ms.device})",
    ]
    for b in backends.BACKENDS:
        if not backends.installed(b):
            lines.append(f"  {b + ':':<12}not installed ({backends.INSTALL[b]})")
        elif hardware is None:
            lines.append(f"  {b + ':':<12}installed; sees the CPU (no GPU in this machine)")
        else:
            seen = backends.gpus_seen(b)
            lines.append(f"  {b + ':':<12}installed; sees " + (", ".join(seen) if seen else "no GPU, only the CPU"))
    if device == "cpu" and (hint := backends.idle_gpu_hint(name)):
        lines.append(f"gpu idle:   {hint}")
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
