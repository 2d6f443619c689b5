"""The app's figures: pure functions from results records to Plotly figures (no UI, no Optuna)."""

import math
from collections import Counter

import numpy as np
import pytest

from app.figures import (
    HEIGHT,
    SVD_FLOOR_NAME,
    alpha_landscape_figure,
    alpha_law_figure,
    empty_figure,
    grad_norm_figure,
    grad_norm_slopes,
    grad_norm_vs_rank_figure,
    loss_figure,
    rank_color,
    rank_comparison_figure,
    verdict,
)
from tuning.fit import RankOptimum, confidence_band, fit_report


def _curve(steps=5, eval_every=None, grad0=1.0, loss0=2.0):
    curve = []
    for step in range(steps):
        point = {"step": step, "loss": loss0 / (1 + step), "grad_norm": grad0 * (1 + 0.1 * step),
                 "lr": 1e-3, "tokens": 64}
        if eval_every and (step + 1) % eval_every == 0:
            point["eval_loss"] = loss0 / (2 + step)
        curve.append(point)
    return curve


def _record(number, rank=4, alpha=8.0, rule="standard", state="COMPLETE", curve=None, eval_loss=1.0,
            final_loss=1.1, svd_floor=None, lr=1e-3, **extra):
    rec = {"number": number, "state": state, "status": state.lower(), "rank": rank, "alpha": alpha, "rule": rule,
           "gamma": alpha / (rank if rule == "standard" else math.sqrt(rank)), "lr": lr, "seed": 0,
           "final_loss": final_loss, "eval_loss": eval_loss, "svd_floor": svd_floor, "seconds": 1.0,
           "tokens_per_s": 100.0, "steps_done": len(curve or []), "error": None, "target_modules": ["q", "v"]}
    if curve is not None:
        rec["curve"] = curve
    return {**rec, **extra}


def _per_trial(fig, kind):
    return Counter(t.meta["trial"] for t in fig.data if t.meta["kind"] == kind)


def _slope_records():
    """Step-0 grad norms exactly 0.1 * r^-0.5 (standard) and 0.3 (rslora), several alphas per rank."""
    records, n = [], 0
    for rule, law in (("standard", lambda r: 0.1 * r**-0.5), ("rslora", lambda r: 0.3 * r**0.0)):
        for rank in (1, 4, 16, 64, 256):
            for alpha in (1.0, 16.0):
                records.append(_record(n, rank=rank, alpha=alpha, rule=rule, curve=_curve(grad0=law(rank))))
                n += 1
    return records


# ------------------------------------------------------------------ curves

def test_loss_figure_has_one_loss_trace_per_trial_and_eval_traces_only_where_evaluated():
    records = [_record(0, curve=_curve(eval_every=2)), _record(1, rank=16, curve=_curve()),
               _record(2, rank=64, state="RUNNING", curve=_curve(steps=3, eval_every=3)),
               _record(3, rank=64, state="RUNNING", curve=[]), _record(4, rank=64, state="RUNNING")]
    fig = loss_figure(records)
    assert _per_trial(fig, "loss") == {0: 1, 1: 1, 2: 1}
    assert _per_trial(fig, "eval") == {0: 1, 2: 1}
    eval0 = next(t for t in fig.data if t.meta == {"trial": 0, "study": None, "kind": "eval"})
    assert list(eval0.x) == [1, 3] and list(eval0.y) == pytest.approx([2 / 3, 2 / 5])
    assert not eval0.showlegend and eval0.legendgroup == next(
        t.legendgroup for t in fig.data if t.meta["trial"] == 0 and t.meta["kind"] == "loss")
    assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.title.text == "loss"
    assert fig.layout.uirevision is not None and fig.layout.template.layout.paper_bgcolor == "white"


def test_trace_names_read_rank_rule_alpha_and_lr_only_when_several():
    one_lr = loss_figure([_record(0, rank=16, alpha=16.0, rule="rslora", curve=_curve())])
    assert one_lr.data[0].name == "r=16 rslora α=16"
    two_lrs = loss_figure([_record(0, rank=16, alpha=16.0, rule="rslora", lr=1e-3, curve=_curve()),
                           _record(1, rank=16, alpha=16.0, rule="rslora", lr=1e-4, curve=_curve())])
    assert {t.name for t in two_lrs.data} == {"r=16 rslora α=16 lr=0.001", "r=16 rslora α=16 lr=0.0001"}


