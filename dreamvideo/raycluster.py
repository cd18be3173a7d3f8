"""Ray for dreamvideo: importing it (a one-line error without it), a cluster for the length of a
command (local and localhost-only, or joined), and each worker's share of the machine.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

from .errors import DreamFailure, UserError


RAY_INSTALL = 'pip install "dreamvideo[ray]"'


def import_ray():
    """The ``ray`` module, or a one-line UserError naming the install command."""
    try:
        import ray
    except ImportError:
        raise UserError(f"rendering with workers needs Ray; install it with: {RAY_INSTALL}") from None
    return ray


def _sigterm_raises():
    """SIGTERM raises :class:`~dreamvideo.signals.Terminated` (Ctrl-C's careful way out); returns the
    handler that was there. ``ray.init`` installs its own handler (exit at once), which would skip
    the partial file and leave the cluster to ``atexit``."""
    import signal

    from .signals import Terminated

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def cluster(address: str = ""):
    """A Ray session for one command: joins ``address`` (``auto`` or ``HOST:PORT``) or starts a
    local cluster of this machine's CPUs (and GPUs) on localhost, without the dashboard; a cluster
    started here is shut down on leaving the block, however it is left. Yields the ``ray`` module.
    If Ray is already initialized (a caller's own session), it is used and left as it is. Ray's own
    log lines go to a file, never to the terminal."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    with _ray_lines_to_file():
        with _session(ray, address) as r:
            yield r


@contextlib.contextmanager
def _ray_lines_to_file():
    """Ray's C++ core prints to the process's stderr (file descriptor 2) whatever it logs at warning
    level: point that descriptor at a file for the session (``<temp>/dreamvideo-ray-<pid>.log``, kept
    only when the command fails), while Python's ``sys.stderr`` (progress, messages) stays on the terminal."""
    import sys
    import tempfile

    path = os.path.join(tempfile.gettempdir(), f"dreamvideo-ray-{os.getpid()}.log")
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # replaced (a test's capture): only the descriptor moves
        real = False
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        yield
        return
    before = sys.stderr
    ok = False
    try:
        os.dup2(log, 2)
        if real:
            sys.stderr = open(os.dup(saved), "w", encoding=before.encoding, errors=before.errors,
                              buffering=1, closefd=True)
        yield
        ok = True
    finally:
        if real:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
                sys.stderr.close()
            sys.stderr = before
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log)
        if ok or os.path.getsize(path) == 0:
            with contextlib.suppress(OSError):
                os.unlink(path)


@contextlib.contextmanager
def _session(ray, address: str):
    import logging
    import signal

    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    from ray._private import ray_constants  # private, but the only switch for a localhost-only node

    cluster_mode = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    logging.getLogger("ray").setLevel(logging.ERROR)  # Ray's start-up notes would break the one progress line
    before = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    mode_before = os.environ.get("RAY_AUTH_MODE")
    try:
        if address:
            _present_token(_check_reachable(address))
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise UserError(f"cannot join the Ray cluster at {address}: {str(e).splitlines()[0].rstrip('.')}; "
                                f"start it with `ray start --head` or use --workers N") from None
        else:
            if cluster_mode is not None:
                ray_constants.ENABLE_RAY_CLUSTER = False  # every Ray process binds to 127.0.0.1 only
            try:
                _reset_token_cache()  # the token its processes will read, not one an earlier session left cached
                # "local": a cluster of its own even where `ray start` made one on this machine (or RAY_ADDRESS is set)
                ray.init(address="local", num_cpus=_cpu_count(), object_store_memory=_object_store_bytes(), **kwargs)
            except Exception as e:  # noqa: BLE001 - Ray raises a plain Exception when its start-up times out
                raise DreamFailure(f"the local Ray cluster did not start: {str(e).splitlines()[0]}; "
                                   f"if the machine is busy, try again later") from None
        _sigterm_raises()
        yield ray
    finally:
        try:
            with contextlib.suppress(Exception):
                ray.shutdown()  # also after a failed start, whose half-started processes it ends
        finally:
            if cluster_mode is not None:
                ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
            if os.environ.get("RAY_AUTH_MODE") != mode_before:  # as the caller had it (the API's later sessions)
                if mode_before is None:
                    os.environ.pop("RAY_AUTH_MODE", None)
                else:
                    os.environ["RAY_AUTH_MODE"] = mode_before
            if before is not None:
                signal.signal(signal.SIGTERM, before)


TOKEN_FIX = ("set RAY_AUTH_TOKEN to the cluster's token (print it on the head node with `ray get-auth-token`), "
             "or put it in ~/.ray/auth_token or a file named by RAY_AUTH_TOKEN_PATH")


def find_token() -> tuple[str, str]:
    """The Ray token this process would present and where it was found, in Ray's order:
    ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` names, ``~/.ray/auth_token``; ``("", "")`` for none."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    for where in (os.environ.get("RAY_AUTH_TOKEN_PATH", ""), os.path.expanduser("~/.ray/auth_token")):
        if where:
            try:
                with open(where, encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError:
                continue
            if token:
                return token, where
    return "", ""


def _gcs_accepts(address: str, token: str):
    """Whether the cluster's GCS at ``HOST:PORT`` answers a call carrying ``token`` ("" for none):
    True, False (refused: it wants a token, or another one), or None when that cannot be told."""
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:
        return None
    md = [("authorization", f"Bearer {token}")] if token else None
    try:
        with grpc.insecure_channel(address) as ch:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(ch).GetClusterId(
                gcs_service_pb2.GetClusterIdRequest(), timeout=10, metadata=md)
        return True
    except grpc.RpcError as e:
        return False if e.code() == grpc.StatusCode.UNAUTHENTICATED else None
    except Exception:  # noqa: BLE001 - not a GCS we can ask: ray.init says what it says
        return None


def _present_token(address: str) -> None:
    """Join a cluster that requires Ray's token authentication with the token from Ray's usual places
    (:func:`find_token`); a missing or refused token is a one-line UserError naming the fix, said at
    once (Ray would retry for 20 s, printing its C++ log lines). Never prints the token."""
    if not address or _gcs_accepts(address, "") is not False:
        return  # no token needed (or cannot tell: Ray's own way then)
    token, where = find_token()
    if not token:
        raise UserError(f"the Ray cluster at {address} requires a token and none was found; {TOKEN_FIX}")
    if _gcs_accepts(address, token) is False:
        raise UserError(f"the Ray cluster at {address} refused the token from {where}; {TOKEN_FIX}")
    os.environ["RAY_AUTH_MODE"] = "token"  # how this process (and Ray's) present it
    try:
        from ray._private.authentication.authentication_token_setup import _enable_token_auth

        _enable_token_auth()  # private: also refreshes Ray's cached config, read at import
    except Exception:  # noqa: BLE001 - without it the variable set above still reaches ray.init
        pass
    _reset_token_cache()


def _reset_token_cache() -> None:
    """Ray keeps the first token it read for the life of the process (an earlier cluster's): read it again."""
    try:
        from ray._raylet import AuthenticationTokenLoader

        AuthenticationTokenLoader.instance().reset_cache()
    except Exception:  # noqa: BLE001 - an older or newer Ray without it
        pass


def _check_reachable(address: str) -> str:
    """A ``HOST:PORT`` that does not answer is a one-line UserError at once (Ray would retry for minutes).
    Returns the ``HOST:PORT`` (``auto`` resolved; ``""`` where it cannot be told)."""
    import socket

    if address == "auto":  # the cluster `ray start` recorded last (or RAY_ADDRESS), which may be long gone
        try:
            from ray._private.services import canonicalize_bootstrap_address

            address = canonicalize_bootstrap_address("auto") or ""
        except Exception:  # noqa: BLE001 - private API: let ray.init find it and say what it says
            return ""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return ""
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise UserError(f"cannot reach a Ray cluster at {address}: {e.strerror or e}; start one there with "
                        f"`ray start --head`, or use --workers N for a local one") from None
    return address


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _object_store_bytes() -> int:
    # Frames pass through it a few per worker at a time; Ray's default (30% of RAM) is far more than
    # that and slows the start. Past this, Ray spills to disk rather than failing.
    return 1 << 30


def worker_resources(ray, workers: int) -> tuple[int, dict]:
    """How many workers to run and the Ray resources of each: one GPU per worker where the cluster
    has GPUs (``workers`` 0: one per GPU), else the CPUs divided between them (0: one per node)."""
    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), max(1.0, float(res.get("CPU", 1)))
    if gpus:
        n = workers or gpus
        return n, {"num_gpus": min(1.0, gpus / n), "num_cpus": max(0.01, min(1.0, cpus / n))}
    n = workers or max(1, len([x for x in ray.nodes() if x.get("Alive")]))
    return n, {"num_cpus": cpus / n}


def limit_threads(threads: int) -> None:
    """Give this process's TensorFlow and OpenCV ``threads`` compute threads (workers share a machine's
    cores; TensorFlow would take them all in each worker). Before TensorFlow makes its first op."""
    import cv2

    cv2.setNumThreads(1)  # flow and PNG run beside the dream
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    except (ImportError, RuntimeError):  # no TensorFlow backend, or it already started (threads then fixed)
        pass


def drain_cancelled(ray, gens: list, seconds: float) -> None:
    """Wait up to ``seconds`` for cancelled generator tasks to end (they finalize their files)."""
    deadline = time.monotonic() + seconds
    while gens and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            ready, _ = ray.wait(gens, num_returns=1, timeout=0.5)
            for g in ready:
                try:
                    next(g)
                except StopIteration:
                    gens.remove(g)
                except Exception:  # noqa: BLE001 - ended anyhow
                    gens.remove(g)
