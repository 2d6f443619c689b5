"""Run tab: set up a rank x rule x alpha sweep, start and stop it, and watch live curves."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import gradio as gr

from app.figures import curve_spec, empty_figure
from app.forms import CUSTOM, RULE_CHOICES, SOURCES, sweep_form
from app.plot_payload import PlotJSON
from app.runner import list_runs
from app.state import read_study
from app.tabs.context import UiContext
from app.views import TABLE_HEADERS, run_status, trial_rows
from core.specs import DEVICES, SweepGrid, field_default, field_help, field_label
from core.tasks import TASKS, task_defaults

DEMO_TASK = "synthetic-facts"
DEMO = {"source": DEMO_TASK, "ranks": "4,16,64,256", "rules": ["standard", "rslora"], "law_c": 16.0,
        "alphas": ",".join(f"{a:g}" for a in field_default("alphas", SweepGrid))}
FIELDS = ["source", "model", "data", "ranks", "rules", "law_c", "alphas", "lr", "steps", "batch_size", "device"]


def source_defaults(source: str) -> tuple[float, int, int]:
    """(lr, steps, batch size) that suit a source: the task's, or the custom-data defaults."""
    defaults = task_defaults(source if source in TASKS else None)
    return defaults.lr, defaults.steps, defaults.batch_size


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stable_upload(path: str | None, run_dir: Path) -> str | None:
    """Copy an upload out of Gradio's temp folder to ``uploads/<sha256>/<name>``.

    Resumed runs still find it, and two files with the same name never overwrite each other; the
    path (hash included) is in the worker's argv, so the study's settings record which file it was.
    """
    if not path:
        return None
    target = run_dir / "uploads" / file_sha256(path) / Path(path).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return str(target)


def idle(view, running: bool) -> bool:
    """True when no worker runs the study and none of its trials is running or queued."""
    return not running and not any(r["state"] in ("RUNNING", "WAITING") for r in view.records)


