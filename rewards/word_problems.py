"""Exact match on the number of a word-problem answer (spec §3.2 evaluation)."""

from __future__ import annotations

import re

from rewards.base import REWARD_FNS, RewardInput

_AFTER_TEMPLATE = re.compile(r"answer is\s*:?\s*\$?(-?[\d,]*\.?\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def parse_answer(text: str) -> str | None:
    """The number after "The answer is", else the last number in the text.

    >>> parse_answer("3 + 4 = 7, minus 2. The answer is 5.")
    '5'
    >>> parse_answer("So she has 1,200 left")
    '1200'
    >>> parse_answer("no idea") is None
    True
    """
    found = _AFTER_TEMPLATE.search(text)
    raw = found.group(1) if found else (_NUMBER.findall(text) or [None])[-1]
    if raw is None:
        return None
    raw = raw.replace(",", "").rstrip(".")
    return raw[:-2] if raw.endswith(".0") else raw


@REWARD_FNS.register("word_problems")
def word_problem_reward(sample: RewardInput, correct_reward: float = 1.0) -> dict[str, float]:
    """`correct` when the parsed answer equals the gold number.

    >>> from rewards.base import RewardInput
    >>> word_problem_reward(RewardInput([{"role": "assistant", "content": "... The answer is 12."}], {"answer": 12}))
    {'correct': 1.0}
    """
    return {"correct": correct_reward if parse_answer(sample.final_answer) == str(sample.task["answer"]) else 0.0}
