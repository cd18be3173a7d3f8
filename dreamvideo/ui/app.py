"""The Gradio page: tabs Image / Video / Zoom & music video / Live / Presets over a shared model panel,
and the render queue below them, one function each. Every action is a method of
:class:`~dreamvideo.ui.page.Page`; this module only lays out the controls and wires them.

API (``gradio_client``): ``/dream_image``, ``/dream_video`` and ``/zoom`` take their input file
first; every other input defaults to the page's starting value.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline, and nothing leaves the machine

import gradio as gr  # noqa: E402

from ..errors import DreamError, as_flags  # noqa: E402
from .page import AUDIO_MODES, CONTROLS, SCHEDULE_EXAMPLES, Page  # noqa: E402
from .worker import format_seconds  # noqa: E402

CSS = """
.dv-queue { width: 100%; border-collapse: collapse; font-size: 0.9em; }
.dv-queue th, .dv-queue td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--border-color-primary); }
.dv-queue progress { width: 140px; vertical-align: middle; }
.dv-running td { font-weight: 600; }
.dv-failed td small, .dv-interrupted td small { color: var(--body-text-color-subdued); }
.dv-empty { color: var(--body-text-color-subdued); }
"""

SCHEDULE_HELP = """
**Schedules** take a number, keyframes or an expression, per frame:
`1.05` (constant) · `0:(1.0), 50:(1.08), 100:(1.0)` (keyframes: frame:(value)) ·
`1 + 0.04*beat` (jump on each beat) · `0.01*(1 + 2*onset)` (dream harder on onsets) · `0.5*sin(2*pi*t/8)` (sway).
Variables: `t` seconds, `f` frame, `fps`, and the song's `rms onset beat low mid high` (0..1).
Functions: `sin cos abs min max clamp smoothstep floor sqrt exp log pow`; `a if c else b`.
"""


def _friendly(fn):
    """A user mistake or a failed render becomes the page's error toast: the command line's one line (settings
    named as its flags), not a traceback."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except DreamError as e:
                raise gr.Error(as_flags(e), print_exception=False) from None
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DreamError as e:
            raise gr.Error(as_flags(e), print_exception=False) from None
    return call


def _image_upload(page: Page, label: str, **kw) -> gr.Image:
    """An image upload handed on as its file, after the page's own check (the command line's reader, from
    the header): a file it cannot read is that one line, where Gradio's decoding of it would answer
    "Could not preprocess input component" (and decode a decompression bomb). The page's reader then does
    the decoding, alpha, 16-bit and EXIF as the command line does. (The component's method is replaced on
    the instance: Gradio writes a stub file beside the module of any component subclass.)"""
    upload = gr.Image(type="filepath", sources=["upload"], label=label, **kw)
    plain = upload.preprocess

    def preprocess(payload):
        if payload is None or not payload.path or str(payload.url or "").startswith("data:"):
            return plain(payload)
        try:
            page.check_upload(payload.path, "image", label.lower())
        except DreamError as e:
            raise gr.Error(as_flags(e), print_exception=False) from None
        return str(payload.path)

    upload.preprocess = preprocess
    return upload


def _status(job) -> str:
    """One line of a job's state for its tab."""
    elapsed = ((job.finished_at or time.monotonic()) - job.started_at) if job.started_at else 0.0
    if job.state == "queued":
        return f"Job #{job.id} is queued: renders run one at a time (see the queue below)."
    if job.state == "running":
        return (f"Job #{job.id} running: {job.done}/{job.total or '?'} frames · elapsed {format_seconds(elapsed)}"
                f" · ETA {format_seconds(job.eta)}")
    if job.state == "done":
        note = f" ({job.message})" if job.message else ""
        return f"Job #{job.id} done in {format_seconds(elapsed)}: {job.result.name if job.result else ''}{note}"
    return f"Job #{job.id} {job.state}: {job.message}"


API_NAMES = {"video_frames": "frames", "zoom_frames": "frames"}  # the API calls each tab's frame count "frames"


