"""The arithmetic verifier's terms (issue 2: 1 for the right number, a small format term)."""

from __future__ import annotations

import pytest

from rewards import REWARD_FNS, RewardInput


def ask(text: str, answer: int = 12) -> RewardInput:
    return RewardInput(messages=[{"role": "user", "content": "What is 5+7?"}, {"role": "assistant", "content": text}],
                       task={"answer": answer})


@pytest.mark.parametrize(
    ("text", "correct", "fmt"),
    [("12", 1.0, 0.2), (" 12\n", 1.0, 0.2), ("12.", 1.0, 0.2), ("5 + 7 = 12", 1.0, 0.0), ("12 apples, not 13", 0.0, 0.0),
     ("13", 0.0, 0.2), ("", 0.0, 0.0), ("twelve", 0.0, 0.0)],
)
def test_terms(text: str, correct: float, fmt: float) -> None:
    assert REWARD_FNS.get("arithmetic")(ask(text)) == {"correct": correct, "format": fmt}


def test_constants_are_configurable() -> None:
    assert REWARD_FNS.get("arithmetic")(ask("12"), correct_reward=2.0, format_reward=0.5) == {"correct": 2.0, "format": 0.5}


def test_registry_rejects_duplicates_and_lists_names() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        REWARD_FNS.register("arithmetic")(lambda s: {})
    with pytest.raises(KeyError, match="registered: arithmetic"):
        REWARD_FNS.get("nope")
