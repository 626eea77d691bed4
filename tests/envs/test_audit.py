"""The user-simulator audit (`rltrain.envs.audit`, issue 17): flags on hand-made spoiled episodes, none on clean
ones (the false-positive rate is measured on clean episodes played against the truthful rules users)."""

from __future__ import annotations

import copy
import json
import random

import pytest

from rltrain.config.users import AuditConfig
from rltrain.envs import make_env
from rltrain.envs.audit import (
    AuditingUser,
    Flag,
    audit_calls,
    audit_episodes,
    audit_metrics,
    decidable_share,
    episode_weight,
)
from rltrain.envs.judged import load_tasks
from rltrain.types import Task, Trajectory
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


def played(name: str, task_id: str, user, moves: list[str]) -> tuple[list[tuple[UserRequest, UserReply]], list[dict], dict]:
    """(the offline audit's log, the call records the gym kept, the task data) of one episode."""
    env = make_env(name, {})
    split, raw = next((split, t) for split in ("train", "test") for t in load_tasks(f"{name}.json")[split]
                      if t["id"] == task_id)
    task = Task(task_id=task_id, data={**copy.deepcopy(raw), "split": split})  # as JudgedGym.tasks builds it
    audited = AuditingUser(user)
    env.bind_user(audited, f"{task_id}#0")
    env.reset(task)
    for move in moves:
        result = env.step(move)
        if result.terminated or result.truncated:
            break
    return audited.log, env.user_calls, task.data


def episode(name: str, task_id: str, user, moves: list[str], persona: bool = False) -> list[Flag]:
    log, records, data = played(name, task_id, user, moves)
    # The gym audited each accepted reply as it came (`JudgedGym.ask_json`): the same flags, persona included.
    recorded = [(f["kind"], f["detail"]) for call in records for f in call.get("audit", ())]
    assert recorded == [(f.kind, f.detail) for f in audit_calls(log, data, persona=True)]
    return audit_calls(log, data, persona=persona)


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


class Leaky(RulesUser):
    """The rules user whose free-text Intention replies also state every detail the question did not ask."""

    async def respond(self, request: UserRequest) -> UserReply:
        reply = await super().respond(request)
        if request.rule != "intention.respond":
            return reply
        return UserReply(text=reply.text + " Also: " + " ".join(request.context["withheld_descriptions"]), backend="leaky")


def test_intention_free_text_reply_stating_unasked_details_is_flagged() -> None:
    """Intention's responder is plain text (not parsed strictly), so it is audited by string match: each hidden
    detail it states without being asked is a leak; the truthful rules reply to the same question has none."""
    task = all_tasks("intention", "train")[0]
    question = task.data["missing_details"][0]["inquiry"]
    flags = episode("intention", task.task_id, Leaky(), [f"[action] {question}"])
    withheld = len(task.data["missing_details"]) - 1
    assert withheld >= 1 and [f.kind for f in flags] == ["leak"] * withheld
    assert episode("intention", task.task_id, RulesUser(), [f"[action] {question}"]) == []


def travel_moves(data: dict) -> list[str]:
    """A grammar question about every hidden preference, then a list of every keyword and a vague question."""
    from rltrain.envs.travel_data import CATALOG

    keyword = {(a, p.subcategory): p.keywords[0] for a in CATALOG for p in CATALOG[a]}
    asks = [f"[action] Do you have a preference about {keyword[a, row[1]]}?" for a in data["dimensions"]
            for row in data[a]["preferences"]]
    every = ", ".join(w for a in data["dimensions"] for p in CATALOG[a] for w in p.keywords)
    return [*asks, f"[action] Do you have a preference about {every}?", "[action] Do you have any preferences?"]


def test_travel_judge_denying_an_exact_preference_question_is_flagged() -> None:
    """The Travel judge's type, where the grammar decides it (`travel_truth`): 2 judged 1 is a contradiction; the
    stuffed and vague turns are decided 1 and 4 by the grammar and judged so, unflagged."""
    def deny(value: dict, _request) -> str:
        return json.dumps({**value, "type": "1" if value["type"] == "2" else value["type"]})

    task = all_tasks("travel", "test")[0]
    moves = travel_moves(task.data)[:1] + travel_moves(task.data)[-2:]
    flags = episode("travel", task.task_id, Twisted("travel.judge", deny), moves)
    assert [f.kind for f in flags] == ["contradiction"] and "the judge said type 1, the preferences say type 2" in flags[0].detail


