"""FunctionGym (UserRL, spec §1.5): discover a hidden function of four numbers by querying it, then answer.

Verbs, through the `interact_with_env` protocol (`rltrain.protocol`):
- `[action] a,b,c,d` returns f(a,b,c,d) rounded to 4 decimals (refused for the test case's own inputs);
- `[search] test` reveals the test case's inputs;
- `[answer] x` earns 1.0 when |x - f(test)| <= 1e-6, else 0, and ends the episode when right;
- `[finish]` ends the episode.
Fully rule-based: no user model. Tasks are authored by a seeded generator; train and test never share a
(rule, coefficients) pair.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from rltrain.envs.base import ENVIRONMENTS, Split, StepResult, TextEnv
from rltrain.types import Task

INSTRUCTIONS = (
    "There is a hidden function f of four numbers. Find the value of f on the test case.\n"
    "Act through the interact_with_env tool (or write one line: [choice] content). Choices:\n"
    "- action, content a,b,c,d: returns f(a,b,c,d)\n"
    "- search, content test: shows the test case inputs\n"
    "- answer, content x: submits f(test case)\n"
    "[finish] gives up."
)
"""The goal and the verbs in plain words; the tool's format is rendered by the chat template (`tools=`)."""

# Rule shapes: (name, formula with coefficients p, q, r). Evaluated only through `_evaluate`.
_SHAPES: dict[str, Callable[[list[float], list[int]], float]] = {
    "linear": lambda x, k: k[0] * x[0] + k[1] * x[1] - k[2] * x[2] + x[3],
    "product": lambda x, k: k[0] * x[0] * x[1] + k[1] * x[2] - k[2] * x[3],
    "mixed": lambda x, k: (x[0] + k[0]) * (x[1] - k[1]) + k[2] * x[2] * x[3],
    "max": lambda x, k: k[0] * max(x[0], x[1]) + k[1] * min(x[2], x[3]) + k[2],
}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _evaluate(shape: str, coefficients: list[int], inputs: list[float]) -> float:
    return round(float(_SHAPES[shape](inputs, coefficients)), 4)


def _tasks(split: Split, count: int, seed: int) -> list[Task]:
    rng = random.Random(f"function-{split}-{seed}")
    tasks: list[Task] = []
    while len(tasks) < count:
        shape = rng.choice(sorted(_SHAPES))
        coefficients = [rng.randint(1, 5) for _ in range(3)]
        if (sum(coefficients) % 2 == 0) != (split == "train"):  # the parity of the coefficients decides the split
            continue
        test = [rng.randint(1, 9) for _ in range(4)]
        tasks.append(Task(task_id=f"fn-{shape}-{'-'.join(map(str, coefficients))}-{'-'.join(map(str, test))}",
                          data={"shape": shape, "coefficients": coefficients, "test": test,
                                "answer": _evaluate(shape, coefficients, test)}))
    return tasks


@ENVIRONMENTS.register("function_gym")
class FunctionGym(TextEnv):
    """Hidden-function discovery, rule-based."""

    reward_fn = "turn_rewards"
    protocol = "interact"

    def __init__(self, max_steps: int = 16) -> None:
        self.max_steps = self.max_turns = max_steps
        self._task: Task | None = None
        self._steps = 0

    def tasks(self, split: Split, count: int, seed: int) -> list[Task]:
        return _tasks(split, count, seed)

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        self._task, self._steps = task, 0
        return [{"role": "user", "content": INSTRUCTIONS}], {}

    def step(self, action: str) -> StepResult:
        assert self._task is not None, "reset() first"
        self._steps += 1
        data = self._task.data
        verb, _, content = action.partition("]")
        verb, content = verb.strip("[ ").lower(), content.strip()
        truncated = self._steps >= self.max_steps
        if verb == "finish":
            return StepResult(None, terminated=True)
        if verb == "search":
            text = f"The test case is: {','.join(map(str, data['test']))}" if "test" in content.lower() else \
                "Only '[search] test' is available."
            return StepResult(text, truncated=truncated)
        if verb == "action":
            inputs = [float(n) for n in _NUMBER.findall(content)]
            if len(inputs) != 4:
                return StepResult("Give exactly four numbers: [action] a,b,c,d", truncated=truncated)
            if [int(v) if v.is_integer() else v for v in inputs] == data["test"]:
                return StepResult("That is the test case; query other inputs.", truncated=truncated)
            value = _evaluate(data["shape"], data["coefficients"], inputs)
            return StepResult(f"f({content}) = {int(value) if value.is_integer() else value}", truncated=truncated)
        if verb == "answer":
            found = _NUMBER.findall(content)
            correct = bool(found) and abs(float(found[-1]) - data["answer"]) <= 1e-6
            if correct:
                return StepResult(None, reward=1.0, terminated=True)
            return StepResult("Incorrect.", reward=0.0, truncated=truncated)
        return StepResult("Format wrong: use [action], [search], [answer] or [finish].", truncated=truncated)
