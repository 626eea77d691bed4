"""The algorithm contract: what a learning algorithm supplies to the shared driver and learner.

An algorithm has two duties (ARCHITECTURE.md, "Algorithms"):
1. driver side, `make_batch`: turn scored trajectories into a `TrainBatch` (advantages, masks);
2. learner side, `loss`: turn a micro-batch's log-probs and the batch fields into a scalar loss and metrics.

The learner stays algorithm-blind: it computes `policy_logprobs` (with grad), `old_logprobs` and, when
`needs_reference`, `ref_logprobs`, then calls `loss`. `docs/design.md` shows how LaTRO, router RL and the
adaptation vector map onto this contract.

To add an algorithm: write `rltrain/algorithms/<name>.py` with an `Algorithm` subclass decorated by
`@ALGORITHMS.register("<name>")`, give it a config section, and import the module in `__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from rltrain.registry import Registry
from rltrain.types import TrainBatch, Trajectory


@dataclass(frozen=True)
class LossInputs:
    """One micro-batch as the loss sees it. All (B, T), aligned with `input_ids` (see `TrainBatch`).

    Attributes:
        policy_logprobs: log pi_theta(token), with grad.
        old_logprobs: log-probs of the policy that the advantages belong to (before this batch's updates).
        rollout_logprobs: the engine's sampling log-probs.
        ref_logprobs: the frozen reference's log-probs, or None when the algorithm needs no reference.
        entropy: per-token entropy of the policy (no grad), or None.
        advantages: per-token advantages.
        loss_mask: True on policy tokens.
        answer_mask: True on supervised target tokens (LaTRO's gold answer), or None.
    """

    policy_logprobs: torch.Tensor
    old_logprobs: torch.Tensor
    rollout_logprobs: torch.Tensor
    ref_logprobs: torch.Tensor | None
    entropy: torch.Tensor | None
    advantages: torch.Tensor
    loss_mask: torch.Tensor
    answer_mask: torch.Tensor | None = None


class Algorithm(ABC):
    """A learning algorithm: batch construction on the driver, loss on the learner."""

    @property
    def needs_reference(self) -> bool:
        """Whether the learner must hold a frozen reference model (only when a KL term is on)."""
        return False

    @property
    def entropy_in_loss(self) -> bool:
        """Whether `loss` uses `LossInputs.entropy` (then it is computed with grad, at a memory cost)."""
        return False

    @property
    def epochs(self) -> int:
        """Passes over each step's batch."""
        return 1

    @property
    def needs_frozen_logprobs(self) -> bool:
        """Whether `prepare_on_learner` needs the pre-update policy's log-probs of the whole batch."""
        return False

    @property
    def rollout_stop_strings(self) -> tuple[str, ...]:
        """Extra stop strings for training rollouts (LaTRO stops rationales at "The answer is")."""
        return ()

    @property
    def sampling_rounds(self) -> int:
        """Most rollout rounds per step; above 1 the driver refills the batch (GRPO's DAPO dynamic sampling)."""
        return 1

    @abstractmethod
    def make_batch(self, trajectories: list[Trajectory], tokenizer: Any) -> tuple[TrainBatch, dict[str, float]]:
        """Scored trajectories (failed ones excluded) -> a training batch and batch-level metrics.

        `tokenizer` is the model's (HF) tokenizer: pad/eos ids, and encode/decode for algorithms that build
        new token rows (LaTRO appends the gold answer to each rationale).
        """

    def prepare_on_learner(self, batch: TrainBatch, frozen_logprobs: torch.Tensor | None,
                           ref_logprobs: torch.Tensor | None) -> tuple[TrainBatch, dict[str, float]]:
        """Learner-side, before any update of this batch: fill in what needs the model (self-rewards,
        advantages). `frozen_logprobs` (B, T) are the pre-update policy's, when `needs_frozen_logprobs`.
        The rows of one group are on the same rank. Default: the batch as the driver built it."""
        return batch, {}

    @abstractmethod
    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar loss of one micro-batch and detached metric tensors."""


ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")
