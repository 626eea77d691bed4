"""Which prompt tokens the δ loss skips: user-role segments of a ChatML prompt (spec §5.1, `mask_tokens`).

A segment runs from the `<|im_start|>` that opens a user message through its `<|im_end|>`. Loss position t
predicts token t+1, so position t is masked when token t+1 lies in a user segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChatMarkers:
    """Token ids of the ChatML markers: `<|im_start|>`, `<|im_end|>`, and the ids that spell the role `user`."""

    start: int
    end: int
    user: tuple[int, ...]

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> ChatMarkers:
        start = tokenizer.convert_tokens_to_ids("<|im_start|>")
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if start is None or end is None or start == tokenizer.unk_token_id:
            raise ValueError("adapt.mask_user needs a ChatML chat template (<|im_start|>/<|im_end|>); this tokenizer has "
                             "none: set adapt.mask_user=false")
        return cls(start, end, tuple(tokenizer.encode("user", add_special_tokens=False)))


def user_token_mask(ids: Sequence[int], markers: ChatMarkers) -> list[bool]:
    """Per token, True if it lies in a user segment (header and closing `<|im_end|>` included)."""
    out = [False] * len(ids)
    n = len(markers.user)
    i = 0
    while i < len(ids):
        if ids[i] == markers.start and tuple(ids[i + 1:i + 1 + n]) == markers.user:
            j = i
            while j < len(ids) and not (ids[j] == markers.end and j > i):
                out[j] = True
                j += 1
            if j < len(ids):
                out[j] = True  # the segment's <|im_end|>
            i = j + 1
        else:
            i += 1
    return out


def loss_mask(ids: Sequence[int], markers: ChatMarkers | None) -> list[float]:
    """The mask of the T-1 loss positions of a T-token prompt (1 = counts); all ones without markers."""
    if markers is None:
        return [1.0] * max(len(ids) - 1, 0)
    in_user = user_token_mask(ids, markers)
    return [0.0 if in_user[t + 1] else 1.0 for t in range(len(ids) - 1)]
