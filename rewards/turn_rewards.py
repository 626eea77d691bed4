"""The environment's own turn rewards as the trajectory reward (spec §7.4 W1, §1.10)."""

from __future__ import annotations

from rewards.base import REWARD_FNS, RewardInput


@REWARD_FNS.register("turn_rewards")
def turn_rewards(sample: RewardInput) -> dict[str, float]:
    """The sum of the environment's turn rewards: UserRL's per-gym score for non-travel gyms.

    >>> from rewards.base import RewardInput
    >>> turn_rewards(RewardInput(messages=[], task={}, turn_rewards=[0.0, 0.5, 1.0]))
    {'env': 1.5}
    """
    return {"env": float(sum(sample.turn_rewards))}
