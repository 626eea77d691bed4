"""TelepathyGym's rules (spec §1.5): Yes/No/Maybe answers with reward 0; judged guesses, improvement-only 1.0."""

from __future__ import annotations

import pytest

from rltrain.envs.telepathy import GUESS_SYSTEM
from tests.envs.conftest import papers_rule

YES = '```json\n{"thought": "match", "judgment": "Yes", "feedback": "You got it!"}\n```'
NO = '```json\n{"thought": "no", "judgment": "No", "feedback": "Not quite."}\n```'


def test_rules_user_plays_an_episode(rules_user, start_gym) -> None:
    """Rules: answers from the entity's facts (Maybe when undecided); a guess is right by its name or an alias."""
    env = start_gym("telepathy", rules_user, "telepathy-elephant")
    yes = env.step("[action] Does it have a trunk?")
    assert (yes.observation, yes.reward, yes.terminated) == ("Yes", 0.0, False)
    assert env.step("[action] Can it fly?").observation == "No"
    wrong = env.step("[answer] a rhinoceros")
    assert wrong.reward == 0.0 and not wrong.terminated and "Rhinoceros" not in wrong.observation
    right = env.step("[answer] It is an African Elephant!")
    assert right.reward == 1.0 and right.terminated
    # Every call is recorded under the bound episode, in order, with its rule and backend.
    assert [(c["key"], c["rule"], c["hat"], c["backend"]) for c in env.user_calls] == [
        ("t#0/0", "telepathy.question", "user", "rules"), ("t#0/1", "telepathy.question", "user", "rules"),
        ("t#0/2", "telepathy.guess", "judge", "rules"), ("t#0/3", "telepathy.guess", "judge", "rules")]


def test_guess_rule_needs_the_whole_name(rules_user, start_gym) -> None:
    env = start_gym("telepathy", rules_user, "telepathy-albert-einstein")
    assert env.step("[answer] Albert").reward == 0.0  # part of the name is no partial credit
    assert env.step("[answer] einstein").reward == 1.0  # an alias


def test_improvement_only(scripted_user, start_gym) -> None:
    """Score 1.0 for Yes, reward = max(0, score - best): a second correct guess earns nothing."""
    env = start_gym("telepathy", scripted_user(NO, YES, YES), "telepathy-elephant")
    rewards = [env.step("[answer] guess").reward for _ in range(3)]
    assert rewards == [0.0, 1.0, 0.0]


def test_maybe_and_judge_prompt(scripted_user, start_gym) -> None:
    user = scripted_user('{"thought": "unclear", "response": "maybe"}', NO)
    env = start_gym("telepathy", user, "telepathy-elephant")
    assert env.step("[action] Is it nice?").observation == "Maybe"  # canonical spelling
    assert env.step("[answer] a mouse").observation == "Not quite."
    question, guess = user.requests
    assert "Elephant" in question.system and question.messages[-1]["content"] == "Is it nice?"
    assert guess.hat == "judge" and guess.system == GUESS_SYSTEM.format(entity="Elephant")


@pytest.mark.parametrize("reply", ['{"response": "Definitely"}', '{"answer": "Yes"}', "Yes."])
def test_malformed_answer_to_question(reply: str, scripted_user, start_gym) -> None:
    env = papers_rule(start_gym("telepathy", scripted_user(reply), "telepathy-elephant"))
    result = env.step("[action] Is it big?")
    assert result.reward == 0 and "telepathy.question" in result.info["judge_error"]
    assert result.observation == "Unable to respond to your question right now."


@pytest.mark.parametrize("reply", ['{"judgment": "Partly", "feedback": "close"}', '```json\n{"judgment": Yes}\n```'])
def test_malformed_verdict_keeps_playing(reply: str, scripted_user, start_gym) -> None:
    env = papers_rule(start_gym("telepathy", scripted_user(reply, YES), "telepathy-elephant"))
    bad = env.step("[answer] an elephant")
    assert bad.reward == 0 and not bad.terminated and "telepathy.guess" in bad.info["judge_error"]
    good = env.step("[answer] an elephant")  # the judge error did not count as a best score
    assert good.reward == 1.0 and good.terminated and "judge_error" not in good.info
    assert env.judge_errors == 1
