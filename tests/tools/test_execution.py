"""Running the calls of one message (`rltrain.tools.execution`) and naming tools in a config (`loading`).

Issue 12 item 4: every call runs, results in call order, stateful calls in order, safe ones concurrently, one
failing call among three, the unoffered-tool rule both ways, per-tool timeouts, capped responses.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rltrain.config.loader import ConfigError
from rltrain.tools import TOOLS, Tool, ToolCall, ToolError, ToolResult
from rltrain.tools.execution import cap_tokens, run_calls, schema_error, turn_result
from rltrain.tools.loading import load_tool, load_tools


class Log:
    """Episode state: what ran, in which order."""

    def __init__(self) -> None:
        self.events: list[str] = []


class Sleepy(Tool):
    """Safe to run concurrently: sleeps `seconds`, then echoes."""

    name = "sleepy"
    parameters = {"type": "object", "properties": {"seconds": {"type": "number"}, "tag": {"type": "string"}},
                  "required": ["seconds", "tag"]}
    concurrency_safe = True

    async def execute(self, arguments: dict[str, Any], episode_state: Log) -> ToolResult:
        episode_state.events.append(f"start {arguments['tag']}")
        await asyncio.sleep(arguments["seconds"])
        episode_state.events.append(f"end {arguments['tag']}")
        return ToolResult(f"slept {arguments['tag']}", reward=float(arguments["seconds"]))


class Counter(Tool):
    """Stateful: must run in order. Raises ToolError on a negative step, crashes on step 13, hangs on step 99."""

    name = "counter"
    parameters = {"type": "object", "properties": {"step": {"type": "integer"}}, "required": ["step"],
                  "additionalProperties": False}
    timeout_s = 0.2

    async def execute(self, arguments: dict[str, Any], episode_state: Log) -> ToolResult:
        step = arguments["step"]
        if step < 0:
            raise ToolError(f"step must be >= 0, got {step}", kind="negative_step")
        if step == 13:
            raise RuntimeError("database connection lost")
        if step == 99:
            await asyncio.sleep(10)
        episode_state.events.append(f"count {step}")
        await asyncio.sleep(0.01)
        return ToolResult(f"now {len(episode_state.events)}", reward=step / 10, terminated=step == 7)


TOOLSET = {"sleepy": Sleepy(), "counter": Counter()}


def run(calls: list[tuple[str, dict]], unoffered: str = "error", steps_left: int | None = None):
    log = Log()
    parsed = [ToolCall(name, args, f"call_0_{i}") for i, (name, args) in enumerate(calls)]
    outcomes = asyncio.run(run_calls(parsed, ["tag"] * len(parsed), TOOLSET, log, unoffered=unoffered, steps_left=steps_left))
    return outcomes, log


def test_safe_calls_run_concurrently_and_results_come_back_in_call_order() -> None:
    t0 = time.perf_counter()
    outcomes, log = run([("sleepy", {"seconds": 0.3, "tag": "a"}), ("sleepy", {"seconds": 0.1, "tag": "b"}),
                         ("sleepy", {"seconds": 0.2, "tag": "c"})])
    assert time.perf_counter() - t0 < 0.55  # together, not 0.6 s one after the other
    assert [o.result.observation for o in outcomes] == ["slept a", "slept b", "slept c"]
    assert log.events[:3] == ["start a", "start b", "start c"] and log.events[3:] == ["end b", "end c", "end a"]
    assert turn_result(outcomes).reward == pytest.approx(0.2)  # the last call's reward is the turn's (spec §1.3)


def test_stateful_calls_run_one_after_the_other_in_call_order() -> None:
    outcomes, log = run([("counter", {"step": 1}), ("sleepy", {"seconds": 0.05, "tag": "x"}), ("counter", {"step": 2})])
    assert log.events == ["count 1", "start x", "end x", "count 2"]
    assert [o.result.observation for o in outcomes] == ["now 1", "slept x", "now 4"]


def test_one_failing_call_among_three_is_named_and_the_others_run() -> None:
    outcomes, log = run([("counter", {"step": 1}), ("counter", {"step": -1}), ("counter", {"step": 2})])
    assert [o.result.error for o in outcomes] == [None, "negative_step", None]
    assert outcomes[1].result.observation == "Error: step must be >= 0, got -1" and log.events == ["count 1", "count 2"]
    records = [o.record(0, i) for i, o in enumerate(outcomes)]
    assert [(r["name"], r["arguments"], r["error"]) for r in records] == [
        ("counter", {"step": 1}, None), ("counter", {"step": -1}, "negative_step"), ("counter", {"step": 2}, None)]
    assert records[0]["latency_s"] > 0 and records[1]["call_id"] == "call_0_1"


def test_arguments_are_checked_against_the_schema() -> None:
    outcomes, log = run([("counter", {"step": "5"}), ("counter", {}), ("counter", {"step": 1, "by": 2}),
                         ("counter", {"step": True})])
    assert [o.result.error for o in outcomes] == ["bad_arguments"] * 4 and not log.events
    assert "must be integer, got str '5'" in outcomes[0].result.observation
    assert schema_error(Counter(), {"step": 3}) is None


@pytest.mark.parametrize("rule", ["error", "end"])
def test_unoffered_tool_rule_both_ways(rule: str) -> None:
    outcomes, log = run([("counter", {"step": 1}), ("web_search", {"q": "x"}), ("counter", {"step": 2})], unoffered=rule)
    assert outcomes[1].result.error == "unknown_tool" and not outcomes[1].offered
    assert "no tool 'web_search' here; the tools are: counter, sleepy" in outcomes[1].result.observation
    if rule == "error":  # returned to the agent; the episode goes on and the next call runs
        assert outcomes[1].ends_episode is None and log.events == ["count 1", "count 2"]
    else:  # the episode ends with a named outcome; the later call is not run
        assert outcomes[1].ends_episode == "unoffered_tool" and outcomes[2].result is None
        assert outcomes[2].record(0, 2)["error"] == "not_run" and log.events == ["count 1"]


def test_timeout_and_crash_are_infrastructure_failures_not_observations() -> None:
    outcomes, _ = run([("counter", {"step": 99}), ("counter", {"step": 1})])
    assert outcomes[0].result.error == "timeout" and "timed out after 0.2 s (Tool.timeout_s)" in outcomes[0].failure
    assert outcomes[1].result is None  # the episode ends there
    outcomes, _ = run([("counter", {"step": 13})])
    assert outcomes[0].result.error == "crash" and "RuntimeError: database connection lost" in outcomes[0].failure


def test_a_terminating_call_and_the_step_limit_leave_later_calls_unrun() -> None:
    outcomes, log = run([("counter", {"step": 7}), ("counter", {"step": 1})])
    assert outcomes[0].result.terminated and outcomes[1].result is None and log.events == ["count 7"]
    outcomes, log = run([("counter", {"step": 1}), ("counter", {"step": 2}), ("counter", {"step": 3})], steps_left=2)
    assert [o.result is not None for o in outcomes] == [True, True, False] and log.events == ["count 1", "count 2"]


def test_long_responses_are_capped_with_a_visible_marker() -> None:
    encode, decode = (lambda s: s.split()), (lambda ids: " ".join(ids))
    assert cap_tokens("a b c", 3, encode, decode) == "a b c"
    assert cap_tokens("a b c d e", 2, encode, decode) == "a b\n...[truncated: 2 of 5 tokens shown, env.max_tool_response_tokens]"


class Weather(Tool):
    """A user's own tool, named in a config as `tests.tools.test_execution:Weather`."""

    name = "get_weather"
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        return ToolResult(f"Sunny in {arguments['city']}")


def test_tools_are_named_by_registry_name_or_module_path() -> None:
    assert "interact_with_env" in TOOLS
    tools = load_tools(["interact_with_env", "tests.tools.test_execution:Weather"])
    assert [t.name for t in tools] == ["interact_with_env", "get_weather"]
    assert tools[1].schema()["function"]["parameters"]["required"] == ["city"]
    with pytest.raises(ConfigError, match="env.tools entry 'no_such_tool'"):
        load_tool("no_such_tool")
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_tool("tests.tools.test_execution:Missing")
    with pytest.raises(ConfigError, match="not a subclass"):
        load_tool("tests.tools.test_execution:Log")
    with pytest.raises(ConfigError, match="twice"):
        load_tools(["tests.tools.test_execution:Weather"] * 2)
