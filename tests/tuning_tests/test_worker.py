"""Joining a study from another machine: which studies, which data file, which model, how much is left."""

import hashlib

import pytest

from core.specs import SearchSpec, SpecError, SweepGrid, TrialSpec
from tuning.attrs import SETTINGS_ATTR
from tuning.datasets import DATASET_SETTING
from tuning.queue import claim_waiting, create_trials_below
from tuning.search import open_search
from tuning.storage import study_settings
from tuning.sweep import prepare_sweep
from tuning.worker import open_studies_for_worker, pending_count, running_elsewhere, worker_spec

BASE = TrialSpec(task="synthetic-style", steps=4, batch_size=4, device="cpu")
GRID = SweepGrid(ranks=(4, 8), rules=("standard",), alphas=(8.0,), lrs=(1e-3,))


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/s.db"


def _data_sweep(url, tmp_path, content=b'{"text": "hello there"}\n'):
    data = tmp_path / "ui" / "d.jsonl"
    data.parent.mkdir(exist_ok=True)
    data.write_bytes(content)
    return prepare_sweep(url, "d", TrialSpec(data=str(data), steps=2), GRID), data


def test_a_name_stands_for_a_sweep_a_whole_search_or_one_rank(url):
    prepare_sweep(url, "sw", BASE, GRID)
    open_search(url, "se", BASE, SearchSpec(ranks=(16, 4), trials_per_rank=2))
    assert [s.study_name for s in open_studies_for_worker(url, "sw")] == ["sw"]
    assert [s.study_name for s in open_studies_for_worker(url, "se")] == ["se/r4", "se/r16"]
    assert [s.study_name for s in open_studies_for_worker(url, "se/r16")] == ["se/r16"]
    with pytest.raises(SpecError, match=r"no study 'nope' .*studies there: sw, se/r16, se/r4"):
        open_studies_for_worker(url, "nope")


def test_the_study_records_its_data_file_by_content_hash(url, tmp_path):
    study, data = _data_sweep(url, tmp_path)
    assert study_settings(study)[DATASET_SETTING] == {"sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
                                                      "name": "d.jsonl"}


def test_a_worker_without_the_data_file_trains_on_the_stored_copy(url, tmp_path):
    study, data = _data_sweep(url, tmp_path)
    content = data.read_bytes()
    data.unlink()
    spec = worker_spec(url, study, cache_dir=tmp_path / "cache")
    assert spec.data != str(data) and spec.data.startswith(str(tmp_path / "cache"))
    assert open(spec.data, "rb").read() == content


def test_other_content_at_the_data_path_is_not_used(url, tmp_path):
    study, data = _data_sweep(url, tmp_path)
    data.write_bytes(b'{"text": "something else"}\n')
    spec = worker_spec(url, study, cache_dir=tmp_path / "cache")
    assert open(spec.data, "rb").read() == b'{"text": "hello there"}\n'


def test_the_same_file_at_the_data_path_is_used_as_it_is(url, tmp_path):
    study, data = _data_sweep(url, tmp_path)
    assert worker_spec(url, study, cache_dir=tmp_path / "cache", device="cpu").data == str(data)
    assert not (tmp_path / "cache").exists()


def test_a_model_folder_missing_on_this_machine_is_one_line(url, tmp_path):
    study, _ = _data_sweep(url, tmp_path)
    settings = study_settings(study)
    study.set_user_attr(SETTINGS_ATTR, {**settings, "base": {**settings["base"], "model": "/nowhere/llama-7b"}})
    with pytest.raises(SpecError, match=r"^study 'd' cannot run on .*: model path /nowhere/llama-7b does not exist"):
        worker_spec(url, study)


def test_a_search_rank_counts_trials_running_elsewhere_as_taken(url):
    (study,) = open_search(url, "a", BASE, SearchSpec(ranks=(4,), trials_per_rank=3))
    assert pending_count(study) == 3 and running_elsewhere([study]) == 0
    create_trials_below(study, 3, 1)  # another process runs one
    assert pending_count(study) == 2 and running_elsewhere([study]) == 1


def test_a_sweep_counts_only_queued_points(url):
    study = prepare_sweep(url, "s", BASE, GRID)
    claim_waiting(study, 1)
    assert pending_count(study) == 1 and running_elsewhere([study]) == 1
