"""Training claimed trials for sweeps, searches and workers: K claimed trials, one run_pack per pack.

Each claimed trial stays its own Optuna trial: its own curve writer, intermediate values, pruning,
outcome and lost-trial handling. Trials whose specs share ``pack_key`` train together; one trial
is the same code with K = 1.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial

from core.scaling import RULES
from core.specs import ALPHA_RANGE, LR_RANGE, RANK_MAX, SEED_MAX, PackSpec, SpecError, TrialSpec
from tuning.attrs import OUTCOME_ATTR
from tuning.curves import CurveWriter
from tuning.queue import fail_stale_trials, finish_trial, heartbeat, report_lost

# Wide, fixed distributions: every study stores the same ones, so grids can grow and searches
# over alpha share a study's history (Optuna refuses changed categorical choices).
DISTRIBUTIONS = {
    "rank": IntDistribution(1, RANK_MAX, log=True),
    "alpha": FloatDistribution(*ALPHA_RANGE, log=True),
    "rule": CategoricalDistribution(tuple(RULES)),
    "lr": FloatDistribution(*LR_RANGE, log=True),
    "seed": IntDistribution(0, SEED_MAX),
}


Suggest = Callable[[optuna.Trial], dict[str, Any]]
RecordHook = Callable[[optuna.Trial, dict[str, Any]], None]
TrialEndHook = Callable[[optuna.Study, FrozenTrial], None]


def suggest_fixed(trial: optuna.Trial) -> dict[str, Any]:
    """Read a queued trial's params (sweeps enqueue every grid point)."""
    d = DISTRIBUTIONS
    return {
        "rank": trial.suggest_int("rank", d["rank"].low, d["rank"].high, log=True),
        "alpha": trial.suggest_float("alpha", d["alpha"].low, d["alpha"].high, log=True),
        "rule": trial.suggest_categorical("rule", d["rule"].choices),
        "lr": trial.suggest_float("lr", d["lr"].low, d["lr"].high, log=True),
        "seed": trial.suggest_int("seed", d["seed"].low, d["seed"].high),
    }


@dataclass(eq=False)
class _Claimed:
    """One claimed trial in a pack: its writer, its spec, and what the pack did to it."""

    trial: optuna.Trial
    writer: CurveWriter | None = None
    spec: TrialSpec | None = None
    outcome: Any = None  # core.trainer.TrialOutcome once known
    written: int = -1  # last step written: after a split a config sends its steps again
    pruned: bool = False
    lost: bool = False  # another process failed the trial: its writes are refused


