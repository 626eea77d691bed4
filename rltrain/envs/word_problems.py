"""GSM8K-format arithmetic word problems, authored by a seeded generator (spec §3.4 data, in miniature).

Each problem has two or three operations on small numbers, and its gold answer is written in the template
`The answer is N.`. The train and test splits never meet: they use different templates, and every test
problem uses at least one number above 20 while train problems use numbers up to 20 only.
A user's own data works too: `env.kwargs.path` names a JSONL file (or parquet, with pandas) of
`{"question": ..., "answer": ...}` rows; the answer may be a number or GSM8K's `... #### N` form.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rltrain.envs.base import ENVIRONMENTS, Split, StepResult, TextEnv
from rltrain.types import Task

COT_TRIGGER = "Let's think step by step."
ANSWER_TEMPLATE = "The answer is {answer}."

# (template, answer as a function of the numbers); each template takes three numbers a, b, c.
_Template = tuple[str, Callable[[int, int, int], int]]
_TRAIN: list[_Template] = [
    ("Tom has {a} apples. He buys {b} more and then gives away {c}. How many apples does Tom have now?",
     lambda a, b, c: a + b - c),
    ("A shelf holds {a} books. Sara adds {b} boxes with {c} books each. How many books are on the shelf?",
     lambda a, b, c: a + b * c),
    ("There are {a} rows of {b} chairs, and {c} chairs are broken. How many chairs can be used?",
     lambda a, b, c: a * b - c),
    ("Mia saves {a} dollars a week for {b} weeks, then spends {c} dollars. How many dollars are left?",
     lambda a, b, c: a * b - c),
]
_TEST: list[_Template] = [
    ("A farmer picks {a} eggs on Monday and {b} eggs on Tuesday, then sells {c}. How many eggs remain?",
     lambda a, b, c: a + b - c),
    ("A bus carries {a} people. At a stop {b} get off and {c} get on. How many people are on the bus?",
     lambda a, b, c: a - b + c),
]


def _numbers(rng: random.Random, split: Split) -> tuple[int, int, int]:
    if split == "train":
        return rng.randint(2, 20), rng.randint(2, 9), rng.randint(1, 9)
    return rng.randint(21, 40), rng.randint(2, 20), rng.randint(1, 20)


def _generate(split: Split, count: int, seed: int) -> list[Task]:
    templates = _TRAIN if split == "train" else _TEST
    rng = random.Random(f"{split}-{seed}")
    tasks = []
    while len(tasks) < count:
        t = rng.randrange(len(templates))
        text, fn = templates[t]
        a, b, c = _numbers(rng, split)
        answer = fn(a, b, c)
        if answer < 0:
            continue
        tasks.append(Task(task_id=f"{split}-t{t}-{a}-{b}-{c}", data={"question": text.format(a=a, b=b, c=c), "answer": answer}))
    return tasks


def _load_pairs(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pandas as pd  # optional: only for users who bring parquet

        rows = pd.read_parquet(path).to_dict("records")
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    pairs = []
    for i, row in enumerate(rows):
        if "question" not in row or "answer" not in row:
            raise ValueError(f"{path}: row {i + 1} needs 'question' and 'answer' keys, got {sorted(row)}")
        answer = str(row["answer"]).split("####")[-1].strip().replace(",", "")
        pairs.append({"question": str(row["question"]), "answer": answer})
    return pairs


@ENVIRONMENTS.register("word_problems")
class WordProblemsEnv(TextEnv):
    """One question, one assistant turn (a rationale, then the answer)."""

    reward_fn = "word_problems"
    max_turns = 1  # one question, one answer

    def __init__(self, cot_trigger: str = COT_TRIGGER, path: str | None = None, test_fraction: float = 0.2) -> None:
        self.cot_trigger = cot_trigger
        self.path = Path(path) if path else None
        self.test_fraction = test_fraction
        if self.path is not None and not self.path.is_file():
            raise ValueError(f"env.kwargs.path={path!r} does not exist; give a JSONL file of question/answer rows")

    def tasks(self, split: Split, count: int, seed: int) -> list[Task]:
        if self.path is None:
            return _generate(split, count, seed)
        pairs = _load_pairs(self.path)
        cut = int(len(pairs) * (1 - self.test_fraction))  # file order decides the split, so it never changes
        chosen = pairs[:cut] if split == "train" else pairs[cut:]
        rng = random.Random(f"{split}-{seed}")
        picked = [rng.choice(chosen) for _ in range(count)] if split == "train" else chosen[:count]
        return [Task(task_id=f"{split}-{hash(p['question']) & 0xffffffff:x}", data=p) for p in picked]

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        return [{"role": "user", "content": f"{task.data['question']}\n{self.cot_trigger}".strip()}], {}

    def step(self, action: str) -> StepResult:
        return StepResult(observation=None, terminated=True)
