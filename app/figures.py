"""Plotly figures of a study: pure functions from results records to ``go.Figure``.

Records are the dicts of :func:`tuning.results.trial_record` (``curve`` optional). Numbers that
are missing, non-finite or stored as strings (``"nan"``) are treated as missing. Conventions
shared by every figure: colour by rank (:func:`rank_color`), line dash and marker symbol by rule,
``meta={"trial", "study", "kind"}`` on every per-trial trace, and a constant ``uirevision`` so a
live refresh keeps the user's zoom.
"""

from __future__ import annotations

import copy
import functools
import math
from collections import defaultdict
from typing import Any

import numpy as np
import plotly.graph_objects as go

from app.decimate import decimate

from app.figure_style import (
    COLLAPSING_BELOW,
    HEIGHT,
    MAX_POINTS,
    METRIC_COLOR,
    Record,
    STABLE_ABOVE,
    SQRT_LAW,
    SVD_FLOOR_NAME,
    dash,
    empty_figure,
    log_ticks,
    fmt,
    layout,
    log_rank_axis,
    num,
    ordered_rules,
    rank_color,
    rank_grid,
    rgba,
    rule_color,
    rule_order,
    series,
    series_label,
    setting_color,
    symbol,
    trace_label,
    trial_meta,
    two,
)
from app.views import outcome_word
from tuning.curves import Curve
from tuning.fit import RankOptimum, confidence_band

FIGURE_POINTS = 30_000  # per curve figure, shared by its traces: a 1000-trial Run tab ships under 2 MB
MIN_TRACE_POINTS = 24

__all__ = [
    "HEIGHT", "SVD_FLOOR_NAME", "alpha_landscape_figure", "alpha_law_figure", "empty_figure", "grad_norm_figure",
    "grad_norm_series", "grad_norm_slopes", "grad_norm_vs_rank_figure", "loss_figure", "rank_color",
    "rank_comparison_figure", "verdict",
]







def loss_figure(records: list[Record], *, max_points: int = MAX_POINTS) -> go.Figure:
    """Training loss vs step, one line per trial, with its eval-loss points."""
    return _as_figure(curve_spec(records, "loss", max_points=max_points))


def grad_norm_figure(records: list[Record], *, max_points: int = MAX_POINTS) -> go.Figure:
    """Adapter gradient norm vs step (log y), one line per trial."""
    return _as_figure(curve_spec(records, "grad_norm", max_points=max_points))


CURVE_FIELDS = {"loss": ("Training loss", "loss", False), "grad_norm": ("Gradient norm", "grad norm", True)}


def curve_spec(records: list[Record], field: str, *, max_points: int = MAX_POINTS) -> dict | None:
    """The loss (``field="loss"``) or grad-norm figure as a plain Plotly dict; None when no trial has a curve.

    Arrays stay numpy (int16/int32 steps, float32 values with NaN gaps); :mod:`app.plot_payload`
    ships the dict without building Plotly objects, which for thousands of traces cost seconds.
    """
    title, ytitle, log_y = CURVE_FIELDS[field]
    return _curve_spec(records, field, title, ytitle, log_y=log_y, max_points=max_points)


def _as_figure(spec: dict | None) -> go.Figure:
    if spec is None:
        return empty_figure("No training curves yet: waiting for the first steps")
    return go.Figure(spec, _validate=False)


