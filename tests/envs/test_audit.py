"""The user-simulator audit (`rltrain.envs.audit`, issue 17): flags on hand-made spoiled episodes, none on clean
ones (the false-positive rate is measured on clean episodes played against the truthful rules users)."""

from __future__ import annotations

import json
import random

import pytest

from rltrain.envs import make_env
from rltrain.envs.audit import AuditingUser, Flag, audit_calls, audit_metrics, decidable_share, episode_weight
from rltrain.envs.judged import load_tasks
from rltrain.users import UserReply, UserRequest
from tests.envs.conftest import RulesUser


class Twisted(RulesUser):
    """The rules user with one spoiling edit applied to the replies of one rule."""

    def __init__(self, rule: str, edit) -> None:
        super().__init__()
        self.rule, self.edit = rule, edit

    async def respond(self, request: UserRequest) -> UserReply:
        reply = await super().respond(request)
        if request.rule != self.rule:
            return reply
        return UserReply(text=self.edit(json.loads(reply.text.strip("`json\n")), request), backend="liar")


def flip(value: dict, _request) -> str:
    value["response"] = {"Yes": "No", "No": "Yes"}.get(value["response"], value["response"])
    return json.dumps(value)


def all_tasks(name: str, split: str) -> list:
    """Every task of a split once (asking for exactly the split's size: no cycling, no extra copies)."""
    return make_env(name, {}).tasks(split, len(load_tasks(f"{name}.json")[split]), 0)


def episode(name: str, task_id: str, user, moves: list[str], persona: bool = False) -> list[Flag]:
    env = make_env(name, {})
    task = next(t for split in ("train", "test") for t in all_tasks(name, split) if t.task_id == task_id)
    audited = AuditingUser(user)
    env.bind_user(audited, f"{task_id}#0")
    env.reset(task)
    for move in moves:
        result = env.step(move)
        if result.terminated or result.truncated:
            break
    return audit_calls(audited.log, task.data, persona=persona)


def test_contradicting_user_is_flagged() -> None:
    flags = episode("telepathy", "telepathy-elephant", Twisted("telepathy.question", flip),
                    ["[action] Is it alive?", "[action] Is it a living creature?", "[action] Is it not an animal?"])
    assert [f.kind for f in flags] == ["contradiction", "contradiction"]  # the undecidable question is not checked
    assert "Is it alive?" in flags[0].detail
    turtle = episode("turtle", "turtle-albatross-soup", Twisted("turtle.question", flip), ["[action] Is the wife alive?"])
    assert [f.kind for f in turtle] == ["contradiction"]


def test_judge_rejecting_the_right_name_and_leaking_it_is_flagged() -> None:
    def reject_and_leak(value: dict, _request) -> str:
        return json.dumps({"thought": "", "judgment": "No", "feedback": "No, I was thinking of an elephant."})

    flags = episode("telepathy", "telepathy-elephant", Twisted("telepathy.guess", reject_and_leak), ["[answer] Elephant"])
    assert sorted(f.kind for f in flags) == ["contradiction", "leak"]
    wrong = episode("telepathy", "telepathy-elephant", Twisted("telepathy.guess", reject_and_leak), ["[answer] Rhino"])
    assert [f.kind for f in wrong] == ["leak"]


def test_evaluator_missing_the_asked_detail_is_flagged() -> None:
    def miss(value: dict, _request) -> str:
        return json.dumps({**value, "covered_detail_indices": []})

    task = all_tasks("intention", "train")[0]
    question = task.data["missing_details"][0]["inquiry"]
    flags = episode("intention", task.task_id, Twisted("intention.evaluate", miss), [f"[action] {question}"])
    assert [f.kind for f in flags] == ["contradiction"]


def test_persona_break_is_flagged_only_when_asked() -> None:
    def robot(value: dict, _request) -> str:
        return json.dumps({**value, "response": "As an AI language model, I have no opinion."})

    moves = ["[action] Homework builds study habits and discipline."]
    task_id = "persuade-homework-should-be-banned-in"
    assert episode("persuade", task_id, Twisted("persuade.argue", robot), moves) == []
    assert [f.kind for f in episode("persuade", task_id, Twisted("persuade.argue", robot), moves, persona=True)] == ["persona"]


def test_no_flags_on_clean_rules_episodes() -> None:
    """False-positive rate on clean episodes: every test task of the gyms, questions drawn from the facts."""
    rng = random.Random(0)
    episodes = flagged = 0
    for name in ("telepathy", "turtle"):
        for task in all_tasks(name, "test"):
            facts = task.data["facts"]["true"] + task.data["facts"]["false"]
            moves = [f"[action] Is it true that {'not ' * rng.randint(0, 2)}{p}?" for p in rng.sample(facts, 5)]
            moves += ["[action] Is it an animal or a plant?", "[action] Is it a living creature?"]
            answer = task.data["target_entity"] if name == "telepathy" else task.data["solution"]
            flags = episode(name, task.task_id, RulesUser(), [*moves, "[answer] wrong guess", f"[answer] {answer}"],
                            persona=True)
            episodes, flagged = episodes + 1, flagged + bool(flags)
    for task in all_tasks("intention", "test"):
        moves = [f"[action] {d['inquiry']}" for d in task.data["missing_details"]]
        flagged += bool(episode("intention", task.task_id, RulesUser(), ["[action] budget?", *moves], persona=True))
        episodes += 1
    assert episodes >= 60 and flagged == 0, f"false-positive rate {flagged}/{episodes}"


def test_weights_and_metrics() -> None:
    spoiled, clean = [Flag("e#0/1", "leak", "x")], []
    assert episode_weight(clean, "drop") == 1.0 and episode_weight(spoiled, "drop") == 0.0
    assert episode_weight(spoiled, "downweight", 0.25) == 0.25 and episode_weight(spoiled, "keep") == 1.0
    with pytest.raises(ValueError, match="users.audit.downweight"):
        episode_weight(spoiled, "downweight", 2.0)
    flags = [spoiled, clean, clean, [Flag("k", "contradiction", "y"), Flag("k", "leak", "z")]]
    weights = [episode_weight(f, "drop") for f in flags]
    assert audit_metrics(flags, weights) == {
        "user/audit_spoiled_rate": 0.5, "user/audit_dropped_share": 0.5, "user/audit_contradiction_rate": 0.25,
        "user/audit_leak_rate": 0.5, "user/audit_persona_rate": 0.0}
    elephant = next(t for t in all_tasks("telepathy", "train") if t.task_id == "telepathy-elephant")
    assert decidable_share(["Is it alive?", "Is it a beast?"], elephant.data) == 0.5
