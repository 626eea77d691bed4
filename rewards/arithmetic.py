"""The arithmetic verifier: a correctness term and a small format term."""

from __future__ import annotations

import re

from rewards.base import REWARD_FNS, RewardInput

_NUMBER = re.compile(r"-?\d+")


@REWARD_FNS.register("arithmetic")
def arithmetic_reward(sample: RewardInput, correct_reward: float = 1.0, format_reward: float = 0.2) -> dict[str, float]:
    """Score an answer to "What is a+b?".

    `correct`: `correct_reward` when the last number in the answer is a+b (so "3 + 4 = 7" counts).
    `format`: `format_reward` when the whole answer is a bare number, as the prompt asks.

    >>> from rewards.base import RewardInput
    >>> ask = lambda text: RewardInput([{"role": "assistant", "content": text}], {"answer": 7})
    >>> arithmetic_reward(ask("7"))
    {'correct': 1.0, 'format': 0.2}
    >>> arithmetic_reward(ask("3 + 4 = 7."))
    {'correct': 1.0, 'format': 0.0}
    >>> arithmetic_reward(ask("8"))
    {'correct': 0.0, 'format': 0.2}
    """
    text = sample.final_answer.strip()
    numbers = _NUMBER.findall(text)
    correct = bool(numbers) and int(numbers[-1]) == int(sample.task["answer"])
    bare = re.fullmatch(r"-?\d+\.?", text) is not None
    return {"correct": correct_reward if correct else 0.0, "format": format_reward if bare else 0.0}