def test_colour_follows_rank_and_dash_follows_rule_in_every_figure():
    records = [_record(0, rank=4, rule="standard", curve=_curve()), _record(1, rank=4, rule="rslora", curve=_curve()),
               _record(2, rank=16, rule="standard", curve=_curve()), _record(3, rank=64, rule="rslora", curve=_curve())]
    for fig in (loss_figure(records), grad_norm_figure(records)):
        line = {t.meta["trial"]: t.line for t in fig.data}
        assert line[0].color == line[1].color
        assert len({line[0].color, line[2].color, line[3].color}) == 3
        assert line[0].dash != line[1].dash and line[0].dash == line[2].dash and line[1].dash == line[3].dash
        assert line[0].color == rank_color(4, [4, 16, 64])
    assert rank_color(4, [64, 4, 4, 16]) == rank_color(4, [4, 16, 64]) != rank_color(16, [4, 16, 64])


def test_grad_norm_figure_is_log_and_drops_non_positive_values():
    curve = _curve()
    curve[1]["grad_norm"] = 0.0
    fig = grad_norm_figure([_record(0, curve=curve)])
    assert fig.layout.yaxis.type == "log" and _per_trial(fig, "grad_norm") == {0: 1}
    assert np.isnan(fig.data[0].y[1]) and fig.data[0].y[0] == pytest.approx(1.0)


def test_nan_strings_in_curves_are_gaps_not_crashes():
    curve = _curve(steps=4, eval_every=1)
    curve[1].update(loss="nan", grad_norm="inf", eval_loss="nan")
    curve[2].update(loss=float("nan"), eval_loss="-inf")
    records = [_record(0, curve=curve, state="FAIL", eval_loss=None, final_loss=None)]
    loss = loss_figure(records)
    main = next(t for t in loss.data if t.meta["kind"] == "loss")
    assert np.isnan(main.y[1]) and np.isnan(main.y[2]) and main.y[3] == pytest.approx(0.5)
    assert list(next(t for t in loss.data if t.meta["kind"] == "eval").x) == [0, 3]
    assert np.isnan(grad_norm_figure(records).data[0].y[1])
    for fig in (rank_comparison_figure(records), alpha_landscape_figure(records), grad_norm_vs_rank_figure(records)):
        assert len(fig.data) == 0 and fig.layout.annotations  # nothing finished: the empty figure


def test_records_without_curves_give_the_empty_figure():
    records = [_record(0), _record(1, curve=[])]
    for fig in (loss_figure(records), grad_norm_figure(records), grad_norm_vs_rank_figure(records)):
        assert len(fig.data) == 0 and len(fig.layout.annotations) == 1


def test_long_curves_are_thinned_keeping_both_ends():
    fig = loss_figure([_record(0, curve=_curve(steps=5000))], max_points=500)
    x = list(fig.data[0].x)
    assert len(x) <= 500 and x[0] == 0 and x[-1] == 4999


def test_trials_of_several_studies_keep_separate_legend_groups():
    records = [_record(0, rank=4, curve=_curve(), study="s-r4"), _record(0, rank=16, curve=_curve(), study="s-r16")]
    fig = loss_figure(records)
    assert len({t.legendgroup for t in fig.data}) == 2 and {t.meta["study"] for t in fig.data} == {"s-r4", "s-r16"}


# ------------------------------------------------------------------ grad norm vs rank

def test_slopes_recover_standard_collapse_and_rslora_flatness():
    slopes = grad_norm_slopes(_slope_records(), which="step0")
    assert slopes["standard"] == pytest.approx(-0.5, abs=1e-9)
    assert slopes["rslora"] == pytest.approx(0.0, abs=1e-9)
    assert verdict(slopes["standard"]) == "collapsing: slope -0.50"
    assert verdict(slopes["rslora"]) == "rank-stabilized: slope +0.00"
    # the curve's grad norm grows by the same factor at every rank, so the mean keeps the slope
    assert grad_norm_slopes(_slope_records(), which="mean")["standard"] == pytest.approx(-0.5, abs=1e-9)


def test_verdict_thresholds_and_signed_format():
    assert verdict(-0.0) == "rank-stabilized: slope +0.00"
    assert verdict(-0.001) == "rank-stabilized: slope +0.00"
    assert verdict(0.12) == "rank-stabilized: slope +0.12"
    assert verdict(-0.25) == "partly collapsing: slope -0.25"
    assert verdict(-0.49) == "collapsing: slope -0.49"


