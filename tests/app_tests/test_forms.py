"""The UI's form validation: per-field errors before anything starts, CLI argv when valid."""

import pytest

from app.cli import build_parser
from app.cli_args import sweep_grid
from app.forms import CUSTOM, SQRT_LAW, accelerator_problem, search_form, sweep_form
from app.tabs.run_tab import source_defaults
from core.specs import MAX_GRID_POINTS
from core.tasks import task_defaults

DEMO = dict(source="synthetic-facts", model="", data=None, ranks="4,16,64,256", rules=["standard", "rslora"],
            law_c=16.0, alphas="16", lr=1e-3, steps=300, batch_size=64, device="cpu")


def test_demo_form_gives_a_sweep_the_cli_accepts():
    result = sweep_form(**DEMO)
    assert result.ok
    args = build_parser().parse_args([*result.argv, "--study", "x"])
    assert args.ranks == (4, 16, 64, 256) and args.rules == ("standard", "rslora") and args.steps == 300


def test_each_bad_field_gets_its_own_message():
    result = sweep_form(**{**DEMO, "ranks": "0,4", "steps": 0, "batch_size": "x"})
    assert set(result.errors) == {"ranks", "steps", "batch_size"}
    assert "Ranks must be a whole number between 1 and 65536" in result.errors["ranks"] and not result.argv


def test_bad_alpha_and_missing_rules_are_reported():
    assert "alphas" in sweep_form(**{**DEMO, "alphas": "-1"}).errors
    assert "rules" in sweep_form(**{**DEMO, "rules": []}).errors


def test_custom_source_needs_a_dataset_and_an_existing_model(tmp_path):
    errors = sweep_form(**{**DEMO, "source": "your model + data"}).errors
    assert "data" in errors
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    errors = sweep_form(**{**DEMO, "source": "your model + data", "model": "/no/such/model", "data": str(data)}).errors
    assert "does not exist" in errors["model"]


def test_sqrt_law_rule_passes_its_coefficient():
    result = sweep_form(**{**DEMO, "rules": ["rslora", SQRT_LAW], "law_c": 12.0})
    assert result.ok and result.argv[result.argv.index("--sqrt-law-c") + 1] == "12.0"


def test_search_form_checks_the_alpha_range():
    base = dict(source="synthetic-facts", model="", data=None, ranks="4,16", rule="standard", alpha_min=10,
                alpha_max=5, trials=6, sampler="tpe", pruner="median", lr=1e-3, steps=100, batch_size=64, device="cpu")
    assert "greater than alpha min" in search_form(**base).errors["alpha_max"]
    ok = search_form(**{**base, "alpha_max": 1000})
    assert ok.ok and build_parser().parse_args([*ok.argv, "--study", "s"]).pruner == "median"


def test_skipped_dataset_rows_become_notes_not_errors(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\nnot json\n{"text": "two"}\n{"text": "three"}\n')
    result = sweep_form(**{**DEMO, "source": "your model + data", "data": str(data)})
    assert result.ok and "not valid JSON" in result.notes[0]


def test_a_dataset_too_small_to_split_is_refused_under_the_dataset(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "the only good row"}\nnot json\n{"other": 1}\n')
    result = sweep_form(**{**DEMO, "source": CUSTOM, "data": str(data)})
    assert set(result.errors) == {"data"} and not result.argv
    assert f"{data} has 1 usable example(s)" in result.errors["data"] and "at least 3" in result.errors["data"]
    assert "--" not in result.errors["data"] and len(result.notes) == 2


def test_sqrt_law_with_c_empty_is_a_field_error_not_a_crash():
    result = sweep_form(**{**DEMO, "rules": [SQRT_LAW], "law_c": None})
    assert set(result.errors) == {"law_c"} and not result.argv


def test_only_the_sqrt_law_queues_only_the_laws_points():
    result = sweep_form(**{**DEMO, "rules": [SQRT_LAW], "law_c": 8.0, "ranks": "4,16,64"})
    args = build_parser().parse_args([*result.argv, "--study", "x"])
    grid = sweep_grid(args, task_defaults=task_defaults(args.task))
    assert [(p["rank"], p["alpha"], p["rule"]) for p in grid.points()] == [
        (4, 16.0, "standard"), (16, 32.0, "standard"), (64, 64.0, "standard")]


def test_sqrt_law_c_error_goes_under_c_in_ui_words():
    result = sweep_form(**{**DEMO, "rules": ["rslora", SQRT_LAW], "law_c": -3.0})
    assert set(result.errors) == {"law_c"} and "--" not in result.errors["law_c"]


def test_missing_model_folder_goes_under_model_even_in_a_data_folder(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n' * 4)
    result = sweep_form(**{**DEMO, "source": CUSTOM, "model": "/data/no/such/model", "data": str(data)})
    assert set(result.errors) == {"model"} and "does not exist" in result.errors["model"]


def test_a_builtin_task_ignores_the_model_and_dataset_widgets(tmp_path):
    result = sweep_form(**{**DEMO, "model": "/some/model", "data": str(tmp_path / "d.jsonl")})
    assert result.ok and "--model" not in result.argv and "--data" not in result.argv


def test_fractional_steps_are_refused_not_rounded():
    result = sweep_form(**{**DEMO, "steps": 2.5})
    assert result.errors == {"steps": "must be a whole number, got 2.5"}


def test_a_huge_grid_is_refused_under_ranks():
    result = sweep_form(**{**DEMO, "ranks": ",".join(map(str, range(1, 10_001)))})
    assert set(result.errors) == {"ranks"} and str(MAX_GRID_POINTS) in result.errors["ranks"]


@pytest.mark.parametrize("bad", [
    {"ranks": "0"}, {"alphas": "2e6"}, {"lr": float("inf")}, {"steps": 0}, {"batch_size": "x"}, {"source": CUSTOM},
    {"rules": [SQRT_LAW], "law_c": -1.0}, {"rules": [SQRT_LAW], "law_c": 1e7},
])
def test_ui_errors_never_name_cli_flags(bad):
    result = sweep_form(**{**DEMO, **bad})
    assert result.errors and not any("--" in message for message in result.errors.values())


@pytest.mark.skipif(accelerator_problem("cuda") is None, reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_in_the_form():
    result = sweep_form(**{**DEMO, "device": "cuda"})
    assert set(result.errors) == {"device"} and "no CUDA GPU" in result.errors["device"]


def test_switching_to_your_own_data_sets_the_custom_data_defaults():
    custom = task_defaults(None)
    assert source_defaults(CUSTOM) == (custom.lr, custom.steps, custom.batch_size) == (2e-4, 200, 8)
    demo = task_defaults("synthetic-facts")
    assert source_defaults("synthetic-facts") == (demo.lr, demo.steps, demo.batch_size)
