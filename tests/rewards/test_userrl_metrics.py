"""UserRL / UserBench metrics (spec §1.10, §2.4) on hand-built trajectories with hand-computed values."""

from __future__ import annotations

import json

import pytest

from rewards.userrl_metrics import answers, travel_score, userbench_metrics, userrl_scores
from rltrain.types import Trajectory

TRIP = {"dimensions": ["flight", "hotel"],
        "flight": {"best_id": "F2", "correct_ids": ["F1", "F2"], "preferences": [["flight"]] * 2},
        "hotel": {"best_id": "H1", "correct_ids": ["H1", "H2"], "preferences": [["hotel"]] * 3}}


def _traj(task_id: str, env: str, said: list[str], rewards: list[float], **kwargs) -> Trajectory:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    for text in said:
        messages += [{"role": "assistant", "content": text}, {"role": "tool", "content": "feedback"}]
    return Trajectory(task_id=task_id, group_id=0, env=env, prompt_ids=[], messages=messages, turn_rewards=rewards,
                      task_data=TRIP if env == "travel" else {}, **kwargs)


def _call(rule: str, response: str | None) -> dict:
    return {"rule": rule, "text": "garbage" if response is None else f"```json\n{json.dumps({'response': response})}\n```"}


# Trip 1: a revealed preference (0.8, not an answer), F1 correct (0.8), H7 wrong (0), F2 rejected as a second
# flight answer (0). Travel score (0.8 + 0) / 2 = 0.4.
T1 = _traj("trip-1", "travel",
           ["[action] direct flight?", "[answer] F1",
            '<tool_call>{"name": "interact_with_env", "arguments": {"choice": "answer", "content": "H7"}}</tool_call>',
            "[answer] F2"], [0.8, 0.8, 0.0, 0.0],
           user_calls=[{"rule": "travel.judge", "text": "{}"}, _call("travel.reveal", "I hate layovers"),
                       _call("travel.elicit", None), _call("travel.elicit", "By the way...")])
# Trip 2: a search (0), best F2 (1.0), best H1 (1.0), then a message with no call (no reward). Score 1.0.
T2 = _traj("trip-2", "travel", ["[search] flights", "[answer] F2", "[answer] H1", "I am done."], [0.0, 1.0, 1.0])
# FunctionGym: task fn-a sampled twice (sums 1.0 and 0.0 -> 0.5), task fn-b once (1.0). Gym score 0.75.
FN = [_traj("fn-a", "function_gym", [], [0.0, 1.0]), _traj("fn-a", "function_gym", [], [0.0, 0.0]),
      _traj("fn-b~1", "function_gym", [], [1.0])]
FAILED = _traj("trip-3", "travel", ["[answer] F2"], [1.0], failure="user service down")


def test_answers_follow_turn_rewards() -> None:
    assert [(a.turn, a.option_id, a.aspect, a.reward) for a in answers(T1)] == [
        (1, "F1", "flight", 0.8), (2, "H7", "hotel", 0.0), (3, "F2", "flight", 0.0)]
    assert [a.option_id for a in answers(T2)] == ["F2", "H1"]  # the unscored last message is not an answer


def test_userrl_scores() -> None:
    """§1.10: travel = mean over aspects of the best answer reward; others = sum of turn rewards; task-weighted."""
    assert travel_score(T1) == pytest.approx(0.4) and travel_score(T2) == 1.0
    scores = userrl_scores([T1, T2, *FN, FAILED])
    assert scores["travel"] == pytest.approx(0.7) and scores["travel/tasks"] == 2
    assert scores["function_gym"] == pytest.approx(0.75) and scores["function_gym/tasks"] == 2  # fn-b~1 is fn-b
    assert scores["overall"] == pytest.approx((0.7 * 2 + 0.75 * 2) / 4) and scores["failed"] == 1
    # Weighted by tasks, not trajectories or gyms: one more function task moves the overall score.
    more = userrl_scores([T1, T2, *FN, _traj("fn-c", "function_gym", [], [0.0])])
    assert more["overall"] == pytest.approx((0.7 * 2 + 0.5 * 3) / 5)


def test_userbench_metrics() -> None:
    """§2.4 on trips 1 and 2 (the failed trajectory and the non-travel ones are left out)."""
    metrics = userbench_metrics([T1, T2, *FN, FAILED])
    expected = {
        "micro_avg": (0.4 + 2 / 3) / 2, "micro_max": (0.8 + 1.0) / 2,
        "avg_number_of_1": (0 + 2) / 2, "avg_number_of_08": (1 + 0) / 2,  # the 0.8 preference turn is no pick
        "score": (0.4 + 1.0) / 2,
        "best_exist_rate": 2 / 4, "correct_exist_rate": 3 / 4,  # T1: F1 only (H7 wrong, F2 rejected); T2: both
        "elicitation_ratio": (2 / 5 + 0) / 2, "active_elicitation_ratio": (1 / 5) / 2,
        "passive_elicitation_ratio": (1 / 5) / 2,  # the malformed elicit reply revealed nothing
        "trajectories": 2,
    }
    assert metrics == pytest.approx(expected)
    assert userbench_metrics(FN) == {}
