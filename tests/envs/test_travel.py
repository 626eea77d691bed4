"""TravelGym's rules (spec §2.1-§2.3, §1.5, §7.1 R8), played by scripted agents on a hand-built scenario.

The scenario: a flight (hidden P1 stops, P2 wifi) and a hotel (hidden P3 breakfast, P4 gym, P5 pool).
Flight: correct F1 (300) and F2 (250, best), wrong F3 (100), noise F4. Hotel: correct H1 (200, best) and
H2 (220), wrong H10-H21 (12 of them), noise H30-H36 (7 of them), so that the 10/5 truncation shows.
"""

from __future__ import annotations

import json

import pytest

from rltrain.envs import make_env
from rltrain.envs.judged import MalformedReplyError
from rltrain.envs.travel import (
    APOLOGY_REPLY,
    NO_PREFERENCE_REPLY,
    OPTION_ID,
    SEARCH_DOWN,
    SEARCH_UNRELATED,
    SEARCH_WRONG,
    VAGUE_REPLY,
)
from rltrain.envs.travel_data import ASPECT_INITIAL, CATALOG, generate
from rltrain.types import Task
from rltrain.users import UserSimError
from tests.envs.conftest import RulesUser, ScriptedUser, papers_rule

STATEMENTS = {"stops": "Changing planes always wears me out.", "wifi": "I answer emails in the air.",
              "breakfast": "I need a proper meal downstairs.", "gym": "I keep up my training.", "pool": "Laps unwind me."}


def _prefs(aspect: str, *subcategories: str) -> list[list[str]]:
    return [[aspect, s, f"pref {s}", STATEMENTS[s]] for s in subcategories]


SCENARIO = {
    "id": "hand-01", "scenario": "Ana flies from Oslo to Lisbon.", "initial_description": "Oslo to Lisbon, 2025-06-03.",
    "dimensions": ["flight", "hotel"], "wanted_num": "23",
    "flight": {"preferences": _prefs("flight", "stops", "wifi"),
               "arguments": {"origin": "Oslo", "destination": "Lisbon", "date": "2025-06-03"},
               "options": {"correct": [{"id": "F1", "cost": 300}, {"id": "F2", "cost": 250}],
                           "wrong": [{"id": "F3", "cost": 100}], "noise": [{"id": "F4", "cost": 900}]},
               "correct_ids": ["F1", "F2"], "best_id": "F2"},
    "hotel": {"preferences": _prefs("hotel", "breakfast", "gym", "pool"),
              "arguments": {"city": "Lisbon", "check_in": "2025-06-03", "check_out": "2025-06-07"},
              "options": {"correct": [{"id": "H1", "cost": 200}, {"id": "H2", "cost": 220}],
                          "wrong": [{"id": f"H{i}", "cost": 150} for i in range(10, 22)],
                          "noise": [{"id": f"H{i}", "cost": 500} for i in range(30, 37)]},
              "correct_ids": ["H1", "H2"], "best_id": "H1"},
}
HOTEL_SEARCH = "[search] hotel in Lisbon from 2025-06-03 to 2025-06-07"
FLIGHT_SEARCH = "[search] flight from Oslo to Lisbon on 2025-06-03"


@pytest.fixture
def travel(start_gym):
    def start(user=None, **kwargs):
        return start_gym("travel", RulesUser() if user is None else user, Task("hand-01", SCENARIO), **kwargs)
    return start


def judge(kind: str, preference_id: str | None = None) -> str:
    return "```json\n" + json.dumps({"thought": "t", "type": kind, "preference_id": preference_id}) + "\n```"


