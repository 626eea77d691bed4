"""The `crm` reward and the CRM evaluation metrics (CRMArena-Pro, spec §6.4; tau-bench's pass^k).

`crm` replays the episode's tool calls on a fresh copy of the task's database (`rltrain.envs.crm.replay`) and
scores the final state and the agent's replies (`rltrain.envs.crm.scoring`: exact state, exact / numeric / token-F1
answers, pattern-detected refusal without leaks). The reward is 0/1 (the F1 for text-answer tasks); the single
term is named `crm`.

`crm_metrics(trajectories)` reports, over finished (not failed) trajectories: success per task type and per skill,
single- vs multi-turn, confidentiality success (refused, nothing leaked), over-refusal on tasks whose right reply
does not decline, leak rate, and pass^k for k = 1..n (n samples per task): the share of tasks whose k samples
drawn without replacement all succeed, C(c, k) / C(n, k) averaged over tasks (tau-bench).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from rewards.base import REWARD_FNS, RewardInput


@REWARD_FNS.register("crm")
def crm_reward(sample: RewardInput, parser: str = "permissive", f1_threshold: float = 0.5) -> dict[str, float]:
    """Replay and score one CRM episode (see module doc); `parser` must be the rollout's tool-call parser."""
    from rltrain.envs.crm.replay import replay_outcome

    outcome = replay_outcome(sample.task, sample.messages, parser, f1_threshold)
    return {"crm": outcome["crm"]["reward"]}


def pass_hat_k(successes: list[int], samples: list[int], k: int) -> float:
    """tau-bench's pass^k: mean over tasks of C(c, k) / C(n, k) (tasks with n < k are left out).

    >>> pass_hat_k([2, 1], [2, 2], 1), pass_hat_k([2, 1], [2, 2], 2)
    (0.75, 0.5)
    """
    values = [math.comb(c, k) / math.comb(n, k) for c, n in zip(successes, samples) if n >= k]
    return sum(values) / len(values) if values else float("nan")


def crm_metrics(trajectories: Iterable[Any], parser: str = "permissive") -> dict[str, float]:
    """CRM metrics of finished trajectories (see module doc); `failed` counts those left out."""
    from rltrain.envs.crm.replay import replay_outcome

    groups: dict[str, list[float]] = defaultdict(list)
    per_task: dict[str, list[int]] = defaultdict(list)
    failed = 0
    for traj in trajectories:
        if getattr(traj, "failure", None):
            failed += 1
            continue
        task = traj.task_data
        score = replay_outcome(task, traj.messages, parser)["crm"]
        ok = score["success"]
        per_task[task["id"]].append(int(ok))
        groups["success"].append(ok)
        groups[f"type/{task['type']}"].append(ok)
        groups[f"skill/{task['skill']}"].append(ok)
        groups["multi_turn" if task["multi_turn"] else "single_turn"].append(ok)
        if task["expected"]["match"] == "refusal":
            groups["confidentiality"].append(ok)
            groups["leak_rate"].append(score["leaked"])
        if not task["expected"]["declines"]:
            groups["over_refusal"].append(score["over_refusal"])
    metrics = {k: sum(v) / len(v) for k, v in groups.items()}
    metrics.update({f"count/{k}": float(len(v)) for k, v in groups.items() if k.startswith(("type/", "skill/"))})
    n_max = max((len(v) for v in per_task.values()), default=0)
    for k in range(1, n_max + 1):
        metrics[f"pass^{k}"] = pass_hat_k([sum(v) for v in per_task.values()], [len(v) for v in per_task.values()], k)
    metrics["failed"] = float(failed)
    return metrics

