"""Unified rows -> tokenized SFT samples with an assistant-only loss mask (docs/sft.md "Samples").

Default: one sample per trajectory with every assistant turn in the loss (TRL's `assistant_only_loss`).
`per_turn=True` gives ActionStudio's expansion instead (spec §6.2): one sample per assistant turn, id
`<traj>---<idx>`, the conversation up to that turn as context and only that turn in the loss.

Tokens are laid out exactly as the RL agent loop lays them out (`rltrain.agent.ChatRenderer`), so that SFT teaches
the token sequences RL later samples and scores: the chat template renders the conversation (with the tools'
schemas through `tools=`, in rltrain's canonical tool template where the model's own drops them); each assistant
turn is the template's text from after the generation prompt through the end-of-turn token, encoded on its own
(loss 1); everything between turns is encoded on its own (loss 0). Tool calls are rendered by the template from
`tool_calls` (the canonical Hermes form `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`), never as an
empty target. A turn whose target is empty, "none" or "null" is not trained on (counted in `SFTStats`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rltrain.data.formats import check_unified
from rltrain.tools.templates import tool_template

EMPTY_TARGETS = ("", "none", "null")
"""Targets ActionStudio's converter drops (compared stripped and lower-cased)."""


@dataclass(frozen=True)
class SFTSample:
    """One tokenized training sample.

    Attributes:
        sample_id: the trajectory id, or `<traj>---<idx>` for a per-turn sample (idx: the assistant turn).
        input_ids: the whole token sequence.
        loss_mask: 1 on the tokens the loss trains (assistant turns, end-of-turn token included), same length.
        source: the dataset it came from (`sft.datasets[].path`), for per-source metrics.
    """

    sample_id: str
    input_ids: list[int]
    loss_mask: list[int]
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.loss_mask):
            raise ValueError(f"sample {self.sample_id}: {len(self.input_ids)} ids but {len(self.loss_mask)} mask entries")

    @property
    def num_target_tokens(self) -> int:
        return sum(self.loss_mask)


@dataclass
class SFTStats:
    """What sample building dropped and why (logged, and written to the run's metrics)."""

    samples: int = 0
    target_turns: int = 0
    dropped: Counter = field(default_factory=Counter)


def _chat_messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A unified row as chat-template messages (OpenAI shape: tool_calls with type function)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": row["task_instruction"]}] if row["task_instruction"] else []
    for m in row["conversation"]:
        out: dict[str, Any] = {"role": m["role"], "content": m["content"]}
        if m.get("tool_calls"):
            out["tool_calls"] = [{"type": "function", "function": c["function"], **({"id": c["id"]} if "id" in c else {})}
                                 for c in m["tool_calls"]]
        if m.get("thought"):
            out["reasoning_content"] = m["thought"]  # templates that show thoughts (Qwen3) read this key
        if m.get("tool_call_id"):
            out["tool_call_id"] = m["tool_call_id"]
        messages.append(out)
    return messages


def is_empty_target(message: dict[str, Any]) -> bool:
    return not message.get("tool_calls") and (message.get("content") or "").strip().lower() in EMPTY_TARGETS


class SampleBuilder:
    """Tokenizes unified rows for one tokenizer (see the module docstring for the layout)."""

    def __init__(self, tokenizer: Any, max_length: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.eos: str = tokenizer.eos_token
        self._tool_template = tool_template(tokenizer)
        self.stats = SFTStats()

    def _render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, generation_prompt: bool) -> str:
        schemas = [{"type": "function", "function": t} for t in tools] if tools else None
        return self.tokenizer.apply_chat_template(messages, tools=schemas, tokenize=False, add_generation_prompt=generation_prompt,
                                                  chat_template=self._tool_template if schemas else None)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def segments(self, row: dict[str, Any]) -> list[tuple[str, bool, int]]:
        """(text, is_target, assistant_index) pieces whose concatenation is the rendered conversation, up to the last
        assistant turn's end-of-turn token. Raises ValueError for a template that rewrites earlier turns."""
        row = check_unified(row)
        messages, tools = _chat_messages(row), row["tools"]
        pieces: list[tuple[str, bool, int]] = []
        done = ""  # the text covered by pieces so far
        k = -1
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            k += 1
            before = self._render(messages[:i], tools, generation_prompt=True)
            through = self._render(messages[: i + 1], tools, generation_prompt=False)
            if not (before.startswith(done) and through.startswith(before)):
                raise ValueError(f"trajectory {row['unique_trajectory_id']!r}: the chat template rewrites earlier turns "
                                 f"(e.g. drops past thoughts); use sft.per_turn: true (each turn rendered on its own)")
            end = self._target_end(through, len(before))
            pieces.append((before[len(done):], False, -1))
            pieces.append((through[len(before):end], not is_empty_target(m), k))
            done = through[:end]
        return pieces

    def _target_end(self, through: str, start: int) -> int:
        end = through.find(self.eos, start)
        return len(through) if end < 0 else end + len(self.eos)

    def _per_turn(self, row: dict[str, Any], source: str) -> list[SFTSample]:
        """One sample per trainable assistant turn: the template's rendering of the conversation before it, then the
        turn. Needs no prefix stability across turns (templates that drop past thoughts work)."""
        row = check_unified(row)
        messages, tools = _chat_messages(row), row["tools"]
        out, k = [], -1
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            k += 1
            if is_empty_target(m):
                self.stats.dropped["empty_target"] += 1
                continue
            before = self._render(messages[:i], tools, generation_prompt=True)
            through = self._render(messages[: i + 1], tools, generation_prompt=False)
            if not through.startswith(before):
                raise ValueError(f"trajectory {row['unique_trajectory_id']!r}: the chat template renders turn {k} differently "
                                 f"with and without the generation prompt; it cannot be trained on")
            context, target = self._encode(before), self._encode(through[len(before): self._target_end(through, len(before))])
            out.append(SFTSample(f"{row['unique_trajectory_id']}---{k}", context + target, [0] * len(context) + [1] * len(target),
                                 source))
        return out

    def build(self, row: dict[str, Any], per_turn: bool = False, source: str = "") -> list[SFTSample]:
        """The samples of one unified row (none when it has no trainable turn; counted in `stats.dropped`)."""
        if per_turn:
            samples = self._per_turn(row, source)
            self.stats.target_turns += len(samples)
            if not samples:
                self.stats.dropped["no_target"] += 1
        else:
            samples = self._whole(row, source)
        kept = [s for s in samples if self.max_length is None or len(s.input_ids) <= self.max_length]
        self.stats.dropped["too_long"] += len(samples) - len(kept)
        self.stats.samples += len(kept)
        return kept

    def _whole(self, row: dict[str, Any], source: str) -> list[SFTSample]:
        """One sample with every trainable assistant turn in the loss (see `segments`)."""
        pieces = self.segments(row)
        ids: list[int] = []
        mask: list[int] = []
        turns = 0
        for text, target, k in pieces:
            tokens = self._encode(text)
            if k >= 0 and not target:
                self.stats.dropped["empty_target"] += 1
            turns += target
            ids += tokens
            mask += [1 if target else 0] * len(tokens)
        if not turns:
            self.stats.dropped["no_target"] += 1
            return []
        self.stats.target_turns += turns
        return [SFTSample(str(row["unique_trajectory_id"]), ids, mask, source)]
