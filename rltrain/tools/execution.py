"""Running the calls of one assistant message: every call runs, results come back in call order.

- Order and concurrency: calls run one after the other, in the order the message wrote them (calls on one
  stateful env must); a run of consecutive calls whose tools are all `concurrency_safe` runs concurrently, and its
  results still come back in call order.
- Bounds: each call has its tool's `timeout_s` (None: the env step bound). A timeout is recorded with error
  "timeout" and fails the episode (`CallOutcome.failure`), never reward 0.
- Errors the policy made are observations: a tool that was not offered ("unknown_tool", or the episode ends when
  the env's `unoffered_tool` is "end"), arguments that do not fit the schema ("bad_arguments"), a `ToolError` the
  tool raised (its `kind`). Any other exception from a tool is an infrastructure failure.
- An episode that ends inside a message (a call terminated it, an unoffered tool under "end", a failure, the
  step limit) leaves the later calls unrun: they are recorded with error "not_run".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rltrain.tools.base import Tool, ToolCall, ToolError, ToolResult

RECORD_RESULT_CHARS = 500
"""A record keeps the start of the observation only; the full text is the trajectory's tool message."""
_JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
                                            "array": (list,), "object": (dict,), "null": (type(None),)}


@dataclass
class CallOutcome:
    """One call and what became of it.

    Attributes:
        call: the parsed call.
        format: where the parser found it ("tag", "fence", "json", "tagged" for a `[verb] ...` line).
        result: the tool's result (or the error result the loop made for it); None when the call was not run.
        latency_s: seconds `execute` took (0 for calls that never reached a tool).
        failure: an infrastructure failure that ends the episode as failed (timeout, a tool crash).
        ends_episode: the episode ends after this call (a named outcome such as "unoffered_tool").
        offered: the call names a tool this episode offers.
    """

    call: ToolCall
    format: str = "tag"
    result: ToolResult | None = None
    latency_s: float = 0.0
    failure: str | None = None
    ends_episode: str | None = None
    offered: bool = True

    def record(self, turn: int, index: int) -> dict[str, Any]:
        """The trajectory's record of this call (`Trajectory.tool_records`, docs/tools.md "Records")."""
        result = self.result
        return {"turn": turn, "index": index, "call_id": self.call.call_id, "name": self.call.name,
                "arguments": self.call.arguments, "format": self.format, "offered": self.offered,
                "error": "not_run" if result is None else result.error,
                "reward": None if result is None else float(result.reward),
                "result": None if result is None else result.observation[:RECORD_RESULT_CHARS],
                "latency_s": round(self.latency_s, 6), "raw": self.call.raw,
                **({"info": result.info} if result is not None and result.info else {})}  # e.g. the crm env's db_diff


def schema_error(tool: Tool, arguments: dict[str, Any]) -> str | None:
    """What is wrong with `arguments` for `tool`'s JSON schema (top level: required, types, enums, unknown names)."""
    schema = tool.parameters or {}
    properties: dict[str, Any] = schema.get("properties", {})
    missing = [name for name in schema.get("required", []) if name not in arguments]
    if missing:
        return f"{tool.name} is missing required argument(s) {', '.join(missing)}"
    if schema.get("additionalProperties") is False:
        unknown = sorted(set(arguments) - set(properties))
        if unknown:
            return f"{tool.name} has no argument(s) {', '.join(unknown)}; its arguments are {', '.join(properties) or '(none)'}"
    for name, value in arguments.items():
        spec = properties.get(name, {})
        kinds = spec.get("type")
        if kinds is not None:
            allowed = tuple(t for k in ([kinds] if isinstance(kinds, str) else kinds) for t in _JSON_TYPES.get(k, (object,)))
            wrong_bool = isinstance(value, bool) and bool not in allowed  # JSON true is not an integer
            if not isinstance(value, allowed) or wrong_bool:
                return f"{tool.name} argument {name} must be {kinds}, got {type(value).__name__} {value!r}"
        if "enum" in spec and value not in spec["enum"]:
            return f"{tool.name} argument {name}={value!r} is not one of {spec['enum']}"
    return None


