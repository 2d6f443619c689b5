"""core/specs.py: one place for defaults, limits, help and field-named errors of every spec."""

import math

import pytest

from core.specs import (ALPHA_RANGE, LR_RANGE, MAX_GRID_POINTS, RANK_MAX, SEED_MAX, SearchSpec, SpecError, SweepGrid,
                        TrialSpec, field_default, field_help, field_label, spec_fields, ui_message)

SYNTH = {"task": "synthetic-style"}


def error_of(build) -> SpecError:
    with pytest.raises(SpecError) as info:
        build()
    return info.value


@pytest.mark.parametrize("build, field", [
    (lambda: TrialSpec(**SYNTH, lr=math.inf), "lr"),
    (lambda: TrialSpec(**SYNTH, lr=0.0), "lr"),
    (lambda: TrialSpec(**SYNTH, seed=2**70), "seed"),
    (lambda: TrialSpec(**SYNTH, seed=SEED_MAX + 1), "seed"),
    (lambda: TrialSpec(**SYNTH, rank=RANK_MAX + 1), "rank"),
    (lambda: TrialSpec(**SYNTH, alpha=ALPHA_RANGE[1] * 2), "alpha"),
    (lambda: TrialSpec(**SYNTH, steps=0), "steps"),
    (lambda: TrialSpec(**SYNTH, batch_size=2.5), "batch_size"),
    (lambda: TrialSpec(**SYNTH, lora_dropout=1.0), "lora_dropout"),
    (lambda: TrialSpec(**SYNTH, device="tpu"), "device"),
    (lambda: TrialSpec(), "task"),
    (lambda: SweepGrid(lrs=(math.inf,)), "lrs"),
    (lambda: SweepGrid(lrs=(1e-3,), ranks=(4, RANK_MAX + 1)), "ranks"),
    (lambda: SweepGrid(lrs=(1e-3,), rules=("standard", "bogus")), "rules"),
    (lambda: SweepGrid(lrs=(1e-3,), sqrt_law_c=-1.0), "sqrt_law_c"),
    (lambda: SearchSpec(lr=math.inf), "lr"),
    (lambda: SearchSpec(alpha_min=0.0), "alpha_min"),
    (lambda: SearchSpec(trials_per_rank=0), "trials_per_rank"),
    (lambda: SearchSpec(pruner="bogus"), "pruner"),
])
def test_every_error_names_its_field_and_its_flag_in_one_line(build, field):
    err = error_of(build)
    assert err.field == field
    assert str(err).startswith("--" + field.replace("_", "-") + ": ")
    assert "\n" not in str(err)


def test_limits_are_the_ranges_optuna_stores():
    from tuning.objective import DISTRIBUTIONS

    assert (DISTRIBUTIONS["rank"].low, DISTRIBUTIONS["rank"].high) == (1, RANK_MAX)
    assert (DISTRIBUTIONS["seed"].low, DISTRIBUTIONS["seed"].high) == (0, SEED_MAX)
    assert (DISTRIBUTIONS["alpha"].low, DISTRIBUTIONS["alpha"].high) == ALPHA_RANGE
    assert (DISTRIBUTIONS["lr"].low, DISTRIBUTIONS["lr"].high) == LR_RANGE
    TrialSpec(**SYNTH, rank=RANK_MAX, seed=SEED_MAX, alpha=ALPHA_RANGE[1], lr=LR_RANGE[1])  # the edges are fine


def test_sqrt_law_alone_queues_only_the_laws_points():
    grid = SweepGrid(ranks=(4, 16, 64), rules=(), lrs=(1e-3,), sqrt_law_c=8.0)
    points = grid.points()
    assert [(p["rank"], p["alpha"], p["rule"]) for p in points] == [(4, 16.0, "standard"), (16, 32.0, "standard"),
                                                                   (64, 64.0, "standard")]


def test_a_grid_needs_a_rule_or_the_law():
    assert error_of(lambda: SweepGrid(rules=(), lrs=(1e-3,))).field == "rules"


def test_law_and_grid_points_that_coincide_run_once():
    grid = SweepGrid(ranks=(4,), rules=("standard",), alphas=(16.0,), lrs=(1e-3,), sqrt_law_c=8.0)
    assert len(grid.points()) == 1


def test_grid_size_is_capped_with_a_clear_message():
    err = error_of(lambda: SweepGrid(ranks=tuple(range(1, 10_001)), lrs=(1e-3,)))
    assert err.field == "ranks" and str(MAX_GRID_POINTS) in str(err) and "20000 points" in str(err)
    SweepGrid(ranks=tuple(range(1, MAX_GRID_POINTS // 2 + 1)), lrs=(1e-3,))  # exactly at the cap is fine


def test_sqrt_law_alpha_must_stay_in_the_stored_range():
    err = error_of(lambda: SweepGrid(ranks=(4, 65536), rules=(), lrs=(1e-3,), sqrt_law_c=5000.0))
    assert err.field == "sqrt_law_c" and "sqrt(65536)" in str(err)


def test_alpha_min_must_be_below_the_default_alpha_max():
    err = error_of(lambda: SearchSpec(ranks=(4, 16, 64), alpha_min=5000.0))
    assert err.field == "alpha_min" and "4096" in str(err)
    assert SearchSpec(ranks=(4, 16, 64), alpha_min=5000.0, alpha_max=9000.0).alpha_high == 9000.0


def test_alpha_max_below_alpha_min_names_both():
    err = error_of(lambda: SearchSpec(alpha_min=10.0, alpha_max=5.0))
    assert err.field == "alpha_max" and "--alpha-min" in str(err)


def test_search_grid_alphas_span_the_range_log_evenly():
    alphas = SearchSpec(ranks=(4,), alpha_min=1.0, alpha_max=1000.0, trials_per_rank=4).alpha_grid()
    assert alphas == pytest.approx([1.0, 10.0, 100.0, 1000.0])


def test_ui_message_uses_labels_never_flags():
    err = error_of(lambda: SearchSpec(alpha_min=10.0, alpha_max=5.0))
    assert ui_message(err) == "alpha max must be greater than alpha min (10), got 5"
    err = error_of(lambda: TrialSpec())
    assert "--" not in ui_message(err) and "Dataset" in ui_message(err)
    assert ui_message(SpecError("pass --model or --trust-remote-code")) == "pass Model folder or Trust remote code"


def test_every_field_has_help_and_a_label():
    for cls in (TrialSpec, SweepGrid, SearchSpec):
        for name in spec_fields(cls):
            assert field_help(name, cls).strip() and field_label(name, cls).strip()


def test_cli_flags_carry_the_spec_defaults_and_help():
    from app.cli import build_parser

    sweep = build_parser().parse_args(["sweep", "--task", "synthetic-style"])
    assert sweep.ranks == field_default("ranks", SweepGrid) and sweep.alphas == field_default("alphas", SweepGrid)
    assert sweep.eval_every == field_default("eval_every") and sweep.lrs is None  # lr: the task's
    search = build_parser().parse_args(["search", "--task", "synthetic-style"])
    assert search.pruner == field_default("pruner", SearchSpec) and search.lr is None
    help_text = build_parser()._subparsers._group_actions[0].choices["sweep"].format_help()
    assert "Comma-separated learning rates. Default: the task's." in help_text
