"""The UI's form validation: per-field errors before anything starts, CLI argv when valid."""

from app.cli import build_parser
from app.forms import SQRT_LAW, search_form, sweep_form

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
    data.write_text('{"text": "hello"}\nnot json\n')
    result = sweep_form(**{**DEMO, "source": "your model + data", "data": str(data)})
    assert result.ok and "not valid JSON" in result.notes[0]