def rank_comparison_figure(records: list[Record]) -> go.Figure:
    """Best eval loss and its trial's final training loss vs rank per rule, with the SVD floor."""
    best: dict[tuple[str, int], Record] = {}
    for rec in records:
        if rec.get("state") != "COMPLETE" or rec.get("rank") is None or rec.get("rule") is None:
            continue
        key = (rec["rule"], rec["rank"])
        if key not in best or _better(rec, best[key]):
            best[key] = rec
    floors: dict[int, float] = {}
    for rec in records:
        floor = num(rec.get("svd_floor"))
        if floor is not None and rec.get("rank") is not None:
            floors[rec["rank"]] = min(floor, floors.get(rec["rank"], math.inf))
    if not best:
        return empty_figure("No finished trials yet")
    several_lrs = len({rec.get("lr") for rec in best.values()}) > 1
    traces = []
    for rule in ordered_rules(rule for rule, _ in best):
        chosen = [best[key] for key in sorted(k for k in best if k[0] == rule)]
        for kind, field, label in (("eval", "eval_loss", "eval loss (best α)"),
                                   ("final", "final_loss", "final train loss")):
            points = [(rec, num(rec.get(field))) for rec in chosen]
            points = [(rec, y) for rec, y in points if y is not None]
            if not points:
                continue
            text = [trace_label(rec, lr=several_lrs) + f" (trial {rec['number']})" for rec, _ in points]
            traces.append(go.Scatter(
                x=[rec["rank"] for rec, _ in points], y=[y for _, y in points], mode="lines+markers",
                name=f"{rule} {label}", text=text, hovertemplate="%{text}<br>" + kind + " loss %{y:.4g}<extra></extra>",
                line={"color": METRIC_COLOR[kind], "dash": dash(rule)},
                marker={"symbol": symbol(rule, hollow=kind == "final"), "size": 8, "color": METRIC_COLOR[kind]},
                meta={"kind": kind, "rule": rule, "trials": [rec["number"] for rec, _ in points]}))
    if floors:
        ranks = sorted(floors)
        traces.append(go.Scatter(
            x=ranks, y=[floors[r] for r in ranks], mode="lines+markers", name=SVD_FLOOR_NAME,
            line={"color": METRIC_COLOR["svd_floor"], "dash": "dash", "width": 1.5},
            marker={"symbol": "x", "size": 7, "color": METRIC_COLOR["svd_floor"]},
            hovertemplate="r=%{x}<br>SVD floor %{y:.4g}<extra></extra>", meta={"kind": "svd_floor"}))
    ranks = sorted({rank for _, rank in best} | set(floors))
    fig = go.Figure(data=traces, layout=layout("Loss vs rank"))
    fig.update_xaxes(title_text="rank r", **log_rank_axis(ranks))
    fig.update_yaxes(title_text="loss")
    return fig


def grad_norm_slopes(records: list[Record], which: str = "step0") -> dict[str, float]:
    """Per series (a rule, or the sqrt law, see :func:`grad_norm_series`), the least-squares slope of
    log grad norm vs log rank (series with 2+ ranks)."""
    slopes = {}
    for rule, points in _grad_norm_points(records, which).items():
        if len({rank for rank, _, _ in points}) < 2:
            continue
        x = np.log([rank for rank, _, _ in points])
        y = np.log([value for _, value, _ in points])
        slopes[rule] = float(np.polyfit(x, y, 1)[0])
    return slopes


def verdict(slope: float) -> str:
    """Plain words on a grad-norm-vs-rank slope: rank-stabilized, partly collapsing or collapsing."""
    shown = f"{round(slope, 2) + 0.0:+.2f}"  # + 0.0 turns -0.0 into 0.0, so a flat slope reads +0.00
    if slope > STABLE_ABOVE:
        return f"rank-stabilized: slope {shown}"
    if slope < COLLAPSING_BELOW:
        return f"collapsing: slope {shown}"
    return f"partly collapsing: slope {shown}"