def _named(fn, files: list, keys: list, start: dict, progress: bool = False):
    """``fn(*files, values, progress)`` exposed with one named parameter per input, so the API's parameters
    are ``video, song, model, weights, ..., frames`` (defaults: the page's starting values) rather than
    ``param_2, param_3...``. ``files``: ``[(name, optional)]``, the uploads first."""
    P = inspect.Parameter
    params = [P(name, P.POSITIONAL_OR_KEYWORD, **({"default": None} if optional else {})) for name, optional in files]
    params += [P(API_NAMES.get(k, k), P.POSITIONAL_OR_KEYWORD, default=start[k]) for k in keys]
    if progress:
        params.append(P("progress", P.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
    sig = inspect.Signature(params)
    api_keys = [API_NAMES.get(k, k) for k in keys]

    def split(args, kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        values = {k: a[n] for k, n in zip(keys, api_keys)}
        return [a[name] for name, _ in files], values, a.get("progress")

    if inspect.isgeneratorfunction(fn):
        def call(*args, **kwargs):
            uploads, values, prog = split(args, kwargs)
            yield from fn(*uploads, values, prog)
    else:
        def call(*args, **kwargs):
            uploads, values, prog = split(args, kwargs)
            return fn(*uploads, values, prog)
    call.__signature__ = sig
    call.__name__ = call.__qualname__ = fn.__name__
    return _friendly(call)


def _labelled(values):
    """Dropdown choices: a file (named on the command line) shows as its name, chosen by its path."""
    return [(f"{Path(v).name} (file)", v) if Path(v).suffix else (v, v) for v in values]


def _follow(job, progress):
    """(output, status, job id) updates of a queued render until it ends; a failure is its one line."""
    yield None, _status(job), job.id
    for status in _wait(job, progress):
        yield None, status, job.id
    if job.state == "failed":
        raise DreamError(job.message)
    yield (str(job.result) if job.result else None), _status(job), job.id


def _wait(job, progress, poll: float = 0.5):
    """Yield the job's status while it runs (the tab's progress bar follows the frames), until it ends."""
    while not job.wait(poll):
        if job.total and progress is not None:
            progress((job.done, job.total), desc=f"{job.kind} #{job.id} · ETA {format_seconds(job.eta)}",
                     unit="frames")
        yield _status(job)
    yield _status(job)


SHARED = ["model", "weights", "layers", "octaves", "octave_scale", "steps", "step_size", "seed", "max_side"]
"""The model panel's controls: every tab's action takes them."""


def build(page: Page) -> gr.Blocks:
    """The page's Blocks (not launched): the model panel, the tabs, the render queue, and the wiring
    between them (presets fill every tab's controls)."""
    c = {}  # control name -> component, in CONTROLS order for the preset outputs
    # Gradio's own copies of uploads can go after a day: the page keeps its own in the outputs folder.
    with gr.Blocks(title="dreamvideo", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        gr.Markdown(f"# dreamvideo\nDeepDream for pictures, clips and music videos. Outputs go to "
                    f"`{page.outputs}`.")
        pick = _model_panel(page, c)
        with gr.Tabs():
            _image_tab(page, c)
            video = _video_tab(page, c)
            _zoom_tab(page, c)
            from .live_tab import build_live_tab  # the Live tab (camera dreamed as it films): its own module

            build_live_tab(page, c)
            presets = _presets_tab(page)
        _queue(page)
        _wire_presets(page, [c[k] for k in CONTROLS], video, presets)
        _wire_layers(page, c, pick, demo)
    return demo


def _model_panel(page: Page, c: dict) -> gr.Dropdown:
    """The model and dream controls every tab shares; returns the layer picker."""
    s = page.start
    with gr.Accordion("Model and dream (every tab)", open=True):
        with gr.Row():
            c["model"] = gr.Dropdown(_labelled(page.models), value=s["model"], label="Model", scale=2)
            c["weights"] = gr.Dropdown(_labelled(page.weights), value=s["weights"], label="Weights", scale=2)
            c["layers"] = gr.Textbox(s["layers"], label="Layers (blank: the model's classic set)", scale=3,
                                     info="LAYER:WEIGHT,... or LAYER:CHANNEL for one channel", elem_id="layers")
            pick = gr.Dropdown([], multiselect=True, label="Pick layers (channels in brackets)", scale=3,
                               elem_id="layer-pick")
        with gr.Row():
            c["octaves"] = gr.Number(s["octaves"], label="Octaves", precision=0, minimum=1)
            c["octave_scale"] = gr.Number(s["octave_scale"], label="Octave scale", minimum=1.0)
            c["steps"] = gr.Textbox(str(s["steps"]), label="Steps per octave",
                                    info="a whole number; a schedule in video and zoom")
            c["step_size"] = gr.Textbox(str(s["step_size"]), label="Step size",
                                        info="a number; a schedule in video and zoom")
            c["seed"] = gr.Number(s["seed"], label="Seed", precision=0, minimum=0)
            c["max_side"] = gr.Number(s["max_side"], label="Max side (px, 0 = full size)", precision=0,
                                      minimum=0)
    return pick


def _cancel(page: Page):
    """A Cancel button's action: the queued render of the tab's job id is cancelled, keeping its frames."""
    def cancel(job_id):
        if job_id is None or not page.worker.cancel(int(job_id)):
            return "Nothing to cancel."
        return f"Cancelling job #{job_id}: the frames done so far become a playable partial video."

    return cancel


def _image_tab(page: Page, c: dict) -> None:
    """Image: upload a photo, dream it (API ``/dream_image``)."""
    s = page.start
    with gr.Tab("Image", id="image"):
        with gr.Row():
            img_in = _image_upload(page, "Photo", height=420, elem_id="image-in")
            img_out = gr.Image(type="filepath", format="png", label="Dream", interactive=False, height=420,
                               elem_id="image-out")
        with gr.Row():
            img_btn = gr.Button("Dream", variant="primary", elem_id="image-go")
        img_status = gr.Markdown(elem_id="image-status")

    def dream_image(image, values, progress):
        job = page.submit_image(image, values)
        for status in _wait(job, progress):
            yield None, status
        if job.state != "done":
            raise DreamError(job.message or f"the dream was {job.state}")
        yield str(job.result), _status(job)

    img_btn.click(_named(dream_image, [("image", False)], SHARED, s, progress=True),
                  [img_in, *(c[k] for k in SHARED)], [img_out, img_status], api_name="dream_image",
                  concurrency_limit=None)


def _video_tab(page: Page, c: dict) -> dict:
    """Video: upload a clip, render it in the queue (API ``/dream_video``), cancel it; returns the preset
    controls (``preset``, ``apply``, ``status``) that :func:`_wire_presets` connects."""
    s = page.start
    with gr.Tab("Video", id="video"):
        with gr.Row():
            vid_in = gr.Video(sources=["upload"], label="Clip", height=360, elem_id="video-in")
            vid_out = gr.Video(label="Dream", interactive=False, height=360, elem_id="video-out")
        with gr.Row():
            c["coherence"] = gr.Radio(["flow", "blend", "none"], value=s["coherence"], label="Coherence",
                                      info="flow: the dream follows the motion")
            c["blend"] = gr.Textbox(s["blend"], label="Blend (blank: the coherence's default)",
                                    info="how much of the previous dream carries on, 0..1, or a schedule")
            c["audio_mode"] = gr.Radio(list(AUDIO_MODES), value=s["audio_mode"], label="Audio",
                                       info="keep the clip's, replace with a song, or none")
        with gr.Row():
            vid_song = gr.Audio(type="filepath", sources=["upload"], label="Song (for replace)")
            c["start"] = gr.Number(s["start"], label="Start (s)", minimum=0)
            c["end"] = gr.Number(s["end"], label="End (s, 0 = the end)", minimum=0)
            c["video_frames"] = gr.Number(s["video_frames"], label="Frames (0 = all)", precision=0,
                                          minimum=0)
        with gr.Row():
            vid_preset = gr.Dropdown(page.preset_choices(), value=None, label="Preset", scale=2)
            vid_apply = gr.Button("Apply preset", scale=1)
            vid_btn = gr.Button("Render", variant="primary", scale=1)
            vid_cancel = gr.Button("Cancel", variant="stop", scale=1)
        vid_status = gr.Markdown()
        vid_job = gr.State(None)

    vkeys = SHARED + ["coherence", "blend", "audio_mode", "start", "end", "video_frames"]

    def dream_video(video, song, values, progress):
        yield from _follow(page.submit_video(video, values, song), progress)

    vid_btn.click(_named(dream_video, [("video", False), ("song", True)], vkeys, s, progress=True),
                  [vid_in, vid_song, *(c[k] for k in vkeys)], [vid_out, vid_status, vid_job],
                  api_name="dream_video", concurrency_limit=None)
    vid_cancel.click(_cancel(page), vid_job, vid_status, api_visibility="private")
    return {"preset": vid_preset, "apply": vid_apply, "status": vid_status}


def _zoom_tab(page: Page, c: dict) -> None:
    """Zoom and music video: an image or noise and a song; plan, preview, render in the queue (APIs
    ``/plan_zoom``, ``/preview_zoom``, ``/zoom``), cancel."""
    s = page.start
    with gr.Tab("Zoom and music video", id="zoom"):
        with gr.Row():
            zoom_in = _image_upload(page, "Start image", height=300, elem_id="zoom-image")
            zoom_song = gr.Audio(type="filepath", sources=["upload"], label="Song (drives the schedules)",
                                 elem_id="zoom-song")
        with gr.Row():
            c["from_noise"] = gr.Textbox(s["from_noise"], label="Or start from noise (WxH)",
                                         placeholder="e.g. 640x360 (leave blank to use the image)")
            c["zoom_frames"] = gr.Number(s["zoom_frames"], label="Frames (0 with a song: as long as the song)",
                                         precision=0, minimum=0, elem_id="zoom-frames")
            c["fps"] = gr.Number(s["fps"], label="Frames per second", minimum=1)
            c["color_match"] = gr.Checkbox(s["color_match"], label="Keep the first frame's colours")
        with gr.Row():
            c["zoom"] = gr.Textbox(s["zoom"], label="Zoom per frame")
            c["angle"] = gr.Textbox(s["angle"], label="Rotation (degrees per frame)")
            c["dx"] = gr.Textbox(s["dx"], label="Shift right (px per frame)")
            c["dy"] = gr.Textbox(s["dy"], label="Shift down (px per frame)")
            c["layer_weights"] = gr.Textbox(s["layer_weights"], label="Layer weights",
                                            placeholder="LAYER=SCHEDULE;LAYER=SCHEDULE")
        gr.Markdown(SCHEDULE_HELP)
        example_note = gr.Textbox(visible=False)
        gr.Examples([list(e) for e in SCHEDULE_EXAMPLES],
                    [c["zoom"], c["angle"], c["dx"], c["dy"], c["step_size"], example_note],
                    label="Worked examples (click one to fill the schedules)")
        with gr.Row():
            plan_btn = gr.Button("Plan: plot every curve", elem_id="zoom-plan")
            preview_btn = gr.Button("Preview a few frames", elem_id="zoom-preview")
            zoom_btn = gr.Button("Render", variant="primary", elem_id="zoom-go")
            zoom_cancel = gr.Button("Cancel", variant="stop")
        zoom_status = gr.Markdown(elem_id="zoom-status")
        zoom_job = gr.State(None)
        with gr.Row():
            # No label over the plot: it would hide the first panel's title; the plot has its own.
            plan_img = gr.Image(type="filepath", label="Plan: every curve over the timeline", show_label=False,
                                interactive=False, elem_id="zoom-plot", height=720, scale=3)
            plan_md = gr.Markdown(elem_id="zoom-summary")
        preview_img = gr.Image(type="filepath", label="Preview (contact sheet)", interactive=False,
                               elem_id="zoom-sheet", height=420, visible=False)
        zoom_out = gr.Video(label="Zoom", interactive=False, height=360, elem_id="zoom-out")

    zkeys = SHARED + ["from_noise", "zoom_frames", "fps", "color_match", "zoom", "angle", "dx", "dy",
                      "layer_weights"]
    zfiles = [("image", True), ("song", True)]  # no image: from noise (`from_noise` WxH)
    inputs = [zoom_in, zoom_song, *(c[k] for k in zkeys)]

    def plan(image, song, values, progress):
        res = page.plan_zoom(image, song, values)
        return str(res["plot"]), res["summary"]

    plan_btn.click(_named(plan, zfiles, zkeys, s), inputs, [plan_img, plan_md], api_name="plan_zoom",
                   concurrency_limit=None)

    def preview(image, song, values, progress):
        res = page.plan_zoom(image, song, values, preview=True)
        return str(res["plot"]), gr.update(value=str(res["preview"]), visible=True), res["summary"]

    preview_btn.click(_named(preview, zfiles, zkeys, s), inputs, [plan_img, preview_img, plan_md],
                      api_name="preview_zoom", concurrency_limit=None)

    def zoom(image, song, values, progress):
        yield from _follow(page.submit_zoom(image, song, values), progress)

    zoom_btn.click(_named(zoom, zfiles, zkeys, s, progress=True), inputs, [zoom_out, zoom_status, zoom_job],
                   api_name="zoom", concurrency_limit=None)
    zoom_cancel.click(_cancel(page), zoom_job, zoom_status, api_visibility="private")


def _presets_tab(page: Page) -> dict:
    """Presets: pick one and apply it, or save the current settings as one; returns its controls."""
    with gr.Tab("Presets", id="presets"):
        with gr.Row():
            pre_pick = gr.Dropdown(page.preset_choices(), value=None, label="Preset", scale=2,
                                   elem_id="preset-pick")
            pre_apply = gr.Button("Apply to the page", scale=1, elem_id="preset-apply")
        pre_desc = gr.Markdown(elem_id="preset-description")
        gr.Markdown("### Save the current settings as a preset")
        with gr.Row():
            pre_name = gr.Textbox(label="Name", placeholder="my-look")
            pre_kind = gr.Radio(["image", "video", "zoom"], value="zoom", label="From the settings of")
            pre_note = gr.Textbox(label="Description")
            pre_save = gr.Button("Save preset")
        pre_file = gr.File(label="Saved preset", interactive=False, visible=False)
    pre_pick.change(lambda n: page.preset_description(n) if n else "", pre_pick, pre_desc,
                    api_visibility="private")
    return {"pick": pre_pick, "apply": pre_apply, "description": pre_desc, "name": pre_name, "kind": pre_kind,
            "note": pre_note, "save": pre_save, "file": pre_file}


def _wire_presets(page: Page, controls: list, video: dict, presets: dict) -> None:
    """Applying a preset (from the Video or the Presets tab) fills every tab's controls; saving one
    adds it to both preset lists."""
    def apply_preset(name):
        if not name:
            raise DreamError("pick a preset first")
        v = page.apply_preset(name)
        return [v[k] for k in CONTROLS] + [f"Applied **{name}**: {page.preset_description(name)}"]

    video["apply"].click(_friendly(apply_preset), video["preset"], [*controls, video["status"]],
                         api_visibility="private")
    presets["apply"].click(_friendly(apply_preset), presets["pick"], [*controls, presets["description"]],
                           api_visibility="private")

    def save_preset(name, kind, note, *args):
        path = page.save_preset(name.strip(), kind, dict(zip(CONTROLS, args)), note.strip())
        choices = page.preset_choices()
        return gr.update(value=str(path), visible=True), gr.update(choices=choices), gr.update(choices=choices)

    presets["save"].click(_friendly(save_preset), [presets["name"], presets["kind"], presets["note"], *controls],
                          [presets["file"], presets["pick"], video["preset"]], api_visibility="private")


def _wire_layers(page: Page, c: dict, pick: gr.Dropdown, demo: gr.Blocks) -> None:
    """The layer picker lists the model's layers (on load and when the model changes); picking fills Layers."""
    def list_layers(model, weights):
        default, rows = page.layers(model, weights)
        return gr.update(choices=rows, value=[]), gr.update(placeholder=f"the model's set: {default}")

    c["model"].change(_friendly(list_layers), [c["model"], c["weights"]], [pick, c["layers"]],
                      api_visibility="private")
    demo.load(_friendly(list_layers), [c["model"], c["weights"]], [pick, c["layers"]], api_visibility="private")
    pick.input(lambda chosen: ",".join(f"{x.split()[0]}:1.0" for x in chosen), pick, c["layers"],
               api_visibility="private")


def _queue(page: Page) -> None:
    """The render queue under the tabs: every job's progress, finished files to download, cancel and resume."""
    gr.Markdown("### Render queue")
    queue_html = gr.HTML(page.queue_html(), elem_id="queue")
    with gr.Row():
        job_pick = gr.Dropdown([], label="Job", scale=2)
        cancel_btn = gr.Button("Cancel job", variant="stop", scale=1)
        resume_btn = gr.Button("Resume interrupted job", scale=1)
    files = gr.File(label="Finished renders (download)", file_count="multiple", interactive=False,
                    visible=False, elem_id="finished")
    files_seen = gr.State([])
    timer = gr.Timer(1.0)

    def tick(seen):
        done = page.finished_outputs()
        return page.queue_html(), (gr.update(value=done, visible=bool(done)) if done != seen else gr.update()), done

    timer.tick(tick, files_seen, [queue_html, files, files_seen], api_visibility="private",
               show_progress="hidden")
    job_pick.focus(lambda: gr.update(choices=page.active_jobs() + page.resumable_jobs()), None, job_pick,
                   api_visibility="private")

    def cancel_pick(job_id):
        if job_id is None:
            raise DreamError("pick a job to cancel")
        if not page.worker.cancel(int(job_id)):
            raise DreamError(f"job #{job_id} has already finished")
        return page.queue_html()

    def resume_pick(job_id):
        if job_id is None:
            raise DreamError("pick an interrupted job to resume")
        if page.worker.resume(int(job_id)) is None:
            raise DreamError(f"job #{job_id} is not an interrupted render")
        return page.queue_html()

    cancel_btn.click(_friendly(cancel_pick), job_pick, queue_html, api_visibility="private")
    resume_btn.click(_friendly(resume_pick), job_pick, queue_html, api_visibility="private")
