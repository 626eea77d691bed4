"""Multi-call messages through the agent loop, on a SCRIPTED engine (fixed replies; the loop's logic is under test).

Issue 12: at least one episode carries valid multi-call records; all results of a message are appended as one
block (checked by the token-drift re-rendering under Qwen2.5's own template and under the canonical one).
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from rltrain.agent import ChatRenderer, ToolSettings, run_episode
from rltrain.engines.base import Sampling
from rltrain.envs import make_env
from rltrain.envs.base import StepResult, TextEnv
from rltrain.tools import Tool, ToolResult
from rltrain.tools.metrics import tool_call_metrics
from rltrain.types import Task, Trajectory
from tests.test_agent import ScriptedEngine

QWEN_TEMPLATE = (Path(__file__).parent / "fixtures" / "qwen2_5_chat_template.jinja").read_text()


class Lookup(Tool):
    name = "lookup"
    description = "The price of an item."
    parameters = {"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]}
    concurrency_safe = True

    async def execute(self, arguments: dict[str, Any], episode_state: Shop) -> ToolResult:
        return ToolResult(f"{arguments['item']} costs {episode_state.prices[arguments['item']]}")


class Buy(Tool):
    name = "buy"
    description = "Buy an item; the episode ends."
    parameters = {"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]}

    async def execute(self, arguments: dict[str, Any], episode_state: Shop) -> ToolResult:
        right = arguments["item"] == min(episode_state.prices, key=episode_state.prices.get)
        return ToolResult("bought", reward=1.0 if right else 0.0, terminated=True)


class Shop(TextEnv):
    """Buy the cheapest item; two tools."""

    max_turns = 4
    max_steps = 6

    def __init__(self, unoffered: str = "error", malformed: str = "end") -> None:
        self.unoffered_tool, self.malformed_call = unoffered, malformed  # type: ignore[assignment]
        self.prices = {"tea": 3, "milk": 2}

    def tools(self) -> list[Tool]:
        return [Lookup(), Buy()]

    def tasks(self, split, count, seed):
        return [Task("shop", {})]

    def reset(self, task):
        return [{"role": "system", "content": "Buy the cheapest item."}, {"role": "user", "content": "Tea or milk?"}], {}

    def step(self, action):
        return StepResult("Please use the tools.")


def call(name: str, **arguments: Any) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@pytest.fixture(scope="module", params=["canonical", "qwen"])
def renderer(request, embedded_model: Path) -> ChatRenderer:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    if request.param == "qwen":
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.chat_template = QWEN_TEMPLATE
    return ChatRenderer(tokenizer)


def play(renderer: ChatRenderer, replies: list[str], env: TextEnv | None = None, max_turns: int = 4) -> Trajectory:
    return asyncio.run(run_episode(ScriptedEngine(renderer, replies), env or Shop(), renderer, Task("shop", {}),
                                   env_name="shop", group_id=0, sampling=Sampling(256), max_turns=max_turns,
                                   max_model_len=2048, tools=ToolSettings(parser="permissive")))


def test_every_call_of_a_message_runs_and_leaves_a_record(renderer: ChatRenderer) -> None:
    traj = play(renderer, [call("lookup", item="tea") + "\n" + call("lookup", item="milk"), call("buy", item="milk")])
    assert [(r["turn"], r["name"], r["arguments"], r["error"]) for r in traj.tool_records] == [
        (0, "lookup", {"item": "tea"}, None), (0, "lookup", {"item": "milk"}, None), (1, "buy", {"item": "milk"}, None)]
    assert traj.tool_calls == 3 and traj.turn_rewards == [0.0, 1.0] and not traj.failed
    assert [m["role"] for m in traj.messages] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert traj.messages[3:5] == [{"role": "tool", "content": "tea costs 3"}, {"role": "tool", "content": "milk costs 2"}]
    assert traj.token_drift is None  # the one-block append equals one rendering of the whole conversation
    assert tool_call_metrics([traj])["tools/calls_per_episode"] == 3.0


def test_unoffered_tool_in_the_loop_both_ways(renderer: ChatRenderer) -> None:
    message = call("lookup", item="tea") + call("teleport", to="shop") + call("lookup", item="milk")
    kept = play(renderer, [message, call("buy", item="tea")], Shop(unoffered="error"))
    assert [r["error"] for r in kept.tool_records] == [None, "unknown_tool", None, None] and kept.turn_rewards == [0.0, 0.0]
    assert "no tool 'teleport' here" in kept.messages[4]["content"] and kept.token_drift is None
    ended = play(renderer, [message], Shop(unoffered="end"))
    assert ended.finish_reason == "unoffered_tool" and ended.format_error.startswith("unknown_tool: 'teleport'")
    assert [r["error"] for r in ended.tool_records] == [None, "unknown_tool", "not_run"] and not ended.failed


def test_unreadable_calls_end_or_come_back_as_observations(renderer: ChatRenderer) -> None:
    broken = '<tool_call>{"name": "buy", "arguments": {"item": </tool_call>'
    ended = play(renderer, [broken], Shop(malformed="end"))
    assert ended.finish_reason == "format_error" and ended.format_error.startswith("IFE: the <tool_call> block is not valid JSON")
    assert [(r["error"], r["format"]) for r in ended.tool_records] == [("IFE", "tag")]
    told = play(renderer, [broken, call("buy", item="milk")], Shop(malformed="error"))
    assert told.messages[3]["content"].startswith("Error: the tool call could not be read") and told.turn_rewards == [0.0, 1.0]
    metrics = tool_call_metrics([ended, told])
    assert metrics["tools/parse_rate/tag"] == pytest.approx(1 / 3) and metrics["tools/calls_per_episode"] == 0.5


def test_each_call_counts_toward_the_step_limit(renderer: ChatRenderer) -> None:
    lookups = "".join(call("lookup", item="tea") for _ in range(4))
    traj = play(renderer, [lookups, lookups])  # Shop.max_steps = 6
    assert traj.finish_reason == "max_steps" and traj.tool_calls == 6
    assert [r["error"] for r in traj.tool_records[4:]] == [None, None, "not_run", "not_run"]


def test_userrl_gym_reads_qwen_coder_bare_json_and_travel_asks_for_thought(renderer: ChatRenderer) -> None:
    env = make_env("function_gym", {})
    task = env.tasks("test", 1, seed=0)[0]
    bare = json.dumps({"name": "interact_with_env", "arguments": {"choice": "search", "content": "test"}})
    fenced = "```json\n" + json.dumps({"name": "interact_with_env", "arguments": {"choice": "answer", "content": str(task.data["answer"])}}) + "\n```"
    traj = asyncio.run(run_episode(ScriptedEngine(renderer, [bare, fenced]), env, renderer, task, env_name="function_gym",
                                   group_id=0, sampling=Sampling(96), max_turns=4, max_model_len=2048))
    assert [r["format"] for r in traj.tool_records] == ["json", "fence"] and traj.turn_rewards == [0.0, 1.0]
    schema = make_env("travel", {}).tools()[0].schema()["function"]["parameters"]
    assert schema["required"] == ["thought", "choice", "content"] and list(schema["properties"])[0] == "thought"
    assert make_env("telepathy", {}).tools()[0].schema()["function"]["parameters"]["required"] == ["choice", "content"]


class Session(Lookup):
    """Opens a per-episode session; fails to open when the shop is closed."""

    events: list[str] = []

    async def create(self, episode_state: Shop) -> None:
        if episode_state.prices.get("closed"):
            raise ConnectionError("shop closed")
        Session.events.append("create")

    async def release(self, episode_state: Shop) -> None:
        Session.events.append("release")


class SessionShop(Shop):
    def tools(self) -> list[Tool]:
        return [Buy(), Session()]


def test_create_and_release_bracket_the_episode_and_a_failed_create_is_a_failure(renderer: ChatRenderer) -> None:
    Session.events.clear()
    traj = play(renderer, [call("buy", item="milk")], SessionShop())
    assert Session.events == ["create", "release"] and traj.turn_rewards == [1.0]
    closed = SessionShop()
    closed.prices["closed"] = 1
    failed = play(renderer, [], closed)
    assert failed.failure == "tool 'lookup' create() for shop raised ConnectionError: shop closed" and not failed.turn_rewards
