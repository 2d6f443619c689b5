"""The live refresh recomputes the visible tab only, and its figures only when the study changed."""

import warnings

import numpy as np
import optuna
import pytest

from app.bench_scale import _make_trials, _records
from app.runner import Runner
from app.ui import FIRST_POINT_REFRESH_SECONDS, REFRESH_SECONDS, build_app
from tuning.curves import CurveWriter, forget_cache

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")

RUN, COMPARE, SEARCH = slice(0, 4), slice(4, 7), slice(7, 11)


@pytest.fixture(scope="module")
def refresh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("refresh")
    url = f"sqlite:///{tmp}/r.db"
    forget_cache()
    study, ids = _make_trials(url, "big", 16, 2, 40)
    rng = np.random.default_rng(0)
    for i, trial_id in enumerate(ids):
        writer = CurveWriter.for_trial(optuna.Trial(study, trial_id))
        for record in _records(rng, i, 0, 20 if i >= 14 else 40, 40):
            writer.add(record)
        writer.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = build_app(url, run_dir=str(tmp / "runs"))
    fn = next(block_fn.fn for block_fn in app.fns.values() if block_fn.name == "refresh_visible")
    return lambda tab, last: fn("big", "step0", tab, last)


def _skipped(values):
    return [isinstance(v, dict) and v.get("__type__") == "update" and len(v) == 1 for v in values]


def test_only_the_visible_tab_is_computed(refresh):
    *values, signature, _ = refresh("compare", None)
    assert _skipped(values[RUN]) == [True] * 4 and _skipped(values[SEARCH]) == [True] * 4
    assert not any(_skipped(values[COMPARE])) and "slope" in values[4]
    *values, _, _ = refresh("export", signature)
    assert all(_skipped(values))


def test_unchanged_study_keeps_figures_and_the_run_tab_still_updates_status_and_table(refresh):
    *first, signature, interval = refresh("run", None)
    assert not any(_skipped(first[RUN])) and first[3][0][1] == "complete"
    assert interval == REFRESH_SECONDS  # curves are drawn: the page polls at its usual pace
    *again, same, _ = refresh("run", signature)
    assert same == signature
    assert _skipped(again[RUN]) == [False, True, True, False]  # status and table; figures as drawn
    *compare, _, _ = refresh("compare", ("compare", "step0", ()))
    assert not any(_skipped(compare[COMPARE]))


def test_the_search_tab_shows_trials_done_of_the_total(refresh):
    *values, _, _ = refresh("search", None)
    assert values[SEARCH][0] == "**big**: 14 / 16 trials done, 2 running"


def test_no_page_load_event_writes_back_a_study_read_at_load(tmp_path):
    """A load event that reads the Study dropdown and writes it could undo a Start pressed meanwhile."""
    app = build_app(f"sqlite:///{tmp_path}/s.db", run_dir=str(tmp_path / "runs"))
    study = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "study-select")
    loads = [fn for fn in app.fns.values() if any(target[1] == "load" for target in fn.targets)]
    writers = [fn for fn in loads if study in fn.outputs]
    assert [fn.name for fn in writers] == ["page_study"]
    assert all(study not in fn.inputs for fn in writers)


def test_the_page_polls_faster_between_start_and_the_first_point(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/r.db"
    forget_cache()
    study, ids = _make_trials(url, "fresh", 2, 2, 40)  # two running trials, no step written yet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = build_app(url, run_dir=str(tmp_path / "runs"))
    fn = next(block_fn.fn for block_fn in app.fns.values() if block_fn.name == "refresh_visible")
    running = {"fresh"}
    monkeypatch.setattr(Runner, "is_running", lambda self, name: name in running)
    assert fn("fresh", "step0", "run", None)[-1] == FIRST_POINT_REFRESH_SECONDS
    assert fn("fresh", "step0", "compare", None)[-1] == REFRESH_SECONDS  # only the Run tab waits for it
    running.clear()
    assert fn("fresh", "step0", "run", None)[-1] == REFRESH_SECONDS  # a worker that died: no hurry
    running.add("fresh")
    writer = CurveWriter.for_trial(optuna.Trial(study, ids[0]))
    writer.add({"step": 0, "loss": 2.0, "grad_norm": 1.0, "lr": 1e-3, "tokens": 8})
    assert fn("fresh", "step0", "run", None)[-1] == REFRESH_SECONDS
