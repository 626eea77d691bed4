#!/usr/bin/env bash
# Issue 17: the malformed-reply rate of each local simulator model on >= 100 strictly parsed user/judge replies.
#   bash scripts/measure_judges.sh [TASKS]      # default 77: 11 held-out tasks of each of the seven gyms
# Policy: the embedded SmolLM2-135M (launch/configs/userrl_mix.yaml, plain_text_as_action); simulator: each Qwen2.5-Coder
# model in turn (scripts/install_models.sh). Writes runs/judges_<model>/eval/ and docs/results/judges_<model>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=disabled HF_HUB_OFFLINE=1
TASKS=${1:-77}
for model in qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct; do
  flock /tmp/rltrain-heavy.lock .venv/bin/rltrain eval launch/configs/userrl_mix.yaml trainer.name="judges_$model" \
    users.model="$model" --tasks "$TASKS"
  .venv/bin/python scripts/judge_replies.py "runs/judges_$model/eval/trajectories.jsonl" --json "docs/results/judges_$model.json"
done
