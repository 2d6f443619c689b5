"""Pure helpers that turn results records into what the UI shows: trial tables and status lines."""

from __future__ import annotations

from typing import Any

TABLE_HEADERS = ["trial", "state", "rank", "rule", "alpha", "gamma", "lr", "progress", "eval loss",
                 "final loss", "svd floor", "message"]


def outcome_word(record: dict[str, Any]) -> str:
    """How a trial stands, in one lower-case word used everywhere: ``complete``, ``running``,
    ``pruned``, ``stopped``, ``failed``, ``diverged``, ``oom`` or ``killed``."""
    if record.get("state") == "FAIL":
        return record.get("status") or "failed"
    return str(record.get("state") or "unknown").lower()


def _fmt(value: Any, spec: str = ".4g") -> str:
    return "" if value is None else format(value, spec)


def trial_rows(records: list[dict[str, Any]], steps: int | None) -> list[list[str]]:
    """One table row per trial: state, params, progress in steps and losses."""
    rows = []
    for rec in records:
        done = len(rec.get("curve") or []) if rec["state"] == "RUNNING" else rec.get("steps_done") or 0
        progress = f"{done}/{steps}" if steps else str(done)
        rows.append([str(rec.get("study", "")).rsplit("/", 1)[-1] + f"#{rec['number']}"
                     if "/" in str(rec.get("study", "")) else str(rec["number"]),
                     outcome_word(rec), str(rec["rank"]), rec["rule"] or "", _fmt(rec["alpha"]), _fmt(rec["gamma"]),
                     _fmt(rec["lr"], "g"), progress, _fmt(rec["eval_loss"]), _fmt(rec["final_loss"]),
                     _fmt(rec["svd_floor"]), rec.get("error") or ""])
    return rows


def awaiting_first_point(records: list[dict[str, Any]], running: bool) -> bool:
    """True while the study's worker runs and no trial has drawn a point yet."""
    return running and not any(rec.get("curve") for rec in records)


def run_status(name: str | None, records: list[dict[str, Any]], *, running: bool, waiting: int = 0,
               exit_message: str | None = None) -> str:
    """One Markdown line on where the study stands."""
    if not name:
        return "No study yet: set up a run and press **Start**."
    counts: dict[str, int] = {}
    for rec in records:
        counts[outcome_word(rec)] = counts.get(outcome_word(rec), 0) + 1
    parts = [f"{n} {word}" for word, n in sorted(counts.items())]
    if waiting:
        parts.append(f"{waiting} queued")
    state = "running" if running else "idle"
    line = f"**{name}** ({state}): " + (", ".join(parts) if parts else "starting...")
    if awaiting_first_point(records, running):
        line += "  \n⏳ starting worker: loading the model, the first step follows"
    if exit_message:
        line += f"  \n⚠️ worker stopped: `{exit_message}`"
    return line
