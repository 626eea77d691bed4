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
    """

    policy_logprobs: torch.Tensor
    old_logprobs: torch.Tensor
    rollout_logprobs: torch.Tensor
    ref_logprobs: torch.Tensor | None
    entropy: torch.Tensor | None
    advantages: torch.Tensor
    loss_mask: torch.Tensor


class Algorithm(ABC):
    """A learning algorithm: batch construction on the driver, loss on the learner."""

    @property
    def needs_reference(self) -> bool:
        """Whether the learner must hold a frozen reference model (only when a KL term is on)."""
        return False

    @property
    def epochs(self) -> int:
        """Passes over each step's batch."""
        return 1

    @abstractmethod
    def make_batch(self, trajectories: list[Trajectory], pad_id: int) -> tuple[TrainBatch, dict[str, float]]:
        """Scored trajectories (failed ones excluded) -> a training batch and batch-level metrics."""

    @abstractmethod
    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar loss of one micro-batch and detached metric tensors."""


ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")
