"""Bad input on the command line: exit status 2 and ONE line on stderr, before any training.

Every case runs ``app.cli.main`` in-process with a throw-away SQLite storage under ``tmp_path``.
Training is replaced by a tripwire, so a case that gets past validation fails loudly instead of
running a sweep.
"""

import json
import os

import optuna
import pytest
import torch

import app.cli
import app.commands
from bad_input import TrainingStarted, run_bad
import core.models
from tuning.storage import study_names

SYNTH = ["--task", "synthetic-style"]






@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    def tripwire(*args, **kwargs):
        raise TrainingStarted("run_pending was called: the bad input was not rejected up front")

    monkeypatch.setattr(app.commands, "run_pending", tripwire)


@pytest.fixture
def storage(tmp_path):
    return f"sqlite:///{tmp_path}/s.db"


@pytest.fixture
def good_data(tmp_path):
    path = tmp_path / "good.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completion": f" A{i}"}) + "\n" for i in range(20)))
    return path


@pytest.fixture
def unusable_data(tmp_path):
    path = tmp_path / "unusable.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n{not json\n')
    return path




def sweep(storage: str, *extra: str) -> list[str]:
    return ["sweep", "--storage", storage, "--quiet", *extra]


def assert_no_study_left(storage: str, tmp_path) -> None:
    if (tmp_path / "s.db").exists():
        assert study_names(storage) == [], "bad input must not leave a study behind"


# --- sweep: grid, task, data, training flags ----------------------------------------------------

SWEEP_CASES = {
    # id: (flags after `sweep --storage ... --quiet`, distinctive word in the error line)
    "rank-zero": (SYNTH + ["--ranks", "0"], "rank"),
    "rank-negative": (SYNTH + ["--ranks", "-4"], "rank"),
    "rank-not-int": (SYNTH + ["--ranks", "4,x"], "--ranks"),
    "rank-fraction": (SYNTH + ["--ranks", "4.5"], "--ranks"),
    "ranks-empty": (SYNTH + ["--ranks", ","], "--ranks"),
    "alpha-zero": (SYNTH + ["--alphas", "0"], "alpha"),
    "alpha-negative": (SYNTH + ["--alphas", "-1"], "alpha"),
    "alpha-nan": (SYNTH + ["--alphas", "nan"], "alpha"),
    "alpha-inf": (SYNTH + ["--alphas", "16,inf"], "alpha"),
    "lr-zero": (SYNTH + ["--lrs", "0"], "--lrs"),
    "rule-unknown": (SYNTH + ["--rules", "standard,bogus"], "bogus"),
    "task-unknown": (["--task", "nope"], "unknown task"),
    "no-task-no-data": ([], "no task and no data"),
    "steps-zero": (SYNTH + ["--steps", "0"], "steps"),
    "steps-not-int": (SYNTH + ["--steps", "ten"], "--steps"),
    "batch-size-zero": (SYNTH + ["--batch-size", "0"], "batch-size"),
    "eval-every-zero": (SYNTH + ["--eval-every", "0"], "eval-every"),
    "max-length-zero": (SYNTH + ["--max-length", "0"], "max-length"),
    "warmup-negative": (SYNTH + ["--warmup-steps", "-1"], "warmup-steps"),
    "schedule-unknown": (SYNTH + ["--schedule", "linear"], "schedule"),
    "dropout-one": (SYNTH + ["--lora-dropout", "1"], "lora-dropout"),
    "grad-norm-zero": (SYNTH + ["--max-grad-norm", "0"], "max-grad-norm"),
    "device-unknown": (SYNTH + ["--device", "tpu"], "device"),
    "data-missing": (["--data", "/missing.jsonl"], "does not exist"),
    "lrs-inf": (SYNTH + ["--lrs", "inf"], "--lrs"),
    "lrs-past-optuna": (SYNTH + ["--lrs", "11"], "--lrs"),
    "seed-huge": (SYNTH + ["--seed", str(2**70)], "--seed"),
    "seed-past-optuna": (SYNTH + ["--seed", str(2**31)], "--seed"),
    "rank-past-optuna": (SYNTH + ["--ranks", "4,70000"], "--ranks"),
    "alpha-past-optuna": (SYNTH + ["--alphas", "2e6"], "--alphas"),
    "steps-fraction": (SYNTH + ["--steps", "2.5"], "--steps"),
    "grid-too-big": (SYNTH + ["--ranks", ",".join(map(str, range(1, 10_001)))], "20000 points"),
    "rules-none-without-law": (SYNTH + ["--rules", "none"], "--rules"),
    "sqrt-law-c-negative": (SYNTH + ["--sqrt-law-c", "-2"], "--sqrt-law-c"),
    "json-in-proc": (SYNTH + ["--json", "/proc/lorascope-test/results.json"], "--json"),
    "json-inside-a-file": (SYNTH + ["--json", "/etc/hostname/results.json"], "--json"),
}