async def run_one(tool: Tool, call: ToolCall, episode_state: Any, timeout_s: float) -> tuple[ToolResult, float, str | None]:
    """(result, latency, failure) of one offered call."""
    problem = schema_error(tool, call.arguments) if tool.validate_arguments else None
    if problem is not None:
        return ToolResult(f"Error: {problem}.", error="bad_arguments"), 0.0, None
    t0 = time.perf_counter()
    try:
        result = await asyncio.wait_for(tool.execute(call.arguments, episode_state), timeout_s)
    except asyncio.TimeoutError:  # the builtin TimeoutError only from Python 3.11
        latency = time.perf_counter() - t0
        return (ToolResult(f"Error: {call.name} timed out.", error="timeout"), latency,
                f"tool {call.name!r} ({call.call_id}) timed out after {timeout_s:g} s "
                f"({'Tool.timeout_s' if tool.timeout_s is not None else 'env.step_timeout_s'})")
    except ToolError as err:
        return ToolResult(f"Error: {err}", error=err.kind), time.perf_counter() - t0, None
    except Exception as err:  # a tool's crash is the infrastructure's, not the policy's
        latency = time.perf_counter() - t0
        return (ToolResult(f"Error: {call.name} failed.", error="crash"), latency,
                f"tool {call.name!r} ({call.call_id}) raised {type(err).__name__}: {err}")
    return result, time.perf_counter() - t0, None


async def run_calls(calls: Sequence[ToolCall], formats: Sequence[str], tools: dict[str, Tool], episode_state: Any, *,
                    unoffered: Literal["error", "end"] = "error", step_timeout_s: float = 60.0,
                    steps_left: int | None = None) -> list[CallOutcome]:
    """Run every call of one message; outcomes in call order (see the module doc for the rules)."""
    outcomes = [CallOutcome(call, fmt, offered=call.name in tools) for call, fmt in zip(calls, formats)]
    i = 0
    while i < len(outcomes):
        if steps_left is not None and i >= steps_left:
            break  # the env's step limit: the rest stay "not_run"
        batch = [i]
        if outcomes[i].offered and tools[outcomes[i].call.name].concurrency_safe:
            while (batch[-1] + 1 < len(outcomes) and outcomes[batch[-1] + 1].offered
                   and tools[outcomes[batch[-1] + 1].call.name].concurrency_safe
                   and (steps_left is None or batch[-1] + 1 < steps_left)):
                batch.append(batch[-1] + 1)
        await asyncio.gather(*(_run(outcomes[k], tools, episode_state, unoffered, step_timeout_s) for k in batch))
        i = batch[-1] + 1
        if any(_ends(outcomes[k]) for k in batch):
            break
    return outcomes


async def _run(outcome: CallOutcome, tools: dict[str, Tool], episode_state: Any, unoffered: str, step_timeout_s: float) -> None:
    call = outcome.call
    if not outcome.offered:
        offered = ", ".join(sorted(tools)) or "(none)"
        outcome.result = ToolResult(f"Error: there is no tool {call.name!r} here; the tools are: {offered}.", error="unknown_tool")
        if unoffered == "end":
            outcome.ends_episode = "unoffered_tool"
        return
    tool = tools[call.name]
    timeout = tool.timeout_s if tool.timeout_s is not None else step_timeout_s
    outcome.result, outcome.latency_s, outcome.failure = await run_one(tool, call, episode_state, timeout)


def _ends(outcome: CallOutcome) -> bool:
    result = outcome.result
    return bool(outcome.failure or outcome.ends_episode or (result is not None and (result.terminated or result.truncated)))


def turn_result(outcomes: Sequence[CallOutcome]) -> ToolResult | None:
    """The turn's result: the last call that ran (its reward is the turn's, UserRL spec §1.3), ending flags of any."""
    ran = [o.result for o in outcomes if o.result is not None]
    if not ran:
        return None
    last = ran[-1]
    return ToolResult(last.observation, reward=last.reward, terminated=any(r.terminated for r in ran),
                      truncated=any(r.truncated for r in ran), error=last.error, info=last.info)


def cap_tokens(text: str, max_tokens: int, encode: Callable[[str], list[int]], decode: Callable[[list[int]], str]) -> str:
    """`text` cut to its first `max_tokens` tokens, ending with a visible marker when it was longer (verl's
    max_tool_response_length; the marker names the config key)."""
    ids = encode(text)
    if len(ids) <= max_tokens:
        return text
    return f"{decode(ids[:max_tokens])}\n...[truncated: {max_tokens} of {len(ids)} tokens shown, env.max_tool_response_tokens]"
