"""Fit the alpha law ``alpha* = c * r**p`` from trials, with 95% confidence intervals.

Pure functions on plain records, so they are tested without Optuna, a GPU or a UI.

Honesty rules: trials of different training settings (learning rate, seed, steps, batch size, ...)
are never pooled, each setting gets its own fit; a rank's alpha* counts as *located* only when 3 or
more distinct alphas were tried there and the best is not at an end of that range; the law is
fitted on located ranks only, and with fewer than 2 of them the report gives bounds, not a law.

Under ``standard`` (gamma = alpha/r) an exponent p means gamma* ~ r**(p-1); under ``rslora``
(gamma = alpha/sqrt(r)) the same optimum in gamma shows up as an exponent smaller by 0.5. The
sqrt law ``alpha = c * sqrt(r)`` under ``standard`` is exactly ``rslora`` with ``lora_alpha = c``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.scaling import get_rule

CONFIDENCE = 0.95
MIN_ALPHAS = 3  # distinct alphas at a rank needed to locate its alpha* (a minimum needs both sides)
RECORD_SETTING_FIELDS = ("lr", "seed")  # trial params that are training settings, not adapter shape
# Base-spec fields that do not change what a trial computes, or that a fit varies on purpose.
NOT_SETTING_FIELDS = {"rank", "alpha", "rule", "lr", "seed", "device"}
NAMED_SETTING_FIELDS = ("lr", "seed", "steps", "batch_size")  # always shown when known


@dataclass(frozen=True)
class RankOptimum:
    """The best alpha found at one rank."""

    rank: int
    alpha: float  # alpha*, refined by a quadratic in log-alpha when the data allow
    loss: float  # the loss at alpha* (the quadratic's minimum when refined)
    best_trial_alpha: float
    n_trials: int
    refined: bool
    alpha_min: float  # the range of alphas tried at this rank
    alpha_max: float
    n_alphas: int = 0  # distinct alphas tried
    edge: str | None = None  # "low" or "high" when the best alpha is that end of a range of 2+ alphas
    at_edge: bool = False  # the best alpha is an end of the range tried (always so with one alpha)
    located: bool = True  # 3+ distinct alphas and the best strictly inside their range


@dataclass(frozen=True)
class LawFit:
    """A least-squares fit of log alpha* = log c + p log r, and the fixed-sqrt coefficient."""

    rule: str
    p: float
    c: float
    p_ci: tuple[float, float] | None  # None with fewer than 3 ranks
    c_ci: tuple[float, float] | None
    sqrt_c: float  # c of the fixed law alpha = c * sqrt(r)
    sqrt_c_ci: tuple[float, float] | None
    sqrt_inside_ci: bool | None  # whether p = 0.5 lies in p's interval
    n_ranks: int  # located ranks the law was fitted on
    excluded_ranks: tuple[int, ...] = ()  # ranks left out because their alpha* was not located

    def predict(self, rank: int) -> float:
        """The alpha this fitted law gives at ``rank``."""
        return self.c * rank**self.p


def alpha_optimum(points: list[tuple[float, float]], rank: int) -> RankOptimum:
    """alpha* from (alpha, loss) points at one rank: best point, refined by a local quadratic.

    The quadratic in log-alpha is fitted through the best point and its two neighbours in
    alpha; it is used only when convex with its vertex between those neighbours.
    """
    pts = sorted((a, l) for a, l in points if math.isfinite(l))
    if not pts:
        raise ValueError(f"rank {rank} has no finished trial to fit")
    best = min(range(len(pts)), key=lambda i: pts[i][1])
    alpha, loss, refined = pts[best][0], pts[best][1], False
    if 0 < best < len(pts) - 1:
        xs = np.log([pts[best - 1][0], pts[best][0], pts[best + 1][0]])
        ys = np.array([pts[best - 1][1], pts[best][1], pts[best + 1][1]])
        if len(set(xs)) == 3:
            a2, a1, a0 = np.polyfit(xs, ys, 2)
            if a2 > 0:
                vertex = -a1 / (2 * a2)
                if xs[0] <= vertex <= xs[2]:
                    alpha, loss, refined = float(math.exp(vertex)), float(a0 - a1**2 / (4 * a2)), True
    best_alpha, low, high = pts[best][0], pts[0][0], pts[-1][0]
    n_alphas = len({a for a, _ in pts})
    edge = None if low == high else "low" if best_alpha == low else "high" if best_alpha == high else None
    return RankOptimum(rank=rank, alpha=alpha, loss=loss, best_trial_alpha=best_alpha, n_trials=len(pts),
                       refined=refined, alpha_min=low, alpha_max=high, n_alphas=n_alphas, edge=edge,
                       at_edge=edge is not None or n_alphas < 2, located=n_alphas >= MIN_ALPHAS and edge is None)


def fit_law(optima: list[RankOptimum], rule: str) -> LawFit:
    """Fit alpha* = c * r**p over the ranks whose alpha* is located; intervals need 3 such ranks."""
    excluded = tuple(o.rank for o in optima if not o.located)
    optima = [o for o in optima if o.located]
    if len(optima) < 2:
        raise ValueError(f"rule {rule}: need alpha* located at 2 or more ranks to fit a law, got {len(optima)}")
    x = np.log([o.rank for o in optima])
    y = np.log([o.alpha for o in optima])
    n = len(x)
    slope, intercept = np.polyfit(x, y, 1)
    sqrt_resid = y - 0.5 * x
    sqrt_log_c = float(sqrt_resid.mean())
    p_ci = c_ci = sqrt_c_ci = None
    inside = None
    if n >= 3:
        resid = y - (intercept + slope * x)
        dof = n - 2
        s2 = float(resid @ resid) / dof
        sxx = float(((x - x.mean()) ** 2).sum())
        t = float(_t_quantile(dof))
        se_p = math.sqrt(s2 / sxx)
        se_logc = math.sqrt(s2 * (1.0 / n + x.mean() ** 2 / sxx))
        p_ci = (float(slope - t * se_p), float(slope + t * se_p))
        c_ci = (math.exp(intercept - t * se_logc), math.exp(intercept + t * se_logc))
        inside = p_ci[0] <= 0.5 <= p_ci[1]
        t1 = float(_t_quantile(n - 1))
        se_sqrt = float(sqrt_resid.std(ddof=1)) / math.sqrt(n)
        sqrt_c_ci = (math.exp(sqrt_log_c - t1 * se_sqrt), math.exp(sqrt_log_c + t1 * se_sqrt))
    return LawFit(rule=rule, p=float(slope), c=float(math.exp(intercept)), p_ci=p_ci, c_ci=c_ci,
                  sqrt_c=math.exp(sqrt_log_c), sqrt_c_ci=sqrt_c_ci, sqrt_inside_ci=inside, n_ranks=n,
                  excluded_ranks=excluded)


def optima_by_rule(records: list[dict[str, Any]]) -> dict[str, list[RankOptimum]]:
    """Group finished trial records (rank, alpha, rule, eval_loss) of ONE setting into alpha* per rank per rule."""
    grouped: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec.get("state") == "COMPLETE" and rec.get("eval_loss") is not None:
            grouped[rec["rule"]][rec["rank"]].append((rec["alpha"], rec["eval_loss"]))
    return {rule: [alpha_optimum(pts, rank) for rank, pts in sorted(ranks.items())]
            for rule, ranks in grouped.items()}


def setting_of(record: dict[str, Any], settings: Mapping[str, dict] | None = None) -> dict[str, Any]:
    """The training setting a trial ran under: its lr and seed plus its study's base settings.

    ``settings`` maps study names to study settings (``{"base": {...}}``); records of a study not
    in it contribute their own fields only.
    """
    base = ((settings or {}).get(record.get("study")) or {}).get("base", {})
    setting = {k: v for k, v in base.items() if k not in NOT_SETTING_FIELDS}
    setting.update({k: record.get(k) for k in RECORD_SETTING_FIELDS})
    return setting


def group_by_setting(records: list[dict[str, Any]], settings: Mapping[str, dict] | None = None
                     ) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Records split by training setting: ``{label: (setting, records)}``, labels name what matters."""
    keyed = [(setting_of(rec, settings), rec) for rec in records]
    known = {k for setting, _ in keyed for k, v in setting.items() if v is not None}
    varying = {k for k in known if len({_hashable(s.get(k)) for s, _ in keyed}) > 1}
    shown = [k for k in NAMED_SETTING_FIELDS if k in known] + sorted(varying - set(NAMED_SETTING_FIELDS))
    groups: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for setting, rec in keyed:
        label = " ".join(f"{k}={_show(setting.get(k))}" for k in shown)
        groups.setdefault(label, ({k: setting.get(k) for k in shown}, []))[1].append(rec)
    return dict(sorted(groups.items(), key=lambda item: tuple(_order(v) for v in item[1][0].values())))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _order(value: Any) -> tuple:
    """Numbers in numeric order, anything else after them by its text."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, str(value))


def _show(value: Any) -> str:
    if isinstance(value, float):  # short, but never so short that two settings read alike
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def equivalence_note(law: LawFit) -> str:
    """Plain words on what the fitted sqrt coefficient means under the other rule."""
    c = law.sqrt_c
    if law.rule == "standard":
        return (f"alpha = {c:.4g} * sqrt(r) under standard (gamma = alpha/r) is the same gamma as "
                f"rslora with lora_alpha = {c:.4g} at every rank")
    return (f"rslora with alpha = {c:.4g} * sqrt(r) is the same gamma as standard with "
            f"alpha = {c:.4g} * r at every rank")


def fit_report(records: list[dict[str, Any]], *, target_rank: int | None = None,
               settings: Mapping[str, dict] | None = None) -> dict[str, Any]:
    """The whole fit as a JSON-friendly dict, one fit per training setting, and the recommendation.

    ``groups`` maps a setting's label to ``{"setting", "n_trials", "rules"}``; per rule, ``optima``
    (alpha* per rank with ``located`` and ``at_edge``), ``law`` (fitted on located ranks only, or
    None), ``law_status`` ("fitted", "bound" when fewer than 2 ranks are located, "one rank") and
    ``bounds`` (what the unlocated ranks say about alpha*). ``recommendation`` is the best trial
    over all settings, naming its ``setting``; top-level ``rules`` repeats that setting's fit.
    ``settings`` maps study names to their settings, so that steps and batch size split groups too.
    """
    finished = [r for r in records if r.get("state") == "COMPLETE" and r.get("eval_loss") is not None]
    if not finished:
        raise ValueError("no completed trials to fit: run a sweep or search first")
    groups, label_of = {}, {}
    for label, (setting, group) in group_by_setting(finished, settings).items():
        rules = {rule: _rule_entry(rule, optima, target_rank) for rule, optima in optima_by_rule(group).items()}
        groups[label] = {"setting": setting, "n_trials": len(group), "rules": rules}
        label_of.update({id(rec): label for rec in group})
    best = min(finished, key=lambda r: r["eval_loss"])
    label = label_of[id(best)]
    optimum = next(o for o in groups[label]["rules"][best["rule"]]["optima"] if o["rank"] == best["rank"])
    recommendation = {
        "study": best.get("study"), "trial": best["number"], "rank": best["rank"], "alpha": best["alpha"],
        "rule": best["rule"], "gamma": get_rule(best["rule"]).gamma(best["alpha"], best["rank"]),
        "eval_loss": best["eval_loss"], "setting": label, "alpha_located": optimum["located"],
    }
    return {"groups": groups, "rules": groups[label]["rules"], "recommendation": recommendation}


def _rule_entry(rule: str, optima: list[RankOptimum], target_rank: int | None) -> dict[str, Any]:
    """One rule's fit within one setting: optima, law (located ranks only) or bounds."""
    located = [o for o in optima if o.located]
    entry: dict[str, Any] = {"optima": [asdict(o) for o in optima], "law": None,
                             "bounds": [_bound(o) for o in optima if not o.located]}
    if len(located) >= 2:
        law = fit_law(optima, rule)
        entry.update(law=asdict(law), law_status="fitted", equivalence=equivalence_note(law))
        if target_rank:
            entry["predicted_alpha"] = {"rank": target_rank, "alpha": law.predict(target_rank)}
    else:
        entry["law_status"] = "one rank" if len(optima) < 2 else "bound"
    return entry


