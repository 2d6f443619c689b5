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
from tuning.fit import fit_report


def build(ctx: UiContext, law_c) -> dict:
    """Lay out the Search tab; ``law_c`` is the Run tab's sqrt-law coefficient to fill from a fit."""
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            gr.Markdown("Uses the task, model, data, device, steps and batch size of the **Run** tab.")
            ranks = gr.Textbox("4,16,64", label="Ranks")
            rule = gr.Radio(["standard", "rslora"], value="standard", label="Rule")
            with gr.Row():
                alpha_min = gr.Number(1.0, label="alpha min")
                alpha_max = gr.Number(4096.0, label="alpha max",
                                      info="4096 = 512*sqrt(64): past the LoRA-alpha paper's 256*sqrt(r)")
            trials = gr.Number(12, label="Trials per rank", precision=0)
            with gr.Row():
                sampler = gr.Dropdown(["tpe", "gp", "grid"], value="tpe", label="Sampler")
                pruner = gr.Dropdown(["none", "median", "hyperband"], value="median", label="Pruner")
            errors = gr.Markdown(elem_classes=["field-error"], visible=False)
            study_name = gr.Textbox(label="Search name", placeholder="new name, or an existing one to continue")
            start = gr.Button("Start search", variant="primary", elem_id="start-search")
        with gr.Column(scale=3):
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
            text = "\n".join(f"⚠️ {message}" for message in form.errors.values())
            return [gr.update(value=text, visible=True), gr.update()]
        name = (name or "").strip() or time.strftime("search-%Y%m%d-%H%M%S")
        try:
            ctx.runner.start(form.argv, name)
        except (RuntimeError, OSError) as err:
            return [gr.update(value=f"⚠️ {err}", visible=True), gr.update()]
        return [gr.update(value="", visible=False), gr.update(choices=[name, *[n for n in list_runs(ctx.storage_url) if n != name]], value=name)]

    start.click(start_search, [ranks, rule, alpha_min, alpha_max, trials, sampler, pruner, study_name, src["source"],
                               src["model"], src["data"], src["device"], src["steps"], src["batch_size"], src["lr"]],
                [errors, ctx.study], api_name="start_search")

    def fitted_c(name):
        report = _report(read_study(ctx.storage_url, name).records)
        laws = [e["law"] for e in (report or {}).get("rules", {}).values() if e.get("law")]
        return laws[0]["sqrt_c"] if laws else gr.update()

    use_c.click(fitted_c, [ctx.study], [law_c], api_name="fitted_c")
    return {"fit_text": fit_text, "landscape": landscape, "law": law}


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
