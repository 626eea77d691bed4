"""The versioned trajectory row: `runs/<name>/trajectories.jsonl` (docs/data.md "Trajectory rows").

A row is a Unified Format 2.0 row (`rltrain.data.formats`) plus our fields, flat at the top level:
`format_version`, the token-level fields of `rltrain.types.Trajectory` (prompt_ids, response_ids, loss_mask,
rollout_logprobs, turn_boundaries, ...), rewards, failure and format-error flags, the cost and user-call records,
and the tool-call records (`tool_records`). The conversation replaces `Trajectory.messages`:

- the opening system message is `task_instruction`;
- an assistant message whose calls were parsed carries them as `tool_calls` (`{id, function: {name, arguments}}`,
  from `tool_records`) and its text without the call blocks as `content`; the exact text the policy wrote is kept as
  `raw` (call tags and all), so the row reads back as the same `Trajectory`;
- a tool message answering a call carries its `tool_call_id` and `name`.

Any converter reads these rows as unified rows (the extra keys travel along). `read_trajectory_row` also reads the
rows written before this schema (`Trajectory.to_json` dumps, which have `messages` and no `format_version`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rltrain.data.formats import check_unified
from rltrain.types import Trajectory

FORMAT_VERSION = 1
"""Bump when a field changes meaning; `row_to_trajectory` keeps reading every earlier version."""

_FIELDS = {f.name for f in dataclasses.fields(Trajectory)}


def _turn_calls(traj: Trajectory) -> dict[int, list[dict[str, Any]]]:
    """The parsed calls of each assistant turn (IFE attempts stay text: they were not calls)."""
    calls: dict[int, list[dict[str, Any]]] = {}
    for record in traj.tool_records:
        if record.get("error") != "IFE" and record.get("name"):
            calls.setdefault(int(record["turn"]), []).append(record)
    return calls


def _strip_calls(text: str, records: list[dict[str, Any]]) -> str:
    for record in records:
        if record.get("raw"):
            text = text.replace(record["raw"], "", 1)
    return text.strip()


def trajectory_to_row(traj: Trajectory, index: int = 0, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`traj` as a versioned unified row. `index` numbers the trajectory within its file (samples of one task share
    task and group ids); `tools` are the offered schemas (default: `traj.tools` where the trajectory keeps them)."""
    messages = list(traj.messages)
    instruction = messages.pop(0)["content"] if messages and messages[0].get("role") == "system" else ""
    calls = _turn_calls(traj)
    conversation: list[dict[str, Any]] = []
    turn, answering = -1, []
    for m in messages:
        if m["role"] == "assistant":
            turn += 1
            records = calls.get(turn, [])
            if records:
                conversation.append({"role": "assistant", "content": _strip_calls(m["content"], records), "raw": m["content"],
                                     "tool_calls": [{"id": r.get("call_id") or f"call_{turn}_{r['index']}",
                                                     "function": {"name": r["name"], "arguments": r.get("arguments") or {}}}
                                                    for r in records]})
                answering = [r for r in records if r.get("error") != "not_run"]  # only calls that ran have a result
            else:
                conversation.append({"role": "assistant", "content": m["content"]})
                answering = []
        elif m["role"] == "tool" and answering:
            r = answering.pop(0)
            conversation.append({"role": "tool", "content": m["content"], "tool_call_id": r.get("call_id") or "",
                                 "name": r["name"]})
        else:
            conversation.append({"role": m["role"], "content": m["content"]})
    fields = {k: v for k, v in dataclasses.asdict(traj).items() if k != "messages"}
    schemas = tools if tools is not None else list(getattr(traj, "tools", None) or [])
    return {"format_version": FORMAT_VERSION, "unique_trajectory_id": f"{traj.env}/{traj.task_id}#{traj.group_id}.{index}",
            "task_instruction": instruction, "tools": schemas, "conversation": conversation, **fields}


def _render_calls(message: dict[str, Any]) -> str:
    """An assistant message's text with its calls in the canonical Hermes form (docs/tools.md), when no `raw` is kept."""
    blocks = [f'<tool_call>\n{json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]}, ensure_ascii=False)}\n</tool_call>'
              for c in message.get("tool_calls") or []]
    return "\n".join([message.get("content") or "", *blocks]).strip() if blocks else message.get("content") or ""


