"""Which Keras backend (TensorFlow, JAX, PyTorch) and device the engine runs on.

Keras fixes its backend when it is first imported, so :func:`activate` must run before anything
imports ``keras``: it sets ``KERAS_BACKEND`` (and the device hints each library reads at import),
imports Keras and returns the backend module. Each backend module (``tensorflow``, ``jax``,
``torch`` here) holds the only backend-specific code of the engine: the gradient of one tile,
the tiled gradient and the ascent loop (:class:`Loop`), plus device probing.

Choice order: an explicit ``backend`` argument (``--backend``), else ``DREAMVIDEO_BACKEND``, else a
set ``KERAS_BACKEND`` naming one of :data:`BACKENDS`, else ``auto`` (:func:`choose_backend`): the
backend Keras already runs on in this process; else TensorFlow when it sees a GPU or when no other
backend sees one; else the installed backend that sees a GPU (torch, then jax). Which GPUs a
library sees is asked in a child process (importing two of them here would load both runtimes),
and only where the machine has GPU hardware (:func:`gpu_hardware`), so a CPU-only start costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import importlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys

from ..errors import UserError
from ..settings import BACKEND_CHOICES, BACKENDS, DEVICES, default_backend  # noqa: F401  (re-exported)

# What to run when the backend's library is missing (one line, as every missing optional library).
INSTALL = {
    "tensorflow": 'pip install tensorflow (or pip install "dreamvideo")',
    "jax": 'pip install "dreamvideo[jax]"',
    "torch": "install PyTorch for your platform, see pytorch.org",
}
# What to install when --device gpu finds no GPU.
GPU_INSTALL = {
    "tensorflow": 'pip install "tensorflow[and-cuda]" (Linux; on Windows and macOS use --backend torch or jax)',
    "jax": 'pip install "jax[cuda12]" (or the plugin for your GPU, see the JAX install guide)',
    "torch": "a CUDA, ROCm or MPS build of PyTorch, see pytorch.org",
}
_MODULE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
# The install that lets a backend use this machine's GPU, by backend and GPU maker (gpu_hardware()).
GPU_FIX = {
    ("tensorflow", "NVIDIA"): 'pip install "tensorflow[and-cuda]" (Linux), or PyTorch with CUDA and --backend torch',
    ("tensorflow", "AMD"): "pip install tensorflow-rocm, or PyTorch for ROCm and --backend torch",
    ("tensorflow", "Apple"): "pip install tensorflow-metal, or pip install torch and --backend torch",
    ("torch", "NVIDIA"): "pip install torch --index-url https://download.pytorch.org/whl/cu128",
    ("torch", "AMD"): "pip install torch --index-url https://download.pytorch.org/whl/rocm6.4",
    ("torch", "Apple"): "pip install torch (the macOS build uses the GPU through MPS)",
    ("jax", "NVIDIA"): 'pip install "jax[cuda12]"',
    ("jax", "AMD"): "JAX's ROCm plugin (see the JAX install guide), or PyTorch for ROCm and --backend torch",
    ("jax", "Apple"): "pip install jax-metal, or pip install torch and --backend torch",
}

_active: tuple[str, str] | None = None
KERAS_BACKEND_AT_START = os.environ.get("KERAS_BACKEND")  # before activate() sets it


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence native start-up chatter (CUDA probing, oneDNN notes, XLA) that ignores the
    libraries' log-level settings; DREAMVIDEO_DEBUG=1 keeps it."""
    if os.environ.get("DREAMVIDEO_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def active() -> tuple[str, str] | None:
    """``(backend, device)`` once :func:`activate` has run, else None."""
    return _active


def activate(backend: str | None = None, device: str = "auto"):
    """Choose the backend and device, import Keras on it, and return the backend module.

    Raises a one-line :class:`UserError` for an unknown name, a missing library, a GPU asked for
    and not visible, or Keras already imported on another backend.
    """
    global _active
    backend = (backend or default_backend()).strip().lower()
    device = (device or "auto").strip().lower()
    if backend == "auto":
        backend = choose_backend()[0]
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; use one of {', '.join(BACKEND_CHOICES)} as `backend` "
                        f"(or DREAMVIDEO_BACKEND)")
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}; use one of {', '.join(DEVICES)} as `device`")
    if _active is not None and _active[0] == backend:
        if device in ("auto", _active[1]):
            return module(backend)
        if device == "gpu" and module(backend).start("gpu") != "gpu":
            raise UserError(f"a GPU was asked for (`device`) but {backend} sees no GPU; install {GPU_INSTALL[backend]}, "
                            f"or cpu as `device`")
        raise UserError(f"the {backend} backend already runs on {_active[1]} in this process; {device} as "
                        f"`device` needs a new process")
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise UserError(f"Keras is already running on {current} in this process, so {backend} cannot be the "
                            f"`backend`; it must be chosen before Keras is imported (start a new process with "
                            f"{backend} as `backend`, or DREAMVIDEO_BACKEND={backend})")
    if not installed(backend):
        raise UserError(f"the {backend} backend needs {_MODULE[backend]}, which is not installed: {INSTALL[backend]}")
    os.environ["KERAS_BACKEND"] = backend
    mod = module(backend)
    mod.prepare(device)  # device hints the library reads when it is imported
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_native_stderr():
        importlib.import_module("keras")  # Keras reads KERAS_BACKEND when it is first imported

        resolved = mod.start(device)
    if device == "gpu" and resolved != "gpu":
        raise UserError(f"a GPU was asked for (`device`) but {backend} sees no GPU; install {GPU_INSTALL[backend]}, "
                        f"or cpu as `device`")
    _active = (backend, resolved)
    if device == "auto" and resolved == "cpu":
        hint = idle_gpu_hint(backend)
        if hint:
            print(f"dreamvideo: {hint}", file=sys.stderr)
    return mod