def test_slopes_skip_single_rank_rules_pruned_trials_and_missing_curves():
    records = [_record(0, rank=4, rule="rslora", curve=_curve()), _record(1, rank=4, rule="rslora", curve=_curve()),
               _record(2, rank=4, curve=_curve(grad0=1.0)),
               _record(3, rank=16, state="RUNNING", curve=_curve(grad0=0.5)),
               _record(4, rank=64, state="PRUNED", curve=_curve(grad0=99.0)), _record(5, rank=64)]
    assert grad_norm_slopes(records) == {"standard": pytest.approx(-0.5)}


def test_grad_norm_vs_rank_figure_has_points_a_fit_and_the_verdict_per_rule():
    fig = grad_norm_vs_rank_figure(_slope_records())
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    kinds = Counter((t.meta["kind"], t.meta["rule"]) for t in fig.data)
    assert kinds == {("grad_norm_points", "standard"): 1, ("fit", "standard"): 1,
                     ("grad_norm_points", "rslora"): 1, ("fit", "rslora"): 1}
    names = {t.name for t in fig.data if t.meta["kind"] == "fit"}
    assert names == {"standard — collapsing: slope -0.50", "rslora — rank-stabilized: slope +0.00"}
    std_fit = next(t for t in fig.data if t.meta["kind"] == "fit" and t.meta["rule"] == "standard")
    assert np.allclose(std_fit.y, 0.1 * np.asarray(std_fit.x) ** -0.5)
    points = next(t for t in fig.data if t.meta["kind"] == "grad_norm_points" and t.meta["rule"] == "standard")
    assert len(points.x) == 10 and list(points.marker.color).count(rank_color(4, [1, 4, 16, 64, 256])) == 2
    with pytest.raises(ValueError, match="step0"):
        grad_norm_vs_rank_figure(_slope_records(), which="last")


# ------------------------------------------------------------------ rank comparison, alpha landscape

def test_rank_comparison_takes_the_best_eval_per_rule_and_rank_on_a_log_axis():
    records = [_record(0, rank=4, alpha=1.0, eval_loss=0.9, final_loss=0.8),
               _record(1, rank=4, alpha=8.0, eval_loss=0.5, final_loss=0.45),
               _record(2, rank=16, alpha=8.0, eval_loss=0.4, final_loss=0.35),
               _record(3, rank=16, alpha=8.0, eval_loss=0.1, state="PRUNED"),
               _record(4, rank=4, rule="rslora", eval_loss=0.6, final_loss=0.55)]
    fig = rank_comparison_figure(records)
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [4, 16]
    trace = {(t.meta["kind"], t.meta.get("rule")): t for t in fig.data}
    assert list(trace["eval", "standard"].y) == [0.5, 0.4] and list(trace["final", "standard"].y) == [0.45, 0.35]
    assert trace["eval", "standard"].meta["trials"] == [1, 2]
    assert list(trace["eval", "rslora"].x) == [4]
    assert trace["eval", "standard"].line.dash != trace["eval", "rslora"].line.dash
    assert not any(t.name == SVD_FLOOR_NAME for t in fig.data)


def test_rank_comparison_draws_the_svd_floor_only_when_records_carry_it():
    records = [_record(0, rank=4, svd_floor=0.3), _record(1, rank=4, alpha=2.0, svd_floor=0.3),
               _record(2, rank=16, svd_floor=0.1), _record(3, rank=64, svd_floor="nan")]
    floors = [t for t in rank_comparison_figure(records).data if t.meta["kind"] == "svd_floor"]
    assert len(floors) == 1 and floors[0].name == SVD_FLOOR_NAME
    assert list(floors[0].x) == [4, 16] and list(floors[0].y) == [0.3, 0.1]


