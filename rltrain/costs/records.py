"""One record per model call, of every role: what was called, what it read and wrote, what it cost.

A record is written by whoever made the call (the rollout worker for the policy, the LLM service for users,
judges and pool models) as a plain dict (`CallRecord.to_dict`), carried on the trajectory, priced from the
run's price table (`rltrain.costs.prices`) and appended by the cost ledger to `runs/<name>/costs.jsonl`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["policy", "user", "judge", "pool", "proposer", "reviewer", "summariser", "other"]
ROLES: tuple[str, ...] = ("policy", "user", "judge", "pool", "proposer", "reviewer", "summariser", "other")


@dataclass(frozen=True)
class CallRecord:
    """One model call.

    Attributes:
        call_id: unique within the run (`<trajectory>/<role>/<n>` for calls made inside an episode).
        run: the run's name.
        step: the training step the call belongs to (-1 outside training: eval, serve).
        trajectory: the episode id (`<task_id>#<sample>`), "" for calls outside an episode.
        role: policy, user, judge, pool (a routed model), proposer, reviewer, summariser, other.
        model: the model id the price table is keyed by.
        provider: "local", "openai", "together", ... (from the price table when the caller does not know).
        input_tokens, output_tokens: as the provider reported them; output includes reasoning tokens.
        reasoning_tokens: the part of output_tokens the provider reported as hidden reasoning (0 if none).
        latency_s: seconds from request to reply.
        success: False for a call that failed (engine down, time-out); a failed call costs 0.
        estimated: True when the provider reported no usage and the tokens were counted by us (tokenizer or
            4 characters per token, spec §4.3).
        usd: the price, filled by `PriceTable.price`; None until priced.
        price_table: `<name>@<version>` of the table that priced it.
        cached: answered from a response cache; its tokens are what the model would have used, its USD is 0
            unless the ledger is told to charge cached replies (`costs.charge_cached`).
    """

    call_id: str
    role: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    latency_s: float = 0.0
    success: bool = True
    estimated: bool = False
    provider: str = ""
    run: str = ""
    step: int = -1
    trajectory: str = ""
    usd: float | None = None
    price_table: str = ""
    cached: bool = False

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"cost record {self.call_id!r}: role {self.role!r} is not one of {ROLES}")
        if min(self.input_tokens, self.output_tokens, self.reasoning_tokens) < 0:
            raise ValueError(f"cost record {self.call_id!r}: token counts must be >= 0")

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        """A record from `to_dict` (or a costs.jsonl line); unknown keys are ignored (newer writers)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def estimate_tokens(text: str, tokenizer: Any | None = None) -> int:
    """Tokens of `text` when the provider reported none: the tokenizer's count, else 4 characters per token.

    >>> estimate_tokens("abcdefgh")
    2
    """
    if tokenizer is not None:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return len(text) // 4
