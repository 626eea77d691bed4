"""The multitool env: determinism, the split, each tool, the scripted solver and the 0/1 reward."""

from __future__ import annotations

import asyncio
import json

import pytest

from rltrain.envs import ENVIRONMENTS, make_env
from rltrain.envs.multitool import (
    TEMPLATES,
    MultiToolEnv,
    all_tasks,
    answer_correct,
    solve,
    solve_messages,
    solver_turn,
)
from rltrain.tools.base import Tool, ToolError


@pytest.fixture
def env() -> MultiToolEnv:
    return make_env("multitool", {})


def run(env: MultiToolEnv, name: str, **arguments) -> dict:
    tool = next(t for t in env.tools() if t.name == name)
    return json.loads(asyncio.run(tool.execute(arguments, env)).observation)


def test_registered_with_class_attributes() -> None:
    cls = ENVIRONMENTS.get("multitool")
    assert cls.max_turns == 8 and cls.unoffered_tool == "error" and cls.reward_fn == "turn_rewards"


def test_tasks_are_deterministic_and_seeded(env: MultiToolEnv) -> None:
    first = [t.task_id for t in env.tasks("train", 20, seed=3)]
    assert first == [t.task_id for t in make_env("multitool", {}).tasks("train", 20, seed=3)]
    assert first != [t.task_id for t in env.tasks("train", 20, seed=4)]
    test = env.tasks("test", 50, seed=0)
    assert len({t.task_id for t in test}) == 50  # no repeats in evaluation


def test_split_is_by_template_and_disjoint() -> None:
    train, test = all_tasks("train"), all_tasks("test")
    assert not {t.task_id for t in train} & {t.task_id for t in test}
    assert not {t.data["question"] for t in train} & {t.data["question"] for t in test}
    for kind, per_split in TEMPLATES.items():
        assert not set(per_split["train"]) & set(per_split["test"]), kind
    assert {t.data["kind"] for t in test} == set(TEMPLATES)  # every kind is evaluated


def test_tools_offered_with_schemas(env: MultiToolEnv) -> None:
    tools = env.tools()
    assert [t.name for t in tools] == ["lookup", "convert", "calculate"]
    assert all(isinstance(t, Tool) and t.schema()["function"]["parameters"]["required"] for t in tools)
    task = env.tasks("test", 1, seed=0)[0]
    assert task.data["tools"] == [t.schema() for t in tools]


def test_lookup(env: MultiToolEnv) -> None:
    assert run(env, "lookup", entity="mount  arvel", attribute="height") == {
        "entity": "Mount Arvel", "attribute": "height", "value": 4321, "unit": "m"}
    with pytest.raises(ToolError, match="no entity named 'Mount Nowhere'") as err:
        run(env, "lookup", entity="Mount Nowhere", attribute="height")
    assert err.value.kind == "not_found"
    with pytest.raises(ToolError, match="has no attribute 'mass'; it has height"):
        run(env, "lookup", entity="Mount Arvel", attribute="mass")


def test_convert(env: MultiToolEnv) -> None:
    # 1000 m / 0.3048 m per ft = 3280.839895 ft; 1 mi = 1609.344 m; 1 t = 1000 / 0.45359237 lb = 2204.622622 lb
    assert run(env, "convert", value=1000, from_unit="m", to_unit="ft")["result"] == pytest.approx(3280.839895)
    assert run(env, "convert", value=1, from_unit="mi", to_unit="km")["result"] == 1.609344
    assert run(env, "convert", value=1, from_unit="t", to_unit="lb")["result"] == pytest.approx(2204.622622)
    with pytest.raises(ToolError, match="cannot convert kg .mass. to ft .length."):
        run(env, "convert", value=1, from_unit="kg", to_unit="ft")
    with pytest.raises(ToolError, match="unknown unit 'yards'"):
        run(env, "convert", value=1, from_unit="yards", to_unit="m")
    with pytest.raises(ToolError, match="'value' must be a number, got \"5\""):
        run(env, "convert", value="5", from_unit="m", to_unit="ft")


def test_calculate(env: MultiToolEnv) -> None:
    assert run(env, "calculate", expression="(4321 - 3876) * 2 / 4")["result"] == 222.5
    assert run(env, "calculate", expression="-1,000 + 0.5")["result"] == -999.5
    for bad in ("__import__('os')", "2 ** 8", "1 +", "1 / 0"):
        with pytest.raises(ToolError):
            run(env, "calculate", expression=bad)