def test_alpha_landscape_sorts_alphas_per_rank_and_rule_and_shows_pruned_hollow():
    records = [_record(0, rank=4, alpha=64.0, eval_loss=0.7), _record(1, rank=4, alpha=1.0, eval_loss=0.9),
               _record(2, rank=4, alpha=8.0, eval_loss=0.5), _record(3, rank=16, alpha=8.0, eval_loss=0.4),
               _record(4, rank=4, alpha=8.0, rule="rslora", eval_loss=0.6),
               _record(5, rank=4, alpha=512.0, state="PRUNED", eval_loss=None, curve=_curve(steps=4, eval_every=2)),
               _record(6, rank=4, alpha=1024.0, state="PRUNED", eval_loss=None, curve=_curve(steps=1)),
               _record(7, rank=4, alpha=2.0, state="FAIL", eval_loss=None)]
    fig = alpha_landscape_figure(records)
    assert fig.layout.xaxis.type == "log"
    evals = {(t.meta["rule"], t.meta["rank"]): t for t in fig.data if t.meta["kind"] == "eval"}
    assert set(evals) == {("standard", 4), ("standard", 16), ("rslora", 4)}
    assert list(evals["standard", 4].x) == [1.0, 8.0, 64.0] and list(evals["standard", 4].y) == [0.9, 0.5, 0.7]
    assert evals["standard", 4].line.color == evals["rslora", 4].line.color != evals["standard", 16].line.color
    assert evals["standard", 4].line.dash != evals["rslora", 4].line.dash
    pruned = [t for t in fig.data if t.meta["kind"] == "pruned"]
    assert len(pruned) == 1 and list(pruned[0].x) == [512.0] and list(pruned[0].y) == [pytest.approx(2 / 5)]
    assert pruned[0].marker.symbol.endswith("-open") and pruned[0].marker.color == evals["standard", 4].line.color


# ------------------------------------------------------------------ alpha law

def _law_records(rule, law_c, law_p, ranks=(4, 16, 64), alphas=(1, 4, 16, 64, 256, 1024, 4096), noise=None):
    """Eval loss a parabola in log alpha around law_c * r**law_p (as in tests/tuning_tests/test_fit.py)."""
    records, number = [], 0
    for i, r in enumerate(ranks):
        best = law_c * r**law_p * (math.exp(noise[i]) if noise else 1.0)
        for a in alphas:
            records.append({"number": number, "state": "COMPLETE", "rank": r, "alpha": float(a), "rule": rule,
                            "eval_loss": (math.log(a) - math.log(best)) ** 2 + 1.0 / r})
            number += 1
    return records


def test_alpha_law_figure_draws_optima_fit_band_and_sqrt_reference():
    report = fit_report(_law_records("standard", 20.0, 1.0, ranks=(4, 8, 16, 64), noise=[0.2, -0.2, -0.1, 0.1])
                        + _law_records("rslora", 20.0, 0.5, ranks=(4, 16, 64)), target_rank=32)
    fig = alpha_law_figure(report)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    kinds = Counter((t.meta["kind"], t.meta["rule"]) for t in fig.data)
    for rule in ("standard", "rslora"):
        for kind in ("optima", "fit", "band", "sqrt", "predicted"):
            assert kinds[kind, rule] == 1, (kind, rule)
    trace = {(t.meta["kind"], t.meta["rule"]): t for t in fig.data}
    entry, law = report["rules"]["standard"], report["rules"]["standard"]["law"]
    optima = [RankOptimum(**o) for o in entry["optima"]]
    fit = trace["fit", "standard"]
    grid = list(fit.x)
    assert {4.0, 8.0, 16.0, 32.0, 64.0} <= set(grid)
    assert np.allclose(fit.y, law["c"] * np.asarray(grid) ** law["p"], rtol=1e-9)
    assert fit.name == (f"standard fit: α* = {law['c']:.3g}·r^{law['p']:.2f} "
                        f"(p 95% CI {law['p_ci'][0]:.2f}–{law['p_ci'][1]:.2f})")
    band = trace["band", "standard"]
    _, low, high = confidence_band(optima, grid)
    n = len(grid)
    assert band.fill == "toself" and list(band.x) == grid + grid[::-1]
    assert np.allclose(band.y[:n], high) and np.allclose(band.y[n:], low[::-1])
    assert all(lo < f < hi for lo, f, hi in zip(low, fit.y, high))
    sqrt = trace["sqrt", "standard"]
    assert sqrt.line.dash == "dash"
    assert np.allclose(sqrt.y, law["sqrt_c"] * np.sqrt(grid))
    rs_fit = trace["fit", "rslora"]  # exact law: the fit goes through 20 * sqrt(r)
    assert np.allclose([y for x, y in zip(rs_fit.x, rs_fit.y) if x in (4.0, 16.0, 64.0)], [40.0, 80.0, 160.0])
    assert list(trace["optima", "rslora"].y) == pytest.approx([40.0, 80.0, 160.0])
    assert list(trace["predicted", "standard"].x) == [32]
    assert rs_fit.name == "rslora fit: α* = 20·r^0.50 (p 95% CI 0.50–0.50)"