@pytest.mark.parametrize("flags, word", list(SWEEP_CASES.values()), ids=list(SWEEP_CASES))
def test_sweep_rejects_bad_flag(capsys, storage, tmp_path, flags, word):
    line = run_bad(capsys, sweep(storage, *flags))
    assert word in line
    assert_no_study_left(storage, tmp_path)


def test_sweep_rejects_data_file_of_unknown_type(capsys, storage, tmp_path):
    path = tmp_path / "data.parquet"
    path.write_text("whatever")
    line = run_bad(capsys, sweep(storage, "--data", str(path)))
    assert "unknown type" in line and ".jsonl" in line


def test_sweep_rejects_missing_model_folder(capsys, storage, tmp_path, good_data):
    line = run_bad(capsys, sweep(storage, "--model", "/nonexistent/model", "--data", str(good_data)))
    assert "/nonexistent/model" in line and "does not exist" in line
    assert_no_study_left(storage, tmp_path)


def test_sweep_rejects_model_folder_without_config(capsys, storage, tmp_path, good_data):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    line = run_bad(capsys, sweep(storage, "--model", str(folder), "--data", str(good_data)))
    assert "config.json" in line


def test_sweep_rejects_data_file_with_no_usable_rows(capsys, storage, tmp_path, unusable_data):
    line = run_bad(capsys, sweep(storage, "--data", str(unusable_data)))
    assert "no usable rows" in line and str(unusable_data) in line
    assert_no_study_left(storage, tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_sweep_rejects_cuda_without_a_gpu(capsys, storage, tmp_path):
    line = run_bad(capsys, sweep(storage, *SYNTH, "--device", "cuda"))
    assert "cuda" in line.lower()
    assert_no_study_left(storage, tmp_path)


def test_sweep_rejects_storage_that_is_not_a_url(capsys):
    line = run_bad(capsys, ["sweep", "--storage", "notaurl", "--quiet", *SYNTH])
    assert "notaurl" in line and "storage" in line


# --- sources that fit together badly are refused before any trial -------------------------------


def _reject(capsys, argv: list[str]) -> str:
    line = run_bad(capsys, argv)
    return line


def test_sweep_rejects_synthetic_task_with_data(capsys, storage, good_data):
    line = _reject(capsys, sweep(storage, *SYNTH, "--data", str(good_data)))
    assert "synthetic" in line


def test_sweep_rejects_text_task_with_data(capsys, storage, good_data):
    line = _reject(capsys, sweep(storage, "--task", "tiny-facts", "--data", str(good_data)))
    assert "drop --data" in line


def test_sweep_rejects_missing_builtin_model(capsys, storage, tmp_path, good_data, monkeypatch):
    monkeypatch.setattr(core.models, "TINY_LM", tmp_path / "no-tiny-lm")
    line = _reject(capsys, sweep(storage, "--data", str(good_data)))
    assert "no-tiny-lm" in line or "tiny" in line


# --- results and worker -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["results", "worker"])
def test_missing_study_is_rejected(capsys, storage, command):
    line = run_bad(capsys, [command, "--storage", storage, "--study", "missing"])
    assert "no study 'missing'" in line


@pytest.mark.parametrize("command", ["results", "worker"])
def test_study_is_required(capsys, storage, command):
    line = run_bad(capsys, [command, "--storage", storage])
    assert "--study" in line


def test_unknown_command_is_one_line(capsys):
    line = run_bad(capsys, ["train"])
    assert "train" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_sweep_json_in_a_read_only_folder_is_refused_before_training(capsys, storage, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    line = run_bad(capsys, sweep(storage, *SYNTH, "--json", str(folder / "r.json")))
    assert line.startswith("lorascope: error: --json: cannot write") and "not writable" in line


# --- storage that is corrupt -------------------------------------------------------------------

def test_partially_corrupt_sqlite_file_is_one_line(capsys, tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    optuna.create_study(storage=url, study_name="x")
    data = bytearray((tmp_path / "c.db").read_bytes())
    data[4096:8192] = b"\xff" * 4096  # clobber the second page, keep the header
    (tmp_path / "c.db").write_bytes(bytes(data))
    for argv in (["results", "--study", "x"], ["sweep", "--study", "y", "--quiet", *SYNTH]):
        line = run_bad(capsys, [argv[0], "--storage", url, *argv[1:]])
        assert line == f"lorascope: error: storage {url}: database disk image is malformed"


# --- the positive case --------------------------------------------------------------------------


def test_tasks_lists_the_builtin_tasks(capsys):
    assert app.cli.main(["tasks"]) == 0
    out, err = capsys.readouterr()
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert names == ["synthetic-style", "synthetic-facts", "tiny-facts", "tiny-style"]
    assert err == ""
