#!/usr/bin/env bash
# Issue 16's measurements (docs/crm.md "Results"): rltrain eval on crm with a policy model, and
# `rltrain data generate` with the LLM source (a model proposes, reviews and plays the customer).
# Needs the Qwen2.5-Coder models for MODEL/GEN_MODEL other than SmolLM2 (scripts/install_models.sh).
# Usage: MODEL=qwen2.5-coder-0.5b-instruct GEN_MODEL=qwen2.5-coder-0.5b-instruct TASKS=33 SLOTS=6 \
#        OUT=runs/crm_measure bash scripts/measure_crm.sh [eval|generate|both]
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=disabled HF_HUB_OFFLINE=1
OUT=${OUT:-runs/crm_measure}
MODEL=${MODEL:-qwen2.5-coder-0.5b-instruct}
GEN_MODEL=${GEN_MODEL:-qwen2.5-coder-0.5b-instruct}
heavy() { flock /tmp/rltrain-heavy.lock "$@"; }
mkdir -p "$OUT"
case "${1:-both}" in eval|both)
  # the rules customer (deterministic, truthful); 8 turns and 128 tokens per turn bound the CPU time
  heavy .venv/bin/rltrain eval launch/configs/crm.yaml "trainer.output_dir=$OUT" "trainer.name=eval_$MODEL" \
    "model.name=$MODEL" users.backend=rules env.max_turns=8 rollout.max_new_tokens=128 --tasks "${TASKS:-33}"
  .venv/bin/python -c "import json, sys; from rewards.crm import crm_metrics; from rltrain.data.schema import read_trajectories
print(json.dumps(crm_metrics(read_trajectories(sys.argv[1])), indent=1))" "$OUT/eval_$MODEL/eval/trajectories.jsonl" \
    | tee "$OUT/eval_$MODEL.metrics.json" ;;
esac
case "${1:-both}" in generate|both)
  heavy .venv/bin/rltrain data generate launch/configs/crm.yaml users.backend=vllm "users.model=$GEN_MODEL" \
    users.timeout_s=600 --slots "${SLOTS:-6}" --out "$OUT/gen_$GEN_MODEL" ;;
esac