def test_alpha_law_figure_with_two_ranks_has_no_band_and_one_rank_no_fit():
    report = fit_report(_law_records("standard", 20.0, 1.0, ranks=(4, 16))
                        + _law_records("rslora", 20.0, 0.5, ranks=(4,)))
    fig = alpha_law_figure(report)
    kinds = Counter((t.meta["kind"], t.meta["rule"]) for t in fig.data)
    assert kinds == {("optima", "standard"): 1, ("fit", "standard"): 1, ("sqrt", "standard"): 1,
                     ("optima", "rslora"): 1}
    assert "no CI with 2 located ranks" in next(t.name for t in fig.data if t.meta["kind"] == "fit")


def test_alpha_law_figure_reads_a_json_round_tripped_report():
    import json
    report = json.loads(json.dumps(fit_report(_law_records("rslora", 20.0, 0.5))))
    assert any(t.meta["kind"] == "band" for t in alpha_law_figure(report).data)


# ------------------------------------------------------------------ empty and shared layout

def test_empty_figure_shows_its_message():
    fig = empty_figure("Waiting for the first trial")
    assert len(fig.data) == 0
    assert [a.text for a in fig.layout.annotations] == ["Waiting for the first trial"]
    assert alpha_law_figure({"rules": {}}).layout.annotations


def test_every_figure_uses_the_shared_layout():
    records = _slope_records()
    figs = [loss_figure(records), grad_norm_figure(records), rank_comparison_figure(records),
            grad_norm_vs_rank_figure(records), alpha_landscape_figure(records), empty_figure("x"),
            alpha_law_figure(fit_report(_law_records("standard", 20.0, 1.0)))]
    for fig in figs:
        assert fig.layout.height == HEIGHT and fig.layout.uirevision == figs[0].layout.uirevision
        assert fig.layout.template.layout.paper_bgcolor == "white"  # plotly_white
        fig.to_json()  # serialisable as Gradio will send it


# ------------------------------------------------------------------ honest fits and series (issues 8 and 9)

def test_alpha_law_figure_draws_unlocated_ranks_open_with_the_bound_direction_and_no_law():
    records = [{"number": i, "state": "COMPLETE", "rank": r, "alpha": a, "rule": "standard", "lr": 1e-3, "seed": 0,
                "eval_loss": loss}
               for i, (r, a, loss) in enumerate([(4, 8.0, 0.5), (16, 1.0, 0.9), (16, 4.0, 0.5), (16, 16.0, 0.3),
                                                 (64, 1.0, 0.2), (64, 4.0, 0.5), (64, 16.0, 0.9)])]
    fig = alpha_law_figure(fit_report(records))
    assert Counter(t.meta["kind"] for t in fig.data) == {"unlocated": 1}  # no filled optimum, no fit, no band
    unlocated = fig.data[0]
    assert list(unlocated.x) == [4, 16, 64] and list(unlocated.y) == [8.0, 16.0, 1.0]
    assert list(unlocated.marker.symbol) == ["circle-open", "triangle-up-open", "triangle-down-open"]
    assert unlocated.showlegend is not False and "not located" in unlocated.name
    assert "may be ≥ 16" in unlocated.text[1] and "only α=8 tried" in unlocated.text[0]


def test_alpha_law_figure_fits_located_ranks_only_and_says_so():
    records = _law_records("standard", 20.0, 1.0, ranks=(4, 16, 64), noise=[0.1, -0.1, 0.05])
    records += [{"number": 100 + i, "state": "COMPLETE", "rank": 256, "alpha": a, "rule": "standard",
                 "eval_loss": 1.0 / a} for i, a in enumerate((1.0, 4.0))]
    fig = alpha_law_figure(fit_report(records))
    trace = {t.meta["kind"]: t for t in fig.data}
    assert list(trace["optima"].x) == [4, 16, 64] and list(trace["unlocated"].x) == [256]
    assert "located ranks only" in trace["fit"].name


