"""Where does the packed trainer's bf16 deviation come from? (GPU diagnostic, writes JSON.)

For the 26M K=8 grid of the packed bench: each config run alone twice (run-to-run noise), then
packed, under bf16 autocast and in plain fp32. If fp32 packed == alone to ~1e-5 while bf16 differs
as much alone-vs-alone as alone-vs-packed, the deviation is bf16 rounding amplified by training,
not a packing bug. Usage: python3 scripts/gpu_diag.py OUT.json
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import core.devices
import core.trainer
from app.bench_packed import GPU_CASES, random_llama
from core.factory import clear_base_cache
from core.trainer import run_pack, run_trial


def _rel(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else abs(a - b) / abs(b)


def diagnose(model: str, precision: str) -> dict:
    """Alone twice and packed, per config: final and eval losses and their relative deviations."""
    bf16 = core.devices.autocast
    if precision == "fp32":
        core.trainer.autocast = lambda device: contextlib.nullcontext()
    try:
        specs = GPU_CASES[0].specs("cuda", model)
        started = time.perf_counter()
        first = [run_trial(s) for s in specs]
        second = [run_trial(s) for s in specs]
        packed = run_pack(specs)
        rows = [{"rank": s.rank, "rule": s.rule, "final_alone": a.final_loss, "final_packed": p.final_loss,
                 "alone_vs_alone": _rel(b.final_loss, a.final_loss), "packed_vs_alone": _rel(p.final_loss, a.final_loss),
                 "eval_packed_vs_alone": _rel(p.eval_loss, a.eval_loss)}
                for s, a, b, p in zip(specs, first, second, packed)]
        return {"precision": precision, "seconds": round(time.perf_counter() - started, 1), "configs": rows,
                "max_alone_vs_alone": max(r["alone_vs_alone"] or 0 for r in rows),
                "max_packed_vs_alone": max(r["packed_vs_alone"] or 0 for r in rows)}
    finally:
        core.trainer.autocast = bf16
        clear_base_cache()


def main() -> None:
    """Run both precisions and write the JSON named on the command line."""
    with tempfile.TemporaryDirectory() as folder:
        model = random_llama("26M", Path(folder))
        result = [diagnose(model, "bf16"), diagnose(model, "fp32")]
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
    for r in result:
        print(f"{r['precision']}: max alone-vs-alone {r['max_alone_vs_alone']:.2e}, "
              f"max packed-vs-alone {r['max_packed_vs_alone']:.2e} ({r['seconds']} s)")


if __name__ == "__main__":
    main()
