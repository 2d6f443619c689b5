"""A pre-warmed worker: loads the training stack, then waits for the one command it will run.

A fresh `lorascope sweep` spends seconds before its first step on imports alone: torch, the
compiler front end torch's optimizers load on first use, transformers, Optuna's SQL layer and its
migrations. The UI's runner keeps one such process ready, so the first step follows Start within
about a second. The process is started with the storage URL and the run token in its environment
(as every worker is); it reads one JSON line from stdin, ``{"argv": [...], "log": PATH}``, sends
its output to the log and runs ``lorascope ARGV`` in place. End of input (the app went away)
ends it without running anything.
"""

from __future__ import annotations

import json
import os
import sys


def warm() -> None:
    """Import everything a training worker needs before its first step."""
    import torch

    import core.trainer  # noqa: F401 - torch, the packed trainer and the task builders
    import optuna.storages._rdb.storage  # noqa: F401 - SQLAlchemy and Optuna's models
    import alembic.migration  # noqa: F401 - Optuna's schema check on opening a storage
    import tuning.objective  # noqa: F401
    import transformers  # noqa: F401 - text tasks load a causal LM

    # torch.optim's first use imports torch._dynamo (about a second); pay it now
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])


def redirect_output(log: str) -> None:
    """Send stdout and stderr (of this process and its children) to ``log``; stdin from /dev/null."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def main() -> int:
    """Warm up, wait for the command, run it."""
    warm()
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    order = json.loads(line)
    redirect_output(order["log"])
    from app.cli import main as cli_main

    return cli_main(order["argv"])


if __name__ == "__main__":
    sys.exit(main())
