"""Trajectory formats and the conversions among them, through ActionStudio's Unified Format 2.0 as the pivot.

Three trajectory formats (docs/data.md):

- `unified`: ActionStudio's Unified Format 2.0 (spec §6.2), one object per trajectory:
  `{unique_trajectory_id, task_instruction, tools: [{name, description, parameters}], conversation: [...]}`, where a
  message is `{role: user|assistant|tool, content}`; an assistant message may carry
  `tool_calls: [{id?, function: {name, arguments}}]` and `thought`; a tool message may carry `tool_call_id`, `name`.
- `sharegpt`: LLaMA-Factory's ShareGPT with tools (UserRL's SFT data, spec §1.9):
  `{conversations: [{from: human|gpt|function_call|observation, value}], system, tools: "<JSON list>"}`.
- `hf`: the Hugging Face `datasets` chat format (TRL): `{messages: [{role, content, tool_calls?, tool_call_id?,
  reasoning_content?}], tools: [{type: function, function: {...}}]}`.

Every conversion goes to or from `unified`. Top-level keys a format does not know (our token fields, ids) are kept
as extra columns, so `unified <-> hf` is lossless and `unified <-> sharegpt` loses only what ShareGPT cannot hold,
each named in a `LossyConversionWarning` (the complete list: `SHAREGPT_LOSSY_FIELDS`).

ShareGPT has no field for a thought or for text next to tool calls; LLaMA-Factory reads a leading
`<think>...</think>` in a `gpt` or `function_call` value as the thought, so that is where we put them: an assistant
message's `thought` (a `gpt` turn), or the text beside its calls (a `function_call` turn, where the text is the
thought, as in ActionStudio). Parallel calls are one `function_call` turn holding a JSON list, and their results one
`observation` turn holding a JSON list of strings.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Iterable
from typing import Any

FORMATS = ("unified", "sharegpt", "hf")
"""The trajectory formats `convert` reads and writes."""

SHAREGPT_LOSSY_FIELDS = (
    "conversation[].tool_calls[].id",
    "conversation[].tool_call_id",
    "conversation[].name",
    "conversation[].thought (of an assistant message with tool_calls: ShareGPT keeps one text there, the content, "
    "else the thought, read back as content)",
    "conversation[].<other message keys>",
    "conversation[] system messages after the first position",
)
"""What `unified -> sharegpt` cannot carry (named, with counts, in the warning when it occurs)."""

_THINK = re.compile(r"\A<think>(.*?)</think>\n?", re.DOTALL)
_UNIFIED_MESSAGE_KEYS = {"role", "content", "tool_calls", "thought", "tool_call_id", "name"}


class LossyConversionWarning(UserWarning):
    """A conversion dropped fields the target format cannot hold; the message names each with its count."""


class FormatError(ValueError):
    """A row is not in the format it was read as; the message says which field and what to fix."""


def _warn_lost(lost: Counter, source: str, target: str) -> None:
    if lost:
        fields = ", ".join(f"{name} ({n}x)" for name, n in sorted(lost.items()))
        warnings.warn(f"{source} -> {target} dropped fields the target cannot hold: {fields}", LossyConversionWarning,
                      stacklevel=3)


def _arguments(value: Any, where: str) -> dict[str, Any]:
    """A call's arguments as an object; some data sets store them as a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as err:
            raise FormatError(f"{where}: arguments are a string that is not JSON ({err.msg}); store an object") from err
    if not isinstance(value, dict):
        raise FormatError(f"{where}: arguments must be a JSON object, got {type(value).__name__}")
    return value


def _call(call: dict[str, Any], where: str) -> dict[str, Any]:
    """A unified tool call `{id?, function: {name, arguments}}` from either nesting (OpenAI's or flat)."""
    fn = call.get("function", call)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise FormatError(f"{where}: a tool call needs function.name (a string); got {call!r}")
    out: dict[str, Any] = {"function": {"name": fn["name"], "arguments": _arguments(fn.get("arguments", {}), where)}}
    if call.get("id"):
        out = {"id": call["id"], **out}
    return out


def _tool_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """A bare function schema `{name, description, parameters}` from OpenAI's `{type: function, function: {...}}`."""
    schema = dict(tool["function"]) if isinstance(tool.get("function"), dict) else dict(tool)
    if isinstance(schema.get("parameters"), str):  # Parquet files store schemas as JSON strings (`io.FREE_FORM_KEYS`)
        schema["parameters"] = json.loads(schema["parameters"])
    return schema