def grad_norm_vs_rank_figure(records: list[Record], which: str = "step0") -> go.Figure:
    """Grad norm vs rank on log-log axes: a point per trial and a fitted line with a verdict per rule."""
    if which not in ("step0", "mean"):
        raise ValueError(f"which must be 'step0' or 'mean', got {which!r}")
    by_rule = _grad_norm_points(records, which)
    if not by_rule:
        return empty_figure("No gradient norms yet")
    slopes = grad_norm_slopes(records, which)
    all_ranks = sorted({rank for points in by_rule.values() for rank, _, _ in points})
    traces = []
    for rule in ordered_rules(by_rule):
        points = by_rule[rule]
        traces.append(go.Scatter(
            x=[rank for rank, _, _ in points], y=[value for _, value, _ in points], mode="markers",
            name=f"{series_label(rule)} trials", legendgroup=rule,
            text=[trace_label(rec) + f" (trial {rec['number']})" for _, _, rec in points],
            hovertemplate="%{text}<br>grad norm %{y:.4g}<extra></extra>",
            marker={"symbol": symbol(rule), "size": 9, "color": [rank_color(r, all_ranks) for r, _, _ in points],
                    "line": {"width": 1, "color": rule_color(rule)}},
            meta={"kind": "grad_norm_points", "rule": rule, "trials": [rec["number"] for _, _, rec in points]}))
        if rule in slopes:
            x = np.log([rank for rank, _, _ in points])
            slope, intercept = np.polyfit(x, np.log([value for _, value, _ in points]), 1)
            grid = rank_grid(min(all_ranks), max(all_ranks))
            traces.append(go.Scatter(
                x=grid, y=list(np.exp(intercept + slope * np.log(grid))), mode="lines",
                name=f"{series_label(rule)} — {verdict(slopes[rule])}", legendgroup=rule,
                line={"color": rule_color(rule), "dash": dash(rule), "width": 2},
                hovertemplate="r=%{x:.3g}<br>fit %{y:.4g}<extra></extra>",
                meta={"kind": "fit", "rule": rule, "slope": slopes[rule]}))
    what = "step-0 grad norm" if which == "step0" else "mean grad norm"
    title = f"{what.capitalize()} vs rank (standard: r^-0.5; rsLoRA, sqrt law: flat)"
    fig = go.Figure(data=traces, layout=layout(title))
    fig.update_xaxes(title_text="rank r", **log_rank_axis(all_ranks))
    fig.update_yaxes(title_text=what, type="log")
    return fig


def alpha_landscape_figure(records: list[Record]) -> go.Figure:
    """Eval loss vs alpha per rank and rule; pruned trials as hollow markers at their last eval."""
    ranks = [rec.get("rank") for rec in records]
    several_lrs = len({rec.get("lr") for rec in records if rec.get("state") == "COMPLETE"}) > 1
    done: dict[tuple, dict[float, list[tuple[float, Record]]]] = defaultdict(lambda: defaultdict(list))
    pruned: dict[tuple, list[tuple[float, float, Record]]] = defaultdict(list)
    for rec in records:
        alpha, rank, rule = num(rec.get("alpha")), rec.get("rank"), rec.get("rule")
        if alpha is None or alpha <= 0 or rank is None or rule is None:
            continue
        key = (rule, rank, rec.get("lr") if several_lrs else None)
        if rec.get("state") == "COMPLETE" and num(rec.get("eval_loss")) is not None:
            done[key][alpha].append((num(rec["eval_loss"]), rec))
        elif rec.get("state") == "PRUNED":
            last = _last_eval(rec)
            if last is not None:
                pruned[key].append((alpha, last, rec))
    if not done and not pruned:
        return empty_figure("No finished trials yet")
    traces = []
    for key in sorted(set(done) | set(pruned), key=lambda k: (rule_order(k[0]), k[1], k[2] or 0.0)):
        rule, rank, lr = key
        color = rank_color(rank, ranks)
        name = f"r={rank} {rule}" + (f" lr={fmt(lr)}" if lr is not None else "")
        group = f"{rule}:{rank}:{lr}"
        if key in done:
            alphas = sorted(done[key])
            losses = [float(np.mean([loss for loss, _ in done[key][a]])) for a in alphas]
            text = [", ".join(f"trial {rec['number']}" for _, rec in done[key][a]) for a in alphas]
            traces.append(go.Scatter(
                x=alphas, y=losses, mode="lines+markers", name=name, legendgroup=group, text=text,
                hovertemplate=f"{name}<br>α %{{x:.4g}}<br>eval loss %{{y:.4g}}<br>%{{text}}<extra></extra>",
                line={"color": color, "dash": dash(rule)}, marker={"symbol": symbol(rule), "size": 8, "color": color},
                meta={"kind": "eval", "rule": rule, "rank": rank,
                      "trials": [rec["number"] for a in alphas for _, rec in done[key][a]]}))
        if key in pruned:
            points = sorted(pruned[key], key=lambda p: p[0])
            traces.append(go.Scatter(
                x=[a for a, _, _ in points], y=[loss for _, loss, _ in points], mode="markers",
                name=f"{name} (pruned)", legendgroup=group, showlegend=key not in done,
                text=[f"trial {rec['number']} pruned at step {rec.get('steps_done')}" for _, _, rec in points],
                hovertemplate=f"{name}<br>α %{{x:.4g}}<br>last eval loss %{{y:.4g}}<br>%{{text}}<extra></extra>",
                marker={"symbol": symbol(rule, hollow=True), "size": 8, "color": color, "line": {"width": 1.5}},
                meta={"kind": "pruned", "rule": rule, "rank": rank, "trials": [rec["number"] for _, _, rec in points]}))
    fig = go.Figure(data=traces, layout=layout("Eval loss vs alpha"))
    fig.update_xaxes(title_text="alpha", type="log")
    fig.update_yaxes(title_text="eval loss")
    return fig


