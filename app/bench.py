"""`lorascope bench`: trainer throughput, packed vs sequential trials, the steps median pruning saves,
a 1000-trial study's storage and UI costs (scale), and what a newcomer waits for in the UI (ui).

Speed targets live here, never in unit tests. Results are written as JSON.
"""

from __future__ import annotations

import math
import platform
import tempfile
import time
from typing import Any

import torch

from core.devices import pick_device
from core.specs import SpecError, TrialSpec
from core.trainer import run_trial

SECTIONS = ("throughput", "pruning", "packed", "scale", "ui")

THROUGHPUT_CASES = [("synthetic-facts", 256, 300, 64), ("tiny-facts", 16, 50, 16), ("tiny-facts", 64, 50, 16)]


def throughput(device: str) -> list[dict[str, Any]]:
    """Steps/s and tokens/s of one trial per case, for both rules."""
    rows = []
    for task, rank, steps, batch in THROUGHPUT_CASES:
        for rule in ("standard", "rslora"):
            spec = TrialSpec(task=task, rank=rank, rule=rule, steps=steps, batch_size=batch, device=device,
                             eval_every=steps, lr=1e-3)
            outcome = run_trial(spec)
            rows.append({"task": task, "rank": rank, "rule": rule, "steps": steps, "batch_size": batch,
                         "status": outcome.status, "seconds": round(outcome.seconds, 3),
                         "steps_per_s": round(outcome.steps_done / outcome.train_seconds, 2),
                         "tokens_per_s": round(outcome.tokens_per_s or 0.0, 1), "device": outcome.device})
    return rows


def pruning_savings(device: str, *, trials: int = 12, rank: int = 16, steps: int = 200) -> dict[str, Any]:
    """Grid alpha search at one rank with and without median pruning: alpha*, steps run, steps saved."""
    from tuning.fit import fit_report
    from tuning.results import collect_records
    from tuning.search import SearchSpec, run_search

    base = TrialSpec(task="synthetic-facts", steps=steps, batch_size=64, eval_every=20, device=device)
    out: dict[str, Any] = {"task": base.task, "rank": rank, "trials": trials, "steps_per_trial": steps}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        for pruner in ("none", "median"):
            search = SearchSpec(ranks=(rank,), alpha_min=1.0, alpha_max=4096.0, trials_per_rank=trials,
                                sampler="grid", pruner=pruner)
            started = time.perf_counter()
            run_search(url, pruner, base, search)
            records, _ = collect_records(url, pruner)
            optimum = fit_report(records)["rules"]["standard"]["optima"][0]
            out[pruner] = {"alpha_star": optimum["alpha"], "loss": optimum["loss"],
                           "steps_run": sum(r["steps_done"] or 0 for r in records),
                           "pruned": sum(r["state"] == "PRUNED" for r in records),
                           "seconds": round(time.perf_counter() - started, 2)}
        grid_step = math.log(search.alpha_grid()[1] / search.alpha_grid()[0])
    distance = abs(math.log(out["median"]["alpha_star"] / out["none"]["alpha_star"]))
    out["grid_step_factor"] = math.exp(grid_step)
    out["alpha_star_within_one_grid_step"] = distance <= grid_step + 1e-9
    out["steps_saved"] = out["none"]["steps_run"] - out["median"]["steps_run"]
    out["steps_saved_fraction"] = out["steps_saved"] / out["none"]["steps_run"]
    return out


def run_bench(device: str = "auto", sections: tuple[str, ...] = SECTIONS,
              packed_model_size: str | None = None) -> dict[str, Any]:
    """The benchmark's chosen ``sections`` as a JSON-friendly dict."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SpecError(f"unknown bench section {sorted(unknown)[0]!r}: use {', '.join(SECTIONS)}")
    if "packed" in sections:
        from app.bench_packed import check_model_size, packed_section

        check_model_size(packed_model_size)
    resolved = str(pick_device(device))
    out: dict[str, Any] = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                                       "device": resolved, "cpu_threads": torch.get_num_threads(),
                                       "platform": platform.platform()}}
    if "throughput" in sections:
        out["throughput"] = throughput(resolved)
    if "pruning" in sections:
        out["pruning"] = pruning_savings(resolved)
    if "packed" in sections:
        out["packed"] = packed_section(resolved, model_size=packed_model_size)
    if "scale" in sections:
        from app.bench_scale import scale_bench

        out["scale"] = scale_bench()
    if "ui" in sections:
        from app.bench_ui import ui_section

        out["ui"] = ui_section()
    return out
