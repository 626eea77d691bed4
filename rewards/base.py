"""The reward-function contract and registry.

A reward function is pure: it takes a `RewardInput` and keyword constants from the config and returns named
terms; the trajectory's reward is their sum. Functions run in the accountant's process pool, so they must be
importable by name (registered at import of `rewards`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rltrain.registry import Registry


@dataclass(frozen=True)
class RewardInput:
    """What a verifier sees of a trajectory.

    Attributes:
        messages: the whole conversation, assistant turns included, as chat messages.
        task: the task's data (for example the gold answer).
        turn_rewards: the environment's per-turn rewards.
    """

    messages: list[dict[str, str]]
    task: dict[str, Any]
    turn_rewards: list[float] = field(default_factory=list)

    @property
    def final_answer(self) -> str:
        """The last assistant message, or "" when the policy never spoke."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "assistant"), "")


RewardFn = Callable[..., dict[str, float]]
REWARD_FNS: Registry[RewardFn] = Registry("reward function")