def train_trials(
    trials: Sequence[optuna.Trial],
    base: TrialSpec,
    suggest: Suggest = suggest_fixed,
    *,
    prune: bool = False,
    on_record: RecordHook | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> list[dict[str, Any] | None]:
    """Train claimed trials with their params, packed by ``pack_key``; one outcome dict per trial.

    Each trial's curve is written as it runs and its eval losses are reported as intermediate
    values; the pruner is asked only when ``prune``. A trial's outcome is None when another
    process failed it meanwhile (that config stops, the others go on); bad input or an error in
    one trial fails that trial alone.
    """
    from core.trainer import pack_key  # torch: only processes that train import it

    claimed = [_Claimed(trial) for trial in trials]
    for c in claimed:  # one by one: a sampler sees the alphas already asked for (constant liar)
        try:
            c.writer = CurveWriter.for_trial(c.trial)
            c.spec = base.with_params(**suggest(c.trial))
        except UpdateFinishedTrialError:
            c.lost = True
        except Exception as err:  # noqa: BLE001 - one trial's bad params must not end the others
            c.outcome = _failed(err)
    packs: dict[tuple, list[_Claimed]] = {}
    for c in claimed:
        if c.spec is not None and not c.lost:
            packs.setdefault(pack_key(c.spec), []).append(c)
    for pack in packs.values():
        _train_pack(pack, prune=prune, on_record=on_record, stop_requested=stop_requested)
    for c in claimed:
        try:
            if c.writer is not None and not c.lost:
                c.writer.flush()
        except UpdateFinishedTrialError:
            c.lost = True
    return [None if c.lost else c.outcome.to_dict() for c in claimed]


def _train_pack(pack: list[_Claimed], *, prune: bool, on_record: RecordHook | None,
                stop_requested: Callable[[], bool]) -> None:
    """Train one pack; if it raises, train each half again, so an error fails only its own trial."""
    from core.trainer import run_pack

    def on_step(k: int, record: dict[str, Any]) -> None:
        c = pack[k]
        if c.lost or record["step"] <= c.written:  # a restarted config repeats its trajectory
            return
        c.written = record["step"]
        try:
            c.writer.add(record)
            if "eval_loss" in record:
                c.trial.report(record["eval_loss"], record["step"])
                c.pruned = c.pruned or (prune and c.trial.should_prune())
        except UpdateFinishedTrialError:
            c.lost = True
            return
        if on_record:
            on_record(c.trial, record)

    def should_stop(k: int) -> str | None:
        c = pack[k]
        return "stopped" if c.lost or stop_requested() else "pruned" if c.pruned else None

    try:
        outcomes = run_pack([c.spec for c in pack], on_step, should_stop)
    except Exception as err:  # noqa: BLE001 - find the trial that raised; the others still train
        if len(pack) == 1:
            pack[0].outcome = _failed(err)
            return
        half = len(pack) // 2
        for part in (pack[:half], pack[half:]):
            _train_pack(part, prune=prune, on_record=on_record, stop_requested=stop_requested)
        return
    for c, outcome in zip(pack, outcomes):
        c.outcome = outcome


def _failed(err: Exception):
    """The outcome of a trial that raised: bad input says what to change, a bug keeps its traceback."""
    from core.trainer import TrialOutcome

    if isinstance(err, SpecError):
        return TrialOutcome(status="failed", error=str(err))
    return TrialOutcome(status="failed", error=f"internal error: {type(err).__name__}: {err}",
                        info={"traceback": traceback.format_exc()})


def run_claimed(
    study: optuna.Study,
    trials: Sequence[optuna.Trial],
    base: TrialSpec,
    suggest: Suggest = suggest_fixed,
    *,
    on_record: RecordHook | None = None,
    on_trial_end: TrialEndHook | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> list[FrozenTrial | None]:
    """Train claimed trials under one heartbeat and finish each; None for one another process failed."""
    prune = not isinstance(study.pruner, optuna.pruners.NopPruner)
    with heartbeat(study, trials):
        outcomes = train_trials(trials, base, suggest, prune=prune, on_record=on_record,
                                stop_requested=stop_requested)
    finished = []
    for trial, outcome in zip(trials, outcomes):
        if outcome is None:
            report_lost(trial)
            finished.append(None)
            continue
        frozen = finish_trial(study, trial, outcome)
        if frozen is not None and on_trial_end:
            on_trial_end(study, frozen)
        finished.append(frozen)
    return finished


def run_packs(
    study: optuna.Study,
    base: TrialSpec,
    take: Callable[[int], list[optuna.Trial]],
    suggest: Suggest = suggest_fixed,
    *,
    on_record: RecordHook | None = None,
    on_trial_end: TrialEndHook | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    pack: PackSpec = PackSpec(),
) -> None:
    """Train the trials ``take(k)`` hands out (at most k, claimed) as packs, until it hands out none or a stop.

    Stale trials are failed and queued again before each take; without an explicit ``--pack``,
    a pack that an out-of-memory split trained in parts lowers the next k.
    """
    limit = pack.limit
    while not stop_requested():
        fail_stale_trials(study)
        claimed = take(limit)
        if not claimed:
            return
        finished = run_claimed(study, claimed, base, suggest, on_record=on_record, on_trial_end=on_trial_end,
                               stop_requested=stop_requested)
        if pack.pack is None:
            limit = claim_size(limit, finished)


def claim_size(limit: int, finished: Sequence[FrozenTrial | None]) -> int:
    """How many trials to claim next: fewer only when an out-of-memory split trained these in smaller packs."""
    sizes = [(t.user_attrs.get(OUTCOME_ATTR, {}).get("info", {}).get("pack_size") if t else None) or len(finished)
             for t in finished]
    largest = max(sizes)
    return largest if largest < len(finished) else limit
