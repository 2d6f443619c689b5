"""Bad input to `search`, `fit` and `export`: exit status 2 and ONE stderr line naming the problem.

Every case runs ``app.cli.main`` in-process with a throw-away SQLite storage under ``tmp_path``.
Training is replaced by tripwires, so a case that gets past validation fails loudly instead of
running trials. Studies that `fit` and `export` read are built directly with Optuna (a
completed trial is added by hand), so no case here trains anything.
"""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

import app.cli
import app.commands
from bad_input import TrainingStarted, run_bad
import tuning.search
import tuning.sweep
from core.specs import TrialSpec
from tuning.storage import SETTINGS_ATTR, study_names

SYNTH = ["--task", "synthetic-style"]


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    def tripwire(*args, **kwargs):
        raise TrainingStarted("training was started: the bad input was not rejected up front")

    for module in (app.commands, tuning.search):
        monkeypatch.setattr(module, "run_search", tripwire)
    for module in (app.commands, tuning.sweep):
        monkeypatch.setattr(module, "run_pending", tripwire)
    monkeypatch.setattr(tuning.search.optuna.Study, "optimize", tripwire)


@pytest.fixture
def storage(tmp_path):
    return f"sqlite:///{tmp_path}/s.db"




# --- studies built without training --------------------------------------------------------------

TARGETS = ["q_proj", "v_proj"]
DISTRIBUTIONS = {
    "rank": IntDistribution(1, 1 << 16, log=True),
    "alpha": FloatDistribution(1e-4, 1e6, log=True),
    "rule": CategoricalDistribution(("standard", "rslora")),
}


def completed_study(url: str, name: str = "done") -> optuna.Study:
    """A lorascope-style sweep study over tiny-style with one completed trial (r=8, alpha 16)."""
    study = optuna.create_study(storage=url, study_name=name, direction="minimize")
    base = TrialSpec(task="tiny-style", steps=3, batch_size=4)
    study.set_user_attr(SETTINGS_ATTR, {"kind": "sweep", "base": base.to_dict()})
    study.add_trial(optuna.trial.create_trial(
        params={"rank": 8, "alpha": 16.0, "rule": "standard"}, distributions=DISTRIBUTIONS, value=2.5,
        user_attrs={"outcome": {"status": "completed", "eval_loss": 2.5, "gamma": 2.0,
                                "info": {"target_modules": TARGETS}}},
    ))
    return study


def export(storage: str, *extra: str) -> list[str]:
    return ["export", "--storage", storage, "--study", "done", *extra]


# --- search ---------------------------------------------------------------------------------------

SEARCH_CASES = {
    # id: (flags after `search --storage ... --quiet --task synthetic-style`, words in the error line)
    "alpha-max-below-min": (["--alpha-min", "10", "--alpha-max", "5"], ("--alpha-max", "--alpha-min")),
    "alpha-min-zero": (["--alpha-min", "0"], ("--alpha-min", "from 0.0001")),
    "alpha-min-negative": (["--alpha-min", "-1"], ("--alpha-min", "from 0.0001")),
    "trials-per-rank-zero": (["--trials-per-rank", "0"], ("--trials-per-rank",)),
    "pruner-unknown": (["--pruner", "bogus"], ("pruner", "bogus")),
    "sampler-unknown": (["--sampler", "bogus"], ("sampler", "bogus")),
    "rule-unknown": (["--rule", "bogus"], ("rule", "bogus")),
    "rank-zero": (["--ranks", "0"], ("rank",)),
    "alpha-max-nan": (["--alpha-max", "nan"], ("--alpha-max",)),
    "lr-inf": (["--lr", "inf"], ("--lr:",)),
    "seed-huge": (["--seed", str(2**70)], ("--seed",)),
    "alpha-min-above-default-max": (["--alpha-min", "5000"], ("--alpha-min", "4096")),
    "json-in-proc": (["--json", "/proc/lorascope-test/fit.json"], ("--json",)),
}


@pytest.mark.parametrize("flags, words", list(SEARCH_CASES.values()), ids=list(SEARCH_CASES))
def test_search_rejects_bad_flag(capsys, storage, tmp_path, flags, words):
    line = run_bad(capsys, ["search", "--storage", storage, "--quiet", *SYNTH, "--study", "a", *flags])
    for word in words:
        assert word in line
    if (tmp_path / "s.db").exists():
        assert study_names(storage) == [], "bad input must not leave a search study behind"


def test_search_rejects_infinite_alpha_max(capsys, storage, tmp_path):
    line = run_bad(capsys, ["search", "--storage", storage, "--quiet", *SYNTH, "--study", "a", "--alpha-max", "inf"])
    assert "--alpha-max" in line
    assert study_names(storage) == []


# --- fit ------------------------------------------------------------------------------------------


def test_fit_on_a_study_with_no_trials(capsys, storage):
    optuna.create_study(storage=storage, study_name="empty")
    line = run_bad(capsys, ["fit", "--storage", storage, "--study", "empty"])
    assert "'empty'" in line and "no completed trials" in line


def test_fit_on_a_study_whose_only_trial_failed(capsys, storage):
    study = optuna.create_study(storage=storage, study_name="failed")
    study.tell(study.ask(), state=TrialState.FAIL)
    line = run_bad(capsys, ["fit", "--storage", storage, "--study", "failed"])
    assert "'failed'" in line and "no completed trials" in line


def test_fit_on_a_missing_study(capsys, storage):
    completed_study(storage)
    line = run_bad(capsys, ["fit", "--storage", storage, "--study", "missing"])
    assert "no study 'missing'" in line and "done" in line  # names the studies that do exist


