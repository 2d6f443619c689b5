"""Studies tab: every study in the storage; pick one to reopen it in all tabs."""

from __future__ import annotations

import gradio as gr

from collections.abc import Callable
from datetime import datetime

from app.runner import list_runs
from app.tabs.context import UiContext
from tuning.results import collect_records
from tuning.search import split_rank_study_name
from tuning.storage import open_storage, redact_url

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


def last_activity(storage_url: str) -> dict[str, datetime]:
    """When each logical study last started or finished a trial (studies with no such trial are left out)."""
    storage = open_storage(storage_url)
    latest: dict[str, datetime] = {}
    for study in storage.get_all_studies():
        name = split_rank_study_name(study.study_name)[0]
        for trial in storage.get_all_trials(study._study_id, deepcopy=False):
            stamp = trial.datetime_complete or trial.datetime_start
            if stamp is not None and (name not in latest or stamp > latest[name]):
                latest[name] = stamp
    return latest


def study_to_open(runs: list[str], is_running: Callable[[str], bool],
                  activity: Callable[[], dict[str, datetime]]) -> str | None:
    """The study a fresh page shows: the newest one running, else the one updated last, else the newest."""
    running = next((name for name in runs if is_running(name)), None)
    if running or not runs:
        return running
    latest = activity()
    return max(runs, key=lambda name: latest.get(name, datetime.min))  # on a tie, the first: the newest


def build(ctx: UiContext) -> dict:
    """Lay out the Studies tab."""
    gr.Markdown(f"Storage: `{redact_url(ctx.storage_url)}`. Select a row to open that study in every tab.")
    table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, elem_id="studies-table")
    refresh = gr.Button("Refresh")

    def refresh_all(current=None):
        runs = list_runs(ctx.storage_url)
        value = current if current in runs else (runs[0] if runs else None)
        return study_rows(ctx), gr.update(choices=runs, value=value)

    refresh.click(refresh_all, [ctx.study], [table, ctx.study], api_name="studies")

    def page_study():
        """Computed at page load, not at build time: after an app restart a page opens the run going now."""
        runs = list_runs(ctx.storage_url)
        return gr.update(choices=runs, value=study_to_open(runs, ctx.runner.is_running,
                                                             lambda: last_activity(ctx.storage_url)))

    def open_study(evt: gr.SelectData):
        row = evt.row_value if hasattr(evt, "row_value") else None
        return gr.update(value=row[0]) if row else gr.update()

    table.select(open_study, None, [ctx.study], api_visibility="private")
    return {"table": table, "rows": lambda: study_rows(ctx), "page_study": page_study}
