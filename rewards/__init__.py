"""Reward functions, verifiers and credit assignment. Each module registers its functions in `REWARD_FNS`.

To add a reward function, write a pure function `fn(sample: RewardInput, **constants) -> dict[str, float]`
in a module here, decorate it with `@REWARD_FNS.register("name")`, and import the module below.
"""

from rewards import arithmetic, crm, toolcall, turn_rewards, word_problems  # noqa: F401  (registers each reward function)
from rewards.base import REWARD_FNS, RewardFn, RewardInput

__all__ = ["REWARD_FNS", "RewardFn", "RewardInput"]