def test_fit_rank_zero(capsys, storage):
    completed_study(storage)
    line = run_bad(capsys, ["fit", "--storage", storage, "--study", "done", "--rank", "0"])
    assert "--rank" in line and "positive" in line


@pytest.mark.parametrize("where", ["inside-a-file", "a-folder"])
def test_fit_json_that_cannot_be_written(capsys, storage, tmp_path, where):
    completed_study(storage)
    (tmp_path / "plain.txt").write_text("keep")
    (tmp_path / "folder").mkdir()
    path = tmp_path / "plain.txt" / "fit.json" if where == "inside-a-file" else tmp_path / "folder"
    line = run_bad(capsys, ["fit", "--storage", storage, "--study", "done", "--json", str(path)], empty_stdout=False)
    assert "--json" in line or str(path) in line
    assert (tmp_path / "plain.txt").read_text() == "keep"


# --- export ---------------------------------------------------------------------------------------


def test_export_unknown_format(capsys, storage, tmp_path):
    completed_study(storage)
    line = run_bad(capsys, export(storage, "--format", "bogus", "--out", str(tmp_path / "x")))
    assert "bogus" in line and "peft" in line
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("fmt", ["peft", "python"])
def test_export_out_inside_an_existing_file(capsys, storage, tmp_path, fmt):
    completed_study(storage)
    blocker = tmp_path / "plain.txt"
    blocker.write_text("keep")
    line = run_bad(capsys, export(storage, "--format", fmt, "--out", str(blocker / "sub" / "cfg")))
    assert str(blocker) in line and "inside the file" in line
    assert blocker.read_text() == "keep"


def test_export_to_an_existing_file_needs_force(capsys, storage, tmp_path):
    completed_study(storage)
    target = tmp_path / "lora_config.py"
    target.write_text("# mine\n")
    line = run_bad(capsys, export(storage, "--format", "python", "--out", str(target)))
    assert str(target) in line and "--force" in line
    assert target.read_text() == "# mine\n"
    # the same command with --force does overwrite it
    assert app.cli.main(export(storage, "--format", "python", "--out", str(target), "--force")) == 0
    assert "r=8," in target.read_text() and "lora_alpha=16," in target.read_text()


def test_export_unknown_trial(capsys, storage, tmp_path):
    completed_study(storage)
    line = run_bad(capsys, export(storage, "--format", "peft", "--out", str(tmp_path / "a"), "--trial", "999"))
    assert "999" in line and "trial" in line
    assert not (tmp_path / "a").exists()


def test_export_on_a_study_with_no_completed_trials(capsys, storage, tmp_path):
    optuna.create_study(storage=storage, study_name="empty")
    line = run_bad(capsys, ["export", "--storage", storage, "--study", "empty", "--format", "peft",
                            "--out", str(tmp_path / "a")])
    assert "no completed trials" in line
    assert not (tmp_path / "a").exists()


def test_export_out_in_proc_is_refused_before_reading_the_study(capsys, storage, tmp_path):
    completed_study(storage)
    line = run_bad(capsys, export(storage, "--format", "python", "--out", "/proc/lorascope-test/cfg.py"))
    assert line.startswith("lorascope: error: --out: cannot write")


# --- a search whose only trial fails is a result, not bad input ---------------------------------

def test_search_whose_only_trial_fails_exits_0_and_keeps_the_failure(capsys, storage, monkeypatch):
    def one_failed_trial(storage_url, name, base, search, *, studies, **kwargs):
        for study in studies:  # as a trial that raised would end: recorded FAIL
            study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
        return studies

    monkeypatch.setattr(app.commands, "run_search", one_failed_trial)
    argv = ["search", "--storage", storage, "--quiet", *SYNTH, "--study", "s", "--ranks", "4", "--trials-per-rank", "1"]
    assert app.cli.main(argv) == 0
    assert "no completed trials" in capsys.readouterr().err
    assert [t.state for t in optuna.load_study(study_name="s/r4", storage=storage).trials] == [TrialState.FAIL]


# --- bench and ui: checked before any work --------------------------------------------------------

@pytest.fixture
def no_bench_or_server(monkeypatch):
    import app.bench
    import app.ui

    def tripwire(*args, **kwargs):
        raise TrainingStarted("the benchmark or the server started: the bad input was not rejected up front")

    monkeypatch.setattr(app.bench, "run_bench", tripwire)
    monkeypatch.setattr(app.ui, "launch", tripwire)


def test_bench_json_folder_is_refused_before_the_benchmark(capsys, tmp_path, no_bench_or_server):
    line = run_bad(capsys, ["bench", "--json", str(tmp_path)])
    assert line == f"lorascope: error: --json: {tmp_path} is a folder: give a file path"


def test_bench_unknown_device_is_refused(capsys, tmp_path, no_bench_or_server):
    line = run_bad(capsys, ["bench", "--device", "foo", "--json", str(tmp_path / "b.json")])
    assert "--device" in line and "'foo'" in line


def test_ui_bad_host_is_refused_before_serving(capsys, storage, no_bench_or_server):
    line = run_bad(capsys, ["ui", "--host", "999.999.999.999", "--storage", storage])
    assert line.startswith("lorascope: error: --host: cannot use '999.999.999.999'")


def test_ui_port_in_use_is_refused_before_serving(capsys, storage, no_bench_or_server):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        line = run_bad(capsys, ["ui", "--port", str(busy.getsockname()[1]), "--storage", storage])
    assert line.startswith("lorascope: error: --port: cannot listen on 127.0.0.1:")
