"""Fit the alpha law ``alpha* = c * r**p`` from trials, with 95% confidence intervals.

Pure functions on plain records, so they are tested without Optuna, a GPU or a UI.

Under ``standard`` (gamma = alpha/r) an exponent p means gamma* ~ r**(p-1); under ``rslora``
(gamma = alpha/sqrt(r)) the same optimum in gamma shows up as an exponent smaller by 0.5. The
sqrt law ``alpha = c * sqrt(r)`` under ``standard`` is exactly ``rslora`` with ``lora_alpha = c``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from core.scaling import get_rule

CONFIDENCE = 0.95


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
    n_ranks: int

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
    return RankOptimum(rank=rank, alpha=alpha, loss=loss, best_trial_alpha=pts[best][0],
                       n_trials=len(pts), refined=refined, alpha_min=pts[0][0], alpha_max=pts[-1][0])


def fit_law(optima: list[RankOptimum], rule: str) -> LawFit:
    """Fit alpha* = c * r**p over ranks; intervals need at least 3 ranks."""
    if len(optima) < 2:
        raise ValueError(f"rule {rule}: need alpha* at 2 or more ranks to fit a law, got {len(optima)}")
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
        t = float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof))
        se_p = math.sqrt(s2 / sxx)
        se_logc = math.sqrt(s2 * (1.0 / n + x.mean() ** 2 / sxx))
        p_ci = (float(slope - t * se_p), float(slope + t * se_p))
        c_ci = (math.exp(intercept - t * se_logc), math.exp(intercept + t * se_logc))
        inside = p_ci[0] <= 0.5 <= p_ci[1]
        t1 = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))
        se_sqrt = float(sqrt_resid.std(ddof=1)) / math.sqrt(n)
        sqrt_c_ci = (math.exp(sqrt_log_c - t1 * se_sqrt), math.exp(sqrt_log_c + t1 * se_sqrt))
    return LawFit(rule=rule, p=float(slope), c=float(math.exp(intercept)), p_ci=p_ci, c_ci=c_ci,
                  sqrt_c=math.exp(sqrt_log_c), sqrt_c_ci=sqrt_c_ci, sqrt_inside_ci=inside, n_ranks=n)


def optima_by_rule(records: list[dict[str, Any]]) -> dict[str, list[RankOptimum]]:
    """Group finished trial records (rank, alpha, rule, eval_loss) into alpha* per rank per rule."""
    grouped: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec.get("state") == "COMPLETE" and rec.get("eval_loss") is not None:
            grouped[rec["rule"]][rec["rank"]].append((rec["alpha"], rec["eval_loss"]))
    return {rule: [alpha_optimum(pts, rank) for rank, pts in sorted(ranks.items())]
            for rule, ranks in grouped.items()}


def equivalence_note(law: LawFit) -> str:
    """Plain words on what the fitted sqrt coefficient means under the other rule."""
    c = law.sqrt_c
    if law.rule == "standard":
        return (f"alpha = {c:.4g} * sqrt(r) under standard (gamma = alpha/r) is the same gamma as "
                f"rslora with lora_alpha = {c:.4g} at every rank")
    return (f"rslora with alpha = {c:.4g} * sqrt(r) is the same gamma as standard with "
            f"alpha = {c:.4g} * r at every rank")


def fit_report(records: list[dict[str, Any]], *, target_rank: int | None = None) -> dict[str, Any]:
    """The whole fit as a JSON-friendly dict: alpha* per rank, law per rule, recommendation."""
    finished = [r for r in records if r.get("state") == "COMPLETE" and r.get("eval_loss") is not None]
    if not finished:
        raise ValueError("no completed trials to fit: run a sweep or search first")
    report: dict[str, Any] = {"rules": {}}
    for rule, optima in optima_by_rule(finished).items():
        entry: dict[str, Any] = {"optima": [asdict(o) for o in optima], "law": None}
        if len(optima) >= 2:
            law = fit_law(optima, rule)
            entry["law"] = asdict(law)
            entry["equivalence"] = equivalence_note(law)
            if target_rank:
                entry["predicted_alpha"] = {"rank": target_rank, "alpha": law.predict(target_rank)}
        report["rules"][rule] = entry
    best = min(finished, key=lambda r: r["eval_loss"])
    report["recommendation"] = {
        "study": best.get("study"), "trial": best["number"], "rank": best["rank"], "alpha": best["alpha"], "rule": best["rule"],
        "gamma": get_rule(best["rule"]).gamma(best["alpha"], best["rank"]), "eval_loss": best["eval_loss"],
    }
    return report


def confidence_band(optima: list[RankOptimum], ranks: list[float]) -> tuple[list[float], list[float], list[float]]:
    """The fitted alpha*(r) at ``ranks`` with its 95% confidence band for the mean (needs 3+ ranks).

    Returns (fit, low, high); low and high equal fit when there are too few ranks for a band.
    """
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
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 2)) * np.sqrt(s2 * (1.0 / n + (grid - x.mean()) ** 2 / sxx))
    return list(np.exp(center)), list(np.exp(center - half)), list(np.exp(center + half))
