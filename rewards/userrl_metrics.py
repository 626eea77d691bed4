"""UserRL and UserBench evaluation metrics (spec §1.10, §2.4): pure functions over finished trajectories.

- `userrl_scores`: UserRL's per-gym score and the overall score. Non-travel gyms score a trajectory by the
  sum of its turn rewards; TravelGym by sum over the trip's aspects of the best answer reward for that aspect
  (answers matched to aspects by their option id's initial), divided by the number of aspects. A gym's score
  averages its tasks (the samples of one task are averaged first); the overall score averages the gyms,
  weighted by their numbers of unique tasks.
- `userbench_metrics`: UserBench's TravelGym metrics: micro_avg / micro_max (mean / max turn reward),
  avg_number_of_1 / avg_number_of_08 (answers rewarded 1.0 = best, 0.8 = correct), best and correct exist
  rates, and the preference elicitation ratios (active = revealed on request, passive = volunteered).

What each answer was comes from the trajectory itself: assistant message t is turn t, its reward is
`turn_rewards[t]`, and `rltrain.protocol.parse_message` recovers the `[answer] ID` call exactly as the agent
loop parsed it. Elicitation comes from `Trajectory.user_calls`: each successful `travel.reveal` /
`travel.elicit` reply is one preference revealed. Failed trajectories (infrastructure failures) are left out
of every metric and counted under "failed".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rltrain.protocol import parse_message
from rltrain.types import Trajectory
from rltrain.users import parse_json_reply

TRAVEL_ENVS = ("travel",)
INITIAL_ASPECT = {"F": "flight", "H": "hotel", "A": "apartment", "C": "rental_car", "R": "restaurant"}


@dataclass(frozen=True)
class Answer:
    """One `[answer]` turn: its content (an option id when well-formed), the aspect its initial names, its reward."""

    turn: int
    option_id: str
    aspect: str | None
    reward: float


def answers(traj: Trajectory) -> list[Answer]:
    """The trajectory's `[answer]` turns that the environment scored."""
    said = [m["content"] for m in traj.messages if m["role"] == "assistant"]
    found = []
    for turn, (text, reward) in enumerate(zip(said, traj.turn_rewards)):
        parsed = parse_message(text)
        if parsed.ok and parsed.choice == "answer":
            option = parsed.content.strip()
            found.append(Answer(turn, option, INITIAL_ASPECT.get(option[:1]), float(reward)))
    return found


def travel_score(traj: Trajectory) -> float:
    """Sum over aspects of the best answer reward for that aspect, over the number of aspects (spec §1.10)."""
    aspects = traj.task_data["dimensions"]
    best: dict[str, float] = {}
    for answer in answers(traj):
        if answer.aspect is not None:
            best[answer.aspect] = max(best.get(answer.aspect, 0.0), answer.reward)
    return sum(best.get(a, 0.0) for a in aspects) / len(aspects)


def gym_score(traj: Trajectory, travel_envs: Iterable[str] = TRAVEL_ENVS) -> float:
    """UserRL's score of one trajectory: the travel score for TravelGym, else the sum of turn rewards."""
    return travel_score(traj) if traj.env in tuple(travel_envs) else float(sum(traj.turn_rewards))


def _task(task_id: str) -> str:
    """The task a sampled id stands for: gyms suffix `~<pass>` to repeated tasks (`rltrain.envs.judged`)."""
    return task_id.split("~")[0]


def _task_means(trajs: list[Trajectory], score: Callable[[Trajectory], float]) -> list[float]:
    by_task: dict[str, list[float]] = defaultdict(list)
    for traj in trajs:
        by_task[_task(traj.task_id)].append(score(traj))
    return [sum(v) / len(v) for v in by_task.values()]


