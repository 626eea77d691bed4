"""The inference-engine contract used by rollout workers.

An engine generates token ids from token ids (never text, so nothing is re-tokenized), returns the sampling
logprob of every generated token, and accepts versioned weight updates from a safetensors folder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from rltrain.types import Generation


@dataclass(frozen=True)
class Sampling:
    """How to sample one assistant turn.

    Attributes:
        max_new_tokens: most tokens to generate.
        temperature: 0 means greedy.
        top_p: nucleus mass.
        stop_token_ids: ids that end the turn (kept as the last generated token).
        stop_strings: texts that may end generation early; an optimisation only (engines may ignore it), so the
            caller truncates at them itself where it matters.
        min_new_tokens: stop tokens are suppressed until this many tokens exist (fixed-length benchmarks).
    """

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop_token_ids: tuple[int, ...] = ()
    stop_strings: tuple[str, ...] = ()
    min_new_tokens: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class RolloutEngine(ABC):
    """One model replica that serves many concurrent generate calls."""

    version: int = 0
    """Weight version currently loaded (0 = the initial model)."""

    @abstractmethod
    async def start(self) -> None:
        """Load the model; called once inside the worker."""

    @abstractmethod
    async def generate(self, prompt_ids: list[int], sampling: Sampling) -> Generation:
        """Generate one continuation of `prompt_ids`."""

    @abstractmethod
    async def load_weights(self, folder: str, version: int) -> None:
        """Replace the weights with the safetensors file(s) in `folder` and clear any prefix cache."""

    async def threads(self) -> int:
        """torch threads of the process that runs the model."""
        import torch

        return torch.get_num_threads()

    async def shutdown(self) -> None:
        """Release engine processes and memory."""
