"""Which Keras backend (TensorFlow, JAX, PyTorch) and device the engine runs on.

Keras fixes its backend when it is first imported, so :func:`activate` must run before anything
imports ``keras``: it sets ``KERAS_BACKEND`` (and the device hints each library reads at import),
imports Keras and returns the backend module. Each backend module (``tensorflow``, ``jax``,
``torch`` here) holds the only backend-specific code of the engine: the gradient of one tile,
the tiled gradient and the ascent loop (:class:`Loop`), plus device probing.

Choice order: an explicit ``backend`` argument (``--backend``), else ``DREAMVIDEO_BACKEND``, else a
set ``KERAS_BACKEND`` naming one of :data:`BACKENDS`, else ``tensorflow``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys

from ..errors import UserError
from ..settings import BACKENDS, DEVICES, default_backend  # noqa: F401  (re-exported)

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
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)} as `backend` "
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
        import keras  # noqa: F401

        resolved = mod.start(device)
    if device == "gpu" and resolved != "gpu":
        raise UserError(f"a GPU was asked for (`device`) but {backend} sees no GPU; install {GPU_INSTALL[backend]}, "
                        f"or cpu as `device`")
    _active = (backend, resolved)
    return mod


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
