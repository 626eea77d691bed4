"""Single-digit addition: "What is a+b? Answer with just the number."

A one-turn task with a verifiable answer (`rewards.arithmetic`). The 100 (a, b) pairs are split for good:
30 pairs, those with (a + 3b) mod 10 in {0, 3, 7}, are held out for evaluation; the other 70 are for training.
"""

from __future__ import annotations

import random
from typing import Any

from rltrain.envs.base import ENVIRONMENTS, Split, StepResult, TextEnv
from rltrain.types import Task

PROMPT = "What is {a}+{b}? Answer with just the number."
_TEST_CLASSES = (0, 3, 7)


def _split_of(a: int, b: int) -> Split:
    return "test" if (a + 3 * b) % 10 in _TEST_CLASSES else "train"


@ENVIRONMENTS.register("arithmetic")
class ArithmeticEnv(TextEnv):
    """Single-digit addition, one turn."""

    reward_fn = "arithmetic"
    max_turns = 1  # one question, one answer

    def __init__(self, system_prompt: str | None = None) -> None:
        self.system_prompt = system_prompt

    def tasks(self, split: Split, count: int, seed: int) -> list[Task]:
        """Train: `count` draws with replacement from the 70 train pairs. Test: the first `count` of the
        30 held-out pairs in a seeded order, without repeats (greedy evaluation of a repeat says nothing)."""
        pairs = [(a, b) for a in range(10) for b in range(10) if _split_of(a, b) == split]
        rng = random.Random(seed)
        if split == "test":
            rng.shuffle(pairs)
            chosen = pairs[:count]
        else:
            chosen = [rng.choice(pairs) for _ in range(count)]
        return [Task(task_id=f"add-{a}-{b}", data={"a": a, "b": b, "answer": a + b}) for a, b in chosen]

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        messages = [{"role": "user", "content": PROMPT.format(a=task.data["a"], b=task.data["b"])}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages, {}

    def step(self, action: str) -> StepResult:
        return StepResult(observation=None, terminated=True)
