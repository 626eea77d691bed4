"""GSM8K-format word problems: seeded, gold answers in the template, splits disjoint by template and numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rewards import REWARD_FNS, RewardInput
from rltrain.config import ConfigError
from rltrain.envs import make_env
from rltrain.envs.word_problems import _TEST, _TRAIN


def test_answers_are_right_and_splits_disjoint() -> None:
    env = make_env("word_problems", {})
    train, test = env.tasks("train", 300, seed=0), env.tasks("test", 100, seed=0)
    for task in train + test:
        a, b, c = map(int, task.task_id.split("-")[2:])
        templates = _TRAIN if task.task_id.startswith("train") else _TEST
        text, fn = templates[int(task.task_id.split("-")[1][1:])]
        assert task.data["question"] == text.format(a=a, b=b, c=c) and task.data["answer"] == fn(a, b, c) >= 0
    train_numbers = {int(n) for t in train for n in re.findall(r"\d+", t.data["question"])}
    assert max(train_numbers) <= 20
    assert all(max(map(int, re.findall(r"\d+", t.data["question"]))) > 20 for t in test)
    assert not {t.data["question"] for t in train} & {t.data["question"] for t in test}
    assert env.tasks("train", 5, seed=1) == env.tasks("train", 5, seed=1) != env.tasks("train", 5, seed=2)


def test_prompt_carries_the_cot_trigger() -> None:
    env = make_env("word_problems", {})
    messages, _ = env.reset(env.tasks("test", 1, seed=0)[0])
    assert messages[0]["content"].endswith("\nLet's think step by step.")


def test_user_jsonl_with_gsm8k_answers(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [{"question": f"q{i}", "answer": f"work... #### {i}"} for i in range(10)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    env = make_env("word_problems", {"path": str(path)})
    test = env.tasks("test", 10, seed=0)
    assert [t.data for t in test] == [{"question": "q8", "answer": "8"}, {"question": "q9", "answer": "9"}]
    assert {t.data["question"] for t in env.tasks("train", 50, seed=0)} <= {f"q{i}" for i in range(8)}
    with pytest.raises(ConfigError, match="does not exist"):
        make_env("word_problems", {"path": str(tmp_path / "missing.jsonl")})


@pytest.mark.parametrize(("text", "score"), [("So 12. The answer is 12.", 1.0), ("The answer is: 12", 1.0), ("... 5, then 12", 1.0),
                                             ("The answer is 13. Or 12", 0.0), ("", 0.0)])
def test_exact_match_reward(text: str, score: float) -> None:
    sample = RewardInput([{"role": "assistant", "content": text}], {"answer": 12})
    assert REWARD_FNS.get("word_problems")(sample) == {"correct": score}