def test_alpha_law_figure_draws_each_training_setting_apart():
    records = _law_records("rslora", 20.0, 0.5)
    records = [{**r, "lr": 1e-3} for r in records] + [{**r, "lr": 1e-2, "number": r["number"] + 100} for r in records]
    fig = alpha_law_figure(fit_report(records))
    fits = [t for t in fig.data if t.meta["kind"] == "fit"]
    assert {t.meta["setting"] for t in fits} == {"lr=0.001", "lr=0.01"}
    assert all(t.name.startswith(t.meta["setting"] + " rslora fit") for t in fits)
    assert fits[0].line.color != fits[1].line.color


def _sqrt_law_records(c=8.0, ranks=(4, 16, 64, 256), alphas=(16.0,)):
    """A standard sweep at fixed alphas plus the sqrt law alpha = c * sqrt(r), as SweepGrid.points() makes it
    (a law point equal to a grid point is one trial); grad norm ~ gamma * r^0.5 (gamma = alpha/r)."""
    points = {(r, a) for r in ranks for a in alphas} | {(r, c * math.sqrt(r)) for r in ranks}
    return [_record(n, rank=r, alpha=a, curve=_curve(grad0=0.1 * a / r * math.sqrt(r)))
            for n, (r, a) in enumerate(sorted(points))]


def test_sqrt_law_trials_get_their_own_grad_norm_series_and_verdict():
    records = _sqrt_law_records()
    slopes = grad_norm_slopes(records)
    # pooled into standard, the sqrt-law trials (flat norm) pulled the slope to -0.25
    assert slopes["standard"] == pytest.approx(-0.5, abs=1e-9)
    assert slopes["sqrt-law"] == pytest.approx(0.0, abs=1e-9)
    fig = grad_norm_vs_rank_figure(records)
    names = {t.name for t in fig.data if t.meta["kind"] == "fit"}
    assert names == {"standard — collapsing: slope -0.50", "sqrt law (standard, α=c·√r) — rank-stabilized: slope +0.00"}
    points = next(t for t in fig.data if t.meta["kind"] == "grad_norm_points" and t.meta["rule"] == "sqrt-law")
    assert list(points.x) == [4, 16, 64, 256]  # r=4 at alpha 16 is both a grid point and the law's point


def test_grid_alphas_that_happen_to_scale_like_sqrt_r_are_not_a_sqrt_law():
    # alphas 8, 16, 32 at ranks 4, 16, 64 contain 4*sqrt(r), but every alpha was tried at every rank
    records = [_record(n, rank=r, alpha=a, curve=_curve(grad0=0.1 * a / r * math.sqrt(r)))
               for n, (r, a) in enumerate((r, a) for r in (4, 16, 64) for a in (8.0, 16.0, 32.0))]
    assert set(grad_norm_slopes(records)) == {"standard"}
    assert grad_norm_slopes(records)["standard"] == pytest.approx(-0.5, abs=1e-9)


def test_sqrt_law_is_found_per_learning_rate():
    records = _sqrt_law_records() + [{**r, "lr": 1e-2, "number": r["number"] + 100} for r in _sqrt_law_records()]
    points = next(t for t in grad_norm_vs_rank_figure(records).data if t.meta["kind"] == "grad_norm_points"
                  and t.meta["rule"] == "sqrt-law")
    assert len(points.x) == 8


def test_a_single_trials_grad_norm_axis_keeps_labelled_ticks():
    # one trial's norms within a decade (1.0..1.4): decade-only ticks would leave the axis unlabelled
    one = grad_norm_figure([_record(0, curve=_curve(grad0=1.0))])
    assert one.layout.yaxis.type == "log" and one.layout.yaxis.dtick is None
    wide = grad_norm_figure([_record(0, curve=_curve(grad0=1.0)), _record(1, rank=16, curve=_curve(grad0=0.01))])
    assert wide.layout.yaxis.dtick == 1


def test_a_stopped_trial_is_called_stopped_in_the_curves():
    fig = loss_figure([_record(0, state="FAIL", curve=_curve(), eval_loss=None, status="stopped"),
                       _record(1, state="FAIL", curve=_curve(), eval_loss=None, status="diverged"),
                       _record(2, state="FAIL", curve=_curve(), eval_loss=None, status=None)])
    assert [t.name for t in fig.data] == ["r=4 standard α=8 (stopped)", "r=4 standard α=8 (diverged)",
                                          "r=4 standard α=8 (failed)"]