def build(ctx: UiContext) -> dict:
    """Lay out the Run tab and wire its buttons; returns the components other parts update."""
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            source = gr.Dropdown(SOURCES, value=DEMO["source"], label=field_label("task"), info=field_help("task"),
                                 elem_id="run-source")
            # shown for CUSTOM only (source.change below): the preselected built-in task brings its own
            model = gr.Textbox(label=f"{field_label('model')} ({CUSTOM})", placeholder="default: built-in tiny LM",
                               info=field_help("model"), visible=False)
            data = gr.File(label=f"{field_label('data')} (JSONL, CSV or TXT)", height=120, visible=False,
                           file_types=[".jsonl", ".json", ".csv", ".txt"], type="filepath", elem_id="data-file")
            errors = {name: gr.Markdown(elem_classes=["field-error"], visible=False) for name in ("source", "model", "data")}
            data_notes = gr.Markdown(elem_classes=["field-note"], visible=False, elem_id="data-notes")
            ranks = gr.Textbox(DEMO["ranks"], label=field_label("ranks", SweepGrid),
                               info="comma-separated, e.g. 4,16,64,256")
            errors["ranks"] = gr.Markdown(elem_classes=["field-error"], visible=False)
            rules = gr.CheckboxGroup(RULE_CHOICES, value=DEMO["rules"], label=field_label("rules", SweepGrid),
                                     info="standard: alpha/r; rslora: alpha/sqrt(r); sqrt law: standard with alpha = c*sqrt(r)")
            errors["rules"] = gr.Markdown(elem_classes=["field-error"], visible=False)
            law_c = gr.Number(DEMO["law_c"], label=f"{field_label('sqrt_law_c', SweepGrid)} (take it from a fit on "
                              "the Search tab)")
            errors["law_c"] = gr.Markdown(elem_classes=["field-error"], visible=False)
            alphas = gr.Textbox(DEMO["alphas"], label=field_label("alphas", SweepGrid), info="comma-separated")
            errors["alphas"] = gr.Markdown(elem_classes=["field-error"], visible=False)
            demo_lr, demo_steps, demo_batch = source_defaults(DEMO_TASK)
            with gr.Row():  # no precision=0: Gradio would round 2.5 steps to 2 instead of refusing it
                lr = gr.Number(demo_lr, label=field_label("lr"))
                steps = gr.Number(demo_steps, label=field_label("steps"), step=1)
                batch_size = gr.Number(demo_batch, label=field_label("batch_size"), step=1)
            for name in ("lr", "steps", "batch_size"):
                errors[name] = gr.Markdown(elem_classes=["field-error"], visible=False)
            device = gr.Dropdown(list(DEVICES), value=field_default("device"), label=field_label("device"),
                                 info=field_help("device"))
            errors["device"] = gr.Markdown(elem_classes=["field-error"], visible=False)
        with gr.Column(scale=3):
            # Start, Stop and the status on top: visible without scrolling at 1600x1000, whatever the form's length
            with gr.Row(equal_height=True):
                study_name = gr.Textbox(label="Study name", placeholder="new name, or an existing one to resume",
                                        elem_id="study-name", scale=3)
                start = gr.Button("Start", variant="primary", elem_id="start-sweep", scale=1, min_width=100)
                stop = gr.Button("Stop", variant="stop", elem_id="stop-run", scale=1, min_width=100)
            status = gr.Markdown(elem_id="run-status")  # where the study stands; the live refresh rewrites it
            message = gr.Markdown(elem_id="run-message")  # what Start or Stop just did; the refresh leaves it
            with gr.Row():
                loss_plot = gr.Plot(empty_figure("loss curves appear here"), label="Loss", elem_id="loss-plot")
                grad_plot = gr.Plot(empty_figure("gradient norms appear here"), label="Gradient norm",
                                    elem_id="grad-plot")
            table = gr.Dataframe(headers=TABLE_HEADERS, value=[], label="Trials", interactive=False, wrap=False,
                                 max_height=420)

    inputs = [source, model, data, ranks, rules, law_c, alphas, lr, steps, batch_size, device, study_name]
    error_boxes = [errors[name] for name in FIELDS]

    def start_sweep(source, model, data, ranks, rules, law_c, alphas, lr, steps, batch_size, device, name):
        data = stable_upload(data, ctx.runner.log_dir.parent)
        form = sweep_form(source, model, data, ranks, rules, law_c, alphas, lr, steps, batch_size, device)
        messages = [gr.update(value=f"⚠️ {form.errors[key]}", visible=True) if key in form.errors else
                    gr.update(value="", visible=False) for key in FIELDS]
        # notes stay under the dataset field, in a neutral style, while the status refreshes
        notes = gr.update(value="ℹ️ " + "  \n".join(form.notes), visible=True) if form.notes else \
            gr.update(value="", visible=False)
        if not form.ok:
            return ["Fix the fields marked ⚠️ and press Start again.", gr.update(), *messages, notes]
        name = (name or "").strip() or time.strftime("sweep-%Y%m%d-%H%M%S")
        try:
            ctx.runner.start(form.argv, name)
        except (RuntimeError, OSError) as err:
            return [f"⚠️ {err}", gr.update(), *messages, notes]
        return [f"Started **{name}**: curves appear within seconds.",
                gr.update(choices=[name, *[n for n in list_runs(ctx.storage_url) if n != name]], value=name),
                *messages, notes]

    start.click(start_sweep, inputs, [message, ctx.study, *error_boxes, data_notes], api_name="start_sweep",
                show_progress="hidden")

    def stop_run(name):
        if not name:
            return "No study selected."
        if idle(read_study(ctx.storage_url, name, with_curves=False), ctx.runner.is_running(name)):
            return f"Nothing running in **{name}**."
        return ctx.runner.stop(name)

    stop.click(stop_run, [ctx.study], [message], api_name="stop_run")
    source.change(source_defaults, [source], [lr, steps, batch_size], api_visibility="private")
    source.change(lambda src: [gr.update(visible=src == CUSTOM)] * 2, [source], [model, data],
                  api_visibility="private")
    return {"law_c": law_c, "status": status, "loss_plot": loss_plot, "grad_plot": grad_plot, "table": table,
            "source": {"source": source, "model": model, "data": data, "device": device, "steps": steps,
                       "batch_size": batch_size, "lr": lr}}


def live_outputs(view, ctx: UiContext, *, figures: bool = True) -> list:
    """Status, loss figure, grad-norm figure and table (queued trials included) for a study snapshot.

    With ``figures=False`` the two figures are left as drawn (``gr.skip()``).
    """
    running = bool(view.name) and ctx.runner.is_running(view.name)
    exit_message = ctx.runner.exit_message(view.name) if view.name else None
    status = run_status(view.name, view.started, running=running, waiting=view.waiting, exit_message=exit_message)
    rows = trial_rows(view.records, view.steps)
    if not figures:
        return [status, gr.skip(), gr.skip(), rows]
    if not any(r.get("curve") for r in view.records):
        return [status, empty_figure("waiting for the first steps..."), empty_figure("waiting for the first steps..."),
                rows]
    # plain dicts, not go.Figure: building Plotly objects for a 1000-trial study costs seconds per refresh
    return [status, PlotJSON(curve_spec(view.records, "loss")), PlotJSON(curve_spec(view.records, "grad_norm")), rows]
