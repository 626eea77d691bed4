"""Issue 15's table from the runs of `scripts/measure_cold_start.sh`: base vs SFT vs SFT+RL vs base+RL, held out.

    python scripts/cold_start_table.py [--runs runs] [--json docs/results/cold_start_<date>.json]

Every row is read from the held-out trajectories a run wrote (`eval/trajectories.jsonl` of `rltrain eval`,
`eval_before.jsonl` / `eval_after.jsonl` of `rltrain train`), and computed the same way for every stage:
- success: episodes whose final answer was right (a turn reward of 1; word problems: the reward);
- format errors: episodes that ended on a malformed call (`format_error`) or made a call whose record has a format
  class (IFE, unknown_tool, bad_arguments); word problems: answers without "The answer is N";
- calls/episode: tool calls that reached a tool.
A stage whose run is missing is left out of the table and named.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from rltrain.data.schema import read_trajectories

FORMAT_CLASSES = frozenset({"IFE", "unknown_tool", "bad_arguments", "parse_error", "bad_format"})
ANSWER = re.compile(r"answer is\s*:?\s*\$?-?[\d,]*\.?\d+", re.IGNORECASE)

# env -> [(stage, file under the runs folder)]
STAGES: dict[str, list[tuple[str, str]]] = {
    "word_problems (LaTRO)": [("base", "m15_base_latro/eval/trajectories.jsonl"),
                              ("SFT", "m15_sft_wp_eval/eval/trajectories.jsonl"),
                              ("SFT + LaTRO (20 steps)", "m15_sft_latro/eval_after.jsonl")],
    "function_gym": [("base", "m15_base_grpo/eval_before.jsonl"),
                     ("SFT", "m15_sft_grpo/eval_before.jsonl"),
                     ("SFT + GRPO (20 steps)", "m15_sft_grpo/eval_after.jsonl"),
                     ("base + GRPO (20 steps)", "m15_base_grpo/eval_after.jsonl")],
    "multitool": [("base", "m15_base_mt/eval/trajectories.jsonl"),
                  ("SFT", "m15_sft_mt/eval/trajectories.jsonl"),
                  ("SFT + GRPO (10 steps)", "m15_sft_grpo_mt/eval_after.jsonl"),
                  ("base + GRPO (10 steps)", "m15_base_grpo_mt/eval_after.jsonl")],
}


def stage_row(path: Path, env: str) -> dict[str, Any]:
    trajs = list(read_trajectories(path))
    n = len(trajs)
    if env.startswith("word_problems"):
        success = sum((t.reward or 0.0) >= 1.0 for t in trajs)
        last = [next((m["content"] for m in reversed(t.messages) if m.get("role") == "assistant"), "") for t in trajs]
        format_errors = sum(not ANSWER.search(text or "") for text in last)
    else:
        success = sum(any(r >= 1.0 for r in t.turn_rewards) for t in trajs)
        format_errors = sum(t.format_error is not None or any(str(r.get("error") or "") in FORMAT_CLASSES
                                                              for r in t.tool_records) for t in trajs)
    return {"episodes": n, "failed": sum(t.failure is not None for t in trajs),
            "success": success / n if n else 0.0, "format_error_rate": format_errors / n if n else 0.0,
            "calls_per_episode": sum(t.tool_calls for t in trajs) / n if n else 0.0, "file": str(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    for env, stages in STAGES.items():
        print(f"\n{env}\n| stage | episodes | success | format-error rate | calls/episode | failed |\n|---|---|---|---|---|---|")
        result[env] = {}
        for stage, rel in stages:
            path = Path(args.runs) / rel
            if not path.is_file():
                print(f"| {stage} | (not run: {path} missing) | | | | |")
                continue
            row = result[env][stage] = stage_row(path, env)
            print(f"| {stage} | {row['episodes']} | {row['success']:.3f} | {row['format_error_rate']:.3f} | "
                  f"{row['calls_per_episode']:.2f} | {row['failed']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
