"""Tests for rltrain/data/demos.py: scripted demonstrations are played for real, succeed, use the canonical tool
call, and never come from held-out tasks or templates."""

import re

from rltrain.config import load_config
from rltrain.data.demos import function_gym_demos, gym_demos, multitool_demos, router_demos, word_problem_demos
from rltrain.envs.router import RouterEnv
from rltrain.envs.word_problems import _TEST, WordProblemsEnv


def test_function_gym_demos_succeed_on_train_tasks_without_held_out_shapes():
    rows, counts = function_gym_demos(12)
    assert counts["kept"] == counts["played"] == len(rows) > 0
    assert all("-max-" not in r["task_id"] for r in rows)  # the held-out rule shape
    first = rows[0]["conversation"][1]
    assert first["tool_calls"][0]["function"]["name"] == "interact_with_env"
    assert first["tool_calls"][0]["function"]["arguments"]["choice"] == "action"
    last_call = [m for m in rows[0]["conversation"] if m["role"] == "assistant"][-1]["tool_calls"][0]["function"]
    assert last_call["arguments"]["choice"] == "answer" and rows[0]["reward"] == 1.0


def test_word_problem_rationales_end_with_the_gold_answer_and_skip_test_templates():
    rows, counts = word_problem_demos(30)
    assert counts["kept"] == 30
    test_starts = {t.split("{")[0] for t, _ in _TEST}
    for row in rows:
        question = row["conversation"][0]["content"]
        answer = row["conversation"][1]["content"]
        gold = next(t.data["answer"] for t in WordProblemsEnv().tasks("train", 30, 0) if t.task_id == row["task_id"])
        assert re.search(rf"The answer is {gold}\.$", answer), answer
        assert not any(question.startswith(s) for s in test_starts)


def test_judged_gym_players_earn_reward_with_the_rules_user():
    for gym in ("telepathy", "turtle", "persuade", "intention"):
        rows, counts = gym_demos(gym, 3)
        assert counts["kept"] == 3, (gym, counts)
        assert all(r["reward"] > 0 for r in rows)
        tool = [m for m in rows[0]["conversation"] if m["role"] == "tool"][0]
        assert tool["tool_call_id"] == "call_0_0" and "Reward:" in tool["content"]


def test_multitool_solver_demos_parse_its_calls():
    rows, counts = multitool_demos(3)
    assert counts["kept"] == 3
    calls = rows[0]["conversation"][1]["tool_calls"]
    assert calls and "<tool_call>" not in rows[0]["conversation"][1]["content"]


def test_router_demos_take_each_action_and_select_what_they_called():
    """Issue 14's cold start: each routing action appears, calls are answered by select_response of the same tool,
    simple queries are answered directly, and the demos offer exactly the RL config's tools."""
    kwargs = dict(load_config("launch/configs/router.yaml").env.kwargs)
    rows, counts = router_demos(60, kwargs)
    assert counts["kept"] == len(rows) == 60
    assert counts["direct"] > 5 and counts["smollm2-135m-instruct"] > 5 and counts["qwen2.5-coder-0.5b-instruct"] > 5
    env = RouterEnv(**kwargs)
    env.reset(env.tasks("train", 1, 0)[0])
    assert [t["name"] for t in rows[0]["tools"]] == [t.schema()["function"]["name"] for t in env.tools()]
    for row in rows:
        turns = [m for m in row["conversation"] if m["role"] == "assistant"]
        if row["task_id"].startswith("simple-"):
            assert len(turns) == 1 and not turns[0].get("tool_calls")
        elif len(turns) == 2:
            called = turns[0]["tool_calls"][0]["function"]["name"]
            selected = turns[1]["tool_calls"][0]["function"]
            assert called.startswith("call_") and selected == {"name": "select_response",
                                                                "arguments": {"model_call_name": called}}
        else:
            assert len(turns) == 1 and re.search(r"The answer is \d+\.$", turns[0]["content"])