def test_persona_break_is_flagged_only_when_asked() -> None:
    def robot(value: dict, _request) -> str:
        return json.dumps({**value, "response": "As an AI language model, I have no opinion."})

    moves = ["[action] Homework builds study habits and discipline."]
    task_id = "persuade-homework-should-be-banned-in"
    assert episode("persuade", task_id, Twisted("persuade.argue", robot), moves) == []
    assert [f.kind for f in episode("persuade", task_id, Twisted("persuade.argue", robot), moves, persona=True)] == ["persona"]


def test_no_flags_on_clean_rules_episodes() -> None:
    """False-positive rate on clean episodes: every test task of the gyms (Telepathy, Turtle, Intention, Travel),
    questions drawn from the facts."""
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
    for task in all_tasks("travel", "test"):
        flagged += bool(episode("travel", task.task_id, RulesUser(), travel_moves(task.data), persona=True))
        episodes += 1
    assert episodes >= 130 and flagged == 0, f"false-positive rate {flagged}/{episodes}"


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


def trajectory(task_id: str, calls: list[dict], failure: str | None = None) -> Trajectory:
    return Trajectory(task_id=task_id, group_id=0, env="telepathy", prompt_ids=[1], user_calls=calls, failure=failure)


def test_the_driver_hook_drops_spoiled_episodes_and_reports_the_rates() -> None:
    """`audit_episodes` (after scoring): drop marks the spoiled episode failed (left out of the batch, never scored 0);
    keep only counts it; a persona flag counts only with users.audit.persona; `user/invalid_reply_rate` is the mean
    per-episode share of malformed replies; episodes without a user call are not counted."""
    _, lying, _ = played("telepathy", "telepathy-elephant", Twisted("telepathy.question", flip), ["[action] Is it alive?"])
    _, clean, _ = played("telepathy", "telepathy-elephant", RulesUser(), ["[action] Is it alive?", "[action] Is it grey?"])
    assert lying[0]["audit"][0]["kind"] == "contradiction" and not any("audit" in c for c in clean)
    robot = [{"key": "r#0/0", "text": "x", "audit": [{"kind": "persona", "detail": "says it is an AI"}]}]
    malformed = [{"key": "m#0/0", "malformed": "no JSON object in the reply"}, {"key": "m#0/1"}, {"key": "m#0/2"},
                 {"key": "m#0/3"}]

    def batch() -> list[Trajectory]:
        return [trajectory("lie", lying), trajectory("clean", clean), trajectory("robot", robot),
                trajectory("bad", malformed), trajectory("arith", []), trajectory("dead", lying, failure="actor died")]

    dropped = batch()
    metrics = audit_episodes(dropped, AuditConfig(mode="drop"))
    assert [t.failure for t in dropped[:5]] == [
        "user audit (1 flag(s); users.audit.mode=drop): contradiction: 'Is it alive?': the user said No, the facts say Yes",
        None, None, None, None]
    assert dropped[5].failure == "actor died"  # an infrastructure failure keeps its own reason
    assert metrics["user/invalid_reply_rate"] == pytest.approx((1 / 4) / 5)  # 5 episodes called the user
    assert metrics["user/audit_spoiled_rate"] == pytest.approx(2 / 5) and metrics["user/audit_persona_rate"] == 0.0
    assert metrics["user/audit_dropped_share"] == pytest.approx(1 / 5)  # "dead" was not the audit's drop
    kept = batch()
    metrics = audit_episodes(kept, AuditConfig(mode="keep", persona=True))
    assert all(t.failure is None for t in kept[:5]) and metrics["user/audit_dropped_share"] == 0.0
    assert metrics["user/audit_spoiled_rate"] == pytest.approx(3 / 5) and metrics["user/audit_persona_rate"] == pytest.approx(1 / 5)
    assert audit_episodes([trajectory("arith", [])], AuditConfig()) == {}
