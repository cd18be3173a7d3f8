"""Batches of independent jobs on Ray: a TOML file of ``[[job]]`` tables (images, videos, zooms), each
job one Ray task, each resumable, with one progress bar (``dreamvideo batch JOBS.toml``).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

from . import guard
from .errors import DreamFailure, UserError
from .raycluster import cluster, drain_cancelled, import_ray, limit_threads, worker_resources
from .settings import DistributedSettings
from .urls import is_url


BATCH_KINDS = ("image", "video", "zoom")
_BATCH_KEYS = ("kind", "input", "output", "preset")


@dataclass(frozen=True)
class BatchJob:
    """One ``[[job]]`` of a batch file: a job of ``kind`` with its typed flat ``options``."""

    number: int
    kind: str
    input: Optional[str]
    output: str
    seed: int = 0
    max_side: Optional[int] = None
    options: tuple = ()  # ((name, value), ...): hashable, picklable

    @property
    def label(self) -> str:
        return f"job {self.number} ({self.output})"


def _batch_value(kind: str, key: str, value, label: str):
    """A batch file's ``key = value`` typed as the field of that name in a ``kind`` job's settings."""
    from . import presets
    from .settings import KIND_SECTIONS, MOVING, SECTIONS, TOP_LEVEL

    if key in TOP_LEVEL:
        return presets.top_value(key, value, label)
    homes = [s for s in KIND_SECTIONS[kind] if key in {f.name for f in fields(SECTIONS[s])}]
    if kind != "image" and key in MOVING:
        homes = ["schedules"]  # a moving render schedules its steps and step size
    if not homes:
        every = sorted({f.name for s in KIND_SECTIONS[kind] for f in fields(SECTIONS[s])} | set(TOP_LEVEL)
                       | set(_BATCH_KEYS))
        raise UserError(f"{label}: {key!r} is no option of a {kind} job{presets.nearest(key, every)}")
    f = {x.name: x for x in fields(SECTIONS[homes[0]])}[key]
    if isinstance(value, (dict, list)):
        raise UserError(f"{label}: {key} must be a string, a number or true/false, not {value!r}")
    try:
        return presets.convert_value(f, value, label, key)
    except (ValueError, TypeError):
        want = {"int": "a whole number", "float": "a number"}.get(type(f.default).__name__, "valid")
        raise UserError(f"{label}: {key} = {value!r} is not {want}") from None


def read_batch(path) -> list[BatchJob]:
    """The jobs of a batch file (TOML): an optional ``[defaults]`` table every job starts from, then
    one ``[[job]]`` table per job with ``kind`` (image, video or zoom), ``input`` (not for a zoom with
    ``from_noise``), ``output``, optionally ``preset`` (a name or a .toml file), ``seed``,
    ``max_side`` and any option of that kind's command by its field name (``steps = "12"``,
    ``layers = "mixed4"``, ``zoom = "1.0 + 0.04*beat"``, ``color_match = false``). The job's own
    keys win over its preset's, which win over the defaults. Relative paths are from the batch
    file's folder. Mistakes are one-line UserErrors naming the job."""
    from . import presets

    path = Path(str(path))
    try:
        with open(path, "rb") as fh:
            data = presets.tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"batch file {path} not found") from None
    except presets.tomllib.TOMLDecodeError as e:
        raise UserError(f"batch file {path}: not valid TOML: {str(e).splitlines()[0]}") from None
    except OSError as e:
        raise UserError(f"cannot read batch file {path}: {e.strerror or e}") from None
    extra = set(data) - {"defaults", "job"}
    if extra:
        raise UserError(f"batch file {path}: unknown table or key {sorted(extra)[0]!r}; use [defaults] and [[job]]")
    defaults, tables = data.get("defaults", {}), data.get("job", [])
    if not isinstance(defaults, dict) or not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UserError(f"batch file {path}: write [defaults] once and one [[job]] table per job")
    if not tables:
        raise UserError(f"batch file {path} has no [[job]] tables; add one per render")
    here = path.parent

    def where(p):
        return str(p if is_url(p) or Path(p).is_absolute() else here / p)

    jobs, outputs, job_reads = [], {}, {}
    for n, table in enumerate(tables, 1):
        merged = {**defaults, **table}
        label = f"{path.name} job {n}"
        kind = merged.pop("kind", None)
        if kind not in BATCH_KINDS:
            raise UserError(f"{label}: kind must be one of {', '.join(BATCH_KINDS)}, not {kind!r}")
        output = merged.pop("output", None)
        if not isinstance(output, str) or not output:
            raise UserError(f"{label}: give its output file, e.g. output = \"out/{n}.mp4\"")
        inp = merged.pop("input", None)
        if inp is not None and not isinstance(inp, str):
            raise UserError(f"{label}: input must be a file name (a string), not {inp!r}")
        opts, top = {}, {"seed": 0, "max_side": None}
        preset = merged.pop("preset", None)
        preset_file = None
        if preset is not None:
            p = str(preset)
            preset_file = where(p) if p.endswith(".toml") else None
            for section, values in presets.resolve(where(p) if p.endswith(".toml") else p, kind).items():
                (top if section is None else opts).update(values)
        for key, value in merged.items():
            v = _batch_value(kind, key, value, label)
            (top if key in top else opts)[key] = v
        for key in ("guide", "audio", "model", "weights"):
            if isinstance(opts.get(key), str) and opts[key] and not is_url(opts[key]) and (here / opts[key]).exists():
                opts[key] = where(opts[key])  # files, not names ("imagenet", "inception_v3")
        out = where(output)
        if Path(out).resolve() in outputs:
            raise UserError(f"{label} writes {output}, as job {outputs[Path(out).resolve()]} does; give each "
                            f"job its own output")
        outputs[Path(out).resolve()] = n
        if inp is None and not (kind == "zoom" and opts.get("from_noise")):
            raise UserError(f"{label}: give its input file (or, for a zoom, from_noise = \"WxH\")")
        jobs.append(BatchJob(n, kind, where(inp) if inp else None, out, top["seed"], top["max_side"],
                             tuple(sorted(opts.items()))))
        job_reads[n] = guard.reads(jobs[-1].input, opts, preset_file)
        if jobs[-1].input and not is_url(jobs[-1].input) and not Path(jobs[-1].input).exists():  # e.g. another job's output, not made yet
            job_reads[n].append(guard.Read("input", jobs[-1].input))
    # The jobs run at once, in any order: no job writes what any job reads, or what another writes.
    for job in jobs:
        others = [r.of(f"job {k}'s") for k, rs in job_reads.items() if k != job.number for r in rs]
        others += [guard.Read("output", o.output, f"job {o.number}'s") for o in jobs if o is not job]
        try:
            guard.check(job.output, job_reads[job.number] + others)
        except UserError as e:
            raise UserError(f"{path.name} job {job.number}: {e}") from None
    return jobs