def test_judge_types_and_their_rewards(travel) -> None:
    """§2.2: type 2 reveals implicitly for preference_correct_reward; types 1, 3, 4 reward 0."""
    env = travel()
    natural = env.step("[action] Hello, nice to meet you!")
    assert (natural.reward, natural.info["judge_type"]) == (0.0, "1") and "much to add" in natural.observation
    revealed = env.step("[action] Is breakfast important to you?")
    assert (revealed.reward, revealed.info["judge_type"], revealed.info["elicited"]) == (0.8, "2", "P3")
    assert revealed.observation == STATEMENTS["breakfast"]  # implicit statement, never the preference text
    assert revealed.info["active_elicited_preferences"] == 1 and revealed.info["elicitation_ratio"] == 1 / 5
    absent = env.step("[action] What room type do you prefer?")  # a subcategory this traveler has no preference in
    assert (absent.reward, absent.info["judge_type"], absent.observation) == (0.0, "3", NO_PREFERENCE_REPLY)
    vague = env.step("[action] Do you have any preferences?")
    assert (vague.reward, vague.info["judge_type"], vague.observation) == (0.0, "4", VAGUE_REPLY)
    assert env.step("[action] Is wifi important to you?").info["elicited"] == "P2"  # resets the off-target count
    again = env.step("[action] Do you have a preference about breakfast?")  # already revealed: no longer hidden
    assert (again.reward, again.info["judge_type"], again.observation) == (0.0, "3", NO_PREFERENCE_REPLY)
    # The reward constant is the configured one (spec §1.5: eval uses 0.6).
    assert travel(preference_correct_reward=0.6).step("[action] Is wifi important to you?").reward == 0.6


def test_keyword_stuffing_reveals_nothing(travel) -> None:
    """Issue 17: the truthful rules judge (`travel_truth`): a turn listing every catalog keyword is type 1 (reward 0),
    as a bare list or inside a preference question; one grammar question about one hidden preference is type 2."""
    every = ", ".join(w for aspect in ("flight", "hotel") for p in CATALOG[aspect] for w in p.keywords)
    env = travel()
    for stuffed in (every, f"Do you have a preference about {every}?", f"Is {every} important to you?"):
        result = env.step(f"[action] {stuffed}")
        assert (result.reward, result.info["judge_type"], result.info["active_elicited_preferences"]) == (0.0, "1", 0)
    legit = travel().step("[action] Do you have a preference about layover?")
    assert (legit.reward, legit.info["judge_type"], legit.info["elicited"]) == (0.8, "2", "P1")


def test_user_volunteers_a_preference_every_third_off_target_turn(travel) -> None:
    """§2.2: the off-target counter reaches elicitation_interval - 1 = 2, so the 3rd such turn reveals one."""
    env = travel()
    assert [env.step("[action] Hello!").info["elicited"] for _ in range(2)] == [None, None]
    third = env.step("[action] Nice weather today.")
    assert third.reward == 0.0 and third.info["passive_elicited_preferences"] == 1
    first = third.info["elicited"]
    assert third.observation.startswith("Sure. By the way,")
    # A type-2 turn resets the counter: off, off, on-target, off, off reveals nothing; the next off-target does.
    steps = [env.step(f"[action] {text}") for text in ("Hi.", "Hmm.", "Do you need a pool?", "Ok.", "Right.")]
    assert [s.info["passive_elicited_preferences"] for s in steps] == [1, 1, 1, 1, 1]
    sixth = env.step("[action] Well.")
    assert sixth.info["passive_elicited_preferences"] == 2 and sixth.info["elicited"] not in (first, None, "P5")
    assert sixth.info["remaining_preferences"] == 2 and sixth.info["elicitation_ratio"] == 3 / 5


def test_malformed_judge_fails_the_episode_by_default(travel) -> None:
    """Issue 17: a judgment still malformed after the retries is the simulator's failure, never reward 0."""
    env = travel(ScriptedUser(*["no json at all"] * 3, rules={"travel.judge"}))
    with pytest.raises(MalformedReplyError, match="travel.judge: the simulated judge sent 3 malformed replies"):
        env.step("[action] Is breakfast important to you?")
    recovered = travel(ScriptedUser(judge("7"), judge("2", "P3"), rules={"travel.judge"}))
    result = recovered.step("[action] Is breakfast important to you?")
    assert (result.reward, result.info["elicited"], result.info["judge_errors"]) == (0.8, "P3", 1)


def test_userbench_fallback_parity_mode(travel) -> None:
    """§2.2 failure policy as the opt-in `on_malformed="fallback"` (UserBench's rule): a bad judgment counts as normal
    conversation (reward 0) and is recorded; a malformed user reply gives the canned apology with reward 0."""
    for bad in ("no json at all", judge("7"), judge("2", "P99"), '{"thought": "missing type"}'):
        env = travel(ScriptedUser(*[bad] * 3, rules={"travel.judge"}), on_malformed="fallback")
        result = env.step("[action] Is breakfast important to you?")
        assert (result.reward, result.info["judge_type"]) == (0.0, "1"), bad
        assert "travel.judge" in result.info["judge_error"] and result.info["judge_errors"] == 3  # retried first
        assert "much to add" in result.observation  # the type-1 path: a neutral user reply
        assert result.info["remaining_preferences"] == 5
    # A malformed user reply on a type-2 turn: the canned apology, reward 0, the preference stays hidden.
    env = papers_rule(travel(ScriptedUser(judge("2", "P1"), "not json")))
    result = env.step("[action] Is a direct flight important?")
    assert (result.observation, result.reward) == (APOLOGY_REPLY, 0.0)
    assert "travel.reveal" in result.info["judge_error"] and result.info["remaining_preferences"] == 5
    assert result.info["active_elicited_preferences"] == 0
    with pytest.raises(ValueError, match="env.kwargs.on_malformed"):
        travel(on_malformed="apology")