def gpu_hardware() -> str | None:
    """The maker of a GPU this machine has, whatever any library sees: NVIDIA (``nvidia-smi`` or
    ``/dev/nvidia*``), AMD (``/dev/kfd``), Apple (Apple silicon); None without one."""
    if shutil.which("nvidia-smi") or glob.glob("/dev/nvidia[0-9]*"):
        return "NVIDIA"
    if os.path.exists("/dev/kfd"):
        return "AMD"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "Apple"
    return None


_PROBE = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
name = sys.argv[1]
try:
    if name == "tensorflow":
        import tensorflow as tf
        seen = [d.name for d in tf.config.list_physical_devices("GPU")]
    elif name == "torch":
        from dreamvideo.backends.torch import gpus
        seen = gpus()
    else:
        import jax
        seen = [str(d) for d in jax.devices() if d.platform != "cpu"]
except Exception as e:
    seen = ["error: " + type(e).__name__]
print(json.dumps(seen))
"""


@functools.lru_cache(maxsize=None)
def gpus_seen(backend: str) -> tuple[str, ...]:
    """The GPUs an installed backend's library sees, asked in a child process (empty if none or not installed)."""
    if not installed(backend):
        return ()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), os.environ.get("PYTHONPATH", "")]))
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE, backend], capture_output=True, text=True, timeout=120, env=env)
        seen = json.loads(r.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError, OSError):
        return ()
    return tuple(d for d in seen if not d.startswith("error:"))


def choose_backend() -> tuple[str, str]:
    """``(backend, why)`` for ``--backend auto`` (module docstring)."""
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current in BACKENDS:
            return current, f"Keras already runs on {current} in this process"
    have = [b for b in ("tensorflow", "torch", "jax") if installed(b)]
    if not have:
        raise UserError(f"no Keras backend is installed: {INSTALL['tensorflow']}")
    hardware = gpu_hardware()
    if hardware is None:
        return have[0], f"no GPU in this machine; {have[0]} is the fastest installed on a CPU"
    if "tensorflow" in have and gpus_seen("tensorflow"):
        return "tensorflow", "tensorflow sees the GPU"
    for b in ("torch", "jax"):
        if b in have and gpus_seen(b):
            return b, f"{b} sees the GPU" + ("" if "tensorflow" not in have else "; tensorflow does not")
    return have[0], f"no installed backend sees the {hardware} GPU; {have[0]} runs on the CPU"


def idle_gpu_hint(backend: str) -> str | None:
    """One line when this machine has a GPU that ``backend`` (running on the CPU) cannot use: the fix."""
    hardware = gpu_hardware()
    if hardware is None:
        return None
    return (f"this machine has an {hardware} GPU, but {backend} runs on the CPU; to dream on the GPU: "
            f"{GPU_FIX[(backend, hardware)]}")


def installed(backend: str) -> bool:
    """Whether the backend's library can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(_MODULE[backend]) is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False


def module(backend: str):
    return importlib.import_module(f".{backend}", __name__)


def current():
    """The active backend module, activating the default backend first if none is."""
    if _active is None:
        return activate()
    return module(_active[0])