def test_reward_on_final_answer(env: MultiToolEnv) -> None:
    task = next(t for t in all_tasks("train") if t.task_id == "mt-train-convert0-MountArvel-height-ft")
    assert task.data["answer"] == pytest.approx(4321 / 0.3048)  # 14176.509186...
    env.reset(task)
    right = env.step("It is 14,176.5 feet.")
    assert right.reward == 1.0 and right.terminated and right.observation is None
    assert env.step("The answer is 14176.51").reward == 1.0
    assert env.step("Roughly 14000 feet.").reward == 0.0  # 1.2 % off
    assert env.step("I do not know.").reward == 0.0
    assert answer_correct("first 5, then 0.004", 0.0) and not answer_correct("0.02", 0.0)


def test_ground_truth_sequences(env: MultiToolEnv) -> None:
    """difference and sum have two valid orders (calculate then convert, or convert both then calculate)."""
    task = next(t for t in all_tasks("test") if t.data["kind"] == "difference")
    first, second = task.data["ground_truth"]
    assert [c["name"] for c in first] == ["lookup", "lookup", "calculate", "convert"]
    assert [c["name"] for c in second] == ["lookup", "lookup", "convert", "convert", "calculate"]
    assert len(next(t for t in all_tasks("test") if t.data["kind"] == "convert").data["ground_truth"]) == 1


@pytest.mark.parametrize("split", ["train", "test"])
def test_scripted_solver_is_exact(env: MultiToolEnv, split: str) -> None:
    tasks = all_tasks(split)
    rewards = [solve_messages(env, task)[1] for task in tasks]
    assert sum(rewards) == len(tasks)


def test_solver_acts_on_what_the_agent_sees(env: MultiToolEnv) -> None:
    """The demonstration: parallel lookups in one message, one tool message per call, a plain-text answer."""
    task = next(t for t in all_tasks("test") if t.data["kind"] == "sum")
    messages = solve(env, task)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool", "assistant", "tool",
                                             "assistant", "tool", "assistant"]
    assert messages[2]["content"].count("<tool_call>") == 2 and "<tool_call>" not in messages[-1]["content"]
    # only the visible conversation drives the solver: the same messages give the same next turn
    assert solver_turn(messages[:5]) == messages[5]["content"]


def test_agent_loop_records_valid_multi_call_turns(embedded_model) -> None:
    """The real agent loop (canonical tool template, parser, execution) on the solver's replies, through a scripted
    engine (no model can be relied on to write valid calls in a unit test): parallel calls are executed and
    recorded, the answer scores 1, the tokens re-render exactly, and SpecTool finds nothing wrong."""
    from transformers import AutoTokenizer

    from rewards.toolcall import records_from_trajectory, spectool_metrics
    from rltrain.agent import ChatRenderer, run_episode
    from rltrain.engines.base import Sampling
    from tests.test_agent import ScriptedEngine

    renderer = ChatRenderer(AutoTokenizer.from_pretrained(embedded_model))
    env = make_env("multitool", {})
    task = next(t for t in all_tasks("test") if t.data["kind"] == "difference")
    replies = [m["content"] for m in solve(env, task) if m["role"] == "assistant"]
    traj = asyncio.run(run_episode(ScriptedEngine(renderer, replies), env, renderer, task, env_name="multitool", group_id=0,
                                   sampling=Sampling(256), max_turns=env.max_turns, max_model_len=2048))
    assert not traj.failed and traj.token_drift is None
    assert traj.turn_rewards[-1] == 1.0 and len(traj.turn_boundaries) == 4
    first_turn = [r for r in traj.tool_records if r["turn"] == 0]
    assert [(r["name"], r["error"]) for r in first_turn] == [("lookup", None), ("lookup", None)]
    assert [r["name"] for r in traj.tool_records] == ["lookup", "lookup", "calculate", "convert"]
    assert len(records_from_trajectory(traj, ["lookup", "convert", "calculate"])) == 4
    metrics = spectool_metrics([traj])
    assert metrics["spectool/clean_traj_rate"] == 1.0 and metrics["spectool/IAC_traj_rate"] == 0.0