def alpha_law_figure(report: dict[str, Any]) -> go.Figure:
    """alpha* vs rank per setting and rule on log-log axes: located optima filled, unlocated ones open
    (a triangle pointing the way alpha* may lie when the best alpha was an end of the range tried), and
    the law fitted on located ranks with its 95% band and the sqrt(r) line."""
    groups = {label: {rule: entry for rule, entry in group["rules"].items() if entry.get("optima")}
              for label, group in (report or {}).get("groups", {}).items()}
    groups = {label: rules for label, rules in groups.items() if rules}
    if not groups:
        return empty_figure("No alpha optima yet: finish trials at 2 or more ranks")
    all_ranks = sorted({o["rank"] for rules in groups.values() for entry in rules.values() for o in entry["optima"]})
    traces = []
    for index, (label, rules) in enumerate(groups.items()):
        prefix = f"{label} " if len(groups) > 1 else ""
        for rule in ordered_rules(rules):
            color = rule_color(rule) if len(groups) == 1 else setting_color(index, rule)
            traces += _law_traces(rules[rule], rule, prefix, color, label, all_ranks)
    fig = go.Figure(data=traces, layout=layout("Best alpha vs rank"))
    fig.update_xaxes(title_text="rank r", **log_rank_axis(all_ranks))
    fig.update_yaxes(title_text="α*", type="log")
    return fig


