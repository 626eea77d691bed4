"""PersuadeGym's rules (spec §1.5): reward = clamp(idx(new) - idx(prev), 0, 6) / 6 on the 7-point stance scale."""

from __future__ import annotations

import json

import pytest

from rltrain.envs.persuade import STANCES, stance_index
from tests.envs.conftest import papers_rule

HOMEWORK = "persuade-homework-should-be-banned-in"


def said(stance: str, response: str = "Hmm.") -> str:
    return "```json\n" + json.dumps({"thought": "t", "response": response, "stance": stance}) + "\n```"


def test_stance_delta_rewards(scripted_user, start_gym) -> None:
    """SA -> PA (+2), back to A (0), on to N (+2 again: the spec's noted oscillation), then SD (+3, ends)."""
    user = scripted_user(said("Partly Agree"), said("A"), said("neutral"), said("SD", "You win."))
    env = start_gym("persuade", user, HOMEWORK)
    steps = [env.step(f"[{verb}] argument {i}") for i, verb in enumerate(("action", "answer", "action", "answer"))]
    assert [s.reward for s in steps] == pytest.approx([2 / 6, 0.0, 2 / 6, 3 / 6])
    assert [s.info["stance"] for s in steps] == ["Partly Agree", "Agree", "Neutral", "Strongly Disagree"]
    assert [s.terminated for s in steps] == [False, False, False, True] and steps[-1].observation == "You win."


def test_whole_scale_in_one_argument(scripted_user, start_gym) -> None:
    env = start_gym("persuade", scripted_user(said("Strongly Disagree")), HOMEWORK)
    result = env.step("[action] one devastating argument")
    assert result.reward == pytest.approx(1.0) and result.terminated


def test_persuadee_sees_the_debate(scripted_user, start_gym) -> None:
    user = scripted_user(said("Agree", "Maybe."), said("Agree"))
    env = start_gym("persuade", user, HOMEWORK)
    env.step("[action] first")
    env.step("[action] second")
    first, second = user.requests
    assert "Current stance on the claim: Strongly Agree".lower() in first.system.lower()
    assert "Your current stance on the claim: Agree." in second.system and "free time" in second.system
    assert second.messages == ({"role": "user", "content": "first"}, {"role": "assistant", "content": "Maybe."},
                               {"role": "user", "content": "second"})


def test_rules_user_counterpoints(rules_user, start_gym) -> None:
    """Rules (issue 17): two levels per counterpoint stated alone for the first time; three reach SD."""
    env = start_gym("persuade", rules_user, HOMEWORK)
    habits = env.step("[action] Homework builds study habits and discipline.")
    assert habits.reward == pytest.approx(2 / 6) and habits.info["stance"] == "Partly Agree"
    again = env.step("[action] Again: homework builds study habits and discipline!")  # nothing new
    assert again.reward == 0 and again.info["stance"] == "Partly Agree" and "not convinced" in again.observation
    denied = env.step("[action] Practice at home does not improve retention of what was learned.")  # negated
    assert denied.reward == 0
    both = env.step("[answer] Practice at home improves retention of what was learned. "
                    "Homework lets parents see what their children learn.")  # two points: a list, nothing
    assert both.reward == 0 and both.info["stance"] == "Partly Agree"
    practice = env.step("[answer] Practice at home improves retention of what was learned.")
    assert practice.reward == pytest.approx(2 / 6) and practice.info["stance"] == "Partly Disagree"
    last = env.step("[answer] Homework lets parents see what their children learn.")
    assert last.reward == pytest.approx(2 / 6) and last.terminated and last.info["stance"] == "Strongly Disagree"


@pytest.mark.parametrize("reply", [said("Somewhat agree"), '{"response": "ok"}', "I now disagree."])
def test_malformed_stance(reply: str, scripted_user, start_gym) -> None:
    """A stance off the scale: reward 0, judge_error, stance unchanged (the next move counts from it)."""
    env = papers_rule(start_gym("persuade", scripted_user(reply, said("Neutral")), HOMEWORK))
    bad = env.step("[action] argument")
    assert bad.reward == 0 and "persuade.argue" in bad.info["judge_error"]
    assert env.step("[action] argument").reward == pytest.approx(3 / 6)


def test_stance_index() -> None:
    assert [stance_index(s) for s in STANCES] == list(range(7))
    assert stance_index(" pd ") == 4
