#!/usr/bin/env bash
# Issue 14's before/after table: the fixed policies and the untrained router on held-out tasks, a short router
# training run, then the trained router on the same tasks. Needs the Qwen2.5-Coder pool (scripts/install_models.sh).
# Usage: STEPS=12 TASKS=30 OUT=runs/router_measure bash scripts/measure_router.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=disabled HF_HUB_OFFLINE=1
OUT=${OUT:-runs/router_measure}
TASKS=${TASKS:-30}
mkdir -p "$OUT"
echo "router measurement: $TASKS held-out tasks, ${STEPS:-12} training steps, results in $OUT"
.venv/bin/python -m rltrain.router_eval launch/configs/router.yaml "trainer.output_dir=$OUT/runs" --tasks "$TASKS" \
    --out "$OUT/eval_before.json" 2>&1 | tee "$OUT/eval_before.log"
.venv/bin/rltrain train launch/configs/router.yaml "trainer.output_dir=$OUT/runs" "trainer.steps=${STEPS:-12}" \
    env.eval_tasks=0 2>&1 | tee "$OUT/train.log"
.venv/bin/python -m rltrain.router_eval launch/configs/router.yaml "trainer.output_dir=$OUT/runs" --tasks "$TASKS" \
    --model "$OUT/runs/router/final" --out "$OUT/eval_after.json" 2>&1 | tee "$OUT/eval_after.log"