def _law_traces(entry: dict[str, Any], rule: str, prefix: str, color: str, setting: str,
                all_ranks: list[int]) -> list[go.Scatter]:
    """One rule's optima (located and not), and its law, band, sqrt reference and prediction."""
    optima = [RankOptimum(**o) for o in entry["optima"]]
    group = f"{setting}:{rule}"
    traces = []
    located = [o for o in optima if o.located]
    if located:
        traces.append(go.Scatter(
            x=[o.rank for o in located], y=[o.alpha for o in located], mode="markers",
            name=f"{prefix}{rule} α* per rank", legendgroup=group,
            text=[f"r={o.rank}: α*={o.alpha:.4g} ({'refined' if o.refined else 'best trial'}, "
                  f"{o.n_alphas} alphas {o.alpha_min:.3g}..{o.alpha_max:.3g})" for o in located],
            hovertemplate="%{text}<extra></extra>",
            marker={"symbol": symbol(rule), "size": 10, "color": color},
            meta={"kind": "optima", "rule": rule, "setting": setting}))
    unlocated = [o for o in optima if not o.located]
    if unlocated:
        traces.append(go.Scatter(
            x=[o.rank for o in unlocated], y=[o.best_trial_alpha for o in unlocated], mode="markers",
            name=f"{prefix}{rule} α* not located (▲ may be higher, ▼ lower; ○ one α tried)", legendgroup=group,
            text=[_unlocated_text(o) for o in unlocated], hovertemplate="%{text}<extra></extra>",
            marker={"symbol": [_bound_symbol(o, rule) for o in unlocated], "size": 11, "color": color,
                    "line": {"width": 1.5, "color": color}},
            meta={"kind": "unlocated", "rule": rule, "setting": setting}))
    law = entry.get("law")
    if not law:
        return traces
    predicted = entry.get("predicted_alpha")
    lo_rank, hi_rank = min(all_ranks), max(all_ranks)
    if predicted:
        lo_rank, hi_rank = min(lo_rank, predicted["rank"]), max(hi_rank, predicted["rank"])
    grid = rank_grid(lo_rank, hi_rank, extra=[o.rank for o in optima] + ([predicted["rank"]] if predicted else []))
    fit, low, high = confidence_band(optima, grid)
    if law.get("p_ci"):
        traces.append(go.Scatter(
            x=grid + grid[::-1], y=[float(v) for v in high] + [float(v) for v in low][::-1], fill="toself",
            mode="lines", line={"width": 0, "color": color}, fillcolor=rgba(color, 0.15),
            name=f"{prefix}{rule} 95% band", legendgroup=group, hoverinfo="skip",
            meta={"kind": "band", "rule": rule, "setting": setting, "n": len(grid)}))
    traces.append(go.Scatter(
        x=grid, y=[float(v) for v in fit], mode="lines", name=f"{prefix}{rule} fit: {_law_text(law)}",
        legendgroup=group, line={"color": color, "dash": dash(rule), "width": 2},
        hovertemplate="r=%{x:.3g}<br>fitted α* %{y:.4g}<extra></extra>",
        meta={"kind": "fit", "rule": rule, "setting": setting, "p": law["p"], "c": law["c"]}))
    sqrt_c = law["sqrt_c"]
    traces.append(go.Scatter(
        x=grid, y=[sqrt_c * math.sqrt(r) for r in grid], mode="lines",
        name=f"{prefix}{rule} √r reference: α = {sqrt_c:.3g}·√r", legendgroup=group,
        line={"color": color, "dash": "dash", "width": 1}, opacity=0.6,
        hovertemplate="r=%{x:.3g}<br>α %{y:.4g}<extra></extra>",
        meta={"kind": "sqrt", "rule": rule, "setting": setting}))
    if predicted:
        traces.append(go.Scatter(
            x=[predicted["rank"]], y=[predicted["alpha"]], mode="markers",
            name=f"{prefix}{rule} predicted at r={predicted['rank']}: α = {predicted['alpha']:.4g}", legendgroup=group,
            marker={"symbol": "star", "size": 14, "color": color, "line": {"width": 1, "color": "white"}},
            meta={"kind": "predicted", "rule": rule, "setting": setting}))
    return traces


# ---------------------------------------------------------------------------- helpers























def _better(rec: Record, than: Record) -> bool:
    """Whether ``rec`` has the lower eval loss (then final loss) of the two."""
    def key(r: Record) -> tuple[float, float]:
        ev, fin = num(r.get("eval_loss")), num(r.get("final_loss"))
        return (ev if ev is not None else math.inf, fin if fin is not None else math.inf)
    return key(rec) < key(than)






