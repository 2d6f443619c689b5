"""Studies tab: every study in the storage; pick one to reopen it in all tabs."""

from __future__ import annotations

import gradio as gr

from app.runner import list_runs
from app.tabs.context import UiContext
from tuning.results import collect_records
from tuning.storage import redact_url

HEADERS = ["study", "kind", "trials", "complete", "running", "failed", "worker"]


def study_rows(ctx: UiContext) -> list[list]:
    """One row per logical study: kind, trial counts and whether a worker runs it."""
    rows = []
    for name in list_runs(ctx.storage_url):
        records, settings = collect_records(ctx.storage_url, name)
        states = [r["state"] for r in records]
        rows.append([name, settings.get("kind", "other"), len(records), states.count("COMPLETE"),
                     states.count("RUNNING"), states.count("FAIL"),
                     "running" if ctx.runner.is_running(name) else ""])
    return rows


def build(ctx: UiContext) -> dict:
    """Lay out the Studies tab."""
    gr.Markdown(f"Storage: `{redact_url(ctx.storage_url)}`. Select a row to open that study in every tab.")
    table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, elem_id="studies-table")
    refresh = gr.Button("Refresh")

    def refresh_all(current=None):
        runs = list_runs(ctx.storage_url)
        # a fresh page opens the newest study, so a run started elsewhere shows at once
        value = current if current in runs else (runs[0] if runs else None)
        return study_rows(ctx), gr.update(choices=runs, value=value)

    refresh.click(refresh_all, [ctx.study], [table, ctx.study], api_name="studies")

    def open_study(evt: gr.SelectData):
        row = evt.row_value if hasattr(evt, "row_value") else None
        return gr.update(value=row[0]) if row else gr.update()

    table.select(open_study, None, [ctx.study], api_visibility="private")
    return {"table": table, "refresh_all": refresh_all}