def run_batch_job(job: BatchJob, resume: bool, progress=None) -> str:
    """Run one job (in a worker). With ``resume``, a job whose work folder is there carries on and a
    job whose output is there and complete is skipped. Returns what became of it, one line."""
    from . import jobs as J
    from .resume import workdir_path

    opts = dict(job.options)
    work = workdir_path(job.output)
    if job.kind == "image":
        if resume and Path(job.output).is_file():
            return f"{job.output} (kept)"
        if progress:
            progress(0, 1)
        J.dream_image(job.input, job.output, seed=job.seed, max_side=job.max_side, **opts)
        if progress:
            progress(1, 1)
        return str(job.output)
    carry_on = resume and (work / "settings.json").is_file()
    if resume and not carry_on and Path(job.output).exists():
        return f"{job.output} (kept)"
    run = J.dream_video if job.kind == "video" else J.zoom
    return str(run(job.input, job.output, seed=job.seed, max_side=job.max_side, resume=carry_on, quiet=True,
                   progress=progress, **opts))


def _batch_task(job: BatchJob, resume: bool, threads: int, driver_node: str = "", shipped: Optional[tuple] = None):
    """Generator task: runs the job in a thread and yields ``("progress", done, total)`` as it goes,
    then ``("done", line)``. When Ray cancels it, the job is stopped the careful way (a playable
    partial file, the work folder kept for ``--resume``).

    On a node other than the driver's (``driver_node``), the job reads its files from ``shipped``
    (``(input, options)`` as :mod:`dreamvideo.shipped` sent them), renders into a folder of this node,
    and sends its output back as ``("file", relative name, bytes)`` pieces before ``("done", line)``:
    that node needs no disk of the driver's."""
    import queue
    import shutil
    import tempfile

    import ray

    limit_threads(threads)
    q, cancel = queue.Queue(), threading.Event()
    here = None
    if shipped is not None and ray.get_runtime_context().get_node_id() != driver_node:
        from dataclasses import replace

        from .shipped import local, local_options

        here = Path(tempfile.mkdtemp(prefix="dreamvideo-job-"))
        name = Path(job.output).name or "frames"
        inp, opts = shipped
        to = job.output if is_url(job.output) else (  # a URL: uploaded from this node once complete
            str(here / name) + ("/" if guard.is_folder_output(job.output) else ""))
        run_as = replace(job, input=local(inp), options=tuple(sorted(local_options(dict(opts)).items())), output=to)
    else:
        run_as = job

    def progress(done, total):
        if cancel.is_set():
            raise KeyboardInterrupt
        q.put(("progress", done, total))

    def work():
        try:
            q.put(("done", run_batch_job(run_as, resume and here is None, progress)))
        except BaseException as e:  # noqa: BLE001 - raised in the task
            q.put(("error", e))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item[0] == "error":
                raise item[1]
            if item[0] == "done" and here is not None and not is_url(job.output):
                yield from _send_back(Path(run_as.output))
                item = ("done", str(job.output))
            yield item
            if item[0] == "done":
                return
    finally:
        cancel.set()
        t.join(timeout=30)
        if here is not None:
            shutil.rmtree(here, ignore_errors=True)