def test_user_service_failure_propagates(travel, failing_user) -> None:
    """§7.1 R6: an infrastructure failure is not a 0 reward; the agent loop marks the episode failed."""
    env = travel(failing_user)
    with pytest.raises(UserSimError):
        env.step("[action] Hello")
    with pytest.raises(UserSimError):
        env.step(HOTEL_SEARCH)


def _shown_ids(observation: str) -> list[str]:
    return [json.loads(line)["id"] for line in observation.splitlines() if line.startswith("{")]


def test_search_rules(travel) -> None:
    """§2.3: judged alignment, options shown once (correct + 10 wrong + 5 noise), every 5th search fails."""
    user = RulesUser()
    env = travel(user, search_correct_reward=0.2)
    assert env.step("[search] hotel in Lisbon").observation == SEARCH_WRONG  # dates missing
    assert env.step("[search] museums nearby").observation == SEARCH_UNRELATED
    both = env.step("[search] flight and hotel Oslo Lisbon 2025-06-03 2025-06-07")
    assert both.observation == SEARCH_WRONG and both.reward == 0.0  # one request at a time
    hotel = env.step(HOTEL_SEARCH)
    assert hotel.reward == 0.2 and hotel.info["search"] == "aligned" and "rating (0-10)" in hotel.observation
    shown = _shown_ids(hotel.observation)
    expected = ["H1", "H2", *[f"H{i}" for i in range(10, 20)], *[f"H{i}" for i in range(30, 35)]]
    assert sorted(shown) == sorted(expected) and shown != expected  # 17 options, shuffled
    assert _shown_ids(travel().step(HOTEL_SEARCH).observation) == shown  # same order for every sample of the task
    calls = len(user.requests)
    fifth = env.step(FLIGHT_SEARCH)
    assert (fifth.observation, fifth.reward) == (SEARCH_DOWN, 0.0) and len(user.requests) == calls  # no judge call
    assert env.step(FLIGHT_SEARCH).reward == 0.2
    repeated = env.step(HOTEL_SEARCH)
    assert repeated.reward == 0.0 and "already" in repeated.observation
    assert [env.step(FLIGHT_SEARCH).observation == SEARCH_DOWN for _ in range(3)] == [False, False, True]  # 10th


def test_malformed_search_judgment_is_a_backend_failure(travel) -> None:
    env = papers_rule(travel(ScriptedUser('{"alignment_judgement": "True", "alignment_aspect": "spaceship"}')))
    result = env.step(HOTEL_SEARCH)
    assert (result.observation, result.reward, result.info["judge_errors"]) == (SEARCH_DOWN, 0.0, 1)


def test_answers_with_one_choice_per_aspect(travel) -> None:
    """§2.3: one id, valid format, best 1.0 / correct 0.8 / wrong 0, one answer per aspect, then the end."""
    env = travel(wrong_choice_penalty=0.5)
    for content in ("F2, H1", "F2 H1", "X9", "f2", "F"):
        result = env.step(f"[answer] {content}")
        assert (result.reward, result.terminated, result.info["answer"]["outcome"]) == (0.0, False, "rejected"), content
    assert "multiple" in env.step("[answer] F2,H1").observation
    assert env.step("[answer] R5").info["answer"]["outcome"] == "rejected"  # no restaurant on this trip
    wrong = env.step("[answer] F3")
    assert (wrong.reward, wrong.info["answer"]["outcome"]) == (0.0, "wrong")  # -0.5 clipped to 0
    assert wrong.info["remaining_preferences"] == 3  # the flight's P1, P2 are dropped
    second = env.step("[answer] F2")  # the best flight, but the flight was already answered
    assert (second.reward, second.info["answer"]["outcome"], second.terminated) == (0.0, "rejected", False)
    hotel = env.step("[answer] H2")
    assert (hotel.reward, hotel.info["answer"]["outcome"], hotel.terminated) == (0.8, "correct", True)


