"""Export round-trips: every format is read back by the tool it is for, with the same gamma.

PEFT is the reference: an exported ``adapter_config.json`` is loaded with
``LoraConfig.from_pretrained`` and applied to the built-in tiny LM, and the scale every LoRA
layer applies must be the gamma of the exported choice. Axolotl and LLaMA-Factory YAML are
parsed back with ``yaml.safe_load``; the Python snippet is run and exec'd.
"""

import copy
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import peft
import pytest
import yaml
from peft.tuners.lora import LoraLayer

import app.cli
from core.models import TINY_LM, discover_target_modules, load_model_and_tokenizer
from core.scaling import get_rule
from core.specs import SpecError
from tuning.export import ExportChoice, write_export
from tuning.results import collect_records

TARGETS = ("q_proj", "v_proj", "down_proj")
RULES = ("standard", "rslora")


@pytest.fixture(scope="module")
def tiny_lm():
    model, _ = load_model_and_tokenizer(None)
    return model


def _choice(rule: str = "standard", rank: int = 8, alpha: float = 16.0, **kw) -> ExportChoice:
    return ExportChoice(rank=rank, alpha=alpha, rule=rule, target_modules=TARGETS, **kw)


def _peft_scalings(base_model, folder: Path) -> list[float]:
    """Load ``folder`` with PEFT, apply it to a copy of ``base_model``, return every layer's scale."""
    config = peft.LoraConfig.from_pretrained(str(folder))
    model = peft.get_peft_model(copy.deepcopy(base_model), config)
    scales = [float(m.scaling["default"]) for m in model.modules()
              if isinstance(m, LoraLayer) and "default" in m.scaling]
    assert scales, "PEFT built no LoRA layer from the exported config"
    return scales


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- peft -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES)
def test_peft_export_loads_and_applies_the_choices_gamma(tmp_path, tiny_lm, rule):
    choice = _choice(rule, rank=8, alpha=16.0, lora_dropout=0.05, base_model=str(TINY_LM))
    expected_gamma = 16.0 / 8 if rule == "standard" else 16.0 / math.sqrt(8)
    assert choice.gamma == pytest.approx(expected_gamma, rel=1e-12)

    target, written = write_export(choice, "peft", tmp_path / "adapter")
    assert target == tmp_path / "adapter" / "adapter_config.json"
    assert written.notes == ()  # an integer alpha needs no note

    saved = json.loads(target.read_text())
    assert saved["r"] == 8
    assert saved["lora_alpha"] == 16 and isinstance(saved["lora_alpha"], int)
    assert saved["use_rslora"] is (rule == "rslora")
    assert sorted(saved["target_modules"]) == sorted(TARGETS)
    assert saved["lora_dropout"] == 0.05
    assert saved["task_type"] == "CAUSAL_LM"
    assert saved["base_model_name_or_path"] == str(TINY_LM)

    config = peft.LoraConfig.from_pretrained(str(target.parent))
    assert (config.r, config.lora_alpha, config.use_rslora) == (8, 16, rule == "rslora")

    scales = _peft_scalings(tiny_lm, target.parent)
    # 4 layers x 3 targeted modules, each applying exactly the exported gamma
    assert len(scales) == 4 * len(TARGETS)
    for scale in scales:
        assert scale == pytest.approx(expected_gamma, rel=1e-6)


def test_fractional_standard_alpha_is_written_as_an_exact_rslora_alpha(tmp_path, tiny_lm):
    # 8 * sqrt(8) under standard at r=8 is gamma 2*sqrt(2), which is rslora with lora_alpha 8
    choice = _choice("standard", rank=8, alpha=8 * math.sqrt(8))
    gamma = choice.gamma
    assert gamma == pytest.approx(2 * math.sqrt(2), rel=1e-12)

    target, written = write_export(choice, "peft", tmp_path / "adapter")
    assert (written.rule, written.alpha) == ("rslora", 8.0)
    assert written.gamma == pytest.approx(gamma, rel=1e-9)
    assert len(written.notes) == 1
    assert "rslora" in written.notes[0] and "same gamma" in written.notes[0]

    saved = json.loads(target.read_text())
    assert saved["lora_alpha"] == 8 and saved["use_rslora"] is True and saved["r"] == 8
    for scale in _peft_scalings(tiny_lm, target.parent):
        assert scale == pytest.approx(gamma, rel=1e-6)


