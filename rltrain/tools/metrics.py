"""Tool-call metrics over trajectories, from their `tool_records` (a pure function; docs/tools.md "Metrics").

Definitions (an "attempt" is a record; a "call" is an attempt the parser could read, i.e. error != "IFE"):
- `tools/calls_per_episode`: calls / trajectories.
- `tools/parse_rate`: calls / attempts; `tools/parse_rate/<format>` the same among the attempts found in that
  format ("tag" `<tool_call>`, "fence" a code fence, "json" bare JSON). Only formats that occur are reported.
- `tools/error_rate/<class>`: calls with that error class / calls ("unknown_tool", "bad_arguments", "timeout",
  "crash", "not_run", a tool's own class, ...); `tools/ok_rate`: calls that ran without error / calls.
- `tools/unoffered_rate`: calls naming a tool the episode did not offer / calls.
- `tools/latency_s`: mean seconds per call that reached a tool.
Trajectories without records contribute to the per-episode mean only. Empty input gives {}.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any


def tool_call_metrics(trajectories: Iterable[Any]) -> dict[str, float]:
    """The metrics above; `trajectories` are `Trajectory` objects (or anything with `tool_records`)."""
    trajs = list(trajectories)
    if not trajs:
        return {}
    records = [r for t in trajs for r in (getattr(t, "tool_records", None) or [])]
    calls = [r for r in records if r.get("error") != "IFE"]
    out: dict[str, float] = {"tools/calls_per_episode": len(calls) / len(trajs)}
    if not records:
        return out
    out["tools/parse_rate"] = len(calls) / len(records)
    attempts, parsed = Counter(r.get("format", "") for r in records), Counter(r.get("format", "") for r in calls)
    for fmt, n in sorted(attempts.items()):
        out[f"tools/parse_rate/{fmt or 'unknown'}"] = parsed[fmt] / n
    if calls:
        errors = Counter(r.get("error") for r in calls)
        out["tools/ok_rate"] = errors.pop(None, 0) / len(calls)
        for kind, n in sorted(errors.items(), key=lambda kv: str(kv[0])):
            out[f"tools/error_rate/{kind}"] = n / len(calls)
        out["tools/unoffered_rate"] = sum(not r.get("offered", True) for r in calls) / len(calls)
        ran = [r for r in calls if r.get("latency_s")]
        if ran:
            out["tools/latency_s"] = sum(float(r["latency_s"]) for r in ran) / len(ran)
    return out