def check_unified(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with its tool calls and schemas normalised; FormatError names what is missing."""
    where = f"trajectory {row.get('unique_trajectory_id', '?')!r}"
    for key in ("unique_trajectory_id", "conversation"):
        if key not in row:
            raise FormatError(f"{where}: a unified row needs {key!r} (Unified Format 2.0, docs/data.md)")
    conversation = []
    for i, message in enumerate(row["conversation"]):
        if message.get("role") not in ("user", "assistant", "tool", "system"):
            raise FormatError(f"{where} conversation[{i}]: role {message.get('role')!r} must be user, assistant or tool")
        message = {k: v for k, v in message.items() if v is not None}  # Parquet reads absent keys back as None
        message["content"] = message.get("content") or ""
        if message.get("tool_calls"):
            message["tool_calls"] = [_call(c, f"{where} conversation[{i}]") for c in message["tool_calls"]]
        else:
            message.pop("tool_calls", None)
        conversation.append(message)
    return {**row, "task_instruction": row.get("task_instruction") or "",
            "tools": [_tool_schema(t) for t in row.get("tools") or []], "conversation": conversation}


# --- ShareGPT ------------------------------------------------------------------------------------------------------

def _call_json(calls: list[dict[str, Any]]) -> str:
    items = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in calls]
    return json.dumps(items[0] if len(items) == 1 else items, ensure_ascii=False)


def unified_to_sharegpt(row: dict[str, Any], lost: Counter | None = None) -> dict[str, Any]:
    """One unified row as ShareGPT; what ShareGPT cannot hold is counted in `lost` (field name -> count)."""
    lost = Counter() if lost is None else lost
    row = check_unified(row)
    turns: list[dict[str, str]] = []
    conversation = row["conversation"]
    i = 0
    while i < len(conversation):
        m = conversation[i]
        if m["role"] != "tool":  # tool messages are counted in their group below
            lost.update(f"conversation[].{k}" for k in m if k not in _UNIFIED_MESSAGE_KEYS)
        if m["role"] == "system":
            lost["conversation[] system messages after the first position"] += 1
        elif m["role"] == "user":
            turns.append({"from": "human", "value": m["content"]})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            lost.update("conversation[].tool_calls[].id" for c in m["tool_calls"] if "id" in c)
            thought = m["content"] or m.get("thought") or ""
            if m.get("thought"):
                lost[SHAREGPT_LOSSY_FIELDS[3]] += 1
            prefix = f"<think>{thought}</think>\n" if thought else ""
            turns.append({"from": "function_call", "value": prefix + _call_json(m["tool_calls"])})
        elif m["role"] == "assistant":
            prefix = f"<think>{m['thought']}</think>\n" if m.get("thought") else ""
            turns.append({"from": "gpt", "value": prefix + m["content"]})
        else:  # consecutive tool messages are one observation turn (the results of one message's calls)
            results = []
            while i < len(conversation) and conversation[i]["role"] == "tool":
                tool = conversation[i]
                lost.update(f"conversation[].{k}" for k in tool if k not in _UNIFIED_MESSAGE_KEYS or k in ("tool_call_id", "name"))
                results.append(tool["content"])
                i += 1
            turns.append({"from": "observation", "value": results[0] if len(results) == 1 else json.dumps(results, ensure_ascii=False)})
            continue
        i += 1
    extra = {k: v for k, v in row.items() if k not in ("unique_trajectory_id", "task_instruction", "tools", "conversation")}
    return {"id": row["unique_trajectory_id"], "system": row["task_instruction"], "tools": json.dumps(row["tools"], ensure_ascii=False),
            "conversations": turns, **extra}


def _split_think(value: str) -> tuple[str, str]:
    m = _THINK.match(value)
    return (m.group(1), value[m.end():]) if m else ("", value)


def sharegpt_to_unified(row: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """One ShareGPT row as unified (ids: the row's `id`, else `sharegpt-<index>`)."""
    if "conversations" not in row:
        raise FormatError(f"ShareGPT row {index}: no 'conversations' list; is it another format (--from)?")
    tools = row.get("tools") or []
    if isinstance(tools, str):
        tools = json.loads(tools) if tools.strip() else []
    conversation: list[dict[str, Any]] = []
    pending_calls = 0
    for k, turn in enumerate(row["conversations"]):
        kind, value = turn.get("from"), turn.get("value") or ""
        where = f"ShareGPT row {index} turn {k}"
        if kind in ("human", "user"):
            conversation.append({"role": "user", "content": value})
        elif kind in ("gpt", "assistant"):
            thought, text = _split_think(value)
            conversation.append({"role": "assistant", "content": text, **({"thought": thought} if thought else {})})
        elif kind == "function_call":
            thought, body = _split_think(value)
            try:
                calls = json.loads(body)
            except json.JSONDecodeError as err:
                raise FormatError(f"{where}: function_call value is not JSON ({err.msg})") from err
            calls = calls if isinstance(calls, list) else [calls]
            conversation.append({"role": "assistant", "content": thought, "tool_calls": [_call(c, where) for c in calls]})
            pending_calls = len(calls)
        elif kind == "observation":
            results = [value]
            if pending_calls > 1:  # parallel calls: one JSON list of results
                try:
                    decoded = json.loads(value)
                except json.JSONDecodeError:
                    decoded = None
                if isinstance(decoded, list) and len(decoded) == pending_calls and all(isinstance(r, str) for r in decoded):
                    results = decoded
            conversation.extend({"role": "tool", "content": r} for r in results)
            pending_calls = 0
        elif kind == "system" and not conversation:
            row = {**row, "system": value}
        else:
            raise FormatError(f"{where}: 'from' is {kind!r}; ShareGPT turns are human, gpt, function_call or observation")
    extra = {k: v for k, v in row.items() if k not in ("id", "system", "tools", "conversations")}
    return check_unified({"unique_trajectory_id": str(row.get("id", f"sharegpt-{index}")),
                          "task_instruction": row.get("system") or "", "tools": tools, "conversation": conversation, **extra})


# --- Hugging Face chat -------------------------------------------------------------------------------------------

def unified_to_hf(row: dict[str, Any], lost: Counter | None = None) -> dict[str, Any]:
    """One unified row as HF chat: `thought` becomes `reasoning_content`; nothing is lost."""
    row = check_unified(row)
    messages: list[dict[str, Any]] = [{"role": "system", "content": row["task_instruction"]}] if row["task_instruction"] else []
    for m in row["conversation"]:
        out = {k: v for k, v in m.items() if k != "thought"}
        if "thought" in m:
            out["reasoning_content"] = m["thought"]
        if m.get("tool_calls"):
            out["tool_calls"] = [{**({"id": c["id"]} if "id" in c else {}), "type": "function", "function": c["function"]}
                                 for c in m["tool_calls"]]
        messages.append(out)
    extra = {k: v for k, v in row.items() if k not in ("unique_trajectory_id", "task_instruction", "tools", "conversation")}
    return {"id": row["unique_trajectory_id"], "messages": messages,
            "tools": [{"type": "function", "function": t} for t in row["tools"]], **extra}


def hf_to_unified(row: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """One HF chat row as unified: a leading system message becomes `task_instruction`."""
    if "messages" not in row:
        raise FormatError(f"HF chat row {index}: no 'messages' list; is it another format (--from)?")
    # Parquet-backed datasets fill absent keys with None; a None key is an absent one.
    messages = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]
    instruction = messages.pop(0)["content"] if messages and messages[0].get("role") == "system" else ""
    for m in messages:
        if "reasoning_content" in m:
            m["thought"] = m.pop("reasoning_content")
        if m.get("tool_calls"):
            m["tool_calls"] = [{k: v for k, v in c.items() if k != "type"} for c in m["tool_calls"]]
    extra = {k: v for k, v in row.items() if k not in ("id", "messages", "tools")}
    return check_unified({"unique_trajectory_id": str(row.get("id", f"hf-{index}")), "task_instruction": instruction or "",
                          "tools": row.get("tools") or [], "conversation": messages, **extra})


# --- dispatch ----------------------------------------------------------------------------------------------------

def detect_format(row: dict[str, Any]) -> str:
    """The format of one row, by its keys; FormatError when none fits."""
    if "conversation" in row and "unique_trajectory_id" in row:
        return "unified"
    if "conversations" in row:
        return "sharegpt"
    if "messages" in row:
        return "hf"
    raise FormatError(f"cannot tell the format of a row with keys {sorted(row)}: a unified row has 'conversation', "
                      f"ShareGPT 'conversations', HF chat 'messages' (or pass --from)")


_TO_UNIFIED = {"unified": lambda row, i: check_unified(row), "sharegpt": sharegpt_to_unified, "hf": hf_to_unified}
_FROM_UNIFIED = {"unified": lambda row, lost: check_unified(row), "sharegpt": unified_to_sharegpt, "hf": unified_to_hf}


def to_unified(rows: Iterable[dict[str, Any]], source: str | None = None) -> list[dict[str, Any]]:
    """Rows of `source` (detected per row when None) as unified rows."""
    out = []
    for i, row in enumerate(rows):
        fmt = source or detect_format(row)
        if fmt not in _TO_UNIFIED:
            raise FormatError(f"unknown trajectory format {fmt!r}; one of {', '.join(FORMATS)}")
        out.append(_TO_UNIFIED[fmt](row, i))
    return out


def convert_rows(rows: Iterable[dict[str, Any]], target: str, source: str | None = None) -> list[dict[str, Any]]:
    """Rows converted to `target`, with one LossyConversionWarning naming every dropped field."""
    if target not in _FROM_UNIFIED:
        raise FormatError(f"--to {target!r} is not a trajectory format; use one of {', '.join(FORMATS)} (or verl for tasks)")
    lost: Counter = Counter()
    out = [_FROM_UNIFIED[target](row, lost) for row in to_unified(rows, source)]
    _warn_lost(lost, source or "unified", target)
    return out
