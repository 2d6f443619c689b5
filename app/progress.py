"""Terminal progress for trials: a step bar and one line per finished trial."""

from __future__ import annotations

import sys

import optuna
from tqdm import tqdm

from tuning.results import trial_record


def trial_label(params: dict) -> str:
    """Short label of a trial's params: ``r=64 rslora alpha=16 lr=0.001``."""
    return (f"r={params.get('rank')} {params.get('rule')} alpha={params.get('alpha', float('nan')):g} "
            f"lr={params.get('lr', float('nan')):g}")


def trial_summary(trial: optuna.trial.FrozenTrial) -> str:
    """One line saying how a trial ended."""
    rec = trial_record(trial, with_curve=False)
    head = f"trial {rec['number']:>3} {trial_label(rec)} gamma={rec['gamma']:.4g}"
    if rec["state"] == "COMPLETE":
        floor = f" (svd floor {rec['svd_floor']:.4f})" if rec["svd_floor"] is not None else ""
        return (f"{head}: eval {rec['eval_loss']:.4f}, final {rec['final_loss']:.4f}{floor}, "
                f"{rec['seconds']:.1f} s")
    if rec["state"] == "PRUNED":
        return f"{head}: pruned after {rec['steps_done']} steps (eval {rec['eval_loss'] or float('nan'):.4f})"
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
            params = {**trial.user_attrs.get("fixed_params", {}), **trial.params}
            self.bar.set_description(f"trial {trial.number} {trial_label(params)}")
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)

    def on_trial_end(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Print how the trial ended."""
        tqdm.write(trial_summary(trial), file=sys.stderr)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


def _interval(ci) -> str:
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "(needs 3+ ranks)"


def format_fit(report: dict) -> str:
    """The fit report as a few readable lines."""
    lines = []
    for rule, entry in report["rules"].items():
        lines.append(f"{rule}:")
        for o in entry["optima"]:
            how = "quadratic refinement" if o["refined"] else "best trial"
            lines.append(f"  r={o['rank']:<5} alpha*={o['alpha']:.4g} ({how}; {o['n_trials']} trials, "
                         f"alpha {o['alpha_min']:.3g}..{o['alpha_max']:.3g}) loss {o['loss']:.4f}")
        law = entry["law"]
        if law:
            inside = {True: "inside", False: "outside", None: "not testable"}[law["sqrt_inside_ci"]]
            lines.append(f"  alpha* = {law['c']:.4g} * r^{law['p']:.3f}; 95% CI p {_interval(law['p_ci'])}, "
                         f"c {_interval(law['c_ci'])}; p = 0.5 {inside} the interval")
            lines.append(f"  fixed sqrt law: alpha = {law['sqrt_c']:.4g} * sqrt(r), c 95% CI {_interval(law['sqrt_c_ci'])}")
            lines.append(f"  {entry['equivalence']}")
            if entry.get("predicted_alpha"):
                pred = entry["predicted_alpha"]
                lines.append(f"  predicted alpha at r={pred['rank']}: {pred['alpha']:.4g}")
        else:
            lines.append("  (one rank only: no law to fit)")
    rec = report["recommendation"]
    lines.append(f"recommended: r={rec['rank']} alpha={rec['alpha']:.4g} rule={rec['rule']} "
                 f"gamma={rec['gamma']:.4g} (eval loss {rec['eval_loss']:.4f}, trial {rec['trial']} of {rec['study']})")
    return "\n".join(lines)