def _send_back(out: Path, piece: int = 16 << 20):
    """``("file", name relative to the output ("" for a file output), bytes)`` pieces of an output."""
    files = sorted(p for p in out.iterdir() if p.is_file()) if out.is_dir() else [out]
    for f in files:
        rel = f.name if out.is_dir() else ""
        with open(f, "rb") as fh:
            first = True
            while (data := fh.read(piece)) or first:
                first = False
                yield ("file", rel, data)


class _Receiver:
    """The driver's end of :func:`_send_back`: the output under a temporary name, renamed when the job is done."""

    def __init__(self, output: str):
        from .io import _Staged

        self.staged = _Staged(output)
        self.open: dict = {}

    def write(self, rel: str, data: bytes) -> None:
        path = self.staged.temp / rel if rel else self.staged.temp
        if rel not in self.open:
            self.open[rel] = open(path, "wb")
        self.open[rel].write(data)

    def commit(self) -> None:
        for f in self.open.values():
            f.close()
        self.staged.commit()

    def discard(self) -> None:
        for f in self.open.values():
            f.close()
        self.staged.discard()


def batch(path, *, distributed: DistributedSettings = DistributedSettings(), resume: bool = False,
          quiet: bool = False) -> list[str]:
    """Render the jobs of a batch file (:func:`read_batch`) across Ray workers, each job on one
    worker, with one progress bar over all their frames. Returns one line per job. A job that fails
    does not stop the others; the first failure is raised once all have ended."""
    ds = distributed.check()
    jobs = read_batch(path)  # a mistake in the file is found before Ray starts
    import_ray()
    from ray.exceptions import RayTaskError

    if not ds.ray_address:  # on another cluster the files are where its nodes see them
        for job in jobs:
            if job.input and not is_url(job.input) and not Path(job.input).exists() and not any(
                    ch in job.input for ch in "*?["):
                raise UserError(f"{job.label}: input {job.input} not found; check the path (relative paths "
                                f"are from the batch file's folder)")
    bar = None
    results: dict[int, str] = {}
    errors: dict[int, BaseException] = {}
    with cluster(ds.ray_address) as ray:
        n, resources = worker_resources(ray, ds.workers)
        threads = max(1, int(resources.get("num_cpus", 1))) if "num_gpus" not in resources else 2
        task = ray.remote(**resources, max_retries=1)(_batch_task)
        from .resume import workdir_path
        from .shipped import ship_file_options, ship_input

        driver_node = ray.get_runtime_context().get_node_id()
        shipped: dict = {}

        def send(job):  # what a node without the driver's disk reads instead of the job's paths
            return (ship_input(ray, job.input, shipped) if job.input and not is_url(job.input) else job.input,
                    tuple(sorted(ship_file_options(ray, dict(job.options), shipped).items())))

        for job in jobs:  # done before (a node without the driver's disk could not tell)
            if (resume and not is_url(job.output) and not (workdir_path(job.output) / "settings.json").is_file()
                    and Path(job.output).exists()):
                results[job.number] = f"{job.output} (kept)"
        receivers: dict[int, _Receiver] = {}
        if not quiet:
            from tqdm import tqdm

            bar = tqdm(total=None, unit="frame", desc=f"{len(jobs)} jobs on {n} workers", dynamic_ncols=True,
                       smoothing=0.1)
        done_frames, totals = {}, {}
        active = {task.remote(job, resume, threads, driver_node, send(job)): job
                  for job in jobs if job.number not in results}
        try:
            while active:
                ready, _ = ray.wait(list(active), num_returns=1, timeout=0.5)
                for gen in ready:
                    job = active[gen]
                    try:
                        item = ray.get(next(gen))
                    except StopIteration:
                        del active[gen]
                        continue
                    except RayTaskError as e:
                        cause = getattr(e, "cause", None)
                        errors[job.number] = cause if isinstance(cause, Exception) else e
                        del active[gen]
                        if job.number in receivers:
                            receivers.pop(job.number).discard()
                        continue
                    if item[0] == "progress":
                        done_frames[job.number], totals[job.number] = item[1], item[2] or 0
                    elif item[0] == "file":  # from a node without the driver's disk
                        if job.number not in receivers:
                            receivers[job.number] = _Receiver(job.output)
                        receivers[job.number].write(item[1], item[2])
                        continue
                    else:
                        if job.number in receivers:
                            receivers.pop(job.number).commit()
                        results[job.number] = item[1]
                    if bar is not None:
                        bar.total = sum(totals.values()) or None
                        bar.n = sum(done_frames.values())
                        bar.set_postfix_str(f"{len(results)}/{len(jobs)} jobs done", refresh=False)
                        bar.refresh()
        except BaseException:
            for gen in active:
                with contextlib.suppress(Exception):
                    ray.cancel(gen)  # each job finalizes its partial file and keeps its work folder
            drain_cancelled(ray, list(active), 20.0)
            raise
        finally:
            for r in receivers.values():
                r.discard()
            if bar is not None:
                bar.close()
    if errors:
        first = min(errors)
        e = errors[first]
        job = jobs[first - 1]
        msg = f"{job.label}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        if len(errors) > 1:
            msg += f" ({len(errors)} of {len(jobs)} jobs failed; the others are done)"
        raise (UserError(msg) if isinstance(e, UserError) else DreamFailure(msg))
    return [results.get(job.number, "") for job in jobs]
