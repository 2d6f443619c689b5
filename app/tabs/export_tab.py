"""Export tab: pick the recommendation or a trial; preview every format; download."""

from __future__ import annotations


import gradio as gr

from app.runner import safe_name
from app.state import read_study
from app.tabs.context import UiContext
from core.specs import SpecError
from tuning.export import FORMATS, DEFAULT_NAMES, render, write_export
from tuning.fit import fit_report
from tuning.recommend import choose

RECOMMENDED = "recommended (best eval loss)"
BEST_TRIAL = "best trial (lowest eval loss; alpha* not located)"
LANGUAGES = {"peft": "json", "python": "python", "axolotl": "yaml", "llama-factory": "yaml"}


def default_label(records: list[dict]) -> str:
    """"recommended" when the study located alpha* at the recommended trial's rank, else "best trial"."""
    complete = [r for r in records if r["state"] == "COMPLETE"]
    try:
        located = bool(complete) and fit_report(complete)["recommendation"]["alpha_located"]
    except ValueError:
        located = False
    return RECOMMENDED if located else BEST_TRIAL


def choice_labels(records: list[dict]) -> list[str]:
    """Dropdown entries: the recommendation (or the best trial), then every completed trial."""
    labels = [default_label(records)]
    for rec in records:
        if rec["state"] == "COMPLETE":
            labels.append(f"trial {rec['number']} r={rec['rank']} {rec['rule']} alpha={rec['alpha']:.4g} "
                          f"eval={rec['eval_loss']:.4f}")
    return labels


def build(ctx: UiContext, tab: gr.Tab) -> dict:
    """Lay out the Export tab and wire preview and download; opening ``tab`` re-reads the study."""
    with gr.Row():
        pick = gr.Dropdown([BEST_TRIAL], value=BEST_TRIAL, label="What to export", elem_id="export-pick")
        fmt = gr.Radio(list(FORMATS), value="peft", label="Format", elem_id="export-format")
        refresh = gr.Button("Refresh choices")
    notes = gr.Markdown(elem_id="export-notes")
    preview = gr.Code(label="Preview", language="json", elem_id="export-preview")
    download = gr.DownloadButton("Download", elem_id="export-download")

    def make(name, pick, fmt):
        view = read_study(ctx.storage_url, name)
        try:
            trial = None if pick in (RECOMMENDED, BEST_TRIAL) else int(pick.split()[1])
            rank = None if trial is None else int(pick.split()[2].removeprefix("r="))
            choice = choose(view.records, view.settings, trial=trial, rank=rank)
            written, text = render(choice, fmt)
            out_dir = ctx.runner.log_dir.parent / "exports" / safe_name(name or "none")
            target = out_dir / (fmt if fmt == "peft" else DEFAULT_NAMES[fmt])
            path, _ = write_export(choice, fmt, target, force=True)
        except (SpecError, ValueError, IndexError) as err:
            return [f"⚠️ {err}", gr.update(value="", language="json"), gr.update(value=None)]
        lines = [f"r={written.rank}, lora_alpha={int(written.alpha)}, {written.rule}, gamma={written.gamma:.6g}"]
        lines += [f"note: {note}" for note in written.notes]
        return ["  \n".join(lines), gr.update(value=text, language=LANGUAGES[fmt]), gr.update(value=str(path))]

    outputs = [notes, preview, download]
    pick.change(make, [ctx.study, pick, fmt], outputs, api_name="export_preview")
    fmt.change(make, [ctx.study, pick, fmt], outputs, api_visibility="private")

    def refresh_choices(name):
        labels = choice_labels(read_study(ctx.storage_url, name).records)
        return gr.update(choices=labels, value=labels[0])

    refresh.click(refresh_choices, [ctx.study], [pick], api_name="export_choices").then(
        make, [ctx.study, pick, fmt], outputs, api_visibility="private")
    # trials finish after the study was picked: opening the tab, not only a new study, re-reads it
    for event in (ctx.study.change, tab.select):
        event(refresh_choices, [ctx.study], [pick], api_visibility="private").then(
            make, [ctx.study, pick, fmt], outputs, api_visibility="private")
    return {"pick": pick}

