"""LaTRO's own settings (spec §3.1-3.4)."""

from __future__ import annotations

from dataclasses import dataclass

from rltrain.config.loader import check


@dataclass(frozen=True)
class LaTROConfig:
    kl_coef: float = 0.05
    """beta: weight of the rationale's log-ratio to the frozen initial model in the self-reward (paper 0.05)."""
    sft_penalty: float = 1.0
    """Weight of the answer-likelihood term -log pi(y|x+z). The paper's estimator has 1; the authors' code 0."""
    non_stop_penalty: bool = True
    """Replace the reward of a rationale that never stopped by `penalty_factor` x the batch-mean reward (authors' code)."""
    penalty_factor: float = 2.0
    """Multiplier of the batch-mean reward for unfinished rationales (authors' `penalty_reward_value`)."""
    stop_sequences: tuple[str, ...] = ("The answer is", "The answer:", "Answer:", "answer is")
    """A rationale ends at the first of these (or at end of turn); the rest of the sample is discarded."""
    answer_template: str = "The answer is {answer}."
    """The gold answer y appended to each rationale; `{answer}` is the task's answer."""

    def __post_init__(self) -> None:
        check(self.kl_coef >= 0, f"algorithm.latro.kl_coef={self.kl_coef} must be >= 0")
        check(self.sft_penalty >= 0, f"algorithm.latro.sft_penalty={self.sft_penalty} must be >= 0 (1 = paper, 0 = authors' code)")
        check(self.penalty_factor > 0, f"algorithm.latro.penalty_factor={self.penalty_factor} must be > 0")
        check("{answer}" in self.answer_template, f"algorithm.latro.answer_template={self.answer_template!r} must contain {{answer}}")
