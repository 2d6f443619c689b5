"""Compare tab: loss vs rank per rule with the SVD floor; gradient norm vs rank with slopes."""

from __future__ import annotations

import gradio as gr

from app.figure_style import rule_order, series_label
from app.figures import empty_figure, grad_norm_slopes, grad_norm_vs_rank_figure, rank_comparison_figure, verdict


def build() -> dict:
    """Lay out the Compare tab."""
    verdicts = gr.Markdown(elem_id="verdicts")
    with gr.Row():
        loss_vs_rank = gr.Plot(empty_figure("final loss vs rank appears when trials finish"), label="Loss vs rank")
        grad_vs_rank = gr.Plot(empty_figure("gradient norm vs rank appears with the first steps"),
                               label="Gradient norm vs rank")
    which = gr.Radio(["step0", "mean"], value="step0", label="Gradient norm per trial",
                     info="step 0 (before any update) or the mean over the run")
    return {"verdicts": verdicts, "loss_vs_rank": loss_vs_rank, "grad_vs_rank": grad_vs_rank, "which": which}


def compare_outputs(records: list[dict], which: str) -> list:
    """Verdict text and the two comparison figures."""
    finished = [r for r in records if r["state"] == "COMPLETE"]
    slopes = grad_norm_slopes(records, which=which)
    lines = [f"- **{series_label(name)}**: {verdict(slope)}"
             for name, slope in sorted(slopes.items(), key=lambda item: rule_order(item[0]))]
    text = ("Gradient norm ~ r^slope. rsLoRA predicts a flat norm (slope 0) and alpha/r a collapsing one "
            "(slope -0.5); the sqrt law alpha = c*sqrt(r) under standard has rsLoRA's scale, so flat too.\n"
            + "\n".join(lines)) if lines else "Run at least two ranks to compare the rules."
    loss_fig = rank_comparison_figure(records) if finished else empty_figure("no finished trial yet")
    grad_fig = grad_norm_vs_rank_figure(records, which=which) if slopes else empty_figure("need two ranks")
    return [text, loss_fig, grad_fig]