def _curve_spec(records: list[Record], field: str, title: str, ytitle: str, *, log_y: bool,
                max_points: int) -> dict | None:
    with_curves = [rec for rec in records if rec.get("curve")]
    if not with_curves:
        return None
    ranks = [rec.get("rank") for rec in records]
    several_lrs = len({rec.get("lr") for rec in with_curves}) > 1
    several_studies = len({rec.get("study") for rec in with_curves}) > 1
    budget = trace_budget(len(with_curves), max_points)
    colors = _rank_colors(tuple(sorted({r for r in ranks if r is not None})))
    traces = []
    def order(r: Record) -> tuple:
        return (r.get("rank") or 0, rule_order(r.get("rule")), num(r.get("alpha")) or 0.0,
                str(r.get("study")), r.get("number") or 0)

    for rec in sorted(with_curves, key=order):
        curve = rec["curve"] if isinstance(rec["curve"], Curve) else Curve.from_records(rec["curve"])
        color = colors[rec.get("rank")]
        name = trace_label(rec, lr=several_lrs)
        state = rec.get("state")
        if state in ("PRUNED", "FAIL"):
            name += f" ({outcome_word(rec)})"
        group = f"{rec.get('study')}:{rec.get('number')}" if several_studies else str(rec.get("number"))
        hover = f"trial {rec.get('number')}<br>step %{{x}}<br>{ytitle} %{{y:.4g}}"  # the name shows beside it
        xs, ys = _plot_series(curve, field, budget, positive=log_y)
        traces.append({"type": "scattergl", "x": xs, "y": ys, "mode": "lines", "name": name, "legendgroup": group,
                       "hovertemplate": hover, "line": {"color": color, "dash": dash(rec.get("rule")), "width": 1.5},
                       "meta": trial_meta(rec, field)})
        if state in ("PRUNED", "FAIL"):
            traces[-1]["opacity"] = 0.45
        if field == "loss":
            ex, ey = _plot_series(curve, "eval_loss", budget, positive=False)
            if len(ex):
                traces.append({
                    "type": "scattergl", "x": ex, "y": ey, "mode": "markers",
                    "name": f"{name} eval", "legendgroup": group, "showlegend": False,
                    "hovertemplate": f"trial {rec.get('number')}<br>step %{{x}}<br>eval loss %{{y:.4g}}",
                    "marker": {"color": color, "symbol": symbol(rec.get("rule")), "size": 7,
                               "line": {"width": 1, "color": "white"}},
                    "meta": trial_meta(rec, "eval")})
    spec_layout = copy.deepcopy(_layout_json(title))
    spec_layout["xaxis"] = {**spec_layout.get("xaxis", {}), "title": {"text": "step"}}
    spec_layout["yaxis"] = {**spec_layout.get("yaxis", {}), "title": {"text": ytitle},
                            "type": "log" if log_y else "linear", **(log_ticks(traces) if log_y else {})}
    return {"data": traces, "layout": spec_layout}


