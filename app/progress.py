"""Terminal progress for trials: a step bar and one line per finished trial."""

from __future__ import annotations

import sys

import optuna
from tqdm import tqdm

from tuning.results import trial_record


def trial_label(params: dict) -> str:
    """Short label of a trial's params: ``r=64 rslora alpha=16 lr=0.001``."""
    return (f"r={params.get('rank')} {params.get('rule')} alpha={params.get('alpha'):g} "
            f"lr={params.get('lr'):g}")


def trial_summary(trial: optuna.trial.FrozenTrial) -> str:
    """One line saying how a trial ended."""
    rec = trial_record(trial, with_curve=False)
    head = f"trial {rec['number']:>3} {trial_label(rec)} gamma={rec['gamma']:.4g}"
    if rec["state"] == "COMPLETE":
        floor = f" (svd floor {rec['svd_floor']:.4f})" if rec["svd_floor"] is not None else ""
        return (f"{head}: eval {rec['eval_loss']:.4f}, final {rec['final_loss']:.4f}{floor}, "
                f"{rec['seconds']:.1f} s")
    return f"{head}: {rec['state']} {rec['status']}: {rec['error'] or ''}".rstrip(": ")


class SweepProgress:
    """A tqdm bar over all steps of the pending trials, with a line per finished trial."""

    def __init__(self, total_steps: int, *, enabled: bool = True):
        self.bar = tqdm(total=total_steps, unit="step", file=sys.stderr, disable=not enabled,
                        mininterval=0.5, dynamic_ncols=True)
        self._trial = None

    def on_record(self, trial: optuna.Trial, record: dict) -> None:
        """Advance the bar by one step."""
        if trial.number != self._trial:
            self._trial = trial.number
            self.bar.set_description(f"trial {trial.number} {trial_label(trial.params)}")
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)

    def on_trial_end(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Print how the trial ended."""
        tqdm.write(trial_summary(trial), file=sys.stderr)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()
