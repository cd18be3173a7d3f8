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


def node_report() -> dict:
    """What this machine can dream with (run on each Ray node by :func:`doctor_cluster`)."""
    from . import __version__, backends

    have = [b for b in backends.BACKENDS if backends.installed(b)]
    try:
        name, why = backends.choose_backend()
    except Exception as e:  # noqa: BLE001 - no backend installed: said in the line
        return {"version": __version__, "backend": "", "why": str(e), "gpus": [], "installed": have}
    return {"version": __version__, "backend": name, "why": why, "installed": have,
            "gpus": list(backends.gpus_seen(name)) if backends.gpu_hardware() else []}


def doctor_cluster(address: str, timeout: float = 120.0) -> str:
    """A report of the Ray cluster at ``address``: each live node, its CPUs and GPUs, and what it can
    run (dreamvideo installed there, the backend it would choose, the GPUs that backend sees), asked
    of the node itself. One node a line."""
    from .raycluster import cluster

    with cluster(address) as ray:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        task = ray.remote(num_cpus=0, max_retries=0)(node_report)
        asks = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
                for n in nodes]
        lines = [f"cluster:    {address}: {len(nodes)} node{'s' * (len(nodes) != 1)}"]
        workers = 0
        for n, ask in zip(nodes, asks):
            res = n.get("Resources", {})
            cpus, gpus = int(res.get("CPU", 0)), int(res.get("GPU", 0))
            head = " head" if "node:__internal_head__" in res else ""
            where = f"node {n.get('NodeManagerAddress', '?')} ({n['NodeID'][:8]}){head}: {cpus} CPUs, {gpus} GPUs"
            try:
                r = ray.get(ask, timeout=timeout)
            except Exception as e:  # noqa: BLE001 - what the node could not do is the report
                text = str(e)
                why = ("dreamvideo is not installed there: pip install \"dreamvideo[ray]\" on it"
                       if "ModuleNotFoundError" in text or "No module named" in text
                       else f"did not answer: {text.splitlines()[0] if text else type(e).__name__}")
                lines.append(f"  {where}; {why}")
                continue
            if not r["backend"]:
                lines.append(f"  {where}; dreamvideo {r['version']}; {r['why']}")
                continue
            gpu = f"dreams on {', '.join(r['gpus'])}" if r["gpus"] else "dreams on the CPU"
            runs = "runs workers" if cpus or gpus else "runs no worker (offers no CPU or GPU)"
            workers += bool(cpus or gpus)
            lines.append(f"  {where}; dreamvideo {r['version']}, {r['backend']} ({r['why']}); {gpu}; {runs}")
        lines.append(f"workers:    {workers} node{'s' * (workers != 1)} can run workers"
                     + ("; start one with `ray start --address ...` on a machine with dreamvideo" if not workers else ""))
    return "\n".join(lines)
