"""Terminal progress for trials: a step bar and one line per finished trial."""

from __future__ import annotations

import sys

import optuna
from tqdm import tqdm

from app.views import outcome_word
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
    return f"{head}: {outcome_word(rec)}: {rec['error'] or ''}".rstrip(": ")


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
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "(needs 3+ located ranks)"


def _optimum_line(o: dict) -> str:
    """One rank's alpha*: the value when located, else why not and what it bounds."""
    trials = f"{o['n_trials']} trial{'s' if o['n_trials'] > 1 else ''}"
    head = f"  r={o['rank']:<5} "
    if o["n_alphas"] < 2:
        return (f"{head}alpha* not located: only one alpha tried ({o['best_trial_alpha']:.4g}, "
                f"loss {o['loss']:.4f}; {trials})")
    tried = f"{trials}, {o['n_alphas']} alphas {o['alpha_min']:.3g}..{o['alpha_max']:.3g}"
    if o["located"]:
        how = "quadratic refinement" if o["refined"] else "best trial"
        return f"{head}alpha*={o['alpha']:.4g} ({how}; {tried}) loss {o['loss']:.4f}"
    end = "top" if o["edge"] == "high" else "bottom"
    return (f"{head}alpha* not located: best at the {end} of the range tried, alpha* may be "
            f"{_bound_text(o)} (loss {o['loss']:.4f}; {tried})")


def _bound_text(o: dict) -> str:
    return f">= {o['alpha_max']:.4g}" if o["edge"] == "high" else f"<= {o['alpha_min']:.4g}"


def _law_lines(entry: dict) -> list[str]:
    """The law of one rule, or why there is none."""
    law, optima = entry["law"], entry["optima"]
    if law is None:
        if entry["law_status"] == "one rank":
            return ["  (one rank only: no law to fit)"]
        located = sum(o["located"] for o in optima)
        bounds = [f"r={o['rank']} alpha* {_bound_text(o)}" for o in optima if not o["located"] and o["n_alphas"] > 1]
        what = f"bounds only: {', '.join(bounds)}" if bounds else "a single alpha per rank says nothing about alpha*"
        return [f"  no law: alpha* located at {located} of {len(optima)} ranks (a law needs 2); {what}; "
                "try 3+ alphas per rank, with the best inside their range"]
    inside = {True: "inside", False: "outside", None: "not testable"}[law["sqrt_inside_ci"]]
    lines = []
    if law["excluded_ranks"]:
        left_out = ", ".join(f"r={r}" for r in law["excluded_ranks"])
        lines.append(f"  fitted on the {law['n_ranks']} located ranks only; {left_out} left out (alpha* not located)")
    lines.append(f"  alpha* = {law['c']:.4g} * r^{law['p']:.3f}; 95% CI p {_interval(law['p_ci'])}, "
                 f"c {_interval(law['c_ci'])}; p = 0.5 {inside} the interval")
    lines.append(f"  fixed sqrt law: alpha = {law['sqrt_c']:.4g} * sqrt(r), c 95% CI {_interval(law['sqrt_c_ci'])}")
    lines.append(f"  {entry['equivalence']}")
    if entry.get("predicted_alpha"):
        pred = entry["predicted_alpha"]
        lines.append(f"  predicted alpha at r={pred['rank']}: {pred['alpha']:.4g}")
    return lines


def format_fit(report: dict) -> str:
    """The fit report as readable lines: per training setting, per rule, alpha* per rank and the law."""
    groups = report["groups"]
    lines = []
    if len(groups) > 1:
        lines.append(f"{len(groups)} training settings, each fitted on its own (trials of different settings "
                     "are never pooled):")
    for label, group in groups.items():
        lines.append(f"setting {label} ({group['n_trials']} completed trials):")
        for rule, entry in group["rules"].items():
            lines.append(f" {rule}:")
            lines += [" " + _optimum_line(o) for o in entry["optima"]]
            lines += [" " + line for line in _law_lines(entry)]
    rec = report["recommendation"]
    config = (f"r={rec['rank']} alpha={rec['alpha']:.4g} rule={rec['rule']} gamma={rec['gamma']:.4g} "
              f"at {rec['setting']} (eval loss {rec['eval_loss']:.4f}, trial {rec['trial']} of {rec['study']})")
    if rec["alpha_located"]:
        lines.append(f"recommended: {config}")
    else:
        lines.append(f"best trial: {config}; alpha* is not located at this rank, so a better alpha may lie "
                     "outside the alphas tried")
    return "\n".join(lines)