def test_plain_fractional_alpha_is_rounded_and_the_gamma_change_is_stated(tmp_path):
    # 22.6 / 16 = 1.4125; no rule gives an integer alpha for it, so 23 is written: 1.4375 (+1.77%)
    choice = _choice("standard", rank=16, alpha=22.6)
    target, written = write_export(choice, "peft", tmp_path / "adapter")
    assert (written.rule, written.alpha) == ("standard", 23.0)
    assert written.gamma == pytest.approx(23 / 16, rel=1e-12)
    change = 100 * ((23 / 16) / (22.6 / 16) - 1)
    assert change == pytest.approx(1.7699, abs=1e-4)
    assert len(written.notes) == 1
    note = written.notes[0]
    assert "rounded to 23" in note and "+1.77%" in note and f"{change:+.2f}%" == "+1.77%"
    saved = json.loads(target.read_text())
    assert saved["lora_alpha"] == 23 and saved["use_rslora"] is False


# --- python ---------------------------------------------------------------------------------------


def test_python_snippet_runs_and_builds_the_same_lora_config(tmp_path):
    choice = _choice("rslora", rank=16, alpha=32.0, base_model=str(TINY_LM))
    target, written = write_export(choice, "python", tmp_path / "lora_config.py")
    assert target == tmp_path / "lora_config.py"

    run = subprocess.run([sys.executable, str(target)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "LoraConfig" in run.stdout

    namespace: dict = {}
    exec(compile(target.read_text(), str(target), "exec"), namespace)  # noqa: S102 - our own output
    config = namespace["lora_config"]
    assert isinstance(config, peft.LoraConfig)
    assert config.r == 16 and config.lora_alpha == 32 and config.use_rslora is True
    assert set(config.target_modules) == set(TARGETS)
    assert config.task_type == "CAUSAL_LM"
    assert get_rule(written.rule).gamma(config.lora_alpha, config.r) == pytest.approx(32 / 4)


# --- axolotl and llama-factory --------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES)
def test_axolotl_yaml_carries_the_lora_keys(tmp_path, rule):
    choice = _choice(rule, rank=4, alpha=8.0, lora_dropout=0.1, base_model=str(TINY_LM))
    target, _ = write_export(choice, "axolotl", tmp_path / "axolotl.yaml")
    data = yaml.safe_load(target.read_text())
    assert data["adapter"] == "lora"
    assert data["lora_r"] == 4
    assert data["lora_alpha"] == 8 and isinstance(data["lora_alpha"], int)
    assert data["peft_use_rslora"] is (rule == "rslora")
    assert data["lora_target_modules"] == list(TARGETS)
    assert data["lora_dropout"] == 0.1
    assert data["base_model"] == str(TINY_LM)


@pytest.mark.parametrize("rule", RULES)
def test_llama_factory_yaml_carries_the_lora_keys(tmp_path, rule):
    choice = _choice(rule, rank=4, alpha=8.0, lora_dropout=0.1, base_model=str(TINY_LM))
    target, _ = write_export(choice, "llama-factory", tmp_path / "lf.yaml")
    data = yaml.safe_load(target.read_text())
    assert data["finetuning_type"] == "lora"
    assert data["lora_rank"] == 4
    assert data["lora_alpha"] == 8 and isinstance(data["lora_alpha"], int)
    assert data["use_rslora"] is (rule == "rslora")
    assert data["lora_target"] == "q_proj,v_proj,down_proj"
    assert data["lora_dropout"] == 0.1
    assert data["model_name_or_path"] == str(TINY_LM)


def test_yaml_formats_write_the_integer_alpha_of_a_fractional_choice(tmp_path):
    choice = _choice("standard", rank=8, alpha=8 * math.sqrt(8))
    axolotl = yaml.safe_load(write_export(choice, "axolotl", tmp_path / "a.yaml")[0].read_text())
    factory = yaml.safe_load(write_export(choice, "llama-factory", tmp_path / "f.yaml")[0].read_text())
    assert (axolotl["lora_alpha"], axolotl["peft_use_rslora"]) == (8, True)
    assert (factory["lora_alpha"], factory["use_rslora"]) == (8, True)


# --- writing safely -------------------------------------------------------------------------------

FILE_NAMES = {"peft": "adapter", "python": "lora_config.py", "axolotl": "a.yaml", "llama-factory": "f.yaml"}


@pytest.mark.parametrize("fmt", list(FILE_NAMES))
def test_export_never_overwrites_without_force(tmp_path, fmt):
    out = tmp_path / FILE_NAMES[fmt]
    target, _ = write_export(_choice(alpha=16.0), fmt, out)
    first = target.read_text()
    with pytest.raises(SpecError, match="--force"):
        write_export(_choice(alpha=32.0), fmt, out)
    assert target.read_text() == first
    target2, written = write_export(_choice(alpha=32.0), fmt, out, force=True)
    assert target2 == target and written.alpha == 32.0
    assert target.read_text() != first and "32" in target.read_text()


@pytest.mark.parametrize("fmt", list(FILE_NAMES))
def test_out_inside_an_existing_file_is_refused(tmp_path, fmt):
    blocker = tmp_path / "plain.txt"
    blocker.write_text("not a folder")
    before = _listing(tmp_path)
    with pytest.raises(SpecError, match="inside the file"):
        write_export(_choice(), fmt, blocker / "sub" / FILE_NAMES[fmt])
    assert _listing(tmp_path) == before
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("fmt", list(FILE_NAMES))
def test_nothing_is_written_outside_out(tmp_path, fmt):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("keep")
    before = _listing(tmp_path)
    out = tmp_path / "nested" / "deeper" / FILE_NAMES[fmt]
    target, _ = write_export(_choice(), fmt, out)
    added = _listing(tmp_path) - before
    expected_target = out / "adapter_config.json" if fmt == "peft" else out
    assert target == expected_target
    # only `out` itself, the folders leading to it and (for peft) the one file inside it
    allowed = {"nested", "nested/deeper", str(out.relative_to(tmp_path))} | {str(expected_target.relative_to(tmp_path))}
    assert added <= allowed and str(expected_target.relative_to(tmp_path)) in added
    assert _listing(tmp_path) - added == before
    assert (tmp_path / "other" / "keep.txt").read_text() == "keep"


def test_peft_out_that_is_a_file_and_file_out_that_is_a_folder_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(SpecError, match="is a file"):
        write_export(_choice(), "peft", tmp_path / "file")
    with pytest.raises(SpecError, match="is a folder"):
        write_export(_choice(), "python", tmp_path / "folder")
    assert (tmp_path / "file").read_text() == "x" and list((tmp_path / "folder").iterdir()) == []


def test_unknown_format_is_refused_before_writing(tmp_path):
    with pytest.raises(SpecError, match="unknown format 'bogus'"):
        write_export(_choice(), "bogus", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


# --- end to end through the CLI -------------------------------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A 2-trial rslora sweep of tiny-style (r=4 and r=8 at alpha 16, 3 steps), run by the CLI."""
    folder = tmp_path_factory.mktemp("sweep")
    url = f"sqlite:///{folder}/s.db"
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = app.cli.main(["sweep", "--task", "tiny-style", "--ranks", "4,8", "--rules", "rslora",
                             "--alphas", "16", "--steps", "3", "--batch-size", "4", "--quiet",
                             "--storage", url, "--study", "s"])
    finally:
        for sig, handler in handlers.items():  # the sweep installs its own Ctrl-C handling
            signal.signal(sig, handler)
    assert code == 0
    records, _ = collect_records(url, "s")
    assert [(r["rank"], r["state"]) for r in records] == [(4, "COMPLETE"), (8, "COMPLETE")]
    return url, records


def _best(records):
    return min(records, key=lambda r: r["eval_loss"])


def test_cli_export_peft_of_a_sweep_loads_with_the_best_trials_gamma(tmp_path, capsys, tiny_lm, swept):
    url, records = swept
    best = _best(records)
    assert best["gamma"] == pytest.approx(16 / math.sqrt(best["rank"]), rel=1e-12)
    folder = tmp_path / "adapter"
    assert app.cli.main(["export", "--storage", url, "--study", "s", "--format", "peft", "--out", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert f"r={best['rank']} lora_alpha=16 rule=rslora" in out
    assert "best trial" in err

    saved = json.loads((folder / "adapter_config.json").read_text())
    assert (saved["r"], saved["lora_alpha"], saved["use_rslora"]) == (best["rank"], 16, True)
    assert sorted(saved["target_modules"]) == discover_target_modules(tiny_lm)
    assert saved["task_type"] == "CAUSAL_LM" and saved["base_model_name_or_path"] == str(TINY_LM)
    scales = _peft_scalings(tiny_lm, folder)
    assert len(scales) == 4 * 7  # every linear layer of the 4 blocks
    for scale in scales:
        assert scale == pytest.approx(best["gamma"], rel=1e-6)


def test_cli_export_trial_exports_that_trial(tmp_path, capsys, swept):
    url, records = swept
    other = max(records, key=lambda r: r["eval_loss"])  # not the recommendation
    out_file = tmp_path / "lora.yaml"
    assert app.cli.main(["export", "--storage", url, "--study", "s", "--format", "axolotl",
                         "--out", str(out_file), "--trial", str(other["number"])]) == 0
    data = yaml.safe_load(out_file.read_text())
    assert (data["lora_r"], data["lora_alpha"], data["peft_use_rslora"]) == (other["rank"], 16, True)
    out, _ = capsys.readouterr()
    assert f"r={other['rank']} " in out and f"gamma={16 / math.sqrt(other['rank']):.6g}" in out


def test_cli_export_rank_without_a_located_law_takes_the_trial_at_that_rank_or_refuses(tmp_path, capsys, swept):
    url, _ = swept
    out_file = tmp_path / "lf.yaml"
    # one alpha per rank locates no alpha*, so there is no law to extrapolate to r=16
    with pytest.raises(SystemExit) as exit_info:
        app.cli.main(["export", "--storage", url, "--study", "s", "--format", "llama-factory",
                      "--out", str(out_file), "--rank", "16"])
    assert exit_info.value.code == 2 and "no fitted law" in capsys.readouterr().err
    assert app.cli.main(["export", "--storage", url, "--study", "s", "--format", "llama-factory",
                         "--out", str(out_file), "--rank", "8"]) == 0
    data = yaml.safe_load(out_file.read_text())
    assert (data["lora_rank"], data["lora_alpha"], data["use_rslora"]) == (8, 16, True)


def test_cli_fit_json_holds_the_best_trial_and_no_law_from_one_alpha_per_rank(tmp_path, capsys, swept):
    url, records = swept
    best = _best(records)
    path = tmp_path / "fit.json"
    assert app.cli.main(["fit", "--storage", url, "--study", "s", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    rec = report["recommendation"]
    assert (rec["study"], rec["trial"], rec["rank"], rec["alpha"], rec["rule"]) == (
        "s", best["number"], best["rank"], 16.0, "rslora")
    assert rec["gamma"] == pytest.approx(16 / math.sqrt(best["rank"]), rel=1e-12)
    assert rec["eval_loss"] == pytest.approx(best["eval_loss"], rel=1e-12)
    assert rec["alpha_located"] is False and rec["setting"] == "lr=0.001 seed=0 steps=3 batch_size=4"
    entry = report["groups"][rec["setting"]]["rules"]["rslora"]
    assert entry["law"] is None and entry["law_status"] == "bound"
    assert [(o["rank"], o["located"], o["at_edge"]) for o in entry["optima"]] == [(4, False, True), (8, False, True)]
    out = capsys.readouterr().out
    assert "recommended" not in out and "alpha* not located: only one alpha tried" in out
