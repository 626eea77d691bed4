"""IntentionGym's rules (spec §1.5): evaluator + responder per question; importance reward minus 0.2*(k-1)."""

from __future__ import annotations

import json

import pytest

from rltrain.envs.intention import CANNOT_ANSWER, IMPORTANCE_REWARD
from rltrain.types import Task
from tests.envs.conftest import papers_rule

JAPAN = "intention-00-help-me-plan-a-trip-to"  # details: dates (3), budget (3), interests (2), accommodation (1)
EVALUATOR = {"intention.evaluate"}


def covered(*indices: int, related: bool = True) -> str:
    return "```json\n" + json.dumps({"thought": "t", "is_task_related": related, "covered_detail_indices": list(indices)}) + "\n```"


def test_importance_and_multi_detail_penalty(scripted_user, start_gym) -> None:
    """1.0 for a HIGH detail; HIGH-less pair (2, 1) -> 0.7 - 0.2; none -> 0; the last detail ends the episode."""
    user = scripted_user(covered(1), covered(2, 3), covered(related=False), covered(1), rules=EVALUATOR)
    env = start_gym("intention", user, JAPAN)
    steps = [env.step(f"[action] question {i}") for i in range(4)]
    # After covering detail 1 the rest are renumbered: 1 budget (3), 2 interests (2), 3 accommodation (1).
    assert [s.reward for s in steps] == pytest.approx([1.0, 0.5, 0.0, 1.0])
    assert [s.info["remaining"] for s in steps] == [3, 1, 1, 0]
    assert steps[1].info["covered"] == ["They love food and temples, not nightlife", "They prefer traditional inns"]
    assert [s.terminated for s in steps] == [False, False, False, True]


def test_penalty_floors_at_zero_and_is_configurable(scripted_user, start_gym) -> None:
    low = Task("intention-low", {"id": "intention-low", "task": "Help.", "category": "misc", "missing_details": [
        {"description": f"d{i}", "importance": 1, "inquiry": "?", "keywords": [f"k{i}"]} for i in range(4)]})
    env = start_gym("intention", scripted_user(covered(1, 2, 3), rules=EVALUATOR), low)
    assert env.step("[action] everything?").reward == 0.0  # 0.4 - 0.2*2 = 0
    env = start_gym("intention", scripted_user(covered(1, 2), rules=EVALUATOR), low, multi_detail_penalty=0.1)
    assert env.step("[action] two things?").reward == pytest.approx(0.3)  # 0.4 - 0.1
    assert IMPORTANCE_REWARD == {3: 1.0, 2: 0.7, 1: 0.4}


def test_what_evaluator_and_responder_see(scripted_user, start_gym) -> None:
    """Evaluator: remaining details with LOW/MEDIUM/HIGH + last 3 Q/A. Responder: never the hidden list."""
    user = scripted_user(*[covered() for _ in range(5)], rules=EVALUATOR)
    env = start_gym("intention", user, JAPAN)
    for i in range(5):
        env.step(f"[action] q{i}")
    evaluations = [r for r in user.requests if r.rule == "intention.evaluate"]
    responses = [r for r in user.requests if r.rule == "intention.respond"]
    assert len(evaluations) == len(responses) == 5 and [r.rule for r in user.requests[:2]] == ["intention.evaluate", "intention.respond"]
    last = evaluations[-1]
    assert last.hat == "judge" and "1. [HIGH] The trip is for two weeks in April" in last.system
    assert "4. [LOW] They prefer traditional inns" in last.system and "3. [MEDIUM]" in last.system
    assert "Assistant: q1" in last.system and "Assistant: q3" in last.system and "Assistant: q0" not in last.system
    reply = responses[-1]
    shown = reply.system + json.dumps(reply.messages)
    assert reply.hat == "user" and "plan a trip to Japan" in shown
    assert not any(d["description"] in shown for d in env.data["missing_details"])
    assert [m["content"] for m in reply.messages if m["role"] == "user"] == ["q1", "q2", "q3", "q4"]
    assert [c["key"] for c in env.user_calls] == [f"t#0/{i}" for i in range(10)]


def test_rules_user(rules_user, start_gym) -> None:
    """Rules (issue 17): a question covers a detail only when it is that detail's question; the responder reveals it."""
    env = start_gym("intention", rules_user, JAPAN)
    budget = env.step("[action] What's your budget?")
    assert budget.reward == 1.0 and "3000 dollars" in budget.observation
    two = env.step("[action] What do you enjoy doing on holiday, and what kind of accommodation do you prefer?")
    assert two.reward == 0 and two.observation == CANNOT_ANSWER  # compound: covers nothing
    off = env.step("[action] budget dates hotel interests accommodation enjoy")  # keywords: covers nothing
    assert off.reward == 0 and off.observation == CANNOT_ANSWER
    assert env.step("[action] What do you enjoy doing on holiday?").reward == pytest.approx(0.7)
    assert env.step("[action] What kind of accommodation do you prefer?").reward == pytest.approx(0.4)
    last = env.step("[action] How long will you travel, and when?")
    assert last.reward == 1.0 and last.terminated


@pytest.mark.parametrize("reply", [covered(5), covered(0), '{"is_task_related": "yes", "covered_detail_indices": [1]}',
                                   '{"covered_detail_indices": "1"}', "Detail 1 is covered."])
def test_malformed_evaluation(reply: str, scripted_user, start_gym) -> None:
    """Out-of-range index, non-bool, non-list, no JSON: reward 0, nothing removed, judge_error; the user still answers."""
    env = papers_rule(start_gym("intention", scripted_user(reply, rules=EVALUATOR), JAPAN))
    result = env.step("[action] What is your budget?")
    assert result.reward == 0 and result.info["remaining"] == 4 and "intention.evaluate" in result.info["judge_error"]
    assert result.observation and [c["rule"] for c in env.user_calls] == ["intention.evaluate", "intention.respond"]


def test_answer_is_not_offered(rules_user, start_gym) -> None:
    env = start_gym("intention", rules_user, JAPAN)
    assert "Format wrong" in env.step("[answer] Here is your plan").observation and not rules_user.requests
