"""The data that moves between roles: tasks, generations, trajectories and training batches.

Token accounting is exact by construction (ARCHITECTURE.md, "Trajectory contract"): the engine returns the
ids it generated, environment turns are tokenized once, and a trajectory is the concatenation of those ids.
Nothing is ever re-tokenized from text. Trajectories serialise losslessly to one JSON object per line.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Task:
    """One prompt of an environment: what `env.reset` receives.

    Attributes:
        task_id: stable id, unique within the environment and split.
        data: everything the environment and verifier need (question, answer, ...), JSON-serialisable.
    """

    task_id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Generation:
    """What an engine returns for one request.

    Attributes:
        token_ids: the sampled ids, ending with the stop token when `finish_reason == "stop"`.
        logprobs: log-probability of each sampled id under the sampling distribution (same length).
        finish_reason: "stop" (end of turn) or "length" (hit max_new_tokens).
    """

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(f"Generation has {len(self.token_ids)} ids but {len(self.logprobs)} logprobs")


@dataclass
class Trajectory:
    """One episode: prompt, the interleaved policy and environment tokens, rewards and provenance.

    `response_ids` holds every token after the prompt: policy generations (loss_mask 1) and environment or
    user turns (loss_mask 0). `rollout_logprobs` is the engine's logprob on policy tokens and 0 elsewhere.
    `turn_boundaries[t]` is the index in `response_ids` where assistant turn t starts (the first is 0).
    `turn_rewards[t]` is the environment's reward for turn t. `reward` is the trajectory score set by the
    reward accountant; `failure` is set instead when the infrastructure failed (never reported as 0).
    `format_error` says why a malformed tool call ended the episode (a policy mistake, scored normally).
    `user_calls` holds one record per simulated-user call (`rltrain.users.UserReply.record`): tokens, latency.
    `judge_errors` lists the turns whose simulated judge answered in a malformed way (scored by the gym's
    fallback rule, reward 0 for that turn; a weak simulator shows up here, not as silent zeros).
    `token_drift` says where the ids part from a re-tokenization of `messages` (`ChatRenderer.drift`): "policy:<i>"
    is flagged only; "context:<i>" (a prompt or environment token) keeps the trajectory out of training.
    `tool_records` holds one record per tool call (`rltrain.tools.execution.CallOutcome.record`, docs/tools.md):
    turn, index, call_id, name, arguments, format, offered, error (None, an error class, "not_run", or "IFE" with
    `parse_error`), reward, result (the observation's first 500 characters), latency_s, raw. `tool_calls` counts
    the calls (and tagged lines) that reached a tool. Rows written before a field existed read back with its default.
    """

    task_id: str
    group_id: int
    env: str
    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    rollout_logprobs: list[float] = field(default_factory=list)
    turn_boundaries: list[int] = field(default_factory=list)
    turn_rewards: list[float] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    task_data: dict[str, Any] = field(default_factory=dict)
    weight_version: int = 0
    finish_reason: str = ""
    reward: float | None = None
    reward_terms: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    tool_calls: int = 0
    format_error: str | None = None
    cost_records: list[dict[str, Any]] = field(default_factory=list)
    user_calls: list[dict[str, Any]] = field(default_factory=list)
    judge_errors: list[str] = field(default_factory=list)
    token_drift: str | None = None
    tool_records: list[dict[str, Any]] = field(default_factory=list)

    def append(self, token_ids: list[int], *, policy: bool, logprobs: list[float] | None = None) -> None:
        """Append tokens; policy tokens open a new turn and carry logprobs, others are masked out."""
        if policy:
            if logprobs is None or len(logprobs) != len(token_ids):
                raise ValueError("policy tokens need one logprob each")
            self.turn_boundaries.append(len(self.response_ids))
        self.response_ids.extend(token_ids)
        self.loss_mask.extend([1 if policy else 0] * len(token_ids))
        self.rollout_logprobs.extend(logprobs if policy else [0.0] * len(token_ids))

    @property
    def failed(self) -> bool:
        return self.failure is not None

    @property
    def context_drift(self) -> bool:
        """The loop-built context differs from a re-tokenization of the conversation: not trained on."""
        return (self.token_drift or "").startswith("context")

    @property
    def num_policy_tokens(self) -> int:
        return sum(self.loss_mask)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, line: str) -> Trajectory:
        """A trajectory from one JSON line; keys that are not fields (a run file's `step`) are left out."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(line).items() if k in fields})


@dataclass
class TrainBatch:
    """A padded batch for the learner, right-padded; row i is trajectory i (or, packed, several samples: `position_ids`).

    Shapes: B rows, T = longest prompt+response. Token position j of `input_ids` is predicted from position
    j-1, so per-token tensors (`loss_mask`, `advantages`, logprobs) are aligned with `input_ids` and entry 0
    of each row is always masked out.

    Attributes:
        input_ids: (B, T) long, prompt followed by response, padded with `pad_id`.
        attention_mask: (B, T) long, 1 on real tokens.
        loss_mask: (B, T) bool, True on policy tokens only.
        advantages: (B, T) float, per-token advantage (0 where masked).
        rollout_logprobs: (B, T) float, the engine's sampling logprobs (0 where masked).
        sequence_rewards: (B,) float, the trajectory scores the advantages came from (for metrics).
        group_ids: (B,) long, which task (group) each row samples; rows of a group are contiguous.
        answer_mask: (B, T) bool or None, tokens of a supervised target (LaTRO's gold answer y).
        finished: (B,) bool or None, whether a generated segment stopped by itself (LaTRO's non-stop penalty).
        position_ids: (B, T) long or None. None: row i is one sample (padded). Set: packed rows
            (rltrain.ops.packing.pack): several samples per row, positions restarting at 0 at each sample start; the
            learner then attends block-diagonally (no sample sees another), and `loss_mask` must be False at each
            sample's first token (its "predecessor" is the previous sample's last token).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    rollout_logprobs: torch.Tensor
    sequence_rewards: torch.Tensor
    group_ids: torch.Tensor | None = None
    answer_mask: torch.Tensor | None = None
    finished: torch.Tensor | None = None
    position_ids: torch.Tensor | None = None

    def __post_init__(self) -> None:
        shape = self.input_ids.shape
        for name in ("attention_mask", "loss_mask", "advantages", "rollout_logprobs", "answer_mask", "position_ids"):
            value = getattr(self, name)
            if value is not None and value.shape != shape:
                raise ValueError(f"TrainBatch.{name} has shape {tuple(value.shape)}, expected {tuple(shape)}")
        for name in ("sequence_rewards", "group_ids", "finished"):
            value = getattr(self, name)
            if value is not None and value.shape != shape[:1]:
                raise ValueError(f"TrainBatch.{name} has shape {tuple(value.shape)}, expected ({shape[0]},)")

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: torch.Tensor | slice) -> TrainBatch:
        """Rows `rows` of every field, trimmed to the longest remaining sequence."""
        picked = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        picked = {k: (v[rows] if v is not None else None) for k, v in picked.items()}
        width = int(picked["attention_mask"].sum(dim=1).max().item()) if len(picked["input_ids"]) else 0
        return TrainBatch(**{k: (v[:, :width] if v is not None and v.dim() == 2 else v) for k, v in picked.items()})

    def split(self, parts: int) -> list[TrainBatch]:
        """`parts` equal, contiguous shards; the caller guarantees divisibility (checked by the config)."""
        size = len(self) // parts
        return [self.select(slice(i * size, (i + 1) * size)) for i in range(parts)]