def _bound(optimum: RankOptimum) -> dict[str, Any]:
    """What an unlocated rank says about its alpha*: ``>=`` or ``<=`` an alpha tried, or nothing."""
    relation = {"high": ">=", "low": "<="}.get(optimum.edge) if optimum.n_alphas >= 2 else None
    return {"rank": optimum.rank, "relation": relation, "alpha": optimum.best_trial_alpha,
            "n_alphas": optimum.n_alphas}


def confidence_band(optima: list[RankOptimum], ranks: list[float]) -> tuple[list[float], list[float], list[float]]:
    """The fitted alpha*(r) at ``ranks`` with its 95% confidence band for the mean (needs 3+ located ranks).

    Only located optima count, as in :func:`fit_law`. Returns (fit, low, high); low and high equal
    fit when there are too few ranks for a band.
    """
    optima = [o for o in optima if o.located]
    x = np.log([o.rank for o in optima])
    y = np.log([o.alpha for o in optima])
    slope, intercept = np.polyfit(x, y, 1)
    grid = np.log(np.asarray(ranks, dtype=float))
    center = intercept + slope * grid
    n = len(x)
    if n < 3:
        return list(np.exp(center)), list(np.exp(center)), list(np.exp(center))
    resid = y - (intercept + slope * x)
    s2 = float(resid @ resid) / (n - 2)
    sxx = float(((x - x.mean()) ** 2).sum())
    half = float(_t_quantile(n - 2)) * np.sqrt(s2 * (1.0 / n + (grid - x.mean()) ** 2 / sxx))
    return list(np.exp(center)), list(np.exp(center - half)), list(np.exp(center + half))


def _t_quantile(dof: int) -> float:
    """The two-sided CONFIDENCE quantile of Student's t with ``dof`` degrees of freedom."""
    from scipy import stats  # half a second of imports: only when a fit has an interval to give

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof))
