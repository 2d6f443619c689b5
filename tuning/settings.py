"""The settings a study is made with, and the one check that a rerun uses the same ones."""

from __future__ import annotations

from typing import Any

import optuna

from core.specs import SpecError
from tuning.attrs import SETTINGS_ATTR
from tuning.storage import study_settings

# Trial params: each trial sets them, so the base spec's values mean nothing for a study.
GRID_PARAMS = ("rank", "alpha", "rule", "lr", "seed")
# Base-spec fields that may differ between runs of one study (they do not change results).
RUN_ONLY_FIELDS = {"device"}
# Search fields a rerun may change: more trials per rank continue the same studies.
# (Ranks too: each rank has its own study; the alpha range they imply is stored as alpha_high.)
GROWABLE_SEARCH_FIELDS = {"trials_per_rank", "ranks"}


def save_or_check_settings(study: optuna.Study, settings: dict[str, Any], name: str) -> None:
    """Refuse a rerun whose settings differ (SpecError), else save them (a grid may grow)."""
    check_same_settings(study, settings, name)
    if study_settings(study) != settings:
        study.set_user_attr(SETTINGS_ATTR, settings)


def check_same_settings(study: optuna.Study, new: dict[str, Any], name: str) -> None:
    """Raise SpecError naming the first base-spec or search field that differs from the stored run."""
    old = study_settings(study)
    if not old:
        return
    if old.get("kind") != new["kind"]:
        raise SpecError(f"study {name!r} holds a {old.get('kind') or 'non-lorascope study'}, not a "
                        f"{new['kind']}: use another --study name")
    skip_base = RUN_ONLY_FIELDS | set(GRID_PARAMS)
    pairs = [(key, old.get("base", {}), value) for key, value in new["base"].items() if key not in skip_base]
    pairs += [(key, old.get("search", {}), value) for key, value in new.get("search", {}).items()
              if key not in GROWABLE_SEARCH_FIELDS]
    for key, stored, value in pairs:
        # a field lorascope added after the study was made cannot have been set differently
        if key in stored and _normal(stored[key]) != _normal(value):
            raise SpecError(f"study {name!r} was run with {key.replace('_', '-')}={stored[key]!r}, not "
                            f"{value!r}: use the same settings or another --study name")


def _normal(value: Any) -> Any:
    # stored settings went through JSON: tuples came back as lists
    return list(value) if isinstance(value, tuple) else value


def build_pruner(spec: dict[str, Any] | None) -> optuna.pruners.BasePruner:
    """The pruner a stored ``{"name": ..., **params}`` describes; none when absent."""
    spec = dict(spec or {"name": "none"})
    kinds = {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
             "hyperband": optuna.pruners.HyperbandPruner}
    return kinds[spec.pop("name")](**spec)


def build_sampler(spec: dict[str, Any] | None) -> optuna.samplers.BaseSampler | None:
    """The sampler a stored ``{"name": ..., **params}`` describes; None (Optuna's default) when absent."""
    if not spec:
        return None
    spec = dict(spec)
    kinds = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler,
             "grid": optuna.samplers.GridSampler}
    return kinds[spec.pop("name")](**spec)
