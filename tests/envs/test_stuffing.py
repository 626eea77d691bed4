"""Keyword stuffing scores 0 on the rules backend, while a legitimate solution scores > 0 (issue 17).

The issue's exploits: a Telepathy guess listing every entity solved 6/6 test tasks; one Persuade argument of all
the counterpoint keywords reached "Strongly Disagree" on 5/5; a Turtle "story" of the keywords scored 1.0 on
5/5. Each is replayed here on every TEST task of the gym through the gym itself, next to a legitimate play.
"""

from __future__ import annotations

import pytest

from rltrain.envs import make_env
from rltrain.envs.judged import load_tasks
from tests.envs.conftest import RulesUser


def play(name: str, task, moves: list[str]) -> float:
    """The summed turn reward of `moves` in one episode of gym `name` on `task`, against the rules user."""
    env = make_env(name, {})
    env.bind_user(RulesUser(), f"{task.task_id}#0")
    env.reset(task)
    total = 0.0
    for move in moves:
        result = env.step(move)
        total += result.reward
        if result.terminated or result.truncated:
            break
    return total


@pytest.fixture(scope="module")
def telepathy_names() -> list[str]:
    return [t["target_entity"] for split in ("train", "test") for t in load_tasks("telepathy.json")[split]]


def _test_tasks(name: str) -> list:
    return make_env(name, {}).tasks("test", len(load_tasks(f"{name}.json")["test"]), 0)


def test_telepathy_guess_listing_every_entity_scores_zero(telepathy_names: list[str]) -> None:
    everything = ", ".join(telepathy_names)
    tasks = _test_tasks("telepathy")
    assert len(tasks) >= 50
    for task in tasks:
        entity = task.data["target_entity"]
        assert play("telepathy", task, [f"[answer] {everything}"]) == 0.0, task.task_id
        assert play("telepathy", task, [f"[answer] {entity} or {telepathy_names[0]}"]) == 0.0
        assert play("telepathy", task, [f"[answer] Is it {entity}?"]) == 1.0, task.task_id  # a legitimate guess


def test_turtle_keyword_story_and_candidate_list_score_zero() -> None:
    for task in _test_tasks("turtle"):
        facts = task.data["facts"]
        words = sorted({w for p in facts["true"] + facts["false"] for w in p.split()})
        assert play("turtle", task, [f"[answer] {' '.join(words)}"]) == 0.0, task.task_id  # a bag of keywords
        candidates = " ".join(f"{p}." for p in facts["true"] + facts["false"])  # every explanation, true or not
        assert play("turtle", task, [f"[answer] {candidates}"]) == 0.0, task.task_id
        hedged = " ".join(f"Maybe {p}." for p in facts["true"])
        assert play("turtle", task, [f"[answer] {hedged}"]) == 0.0, task.task_id
        assert play("turtle", task, [f"[answer] {task.data['solution']}"]) == pytest.approx(1.0), task.task_id
        assert play("turtle", task, [f"[answer] {task.data['bottom']}"]) > 0.0, task.task_id  # the truth, in prose


def test_persuade_keyword_argument_and_point_list_score_zero() -> None:
    for task in _test_tasks("persuade"):
        points = task.data["counterpoints"]
        bag = " ".join(k for p in points for k in p.get("keywords", []) + p["point"].split()[-2:])
        assert play("persuade", task, [f"[action] {bag}"] * 3) == 0.0, task.task_id
        listing = " ".join(f"{p['point'][0].upper()}{p['point'][1:]}." for p in points)
        assert play("persuade", task, [f"[action] {listing}"] * 3) == 0.0, task.task_id  # a list, not an argument
        legit = [f"[action] Consider this: {p['point']}." for p in points]
        assert play("persuade", task, legit) == pytest.approx(1.0), task.task_id  # one point per argument: SD


def test_intention_keyword_and_compound_questions_score_zero() -> None:
    for task in _test_tasks("intention"):
        details = task.data["missing_details"]
        bag = " ".join(w for d in details for w in d["inquiry"].rstrip("?").split())
        assert play("intention", task, [f"[action] {bag}?"]) == 0.0, task.task_id
        compound = " and ".join(d["inquiry"].rstrip("?") for d in details) + "?"
        assert play("intention", task, [f"[action] {compound}"]) == 0.0, task.task_id
        legit = [f"[action] {d['inquiry']}" for d in details]
        assert play("intention", task, legit) > 1.0, task.task_id