def row_to_trajectory(row: dict[str, Any]) -> Trajectory:
    """A Trajectory from a versioned row, or from a pre-schema `Trajectory.to_json` dump.

    A unified row from elsewhere (no token fields) reads as a Trajectory with empty token fields: enough for SFT
    rendering and replay, not for RL training."""
    if "format_version" not in row and "messages" in row and "conversation" not in row:  # a Trajectory.to_json dump
        return Trajectory(**{k: v for k, v in row.items() if k in _FIELDS})
    version = row.get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise ValueError(f"trajectory row {row.get('unique_trajectory_id')!r} has format_version {version}, newer than this "
                         f"rltrain reads ({FORMAT_VERSION}); upgrade rltrain")
    row = check_unified(row)
    messages = [{"role": "system", "content": row["task_instruction"]}] if row["task_instruction"] else []
    for m in row["conversation"]:
        content = m["raw"] if "raw" in m else _render_calls(m) if m["role"] == "assistant" else m["content"]
        messages.append({"role": m["role"], "content": content})
    fields = {k: v for k, v in row.items() if k in _FIELDS and k != "messages"}
    fields.setdefault("task_id", row["unique_trajectory_id"])
    fields.setdefault("group_id", 0)
    fields.setdefault("env", "")
    fields.setdefault("prompt_ids", [])
    return Trajectory(messages=messages, **fields)


def read_trajectory_row(line: str) -> Trajectory:
    """One line of a trajectories.jsonl file, of any schema version."""
    return row_to_trajectory(json.loads(line))


def read_trajectories(path: str | Path) -> Iterator[Trajectory]:
    """The trajectories of a trajectories.jsonl file (any schema version, pre-schema dumps included)."""
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield read_trajectory_row(line)


def write_trajectories(path: str | Path, trajectories: Iterable[Trajectory], start: int = 0, append: bool = True) -> int:
    """Append (or write) trajectories as versioned rows; `start` is the index of the first (ids stay unique)."""
    n = 0
    with Path(path).open("a" if append else "w", encoding="utf-8") as f:
        for n, traj in enumerate(trajectories, 1):
            f.write(json.dumps(trajectory_to_row(traj, start + n - 1), ensure_ascii=False) + "\n")
    return n


def messages_to_row(messages: list[dict[str, Any]], tools: list[dict[str, Any]], trajectory_id: str,
                    parser: str = "hermes") -> dict[str, Any]:
    """A unified row from chat messages (a scripted solver's, an OpenAI log): assistant calls given as `tool_calls`
    are kept; calls written as `<tool_call>` text are parsed out of the content (`rltrain.tools.parsers`)."""
    from rltrain.tools.parsers import parse_calls

    messages = list(messages)
    instruction = messages.pop(0)["content"] if messages and messages[0].get("role") == "system" else ""
    offered = [t["name"] for t in tools]
    conversation: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    turn = -1
    for m in messages:
        if m["role"] == "assistant":
            turn += 1
            out = {k: v for k, v in m.items() if k in ("role", "content", "tool_calls", "thought")}
            if not out.get("tool_calls"):
                parsed = parse_calls(m["content"], offered, parser, turn)
                if parsed.calls:
                    text = m["content"]
                    for call in parsed.calls:
                        text = text.replace(call.raw, "", 1)
                    out = {"role": "assistant", "content": text.strip(), "tool_calls": [
                        {"id": c.call_id, "function": {"name": c.name, "arguments": c.arguments}} for c in parsed.calls]}
            pending = list(out.get("tool_calls") or [])
            conversation.append(out)
        elif m["role"] == "tool":
            out = {k: v for k, v in m.items() if k in ("role", "content", "tool_call_id", "name")}
            if pending and "tool_call_id" not in out:
                call = pending.pop(0)
                out.update(tool_call_id=call.get("id", ""), name=call["function"]["name"])
            conversation.append(out)
        else:
            conversation.append({"role": m["role"], "content": m["content"]})
    return check_unified({"unique_trajectory_id": trajectory_id, "task_instruction": instruction, "tools": tools,
                          "conversation": conversation})
