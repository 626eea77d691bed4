#!/usr/bin/env bash
# Issue 15 measurements on the embedded SmolLM2-135M-Instruct, each heavy step under the shared lock.
#   bash scripts/measure_cold_start.sh latro     # word problems: SFT, then SFT+LaTRO (held-out test templates)
#   bash scripts/measure_cold_start.sh latro-base  # the base model on the same 30 held-out tasks
#   bash scripts/measure_cold_start.sh function  # FunctionGym: base vs SFT vs SFT+GRPO vs base+GRPO
# Outputs: runs/m15_*/summary.json and eval/summary.json; the log goes to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=disabled HF_HUB_OFFLINE=1
LOCK=/tmp/rltrain-heavy.lock
PY=.venv/bin/python
heavy() { flock "$LOCK" "$@"; }
sft() {  # sft CONFIG OVERRIDES...
  heavy $PY -c 'import sys, json; from rltrain.sft import sft; from rltrain.config.sft import load_sft_config
print(json.dumps(sft(load_sft_config(sys.argv[1], sys.argv[2:])), indent=1))' "$@"
}
$PY scripts/make_cold_start_data.py --only word_problems function_gym multitool
case "${1:-latro}" in
latro)
  # SFT first: the base model's numbers (0/30 before LaTRO, 1/30 after) are in the issue; rerun them with `latro-base`
  sft launch/configs/sft_word_problems.yaml trainer.name=m15_sft_wp trainer.checkpoint_every=0
  heavy .venv/bin/rltrain eval launch/configs/latro_arith.yaml trainer.name=m15_sft_wp_eval model.name=runs/m15_sft_wp/final --tasks 30
  # eval_before of this run = the SFT model again; eval_after = SFT then LaTRO (the 20 steps of latro_arith.yaml)
  heavy .venv/bin/rltrain train launch/configs/latro_arith.yaml trainer.name=m15_sft_latro model.name=runs/m15_sft_wp/final
  ;;
latro-base)
  heavy .venv/bin/rltrain eval launch/configs/latro_arith.yaml trainer.name=m15_base_latro --tasks 30
  ;;
function)
  heavy .venv/bin/rltrain eval launch/configs/userrl_function.yaml trainer.name=m15_base_fn --tasks 20
  sft launch/configs/sft_function.yaml trainer.name=m15_sft_fn trainer.checkpoint_every=0
  heavy .venv/bin/rltrain train launch/configs/userrl_function.yaml trainer.name=m15_sft_grpo model.name=runs/m15_sft_fn/final
  heavy .venv/bin/rltrain train launch/configs/userrl_function.yaml trainer.name=m15_base_grpo
  ;;
esac
