"""Alpha search per rank: an Optuna study over log-alpha for each rank, pruned only if asked.

Each rank gets its own study, ``NAME/rRANK``, so the sampler models one loss landscape and the
pruner compares curves of the same rank. The learning rate stays fixed: the point is to find
the alpha (hence gamma) each rank wants. Rerunning the same command continues every study. The
sampler and pruner are stored with each study, so a worker joining it uses the same ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import optuna
from optuna.trial import TrialState

from core.specs import PRUNERS, SAMPLERS, PackSpec, SearchSpec, TrialSpec  # noqa: F401 - re-exported
from tuning.attrs import FIXED_ATTR, OUTCOME_ATTR
from tuning.datasets import DATASET_SETTING, dataset_record
from tuning.objective import RecordHook, TrialEndHook, run_packs
from tuning.queue import (FINAL_OUTCOMES, claim_waiting, create_trials_below, fail_dead_local_trials,
                          fail_stale_trials, study_lock)
from tuning.settings import build_pruner, build_sampler, save_or_check_settings
from tuning.storage import open_storage, study_names, study_settings


def rank_study_name(name: str, rank: int) -> str:
    """The study holding the search at ``rank``."""
    return f"{name}/r{rank}"


def split_rank_study_name(study_name: str) -> tuple[str, int | None]:
    """(search name, rank) of a per-rank study; (study_name, None) for any other study."""
    head, sep, rank = study_name.rpartition("/r")
    return (head, int(rank)) if sep and rank.isdigit() else (study_name, None)


def search_study_names(storage_url: str, name: str) -> list[str]:
    """The per-rank studies of search ``name``, by rank."""
    return [s for s in group_study_names(storage_url, name) if s != name]


def group_study_names(storage_url: str, name: str) -> list[str]:
    """The studies a name stands for: the study itself (a sweep), then its per-rank search studies."""
    names = study_names(storage_url)
    own = [name] if name in names else []
    ranked = sorted((rank, s) for s in names for head, rank in [split_rank_study_name(s)]
                    if head == name and rank is not None)
    return own + [s for _, s in ranked]


def sampler_settings(search: SearchSpec, rank: int) -> dict[str, Any]:
    """The sampler over log-alpha at one rank, as stored with the study (see settings.build_sampler)."""
    if search.sampler == "grid":
        return {"name": "grid", "search_space": {"alpha": search.alpha_grid()}, "seed": search.seed}
    if search.sampler == "gp":
        return {"name": "gp", "seed": search.seed + rank}
    # constant liar: trials asked together (a pack) see each other's alphas as running, so they spread out
    return {"name": "tpe", "seed": search.seed + rank, "n_startup_trials": min(5, search.trials_per_rank),
            "constant_liar": True}


def pruner_settings(search: SearchSpec, base: TrialSpec) -> dict[str, Any]:
    """Median or Hyperband over the eval losses reported every ``eval_every`` steps, as stored."""
    if search.pruner == "median":
        return {"name": "median", "n_startup_trials": 3, "n_warmup_steps": base.steps // 4, "interval_steps": 1}
    if search.pruner == "hyperband":
        return {"name": "hyperband", "min_resource": base.eval_every, "max_resource": base.steps,
                "reduction_factor": 3}
    return {"name": "none"}


def open_rank_study(storage_url: str, name: str, base: TrialSpec, search: SearchSpec, rank: int) -> optuna.Study:
    """Create or reopen the study of one rank, checking it was made with the same settings."""
    sampler, pruner = sampler_settings(search, rank), pruner_settings(search, base)
    study = optuna.create_study(study_name=rank_study_name(name, rank), storage=open_storage(storage_url),
                                direction="minimize", load_if_exists=True,
                                sampler=build_sampler(sampler), pruner=build_pruner(pruner))
    settings = {"kind": "search", "base": base.to_dict(), "search": {**asdict(search), "alpha_high": search.alpha_high},
                "rank": rank, "sampler": sampler, "pruner": pruner}
    if base.data:  # workers on other machines train on the stored content, not on this path
        settings[DATASET_SETTING] = dataset_record(storage_url, base.data)
    with study_lock(study):
        save_or_check_settings(study, settings, name)
    fail_dead_local_trials(study)
    fail_stale_trials(study)
    return study


def finished_count(study: optuna.Study) -> int:
    """Trials that count towards trials-per-rank (killed or stopped ones do not)."""
    count = 0
    for trial in study.get_trials(deepcopy=False):
        status = trial.user_attrs.get(OUTCOME_ATTR, {}).get("status")
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                trial.state == TrialState.FAIL and status in FINAL_OUTCOMES):
            count += 1
    return count


def search_suggest(settings: dict[str, Any]) -> Callable[[optuna.Trial], dict[str, Any]]:
    """How one rank's trials get their params: alpha from the sampler, the rest held fixed."""
    stored = settings["search"]
    search = SearchSpec(**{**{k: v for k, v in stored.items() if k in SearchSpec.__dataclass_fields__},
                           "ranks": tuple(stored["ranks"])})
    fixed = {"rank": settings["rank"], "rule": search.rule, "lr": search.lr, "seed": search.seed}

    def suggest(trial: optuna.Trial) -> dict[str, Any]:
        trial.set_user_attr(FIXED_ATTR, fixed)
        return {"alpha": trial.suggest_float("alpha", search.alpha_min, search.alpha_high, log=True), **fixed}

    return suggest


