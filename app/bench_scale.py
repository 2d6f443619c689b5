"""`lorascope bench` scale section: a big synthetic study written through the real curve writer.

No training: trials get made-up curves (loss decaying with noise, grad norms by rank and rule), so
the section measures what a 1000-trial study costs the storage and the UI: database size, a cold
read, and a live refresh (read + Run-tab figures) while some trials are still running.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from app.runner import Runner
from app.state import SHOWN_STATES, StudyView, read_study
from app.tabs import run_tab
from app.tabs.context import UiContext
from tuning.curves import CurveWriter, forget_cache
from tuning.objective import DISTRIBUTIONS
from tuning.attrs import OUTCOME_ATTR, SETTINGS_ATTR
from tuning.results import group_records
from tuning.storage import open_storage

RANKS = (4, 8, 16, 32, 64, 128, 256, 512)
EVAL_EVERY = 200
LIVE_STEPS = 50  # steps each running trial adds between two refreshes (a 2 s tick of a fast trainer)


def scale_bench(trials: int = 1000, steps: int = 2000, running: int = 10, *, url: str | None = None) -> dict[str, Any]:
    """Write ``trials`` x ``steps`` (``running`` of them half done), then time cold reads and live refreshes."""
    # in memory where the OS offers it: the section measures reads, not the disk's fsync
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as folder:
        url = url or f"sqlite:///{folder}/scale.db"
        name = "scale"
        started = time.perf_counter()
        study, ids = _make_trials(url, name, trials, running, steps)
        writers = {}
        rng = np.random.default_rng(0)
        for i, trial_id in enumerate(ids):
            writer = CurveWriter.for_trial(optuna.Trial(study, trial_id))
            done = steps // 2 if i >= trials - running else steps
            for record in _records(rng, i, 0, done, steps):
                writer.add(record)
            writer.flush()
            if i >= trials - running:
                writers[trial_id] = (writer, i, done)
        write_s = time.perf_counter() - started
        db_bytes = os.path.getsize(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None

        forget_cache()
        started = time.perf_counter()
        fresh = optuna.load_study(study_name=name, storage=url)  # a new storage object: nothing cached
        records, _ = group_records([fresh], with_curves=True, states=SHOWN_STATES)
        cold_read_s = time.perf_counter() - started
        ctx = UiContext(storage_url=url, runner=Runner(url, folder))
        started = time.perf_counter()
        cold_payload = _run_tab_payload(StudyView(name, records, {"base": {"steps": steps}}), ctx)
        cold_figures_s = time.perf_counter() - started

        _refresh(ctx, name)  # the page's first draw: caches finished curves and their plot series
        refreshes = []
        for _ in range(3):
            for trial_id, (writer, i, done) in writers.items():
                for record in _records(rng, i, done, done + LIVE_STEPS, steps):
                    writer.add(record)
                writer.flush()
                writers[trial_id] = (writer, i, done + LIVE_STEPS)
            refreshes.append(_refresh(ctx, name))
    best = min(refreshes, key=lambda r: r["seconds"])
    return {"trials": trials, "steps": steps, "running": running, "points": trials * steps,
            "write_s": round(write_s, 2), "db_bytes": db_bytes,
            "cold_read_s": round(cold_read_s, 3), "cold_figures_s": round(cold_figures_s, 3),
            "cold_payload_bytes": cold_payload,
            "refresh_s": round(statistics.median(r["seconds"] for r in refreshes), 3),
            "refresh_read_s": best["read_s"], "refresh_figures_s": best["figures_s"],
            "refresh_payload_bytes": best["payload_bytes"],
            "targets": {"refresh_s": 0.5, "payload_bytes": 2_000_000}}


def _make_trials(url: str, name: str, trials: int, running: int, steps: int) -> tuple[optuna.Study, list[int]]:
    """A sweep-like study: ``trials`` grid points, the last ``running`` of them RUNNING."""
    study = optuna.create_study(study_name=name, storage=open_storage(url), direction="minimize")
    study.set_user_attr(SETTINGS_ATTR, {"kind": "sweep", "base": {"steps": steps}})
    for i in range(trials):
        rank, rule = RANKS[i % len(RANKS)], ("standard", "rslora")[(i // len(RANKS)) % 2]
        params = {"rank": rank, "alpha": float(2 ** (i % 11)), "rule": rule, "lr": 1e-3, "seed": i}
        live = i >= trials - running
        outcome = {"status": "running" if live else "completed", "eval_loss": 0.5, "final_loss": 0.5,
                   "steps_done": steps // 2 if live else steps}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=DISTRIBUTIONS, state=TrialState.RUNNING if live else TrialState.COMPLETE,
            value=None if live else 0.5, user_attrs={} if live else {OUTCOME_ATTR: outcome}))
    ids = [t._trial_id for t in study.get_trials(deepcopy=False)]
    return study, ids


def _records(rng: np.random.Generator, i: int, start: int, stop: int, steps: int) -> list[dict[str, Any]]:
    rank = RANKS[i % len(RANKS)]
    step = np.arange(start, stop)
    loss = 2.0 / (1 + step / 100) + 0.02 * rng.standard_normal(len(step))
    grad = (1.0 if i % 2 else rank ** -0.5) * (1 + 0.1 * rng.standard_normal(len(step)))
    out = []
    for s, lo, g in zip(step.tolist(), loss.tolist(), grad.tolist()):
        record = {"step": s, "loss": lo, "grad_norm": g, "lr": 1e-3, "tokens": 2048}
        if (s + 1) % EVAL_EVERY == 0 or s + 1 == steps:
            record["eval_loss"] = lo + 0.05
        out.append(record)
    return out


def _refresh(ctx: UiContext, name: str) -> dict[str, Any]:
    """One Run-tab refresh as the server does it: read the study, build and serialise the tab's outputs."""
    started = time.perf_counter()
    view = read_study(ctx.storage_url, name)
    read_s = time.perf_counter() - started
    payload = _run_tab_payload(view, ctx)
    total = time.perf_counter() - started
    return {"seconds": total, "read_s": round(read_s, 3), "figures_s": round(total - read_s, 3),
            "payload_bytes": payload}


def _run_tab_payload(view: StudyView, ctx: UiContext) -> int:
    """Bytes of JSON the Run tab ships for ``view``: status, both curve figures and the trials table."""
    status, loss, grad, table = run_tab.live_outputs(view, ctx)
    texts = [json.dumps(status), loss.to_json(), grad.to_json(), json.dumps(table)]
    return sum(len(text.encode()) for text in texts)
