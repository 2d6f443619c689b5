"""Names of what lorascope stores on Optuna studies and trials (torch-free, import anywhere)."""

OUTCOME_ATTR = "outcome"  # trial user attr: how the trial ended (status, losses, error)
SETTINGS_ATTR = "lorascope"  # study user attr: the study's kind, base spec and grid or search
FIXED_ATTR = "fixed_params"  # trial user attr: the params a search holds constant
RETRY_ATTR = "retry_of"  # trial user attr: {"trial": number of the dead trial it reruns, "attempt": n}
STOP_ATTR = "stop_requested"  # study user attr: True while workers on any machine should stop