def run_rank_search(
    study: optuna.Study,
    base: TrialSpec,
    *,
    on_record: RecordHook | None = None,
    on_trial_end: TrialEndHook | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    pack: PackSpec = PackSpec(),
) -> None:
    """Run one rank's study until it holds trials_per_rank trials (queued retries first).

    Up to ``pack.limit`` trials are asked for at once (their alphas from the study's sampler, one
    after another) and trained as one pack. Several processes may run it at once: a new trial is
    created only under the study lock, while fewer than trials_per_rank trials are finished,
    running or queued.
    """
    settings = study_settings(study)

    def take(limit: int) -> list[optuna.Trial]:
        size = min(limit, startup_left(study, settings) or limit)
        claimed = claim_waiting(study, size)  # queued retries first
        return claimed + create_trials_below(study, settings["search"]["trials_per_rank"], size - len(claimed))

    run_packs(study, base, take, search_suggest(settings), on_record=on_record, on_trial_end=on_trial_end,
              stop_requested=stop_requested, pack=pack)


def startup_left(study: optuna.Study, settings: dict[str, Any]) -> int:
    """Trials the pruner still needs finished before it compares (a pack that starts earlier is never pruned)."""
    startup = settings.get("pruner", {}).get("n_startup_trials", 0)
    return max(0, startup - len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))


def open_search(storage_url: str, name: str, base: TrialSpec, search: SearchSpec) -> list[optuna.Study]:
    """Create or reopen the study of every rank of the search."""
    return [open_rank_study(storage_url, name, base, search, rank) for rank in search.ranks]


def pending_trials(studies: list[optuna.Study], search: SearchSpec) -> int:
    """How many trials the search's studies still have to run."""
    return sum(max(0, search.trials_per_rank - finished_count(study)) for study in studies)


def run_search(
    storage_url: str,
    name: str,
    base: TrialSpec,
    search: SearchSpec,
    *,
    studies: list[optuna.Study] | None = None,
    on_record: RecordHook | None = None,
    on_trial_end: TrialEndHook | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    pack: PackSpec = PackSpec(),
) -> list[optuna.Study]:
    """Run (or continue) the search at every rank until each has trials_per_rank trials.

    ``studies`` from :func:`open_search` saves opening them again.
    """
    studies = studies or open_search(storage_url, name, base, search)
    for study in studies:
        run_rank_search(study, base, on_record=on_record, on_trial_end=on_trial_end, stop_requested=stop_requested,
                        pack=pack)
    return studies