def test_answers_without_one_choice(travel) -> None:
    """§2.3 with one_choice_per_aspect=False: retries allowed, the episode ends when every best is found."""
    env = travel(one_choice_per_aspect=False)
    assert env.step("[answer] F1").reward == 0.8
    assert env.step("[answer] F1").reward == 0.0  # a correct option pays once
    best = env.step("[answer] F2")
    assert (best.reward, best.terminated, best.info["remaining_preferences"]) == (1.0, False, 5)
    assert env.step("[answer] H1.").terminated  # every best found


def test_finish_truncation_and_bad_verbs(travel) -> None:
    env = travel(max_steps=2)
    assert not env.step("[answer] X").truncated
    assert env.step("[answer] Y").truncated  # §2.3: truncated at max_steps
    env = travel()
    finish = env.step("[finish]")
    assert finish.terminated and finish.reward == 0.0
    assert make_env("travel", {}).max_steps == 20


def test_generated_scenarios() -> None:
    """The gym's tasks are the seeded generator's output (the same in every process); UserRL scale (issue 17:
    hundreds of train tasks, >= 50 test); splits disjoint by scenario; options are what their category says."""
    from rltrain.envs.judged import load_tasks

    splits = generate()
    assert {k: list(v) for k, v in load_tasks("travel.json").items()} == splits == generate()
    train, test = ({s["id"] for s in splits[k]} for k in ("train", "test"))
    assert len(train) >= 360 and len(test) >= 50 and not train & test
    assert not {s["scenario"] for s in splits["train"]} & {s["scenario"] for s in splits["test"]}
    assert {"22", "33", "233"} <= {s["wanted_num"] for s in splits["train"] + splits["test"]}
    for scenario in splits["train"] + splits["test"]:
        assert [len(scenario[a]["preferences"]) for a in scenario["dimensions"]] == [int(d) for d in scenario["wanted_num"]]
        for aspect in scenario["dimensions"]:
            record = scenario[aspect]
            catalog = {p.subcategory: p for p in CATALOG[aspect]}
            prefs = [catalog[p[1]] for p in record["preferences"]]

            trip = {k: record["arguments"].get(k, "") for k in ("origin", "destination")}  # flight paths name them

            def satisfied(option, prefs=prefs, trip=trip):
                return [(p.item in option[p.field]) if p.item else
                        option[p.field] in [g.format(**trip) if isinstance(g, str) else g for g in p.good] for p in prefs]

            for kind, options in record["options"].items():
                for option in options:
                    assert OPTION_ID.match(option["id"]) and option["id"][0] == ASPECT_INITIAL[aspect]
                    assert all(satisfied(option)) == (kind == "correct"), (scenario["id"], option)
            correct = record["options"]["correct"]
            assert record["best_id"] == min(correct, key=lambda o: o["cost"])["id"]
            assert record["correct_ids"] == [o["id"] for o in correct]


def test_rules_agent_solves_every_scenario(start_gym) -> None:
    """With the rules user, asking about each hidden preference, searching and picking the best scores 1.0 per aspect.

    Checks that the rules judge can reveal every catalog preference (no keyword collisions) on shipped data.
    """
    env = make_env("travel", {})
    for task in env.tasks("train", 40, seed=0) + env.tasks("test", 8, seed=0):
        env = start_gym("travel", RulesUser(), task, max_steps=40)
        data, rewards = task.data, []
        for aspect in data["dimensions"]:
            word = aspect.replace("_", " ")
            for pref in data[aspect]["preferences"]:
                keyword = next(p for p in CATALOG[aspect] if p.subcategory == pref[1]).keywords[0]
                result = env.step(f"[action] Do you have a preference about {keyword}?")
                assert result.info["judge_type"] == "2", (task.task_id, aspect, keyword)
                rewards.append(result.reward)
            rewards.append(env.step(f"[search] {word} " + " ".join(data[aspect]["arguments"].values())).reward)
            result = env.step(f"[answer] {data[aspect]['best_id']}")
            rewards.append(result.reward)
        assert result.terminated and result.info["elicitation_ratio"] == 1.0
        assert sum(rewards) == pytest.approx(0.8 * sum(map(int, data["wanted_num"])) + len(data["dimensions"]))
