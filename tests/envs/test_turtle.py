"""TurtleGym's rules (spec §1.5): Yes/No/Maybe answers; rubric-judged stories, improvement-only reward."""

from __future__ import annotations

import json

import pytest

from rltrain.envs import make_env
from rltrain.types import Task
from tests.envs.conftest import papers_rule

# The spec's example weights, 0.5 / 0.2 / 0.2 / 0.1.
STORY = Task("turtle-test", {
    "id": "turtle-test", "title": "T", "surface": "A man laughs at a funeral.", "bottom": "It was a prank funeral.",
    "evaluation_criteria": [{"statement": f"S{i}", "weight": w, "facts": [f"k{i}"]}
                            for i, w in enumerate((0.5, 0.2, 0.2, 0.1))]})


def judged(*scores: float) -> str:
    return "```json\n" + json.dumps({"scores": [{"statement": "s", "thought": "t", "score": s} for s in scores],
                                     "feedback": "secret words from the bottom"}) + "\n```"


def test_improvement_only_arithmetic(scripted_user, start_gym) -> None:
    """score = sum w*j; reward = max(0, score - best); ends at score >= 1.0 (hand-computed)."""
    user = scripted_user(judged(1, 0.5, 0, 0), judged(1, 0.5, 0.5, 1), judged(0.5, 0, 0, 0), judged(1, 1, 1, 1))
    env = start_gym("turtle", user, STORY)
    steps = [env.step("[answer] my story") for _ in range(4)]
    assert [s.reward for s in steps] == pytest.approx([0.6, 0.2, 0.0, 0.2])  # 0.5+0.1; 0.8-0.6; 0.25<0.8; 1.0-0.8
    assert [s.info["score"] for s in steps] == pytest.approx([0.6, 0.8, 0.25, 1.0])
    assert [s.terminated for s in steps] == [False, False, False, True]  # 0.5+0.2+0.2+0.1 reaches 1.0 exactly
    assert sum(s.reward for s in steps) == pytest.approx(1.0)


def test_feedback_lists_only_fully_covered_statements(scripted_user, start_gym) -> None:
    env = start_gym("turtle", scripted_user(judged(1, 0.5, 0, 1), judged(0.5, 0, 0, 0)), STORY)
    feedback = env.step("[answer] story").observation
    assert "S0: Covered" in feedback and "S3: Covered" in feedback and "S1" not in feedback and "S2" not in feedback
    assert "secret" not in feedback and "prank" not in feedback  # never the judge's words or the truth
    assert "does not cover" in env.step("[answer] story").observation


def test_success_threshold(scripted_user, start_gym) -> None:
    env = start_gym("turtle", scripted_user(judged(1, 0.5, 0, 0)), STORY, success_threshold=0.6)
    assert env.step("[answer] story").terminated


def test_rules_user(rules_user, start_gym) -> None:
    """Rules: questions answered from the story's facts; 1.0 per criterion whose fact the story states (issue 17)."""
    env = start_gym("turtle", rules_user, "turtle-the-elevator")  # weights 0.5 short / 0.3 reach / 0.2 umbrella
    assert env.step("[action] Is the man short?").observation == "Yes"
    assert env.step("[action] Is he afraid of elevators?").observation == "No"
    assert env.step("[action] Is he afraid of heights?").observation == "Maybe"  # not in the facts: cannot answer
    partial = env.step("[answer] He is short. He cannot reach the button for the 10th floor.")  # 0.5 + 0.3
    assert partial.reward == pytest.approx(0.8) and not partial.terminated
    full = env.step("[answer] The man is short, he can't reach the button for the 10th floor, "
                    "and he uses his umbrella to press the button.")
    assert full.reward == pytest.approx(0.2) and full.terminated
    assert [c["rule"] for c in env.user_calls] == ["turtle.question"] * 3 + ["turtle.answer"] * 2


def test_judge_sees_rubric_and_bottom(scripted_user, start_gym) -> None:
    user = scripted_user(judged(0, 0, 0, 0))
    env = start_gym("turtle", user, STORY)
    env.step("[answer] a story")
    (request,) = user.requests
    assert request.hat == "judge" and "prank funeral" in request.system and "4. S3" in request.system
    assert request.messages == ({"role": "user", "content": "a story"},)


@pytest.mark.parametrize("reply", [judged(1, 0.5, 0), judged(1, 0.7, 0, 0), '{"scores": "all good"}', "Score: 1.0"])
def test_malformed_rubric_is_zero_and_keeps_best(reply: str, scripted_user, start_gym) -> None:
    """Wrong number of scores, a score off {0, 0.5, 1}, no list, no JSON: reward 0, judge_error, best unchanged."""
    env = papers_rule(start_gym("turtle", scripted_user(judged(0.5, 0, 0, 0), reply, judged(1, 0, 0, 0)), STORY))
    assert env.step("[answer] a").reward == pytest.approx(0.25)
    bad = env.step("[answer] b")
    assert bad.reward == 0 and "turtle.answer" in bad.info["judge_error"] and not bad.terminated
    assert env.step("[answer] c").reward == pytest.approx(0.25)  # 0.5 - 0.25: the failed turn set no best


def test_data_weights_sum_to_one() -> None:
    env = make_env("turtle", {})
    for task in env.tasks("train", 20, 0) + env.tasks("test", 5, 0):
        criteria = task.data["evaluation_criteria"]
        assert sum(c["weight"] for c in criteria) == pytest.approx(1.0), task.task_id
        assert all(c["statement"] and c["facts"] for c in criteria)
        assert task.data["bottom"] not in task.data["surface"]
