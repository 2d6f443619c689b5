"""Turn a study's trials into an exportable choice: a given trial, the best one, or a law's alpha."""

from __future__ import annotations

from typing import Any

from core.specs import SpecError
from tuning.export import ExportChoice
from tuning.fit import fit_report, setting_of


def choice_from_record(record: dict[str, Any], settings: dict, *, alpha: float | None = None,
                       rank: int | None = None, note: str | None = None) -> ExportChoice:
    """The ExportChoice for a trial record (optionally at another rank and alpha)."""
    from core.models import TINY_LM  # torch: only when a choice is made, not when the UI imports this
    from core.tasks import get_task

    base = settings.get("base", {})
    synthetic = bool(base.get("task")) and get_task(base["task"]).kind == "synthetic"
    targets = record.get("target_modules") or base.get("target_modules")
    if not targets:
        raise SpecError(f"trial {record['number']} recorded no target modules: export a completed trial")
    return ExportChoice(
        rank=rank or record["rank"], alpha=alpha or record["alpha"], rule=record["rule"],
        target_modules=tuple(targets), lora_dropout=base.get("lora_dropout", 0.0),
        base_model=None if synthetic else (base.get("model") or str(TINY_LM)),
        task_type=None if synthetic else "CAUSAL_LM", notes=(note,) if note else (),
    )


def choose(records: list[dict[str, Any]], settings: dict, *, trial: int | None = None,
           rank: int | None = None) -> ExportChoice:
    """Pick what to export: ``trial`` if given; at ``rank`` the fitted law's alpha; else the best trial.

    The law and any fallback trial come from the best trial's training setting (lr, seed), never
    from another setting's trials.
    """
    complete = [r for r in records if r["state"] == "COMPLETE"]
    if not complete:
        raise SpecError("no completed trials in this study: run a sweep or search first")
    if trial is not None:
        matches = [r for r in complete if r["number"] == trial and (rank is None or r["rank"] == rank)]
        if not matches:
            raise SpecError(f"no completed trial number {trial}: see `lorascope results`")
        if len(matches) > 1:
            ranks = ", ".join(str(r["rank"]) for r in matches)
            raise SpecError(f"trial {trial} exists at ranks {ranks} of this search: add --rank R to pick one")
        return choice_from_record(matches[0], settings)
    report = fit_report(complete, target_rank=rank)
    rec = report["recommendation"]
    best = next(r for r in complete if r["number"] == rec["trial"] and r.get("study") == rec["study"])
    if rank is None:
        located = "" if rec["alpha_located"] else ("; alpha* not located at this rank, a better alpha may lie "
                                                   "outside those tried")
        return choice_from_record(best, settings, note=f"best trial: eval loss {best['eval_loss']:.4g}{located}")
    entry = report["rules"].get(best["rule"], {})
    if entry.get("predicted_alpha"):
        alpha = entry["predicted_alpha"]["alpha"]
        law = entry["law"]
        return choice_from_record(best, settings, rank=rank, alpha=alpha,
                                  note=f"alpha from the fitted law {law['c']:.4g} * r^{law['p']:.3f} "
                                       f"at {rec['setting']}")
    at_rank = [r for r in complete if r["rank"] == rank and r["rule"] == best["rule"]
               and setting_of(r) == setting_of(best)]
    if not at_rank:
        raise SpecError(f"rank {rank}: no fitted law (need alpha* located at 2+ ranks) and no trial at that rank "
                        f"with {rec['setting']}")
    pick = min(at_rank, key=lambda r: r["eval_loss"])
    return choice_from_record(pick, settings, note=f"best trial at rank {rank}")
