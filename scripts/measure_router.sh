#!/usr/bin/env bash
# Issue 14's before/after table (docs/router.md "Results"): on the same held-out tasks,
#   1. the fixed policies and the untrained router (eval_before.json);
#   2. the router's cold start: scripted demonstrations of each action, SFT (eval_sft.json);
#   3. for each lambda in LAMS, GRPO from the SFT router, then the trained router (eval_after_lam<L>.json).
# Needs the Qwen2.5-Coder pool (scripts/install_models.sh). Every heavy step takes /tmp/rltrain-heavy.lock.
# Usage: STEPS=6 TASKS=20 LAMS="3 10" OUT=runs/router_measure bash scripts/measure_router.sh
# GRPO overrides for a CPU budget: GROUP (group_size, default 4) and LR (learner.lr, default 2e-5).
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=disabled HF_HUB_OFFLINE=1
OUT=${OUT:-runs/router_measure}
TASKS=${TASKS:-20}
STEPS=${STEPS:-6}
LAMS=${LAMS:-3 10}
heavy() { flock /tmp/rltrain-heavy.lock "$@"; }
ev() {  # ev OUT_JSON [--policies ...] [--model PATH]; λ from EVAL_LAM (the reward column), all LAMS recomputed
  heavy .venv/bin/python -m rltrain.router_eval launch/configs/router.yaml "trainer.output_dir=$OUT/runs" \
    "env.kwargs.reward.lam=${EVAL_LAM:-3}" --tasks "$TASKS" --lam $LAMS --out "$@"; }
mkdir -p "$OUT"
echo "router measurement: $TASKS held-out tasks, lambdas $LAMS, $STEPS GRPO steps each; results in $OUT"
[ -f "$OUT/eval_before.json" ] || ev "$OUT/eval_before.json" 2>&1 | tee "$OUT/eval_before.log"
SFT=${SFT:-$OUT/runs/sft_router/final}  # SFT=path: reuse a cold-start checkpoint
if [ ! -d "$SFT" ]; then
  .venv/bin/python scripts/make_cold_start_data.py --only router --count 96 --out "$OUT/cold_start"
  heavy .venv/bin/rltrain sft launch/configs/sft_router.yaml "trainer.output_dir=$OUT/runs" \
    "sft.datasets=[{path: $OUT/cold_start/router.jsonl}]" 2>&1 | tee "$OUT/sft.log"
fi
[ -f "$OUT/eval_sft.json" ] || ev "$OUT/eval_sft.json" --policies router --model "$SFT" 2>&1 | tee "$OUT/eval_sft.log"
for LAM in $LAMS; do
  NAME=router_lam$LAM
  heavy .venv/bin/rltrain train launch/configs/router.yaml "trainer.output_dir=$OUT/runs" "trainer.name=$NAME" \
    "trainer.steps=$STEPS" "trainer.group_size=${GROUP:-4}" "learner.lr=${LR:-2e-5}" "model.name=$SFT" \
    "env.kwargs.reward.lam=$LAM" env.eval_tasks=0 2>&1 | tee "$OUT/train_lam$LAM.log"
  EVAL_LAM=$LAM ev "$OUT/eval_after_lam$LAM.json" --policies router --model "$OUT/runs/$NAME/final" 2>&1 \
    | tee "$OUT/eval_after_lam$LAM.log"
done
.venv/bin/python scripts/router_table.py "$OUT"
