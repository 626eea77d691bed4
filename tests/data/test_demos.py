"""Tests for rltrain/data/demos.py: scripted demonstrations are played for real, succeed, use the canonical tool
call, and never come from held-out tasks or templates."""

import re

from rltrain.data.demos import function_gym_demos, gym_demos, multitool_demos, word_problem_demos
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
