#!/usr/bin/env bash
# The packed bench's GPU cases (issue 10): K=8 and K=32 configs on a random-init 26M-parameter
# Llama (tiny LM tokenizer, nothing downloaded), sequential vs packed, plus one trial vs plain PEFT.
# Run from the repo root on a CUDA machine; needs torch, transformers and peft only (no Optuna).
# Writes $OUT/gpu_bench.json and $OUT/gpu_bench.log (OUT defaults to ./bench-out), and first runs
# the packed op's tests on CUDA into $OUT/gpu_tests.txt where pytest is importable.
# Quick CPU check of the script itself: BENCH_DEVICE=cpu BENCH_MODEL_SIZE=7M BENCH_STEPS=3 BENCH_BATCH=2 scripts/gpu_bench.sh
set -euo pipefail
OUT="${OUT:-bench-out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1 || true
if "${PYTHON:-python3}" -c "import pytest" 2>/dev/null; then
    "${PYTHON:-python3}" -m pytest -q -rs -p no:cacheprovider tests/core_tests/test_packed_delta.py >"$OUT/gpu_tests.txt" 2>&1 || true
else
    echo "pytest not importable: packed op tests not run" >"$OUT/gpu_tests.txt"
fi
"${PYTHON:-python3}" -m app.bench_packed --device "${BENCH_DEVICE:-cuda}" --cases gpu \
    --model-size "${BENCH_MODEL_SIZE:-26M}" ${BENCH_STEPS:+--steps "$BENCH_STEPS"} ${BENCH_BATCH:+--batch-size "$BENCH_BATCH"} \
    --json "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/gpu_bench.log"
