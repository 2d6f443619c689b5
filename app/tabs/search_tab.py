"""Search & fit tab: start an alpha search per rank; the alpha landscape and the fitted law."""

from __future__ import annotations

import time

import gradio as gr

from app.figures import alpha_landscape_figure, alpha_law_figure, empty_figure
from app.forms import search_form
from app.progress import format_fit
from app.runner import list_runs
from app.state import read_study
from app.tabs.context import UiContext
from core.specs import field_label
from tuning.fit import fit_report

SEARCH_FIELDS = ["ranks", "rule", "alpha_min", "alpha_max", "trials", "sampler", "pruner"]
# form widget -> spec field, for errors about the Run tab's widgets that a search reuses
RUN_FIELDS = {"source": "task", "model": "model", "data": "data", "lr": "lr", "steps": "steps",
              "batch_size": "batch_size", "device": "device"}
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def error_updates(errors: dict[str, str]) -> list:
    """One update per box: each Search field's error under it, then the Run tab fields' errors together."""
    boxes = [gr.update(value=f"⚠️ {errors[key]}", visible=True) if key in errors else
             gr.update(value="", visible=False) for key in SEARCH_FIELDS]
    elsewhere = [f"⚠️ Run tab, {field_label(RUN_FIELDS[key])}: {message}" for key, message in errors.items()
                 if key in RUN_FIELDS]
    return [*boxes, gr.update(value="  \n".join(elsewhere), visible=bool(elsewhere))]


def search_progress(view) -> str:
    """Trials done of the total planned (a search's ranks x trials per rank), as the Run tab's status counts them."""
    if not view.name:
        return "No study yet: start a search."
    search = view.settings.get("search") or {}
    planned = len(search.get("ranks") or ()) * int(search.get("trials_per_rank") or 0)
    total = max(planned, len(view.records))
    done = sum(r["state"] in FINISHED for r in view.records)
    running = sum(r["state"] == "RUNNING" for r in view.records)
    return f"**{view.name}**: {done} / {total} trials done" + (f", {running} running" if running else "")


def _error_box(key: str) -> gr.Markdown:
    """The hidden box under a Search field that shows its error."""
    return gr.Markdown(elem_classes=["field-error"], visible=False, elem_id=f"search-{key}-error")


def build(ctx: UiContext, law_c) -> dict:
    """Lay out the Search tab; ``law_c`` is the Run tab's sqrt-law coefficient to fill from a fit."""
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            gr.Markdown("Uses the task, model, data, device, steps and batch size of the **Run** tab.")
            ranks = gr.Textbox("4,16,64", label="Ranks")
            boxes = {"ranks": _error_box("ranks")}
            rule = gr.Radio(["standard", "rslora"], value="standard", label="Rule")
            boxes["rule"] = _error_box("rule")
            with gr.Row():
                with gr.Column(min_width=140):
                    alpha_min = gr.Number(1.0, label="alpha min")
                    boxes["alpha_min"] = _error_box("alpha_min")
                with gr.Column(min_width=140):  # "×", not "*": the help is Markdown, where * starts italics
                    alpha_max = gr.Number(4096.0, label="alpha max", elem_id="search-alpha-max",
                                          info="4096 = 512×sqrt(64): past the LoRA-alpha paper's 256×sqrt(r)")
                    boxes["alpha_max"] = _error_box("alpha_max")
            trials = gr.Number(12, label="Trials per rank", step=1)  # no precision=0: 2.5 is refused, not rounded
            boxes["trials"] = _error_box("trials")
            with gr.Row():
                with gr.Column(min_width=140):
                    sampler = gr.Dropdown(["tpe", "gp", "grid"], value="tpe", label="Sampler")
                    boxes["sampler"] = _error_box("sampler")
                with gr.Column(min_width=140):
                    pruner = gr.Dropdown(["none", "median", "hyperband"], value="median", label="Pruner")
                    boxes["pruner"] = _error_box("pruner")
            study_name = gr.Textbox(label="Search name", placeholder="new name, or an existing one to continue")
            run_errors = gr.Markdown(elem_classes=["field-error"], visible=False, elem_id="search-run-errors")
            start = gr.Button("Start search", variant="primary", elem_id="start-search")
        with gr.Column(scale=3):
            progress = gr.Markdown(elem_id="search-status")
            fit_text = gr.Markdown(elem_id="fit-summary")
            with gr.Row():
                landscape = gr.Plot(empty_figure("loss vs alpha appears as trials finish"), label="Alpha landscape")
                law = gr.Plot(empty_figure("alpha* vs rank appears with 2+ ranks"), label="alpha* vs rank")
            use_c = gr.Button("Use the fitted sqrt-law c on the Run tab")
    src = ctx.source

    def start_search(ranks, rule, alpha_min, alpha_max, trials, sampler, pruner, name, source, model, data, device,
                     steps, batch_size, lr):
        form = search_form(source, model, data, ranks, rule, alpha_min, alpha_max, trials, sampler, pruner, lr,
                           steps, batch_size, device)
        if not form.ok:
            return [*error_updates(form.errors), gr.update()]
        name = (name or "").strip() or time.strftime("search-%Y%m%d-%H%M%S")
        try:
            ctx.runner.start(form.argv, name)
        except (RuntimeError, OSError) as err:
            return [*error_updates({})[:-1], gr.update(value=f"⚠️ {err}", visible=True), gr.update()]
        runs = [name, *[n for n in list_runs(ctx.storage_url) if n != name]]
        return [*error_updates({}), gr.update(choices=runs, value=name)]

    start.click(start_search, [ranks, rule, alpha_min, alpha_max, trials, sampler, pruner, study_name, src["source"],
                               src["model"], src["data"], src["device"], src["steps"], src["batch_size"], src["lr"]],
                [*[boxes[key] for key in SEARCH_FIELDS], run_errors, ctx.study], api_name="start_search")

    def fitted_c(name):
        report = _report(read_study(ctx.storage_url, name).records)
        laws = [e["law"] for e in (report or {}).get("rules", {}).values() if e.get("law")]
        return laws[0]["sqrt_c"] if laws else gr.update()

    use_c.click(fitted_c, [ctx.study], [law_c], api_name="fitted_c")
    return {"progress": progress, "fit_text": fit_text, "landscape": landscape, "law": law}


NOT_LOCATED = ("**Not enough alphas per rank to locate alpha\\*.** A rank's alpha\\* is located when 3 or more "
               "alphas were tried there and the best is not at an end of their range; here no rank is. "
               "Run a search, or a sweep with more alphas, to get a fit and a recommendation.")


def _report(records: list[dict], settings: dict | None = None) -> dict | None:
    try:
        return fit_report(records, settings=settings)
    except ValueError:
        return None


def search_outputs(records: list[dict], settings: dict | None = None) -> list:
    """Fit summary and the two search figures; ``settings`` maps study names to their settings."""
    report = _report(records, settings)
    if report is None:
        return ["No finished trial to fit yet.", empty_figure("no finished trial yet"), empty_figure("no fit yet")]
    located = any(o["located"] for group in report["groups"].values()
                  for entry in group["rules"].values() for o in entry["optima"])
    if not located:
        return [NOT_LOCATED, alpha_landscape_figure(records), empty_figure("alpha* not located at any rank")]
    text = "```\n" + format_fit(report) + "\n```"
    return [text, alpha_landscape_figure(records), alpha_law_figure(report)]
