#!/usr/bin/env bash
# Second round of GPU checks (issue 10), run from the repo root on a CUDA machine with Optuna's
# wheels unpacked on PYTHONPATH: (1) where the packed trainer's bf16 deviation comes from
# (scripts/gpu_diag.py), (2) a real `lorascope sweep` of the K=8 26M grid, --pack 8 vs --pack 1.
# Writes $OUT/gpu_diag.json and $OUT/gpu_sweep.json.
set -euo pipefail
OUT="${OUT:-bench-out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
"$PY" scripts/gpu_diag.py "$OUT/gpu_diag.json"
MODEL=$("$PY" -c "from pathlib import Path; from app.bench_packed import random_llama; print(random_llama('26M', Path('/tmp/lorascope-26m')))" | tail -1)
sweep() {  # $1: pack size
    local start end
    start=$(date +%s.%N)
    "$PY" -m app.cli sweep --model "$MODEL" --task tiny-facts --ranks 8,32,128,512 --rules standard,rslora --alphas 16 \
        --lrs 1e-3 --steps 100 --batch-size 64 --eval-every 100 --device cuda --pack "$1" --quiet \
        --storage "sqlite:////tmp/gpu-sweep-$1.db" --study k8 --json "/tmp/gpu-sweep-$1.json" >&2
    end=$(date +%s.%N)
    "$PY" -c "print($end - $start)"
}
P1=$(sweep 1); P8=$(sweep 8)
"$PY" - "$P1" "$P8" "$OUT/gpu_sweep.json" <<'PYEOF'
import json, sys
p1, p8, out = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
runs = {k: json.load(open(f"/tmp/gpu-sweep-{k}.json"))["trials"] for k in (1, 8)}
dev = max(abs(a["eval_loss"] - b["eval_loss"]) / abs(a["eval_loss"])
          for a, b in zip(sorted(runs[1], key=lambda t: (t["rank"], t["rule"])), sorted(runs[8], key=lambda t: (t["rank"], t["rule"]))))
result = {"pack1_seconds": p1, "pack8_seconds": p8, "speedup": p1 / p8, "max_eval_loss_deviation_rel": dev,
          "states": {k: [t["state"] for t in v] for k, v in runs.items()}}
json.dump(result, open(out, "w"), indent=1)
print(json.dumps(result))
PYEOF
