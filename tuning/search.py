"""Alpha search per rank: an Optuna study over log-alpha for each rank, with pruning.

Each rank gets its own study, ``NAME/rRANK``, so the sampler models one loss landscape and the
pruner compares curves of the same rank. The learning rate stays fixed: the point is to find
the alpha (hence gamma) each rank wants. Rerunning the same command continues every study.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import optuna
from optuna.trial import TrialState

from core.specs import PRUNERS, SAMPLERS, SearchSpec, SpecError, TrialSpec  # noqa: F401 - re-exported
from tuning.objective import RecordHook, TrialFailed, make_objective
from tuning.storage import SETTINGS_ATTR, open_storage, study_names, study_settings
from tuning.sweep import FINAL_OUTCOMES, fail_dead_local_trials
from tuning.attrs import FIXED_ATTR


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


def make_sampler(search: SearchSpec, rank: int) -> optuna.samplers.BaseSampler:
    """The sampler over log-alpha at one rank."""
    if search.sampler == "grid":
        return optuna.samplers.GridSampler({"alpha": search.alpha_grid()}, seed=search.seed)
    if search.sampler == "gp":
        return optuna.samplers.GPSampler(seed=search.seed + rank)
    return optuna.samplers.TPESampler(seed=search.seed + rank, n_startup_trials=min(5, search.trials_per_rank))


def make_pruner(search: SearchSpec, base: TrialSpec) -> optuna.pruners.BasePruner:
    """Median or Hyperband over the eval losses reported every ``eval_every`` steps."""
    if search.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=base.steps // 4,
                                           interval_steps=1)
    if search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=base.eval_every, max_resource=base.steps,
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_rank_study(storage_url: str, name: str, base: TrialSpec, search: SearchSpec, rank: int) -> optuna.Study:
    """Create or reopen the study of one rank, checking it was made with the same settings."""
    study = optuna.create_study(study_name=rank_study_name(name, rank), storage=open_storage(storage_url),
                                direction="minimize", load_if_exists=True,
                                sampler=make_sampler(search, rank), pruner=make_pruner(search, base))
    settings = {"kind": "search", "base": base.to_dict(), "search": asdict(search), "rank": rank}
    old = study_settings(study)
    if not old:
        study.set_user_attr(SETTINGS_ATTR, settings)
    elif old.get("kind") != "search":
        raise SpecError(f"study {study.study_name!r} is not an alpha search: use another --study name")
    else:
        for key in ("rule", "lr", "alpha_min", "alpha_max", "seed"):
            if old["search"].get(key) != settings["search"][key]:
                raise SpecError(f"search {name!r} was run with {key.replace('_', '-')}="
                                f"{old['search'].get(key)}, not {settings['search'][key]}: use the "
                                f"same value or another --study name")
        if old["base"].get("steps") != base.steps or old["base"].get("task") != base.task:
            raise SpecError(f"search {name!r} was run with other task or steps: use another --study name")
    fail_dead_local_trials(study)
    return study


def finished_count(study: optuna.Study) -> int:
    """Trials that count towards trials-per-rank (killed or stopped ones do not)."""
    count = 0
    for trial in study.get_trials(deepcopy=False):
        status = trial.user_attrs.get("outcome", {}).get("status")
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                trial.state == TrialState.FAIL and status in FINAL_OUTCOMES):
            count += 1
    return count


def search_objective(base: TrialSpec, search: SearchSpec, rank: int, **kwargs: Any):
    """The objective of one rank's study: alpha from the sampler, the rest held fixed."""
    fixed = {"rank": rank, "rule": search.rule, "lr": search.lr, "seed": search.seed}

    def suggest(trial: optuna.Trial) -> dict[str, Any]:
        trial.set_user_attr(FIXED_ATTR, fixed)
        return {"alpha": trial.suggest_float("alpha", search.alpha_min, search.alpha_high, log=True), **fixed}

    return make_objective(base, suggest, **kwargs)


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
    on_trial_end: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> list[optuna.Study]:
    """Run (or continue) the search at every rank until each has trials_per_rank trials.

    ``studies`` from :func:`open_search` saves opening them again.
    """
    studies = studies or open_search(storage_url, name, base, search)
    callbacks = [on_trial_end] if on_trial_end else []
    for rank, study in zip(search.ranks, studies):
        objective = search_objective(base, search, rank, on_record=on_record, stop_requested=stop_requested)
        while not stop_requested() and finished_count(study) < search.trials_per_rank:
            study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=callbacks)
    return studies
