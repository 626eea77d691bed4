"""`rltrain data filter`: trajectories -> an SFT set (rejection sampling; spec §6.2 judge filtering, §6.3 SpecTool).

A row is kept when it passes every rule, applied in this order and counted per rule:
1. `failed`: the infrastructure failed (`failure`) or the context drifted (`token_drift` "context:..."): not data.
2. `reward`: `reward` below `min_reward` (rows without a reward fail a reward threshold).
3. `judge`: the judge score (`judge_score`, else `reward_terms["judge"]`) below `min_judge`.
4. `format_error`: a SpecTool error (spec §6.3) in the episode: a format error that ended it, or a call record with
   error IFE (invalid format), unknown_tool (IFN, incorrect function name) or bad_arguments (IAN/IAT: wrong argument
   name or type), or the same call repeated with the same arguments (RAC).
5. `too_long`: more than `max_tokens` tokens (prompt + response ids; rows without ids: `max_chars` characters).
6. `duplicate`: the same instruction and conversation as a kept row (ids and token fields ignored).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rltrain.data.formats import check_unified

SPECTOOL_ERRORS = {"IFE": "IFE", "unknown_tool": "IFN", "bad_arguments": "IAN/IAT"}
"""Call-record error classes (docs/tools.md "Records") -> the SpecTool pattern they are."""


@dataclass(frozen=True)
class FilterRules:
    min_reward: float | None = None
    min_judge: float | None = None
    drop_format_errors: bool = True
    max_tokens: int | None = None
    max_chars: int | None = None
    dedupe: bool = True


def _judge(row: dict[str, Any]) -> float | None:
    if row.get("judge_score") is not None:
        return float(row["judge_score"])
    value = (row.get("reward_terms") or {}).get("judge")
    return None if value is None else float(value)


def spectool_error(row: dict[str, Any]) -> str | None:
    """The first SpecTool pattern found in the row (IFE, IFN, IAN/IAT, RAC), or None."""
    if row.get("format_error"):
        return "IFE"
    for record in row.get("tool_records") or []:
        if record.get("error") in SPECTOOL_ERRORS:
            return SPECTOOL_ERRORS[record["error"]]
    seen = set()
    for m in row.get("conversation") or []:
        for call in m.get("tool_calls") or []:
            key = json.dumps(call["function"], sort_keys=True)
            if key in seen:
                return "RAC"
            seen.add(key)
    return None


def _length(row: dict[str, Any]) -> tuple[int, str]:
    if row.get("prompt_ids") is not None and row.get("response_ids") is not None:
        return len(row["prompt_ids"]) + len(row["response_ids"]), "tokens"
    return len(row.get("task_instruction") or "") + sum(len(m.get("content") or "") for m in row["conversation"]), "chars"


def _fingerprint(row: dict[str, Any]) -> str:
    body = {"i": row["task_instruction"], "c": [[m["role"], m["content"], [c["function"] for c in m.get("tool_calls") or []]]
                                                for m in row["conversation"]]}  # call ids differ between equal episodes
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def filter_rows(rows: Iterable[dict[str, Any]], rules: FilterRules) -> tuple[list[dict[str, Any]], Counter]:
    """Kept unified rows, and how many rows each rule dropped (see the module docstring)."""
    kept, dropped, seen = [], Counter(), set()
    for row in rows:
        row = check_unified(row)
        if row.get("failure") or str(row.get("token_drift") or "").startswith("context"):
            dropped["failed"] += 1
            continue
        if rules.min_reward is not None and (row.get("reward") is None or row["reward"] < rules.min_reward):
            dropped["reward"] += 1
            continue
        judge = _judge(row)
        if rules.min_judge is not None and (judge is None or judge < rules.min_judge):
            dropped["judge"] += 1
            continue
        if rules.drop_format_errors and (pattern := spectool_error(row)):
            dropped[f"format_error/{pattern}"] += 1
            continue
        length, unit = _length(row)
        cap = rules.max_tokens if unit == "tokens" else rules.max_chars
        if cap is not None and length > cap:
            dropped["too_long"] += 1
            continue
        if rules.dedupe:
            key = _fingerprint(row)
            if key in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(key)
        kept.append(row)
    return kept, dropped