def userrl_scores(trajectories: Iterable[Trajectory], travel_envs: Iterable[str] = TRAVEL_ENVS) -> dict[str, float]:
    """Per-gym scores `<env>`, their task counts `<env>/tasks`, `overall` (task-weighted) and `failed`.

    >>> t = Trajectory(task_id="q1", group_id=0, env="function_gym", prompt_ids=[], turn_rewards=[0.0, 1.0])
    >>> userrl_scores([t])
    {'function_gym': 1.0, 'function_gym/tasks': 1.0, 'overall': 1.0, 'failed': 0.0}
    """
    trajectories = list(trajectories)
    travel_envs = tuple(travel_envs)
    by_env: dict[str, list[Trajectory]] = defaultdict(list)
    for traj in trajectories:
        if not traj.failed:
            by_env[traj.env].append(traj)
    scores: dict[str, float] = {}
    weighted = tasks = 0.0
    for env in sorted(by_env):
        means = _task_means(by_env[env], lambda t: gym_score(t, travel_envs))
        scores[env], scores[f"{env}/tasks"] = sum(means) / len(means), float(len(means))
        weighted, tasks = weighted + sum(means), tasks + len(means)  # score x tasks = sum of task means
    scores["overall"] = weighted / tasks if tasks else 0.0
    scores["failed"] = float(sum(t.failed for t in trajectories))
    return scores


def _replied(call: dict) -> bool:
    """Whether a recorded user reply held the non-empty "response" the gym accepts (else it apologised)."""
    response = (parse_json_reply(call.get("text", "")) or {}).get("response")
    return isinstance(response, str) and bool(response.strip())


def elicited(traj: Trajectory) -> tuple[int, int]:
    """(active, passive) preferences revealed: successful `travel.reveal` / `travel.elicit` user replies."""
    active = sum(1 for call in traj.user_calls if call.get("rule") == "travel.reveal" and _replied(call))
    passive = sum(1 for call in traj.user_calls if call.get("rule") == "travel.elicit" and _replied(call))
    return active, passive


def userbench_metrics(trajectories: Iterable[Trajectory], travel_envs: Iterable[str] = TRAVEL_ENVS) -> dict[str, float]:
    """UserBench's metrics over the TravelGym trajectories, averaged over trajectories (spec §2.4).

    `avg_number_of_1` / `avg_number_of_08` count answer turns only: UserBench counts all turns, which with its
    eval constants (preference reward 0.6) is the same thing, but with the training constants a revealed
    preference also earns 0.8. `best_exist_rate` / `correct_exist_rate` are over (trajectory, aspect) pairs:
    the share of aspects where an accepted answer (reward > 0) is the best / a correct option.
    """
    travel_envs = tuple(travel_envs)
    trajs = [t for t in trajectories if t.env in travel_envs and not t.failed]
    if not trajs:
        return {}
    totals: dict[str, float] = defaultdict(float)
    aspects = best_hits = correct_hits = 0
    for traj in trajs:
        rewards = traj.turn_rewards
        totals["micro_avg"] += sum(rewards) / len(rewards) if rewards else 0.0
        totals["micro_max"] += max(rewards, default=0.0)
        scored = answers(traj)
        totals["avg_number_of_1"] += sum(math.isclose(a.reward, 1.0) for a in scored)
        totals["avg_number_of_08"] += sum(math.isclose(a.reward, 0.8) for a in scored)
        totals["score"] += travel_score(traj)
        data = traj.task_data
        accepted = {a.option_id for a in scored if a.reward > 0}
        for aspect in data["dimensions"]:
            aspects += 1
            best_hits += data[aspect]["best_id"] in accepted
            correct_hits += bool(accepted & set(data[aspect]["correct_ids"]))
        active, passive = elicited(traj)
        total = sum(len(data[a]["preferences"]) for a in data["dimensions"])
        totals["elicitation_ratio"] += (active + passive) / total if total else 0.0
        totals["active_elicitation_ratio"] += active / total if total else 0.0
        totals["passive_elicitation_ratio"] += passive / total if total else 0.0
    metrics = {k: v / len(trajs) for k, v in totals.items()}
    metrics["best_exist_rate"] = best_hits / aspects
    metrics["correct_exist_rate"] = correct_hits / aspects
    metrics["trajectories"] = float(len(trajs))
    return metrics