def trace_budget(traces: int, max_points: int = MAX_POINTS) -> int:
    """Points per curve trace: FIGURE_POINTS shared by the traces, within [MIN_TRACE_POINTS, max_points]."""
    return max(min(MIN_TRACE_POINTS, max_points), min(max_points, FIGURE_POINTS // max(traces, 1)))


def _plot_series(curve: Curve, field: str, budget: int, *, positive: bool) -> tuple[np.ndarray, np.ndarray]:
    """Steps (int16 or int32) and values (float32, NaN for gaps) of ``field``, decimated to ``budget`` points.

    Arrays, not lists: Plotly copies them whole and ships them as compact base64 typed arrays.
    Memoised on the curve: a finished trial's curve is the same object on every refresh.
    """
    key = (field, budget, positive)
    memo = curve.memo
    if key not in memo:
        steps, values = curve.column(field)
        values = np.where(np.isfinite(values) & ((values > 0) if positive else True), values, np.nan)
        if field == "eval_loss":  # a few points: keep every one
            keep = ~np.isnan(values)
            xs, ys = steps[keep], values[keep]
        else:
            xs, ys = decimate(steps, values, budget)
        memo[key] = (xs.astype(np.int16 if len(xs) and xs.max() < 2**15 else np.int32), ys.astype(np.float32))
    return memo[key]


@functools.lru_cache(maxsize=64)
def _rank_colors(ranks: tuple[int, ...]) -> dict[int | None, str]:
    # sampling a colour scale costs milliseconds; a refresh asks for the same ranks again
    return {None: rank_color(None, ranks), **{rank: rank_color(rank, ranks) for rank in ranks}}


@functools.lru_cache(maxsize=8)
def _layout_json(title: str) -> dict:
    # building the template-laden layout costs more than a refresh's traces; build it once per title
    return layout(title).to_plotly_json()


def _grad_norm_points(records: list[Record], which: str) -> dict[str, list[tuple[int, float, Record]]]:
    """Per series, (rank, grad norm, record) per COMPLETE/RUNNING trial with a usable curve."""
    if which not in ("step0", "mean"):
        raise ValueError(f"which must be 'step0' or 'mean', got {which!r}")
    by_series: dict[str, list[tuple[int, float, Record]]] = defaultdict(list)
    for name, members in grad_norm_series(records).items():
        for rec in members:
            rank = rec.get("rank")
            if rec.get("state") not in ("COMPLETE", "RUNNING") or not rec.get("curve") \
                    or not isinstance(rank, (int, float)) or rank <= 0:
                continue
            steps, values = series(rec["curve"], "grad_norm", positive=True)
            finite = [(s, v) for s, v in zip(steps, values) if v is not None]
            if finite:
                value = min(finite)[1] if which == "step0" else float(np.mean([v for _, v in finite]))
                by_series[name].append((rank, value, rec))
    return dict(by_series)


def grad_norm_series(records: list[Record]) -> dict[str, list[Record]]:
    """Trials per grad-norm series: each rule at fixed alphas, and :data:`SQRT_LAW` trials apart.

    A sqrt-law trial (standard rule, alpha = c * sqrt(r)) has rsLoRA's gamma, so pooling it into
    ``standard`` would bend that slope. Sweeps do not label them; they are recognised per study, lr
    and seed as standard trials sharing one c = alpha/sqrt(r) over 2+ ranks, at least one of them with
    an alpha that no other rank has (a grid alpha is tried at every rank). A law point that coincides
    with a grid point is the same trial, so it counts in both series.
    """
    out: dict[str, list[Record]] = defaultdict(list)
    standard: dict[tuple, list[Record]] = defaultdict(list)
    for rec in records:
        if rec.get("rule") is None:
            continue
        if rec["rule"] == "standard" and num(rec.get("alpha")) and isinstance(rec.get("rank"), (int, float)) \
                and rec["rank"] > 0:
            standard[(rec.get("study"), rec.get("lr"), rec.get("seed"))].append(rec)
        else:
            out[rec["rule"]].append(rec)
    for group in standard.values():
        ranks_of_alpha: dict[float, set] = defaultdict(set)
        by_c: dict[str, list[Record]] = defaultdict(list)
        for rec in group:
            ranks_of_alpha[num(rec["alpha"])].add(rec["rank"])
            by_c[f"{num(rec['alpha']) / math.sqrt(rec['rank']):.9g}"].append(rec)
        law = set()
        for members in by_c.values():
            if len({rec["rank"] for rec in members}) >= 2 and \
                    any(len(ranks_of_alpha[num(rec["alpha"])]) == 1 for rec in members):
                law |= {id(rec) for rec in members}
                out[SQRT_LAW] += members
        out["standard"] += [rec for rec in group
                            if id(rec) not in law or len(ranks_of_alpha[num(rec["alpha"])]) > 1]
    return {name: members for name, members in out.items() if members}


def _last_eval(rec: Record) -> float | None:
    """The last finite eval loss on a trial's curve."""
    for point in reversed(rec.get("curve") or []):
        value = num(point.get("eval_loss"))
        if value is not None:
            return value
    return None






def _law_text(law: dict[str, Any]) -> str:
    """``α* = 26.8·r^1.00 (p 95% CI 0.39–1.62)``, saying when unlocated ranks were left out."""
    text = f"α* = {law['c']:.3g}·r^{two(law['p'])}"
    only = "; located ranks only" if law.get("excluded_ranks") else ""
    ci = law.get("p_ci")
    if ci:
        return f"{text} (p 95% CI {two(ci[0])}–{two(ci[1])}{only})"
    return f"{text} (no CI with {law.get('n_ranks', 2)} located ranks)"


def _bound_symbol(optimum: RankOptimum, rule: str) -> str:
    """An open triangle pointing where alpha* may lie beyond the range tried; open rule symbol if unknown."""
    if optimum.n_alphas < 2:
        return symbol(rule, hollow=True)
    return "triangle-up-open" if optimum.edge == "high" else "triangle-down-open"


def _unlocated_text(optimum: RankOptimum) -> str:
    """Hover text of a rank whose alpha* is not located."""
    o = optimum
    if o.n_alphas < 2:
        return f"r={o.rank}: α* not located: only α={o.best_trial_alpha:.4g} tried ({o.n_trials} trials)"
    bound = f"≥ {o.alpha_max:.4g}" if o.edge == "high" else f"≤ {o.alpha_min:.4g}"
    return (f"r={o.rank}: α* not located: best at the {'top' if o.edge == 'high' else 'bottom'} of the range "
            f"{o.alpha_min:.3g}..{o.alpha_max:.3g} ({o.n_alphas} alphas); α* may be {bound}")
