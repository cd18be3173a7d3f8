"""What the web page does, as plain Python: no Gradio here, so every action is testable without a browser.

The page's controls are keyed by the names in :data:`CONTROLS`; an action takes ``values`` (a
dict of some of them; the rest keep the page's starting values) and the uploaded files. Uploads
are checked (where they come from, type, size) and copied once into the outputs folder by content
hash, so the same upload with the same settings names the same output, and an interrupted render of
it resumes. Renders run in the :class:`~dreamvideo.ui.worker.Worker`, one at a time; so do the
image dreams, previews and layer lists, since they load the model too.

Convention: sizes in bytes, times in seconds, schedules as text (see ``dreamvideo zoom --help``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Optional

from ..errors import UserError
from . import api
from .worker import Job, Worker, format_seconds

IMAGE_TYPES, VIDEO_TYPES = api.read_types()
AUDIO_TYPES = (".mp3", ".wav", ".m4a", ".aac", ".ogg", ".flac", ".opus")
LIMITS = {"image": 50 << 20, "video": 2 << 30, "audio": 300 << 20}  # bytes
TYPES = {"image": IMAGE_TYPES, "video": VIDEO_TYPES, "audio": AUDIO_TYPES}
MODEL_NAMES = api.model_names()
AUDIO_MODES = ("keep", "replace", "none")
# The same upload and settings name the same output, and the same seed makes the same bytes: no need to redo it.
ALREADY = "already made with these settings and this upload; not rendered again"  # a video's soundtrack: its own, an uploaded song, or silence

#: The page's controls and which job option each one sets. Names that a video and a zoom share
#: but mean differently (frames, fps) are prefixed with the tab.
CONTROLS = {
    # model and dream (every tab)
    "model": "model", "weights": "weights", "layers": "layers", "octaves": "octaves", "octave_scale": "octave_scale",
    "steps": "steps", "step_size": "step_size", "seed": None, "max_side": None,
    # video
    "coherence": "coherence", "blend": "blend", "audio_mode": None, "start": "start", "end": "end",
    "video_frames": "frames",
    # zoom
    "zoom_frames": "frames", "fps": "fps", "zoom": "zoom", "angle": "angle", "dx": "dx", "dy": "dy",
    "layer_weights": "layer_weights", "color_match": "color_match", "from_noise": "from_noise",
}
KIND_CONTROLS = {
    "image": ("model", "weights", "layers", "octaves", "octave_scale", "steps", "step_size"),
    "video": ("model", "weights", "layers", "octaves", "octave_scale", "steps", "step_size", "coherence", "blend",
              "start", "end", "video_frames"),
    "zoom": ("model", "weights", "layers", "octaves", "octave_scale", "steps", "step_size", "zoom_frames", "fps",
             "zoom", "angle", "dx", "dy", "layer_weights", "color_match", "from_noise"),
}

SCHEDULE_EXAMPLES = [
    # zoom, angle, dx, dy, step size: what it looks like
    ("1.05", "0", "0", "0", "0.01", "a steady zoom in"),
    ("1 + 0.04*beat", "0", "0", "0", "0.01*(1 + 2*onset)", "jump on every beat, dream harder on onsets"),
    ("1.02", "0.5*sin(2*pi*t/8)", "0", "0", "0.01", "sway: rotation swinging every 8 seconds"),
    ("0:(1.0), 50:(1.08), 100:(1.0)", "0", "2*low", "0", "0.015",
     "keyframes: speed up then slow down; bass pushes right"),
]


def _num(text, kind, name):
    """``text`` as ``kind`` (int or float); a clear one-line error names the field otherwise."""
    try:
        v = float(str(text).strip())
        if kind is int:
            if v != int(v):
                raise ValueError
            return int(v)
        return v
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise UserError(f"{name.replace('_', ' ')} must be {what} here, not {text!r}") from None


class Page:
    """The page's state: its starting values, the outputs folder and the render queue.

    ``start``: starting values of the controls (keys of :data:`CONTROLS`), e.g. from the command
    line's model flags or ``--preset``; ``models`` / ``weights``: the choices offered (a model or
    weights file named on the command line joins them; the page never takes a typed path);
    ``upload_roots``: folders uploads may come from (Gradio's upload folder), None to accept any
    existing file (tests); ``fixed``: other job options (``precision``, ``jitter``...) for every job.
    """

    def __init__(self, outputs, start: Optional[dict] = None, *, preset: str = "", worker: Optional[Worker] = None,
                 upload_roots=None, models=None, weights=None, fixed: Optional[dict] = None):
        self.outputs = Path(outputs).expanduser().resolve()
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.uploads = self.outputs / ".uploads"
        self.preset_dir = self.outputs / "presets"
        self.worker = worker or Worker(on_abandon=api.stop_media)
        self.upload_roots = [Path(r).resolve() for r in upload_roots] if upload_roots is not None else None
        base = self.control_defaults()
        if preset:  # named on the command line: a built-in name or any preset file
            base.update(self.preset_controls(preset, path_given=True))
        base.update({k: v for k, v in (start or {}).items() if v is not None})
        unknown = set(base) - set(CONTROLS)
        if unknown:
            raise UserError(f"unknown page setting(s): {', '.join(sorted(unknown))}")
        self.start = base
        self.models = list(dict.fromkeys([*(models or ()), base["model"], *MODEL_NAMES]))
        self.weights = list(dict.fromkeys([*(weights or ()), base["weights"], "imagenet", "random"]))
        self._layers: dict = {}
        self.fixed = dict(fixed or {})
        known = api.all_defaults()
        bad = [k for k in self.fixed if k not in known or k in CONTROLS.values()]
        if bad:
            raise UserError(f"not a fixed page setting: {', '.join(bad)}")

    # ------------------------------------------------------------ starting values and presets

    @staticmethod
    def control_defaults() -> dict:
        """Every control's default, from the settings dataclasses (the single source of defaults)."""
        image, video, zoom = (api.field_defaults(k) for k in api.KINDS)
        out = {k: video.get(opt, zoom.get(opt, image.get(opt))) for k, opt in CONTROLS.items() if opt}
        # zoom frames 0: as long as the song, or the zoom's default without one (a page has no "flag not given")
        out.update(seed=0, max_side=0, audio_mode="keep", video_frames=video["frames"], zoom_frames=0,
                   fps=zoom["fps"], steps=str(video["steps"]), step_size=str(video["step_size"]))
        return out

    def preset_choices(self) -> list[str]:
        """Built-in preset names, then presets saved from this page (by name: no paths are typed)."""
        saved = sorted(p.stem for p in self.preset_dir.glob("*.toml")) if self.preset_dir.is_dir() else []
        return [*api.builtin_presets(), *(s for s in saved if s not in api.builtin_presets())]

    def _preset_path(self, name: str):
        if name in api.builtin_presets():
            return name
        path = self.preset_dir / f"{name}.toml"
        if not re.fullmatch(r"[\w.-]+", name or "") or not path.is_file():
            raise UserError(f"unknown preset {name!r}; pick one of: {', '.join(self.preset_choices())}")
        return str(path)

    def preset_controls(self, name: str, path_given: bool = False) -> dict:
        """The controls a preset sets: its values for a zoom, a video and an image, in that order of
        priority. From the page only a built-in or saved preset's name is taken (``path_given``: the
        command line's ``--preset``, a name or a file)."""
        path = name if path_given else self._preset_path(name)
        out = {}
        for kind in ("image", "video", "zoom"):
            values = api.preset_values(path, kind)
            for key, opt in CONTROLS.items():
                if key in KIND_CONTROLS[kind] and opt in values:
                    out[key] = values[opt]
            out.update({k: values[k] for k in ("seed", "max_side") if k in values})
        for key in ("steps", "step_size"):
            if key in out:
                out[key] = str(out[key])
        return out

    def preset_description(self, name: str) -> str:
        return api.preset_description(self._preset_path(name))

    def apply_preset(self, name: str) -> dict:
        """The page's values with preset ``name`` applied over the starting values (every control)."""
        return {**self.start, **self.preset_controls(name)}

    def save_preset(self, name: str, kind: str, values: dict, description: str = "") -> Path:
        """Save the current settings of a ``kind`` tab as preset ``name`` in the outputs folder."""
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]{0,63}", name or ""):
            raise UserError("a preset name is letters, digits, '-', '_' or '.', up to 64 characters "
                            f"(not {name!r})")
        if name in api.builtin_presets():
            raise UserError(f"{name} is a built-in preset; choose another name")
        if kind not in api.KINDS:
            raise UserError(f"kind must be one of {', '.join(api.KINDS)}, not {kind!r}")
        opts, seed, max_side = self.options(kind, values)
        self.preset_dir.mkdir(parents=True, exist_ok=True)
        return api.save_preset(self.preset_dir / f"{name}.toml", kind, opts, seed=seed, max_side=max_side,
                               description=description)

    # ------------------------------------------------------------ uploads

    def check_upload(self, path, what: str, label: str = "") -> Path:
        """An uploaded file of type ``what`` ("image", "video", "audio"), checked; a UserError otherwise."""
        label = label or what
        if not path:
            raise UserError(f"upload {'an' if label[0] in 'aeiou' else 'a'} {label} first")
        p = Path(str(path)).resolve()
        if self.upload_roots is not None and not any(p.is_relative_to(r) for r in self.upload_roots):
            raise UserError(f"the {label} must be a file uploaded to the page")
        if not p.is_file():
            raise UserError(f"the uploaded {label} is gone; upload it again")
        if p.suffix.lower() not in TYPES[what]:
            raise UserError(f"the {label} {p.name!r} is not a supported {what} file; use one of "
                            f"{' '.join(TYPES[what])}")
        if what == "image":  # the command line's message (an empty file too), from the header: a bomb costs nothing
            api.check_image(p, p.name)
        size = p.stat().st_size
        if size == 0 or size > LIMITS[what]:
            raise UserError(f"the {label} {p.name!r} is {'empty' if not size else f'{size / 2**20:.0f} MB'}; "
                            f"the page takes {what} files up to {LIMITS[what] >> 20} MB")
        if what != "image":
            api.check_media(p, what)
        return p

    def stored(self, path: Path) -> Path:
        """The upload copied once into the outputs folder under its content hash (a stable input for
        resume fingerprints, which hold the input's path, size and time)."""
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        self.uploads.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w-]+", "_", Path(path).stem)[:40] or "upload"
        dest = self.uploads / f"{stem}-{h.hexdigest()[:12]}{Path(path).suffix.lower()}"
        if not dest.is_file():
            tmp = dest.with_name(f".{dest.name}.tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(path, tmp)  # a 2 GB clip need not be copied on the same file system
            except OSError:
                shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        return dest

    # ------------------------------------------------------------ values -> job options

    def _choice(self, value, allowed, name):
        if value not in allowed:
            raise UserError(f"{name} {value!r} is not one the page offers; pick one of: {', '.join(map(str, allowed))}")
        return value

    def options(self, kind: str, values: Optional[dict] = None) -> tuple[dict, int, Optional[int]]:
        """``(options, seed, max_side)`` of a ``kind`` job from the page's values (the rest: starting values)."""
        v = {**self.start, **{k: x for k, x in (values or {}).items() if x is not None}}
        unknown = set(values or {}) - set(CONTROLS)
        if unknown:
            raise UserError(f"unknown page setting(s): {', '.join(sorted(unknown))}")
        self._choice(v["model"], self.models, "model")
        self._choice(v["weights"], self.weights, "weights")
        mine = api.field_defaults(kind)
        opts = {k: x for k, x in self.fixed.items() if k in mine}
        for key in KIND_CONTROLS[kind]:
            opts[CONTROLS[key]] = v[key]
        opts["octaves"] = _num(v["octaves"], int, "octaves")
        opts["octave_scale"] = _num(v["octave_scale"], float, "octave_scale")
        if kind == "image":  # a still image has no schedules
            opts["steps"] = _num(v["steps"], int, "steps")
            opts["step_size"] = _num(v["step_size"], float, "step_size")
        else:
            opts["steps"], opts["step_size"] = str(v["steps"]).strip(), str(v["step_size"]).strip()
        if kind == "video":
            opts["coherence"] = self._choice(v["coherence"], ("flow", "blend", "none"), "coherence")
            opts.update(start=_num(v["start"], float, "start"), end=_num(v["end"], float, "end"),
                        frames=_num(v["video_frames"], int, "frames"), blend=str(v["blend"]).strip())
        if kind == "zoom":
            opts.update(frames=_num(v["zoom_frames"], int, "frames"), fps=_num(v["fps"], float, "fps"),
                        color_match=bool(v["color_match"]), from_noise=str(v["from_noise"] or "").strip())
            for key in ("zoom", "angle", "dx", "dy", "layer_weights"):
                opts[key] = str(v[key]).strip()
        seed = _num(v["seed"], int, "seed")
        max_side = _num(v["max_side"], int, "max_side") or None
        if not 0 <= seed < 2 ** 32 or (max_side is not None and max_side < 16):
            raise UserError("seed must be from 0 to 4294967295 and max side 0 (full size) or at least 16 pixels")
        return opts, seed, max_side

    def output_path(self, kind: str, input: Optional[Path], opts: dict, seed, max_side, ext: str) -> Path:
        """``<outputs>/<input stem>-<kind>-<hash>.<ext>``: the same input and settings give the same
        name, so a render started again after an interruption finds its work folder and resumes."""
        key = json.dumps([kind, input.name if input else "", opts, seed, max_side], sort_keys=True, default=str)
        stem = (input.stem.rsplit("-", 1)[0] if input else "noise")[:40]
        return self.outputs / f"{stem}-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:10]}{ext}"

    # ------------------------------------------------------------ actions

    def submit_image(self, image, values: Optional[dict] = None) -> Job:
        """Queue a dream of an uploaded image; the job's result is a PNG in the outputs folder."""
        src = self.stored(self.check_upload(image, "image"))
        opts, seed, max_side = self.options("image", values)
        out = self.output_path("image", src, opts, seed, max_side, ".png")

        def run(progress, resume):
            progress(0, 1)
            if out.is_file():
                progress(1, 1)
                return out, ALREADY
            path = api.run("image", src, out, seed=seed, max_side=max_side, shown=Path(str(image)).name, **opts)
            progress(1, 1)
            return path

        return self.worker.submit("image", Path(str(image)).name, out, run)

    def submit_video(self, video, values: Optional[dict] = None, song=None) -> Job:
        """Queue a dream of an uploaded clip (``song``: a soundtrack to use instead, with audio mode
        "replace"); an earlier interrupted render of the same clip and settings is resumed."""
        src = self.stored(self.check_upload(video, "video", "clip"))
        v = {**self.start, **(values or {})}
        opts, seed, max_side = self.options("video", values)
        mode = self._choice(v["audio_mode"], AUDIO_MODES, "audio")
        if mode == "replace":
            opts["audio"] = str(self.stored(self.check_upload(song, "audio", "song")))
        opts["no_audio"] = mode == "none"
        out = self.output_path("video", src, opts, seed, max_side, ".mp4")
        return self._submit_render("video", src, out, opts, seed, max_side, Path(str(video)).name)

    def zoom_inputs(self, image, song, values):
        """``(start image or None, options, seed, max_side)`` of a zoom: from an image, or from noise
        of the ``from_noise`` size; with a song and frames 0, as long as the song."""
        v = {**self.start, **(values or {})}
        opts, seed, max_side = self.options("zoom", values)
        src = None
        if opts["from_noise"]:
            if not re.fullmatch(r"\d{2,5}x\d{2,5}", opts["from_noise"]):
                raise UserError(f"noise size must be WxH, e.g. 640x360, not {opts['from_noise']!r}")
        else:
            src = self.stored(self.check_upload(image, "image", "start image"))
        if song:
            opts["audio"] = str(self.stored(self.check_upload(song, "audio", "song")))
        elif opts["frames"] == 0:
            opts["frames"] = api.field_defaults("zoom")["frames"] or 100  # no song to follow
        del v
        return src, opts, seed, max_side

    def submit_zoom(self, image, song=None, values: Optional[dict] = None) -> Job:
        """Queue an infinite zoom from an uploaded image (or noise), with an optional song."""
        src, opts, seed, max_side = self.zoom_inputs(image, song, values)
        out = self.output_path("zoom", src, opts, seed, max_side, ".mp4")
        label = Path(str(image)).name if src else f"noise {opts['from_noise']}"
        return self._submit_render("zoom", src, out, opts, seed, max_side, label)

    def _submit_render(self, kind, src, out, opts, seed, max_side, label) -> Job:
        def started():
            return (api.workdir_path(out) / "settings.json").is_file()

        def run(progress, resume):
            # Decided when the job starts, not when it was queued: a job ahead of it may have made or
            # finished this very output meanwhile.
            if out.is_file() and not started():
                progress(1, 1)
                return out, ALREADY
            return api.run(kind, src, out, seed=seed, max_side=max_side, progress=progress, resume=started(),
                           shown=label if src else "", **opts)

        return self.worker.submit(kind, label, out, run, resume=started())

    def plan_zoom(self, image, song=None, values: Optional[dict] = None, preview: bool = False,
                  preview_frames: int = 6, preview_size: int = 192) -> dict:
        """Plot every curve of a zoom before rendering it (and, with ``preview``, dream a contact
        sheet, through the worker since it loads the model). Returns plan_render's dict plus
        ``"summary"`` (one line per curve)."""
        src, opts, seed, max_side = self.zoom_inputs(image, song, values)
        out = self.output_path("zoom", src, opts, seed, max_side, ".plan.png")

        def run(progress, resume):
            return api.plan("zoom", src, out, seed=seed, max_side=max_side,
                            preview=out.with_name(out.name.replace(".plan.png", ".preview.png")) if preview else None,
                            preview_frames=preview_frames, preview_size=preview_size, **opts)

        # The model is loaded only in the worker (it keeps one): a preview needs it, and so do scheduled
        # layer weights of a model file (its layer names); a plain plan runs here, not behind a render.
        # A plain plan runs at once, in a thread of its own that a stopping page need not wait for.
        queued = preview or (opts["layer_weights"] and Path(str(opts["model"])).suffix)
        submit = self.worker.submit if queued else self.worker.run_now
        job = submit("preview" if preview else "plan", src.name if src else "noise", out, run)
        job.wait()
        if job.state != "done":
            raise UserError(job.message or f"the {'preview' if preview else 'plan'} was {job.state}")
        res = job.value
        res["summary"] = "\n".join(f"- `{api.describe(n, res['curves'][n])}`" for n in res["panels"])
        res["summary"] = (f"**{res['frames']} frames, {res['frames'] / res['fps']:.2f} s at {res['fps']:g} fps**\n\n"
                          + res["summary"])
        return res

    def layers(self, model: str, weights: str = "random") -> tuple[str, list[str]]:
        """``(default layers, ["name  (kind, N ch)", ...])`` of a model, cached; loaded in the worker."""
        self._choice(model, self.models, "model")
        if model not in self._layers:
            w = weights if Path(str(model)).suffix in (".keras", ".h5", ".pb") else "random"

            def run(progress, resume):
                default, rows = api.layer_list(model, w)
                return {"default": default, "rows": rows}  # not a tuple: the worker takes one as (output, note)

            job = self.worker.submit("layers", model, Path(model), run)
            job.wait()
            if job.state != "done":
                raise UserError(job.message or "could not list the layers")
            default, rows = job.value["default"], job.value["rows"]
            self._layers[model] = (default, [f"{n}  ({k}, {c} ch)" for n, k, c in rows])
        return self._layers[model]

    # ------------------------------------------------------------ the queue, for display

    def queue_rows(self) -> list[dict]:
        return [j for j in self.worker.snapshot() if j["kind"] not in ("layers",)]

    def queue_html(self) -> str:
        """The queue as an HTML table: job, state, a progress bar with frames and ETA, the output."""
        rows = self.queue_rows()
        if not rows:
            return "<p class='dv-empty'>No renders yet. Renders run here one at a time, oldest first.</p>"
        lines = ["<table class='dv-queue'><tr><th>#</th><th>job</th><th>state</th><th>progress</th>"
                 "<th>output</th></tr>"]
        for r in reversed(rows):
            total = r["total"] or 0
            bar = (f"<progress value='{r['done']}' max='{total}'></progress> {r['done']}/{total}"
                   if total else "")
            if r["state"] == "running":
                bar += f" · elapsed {format_seconds(r['elapsed'])} · ETA {format_seconds(r['eta'])}"
            elif r["state"] in ("done", "interrupted", "failed", "cancelled") and r["elapsed"]:
                bar += f" · took {format_seconds(r['elapsed'])}"
            out = _html(r["output"].name) if r["kind"] in ("image", "video", "zoom", "preview") else ""
            msg = f"<br><small>{_html(r['message'])}</small>" if r["message"] else ""
            resumed = " (resumed)" if r["resume"] else ""
            lines.append(f"<tr class='dv-{r['state']}'><td>{r['id']}</td><td>{r['kind']}: {_html(r['label'])}</td>"
                         f"<td>{r['state']}{resumed}{msg}</td><td>{bar}</td><td>{out}</td></tr>")
        lines.append("</table>")
        return "\n".join(lines)

    def active_jobs(self) -> list[tuple[str, int]]:
        """``(label, id)`` of jobs that can be cancelled (queued or running)."""
        return [(f"#{r['id']} {r['kind']}: {r['label']} ({r['state']})", r["id"]) for r in self.queue_rows()
                if r["state"] in ("queued", "running")]

    def resumable_jobs(self) -> list[tuple[str, int]]:
        return [(f"#{r['id']} {r['kind']}: {r['label']} ({r['done']}/{r['total']})", r["id"])
                for r in self.queue_rows() if r["state"] == "interrupted" and not r["superseded"]]

    def finished_outputs(self) -> list[str]:
        """Finished (or partial) render files, newest first, for download."""
        out = [str(r["result"]) for r in reversed(self.queue_rows())
               if r["result"] is not None and Path(r["result"]).is_file() and r["kind"] in ("image", "video", "zoom")]
        return list(dict.fromkeys(out))  # a resumed render writes the file its interrupted run did


def _html(text) -> str:
    import html

    return html.escape(str(text))
