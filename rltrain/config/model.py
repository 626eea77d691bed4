"""Which model the run trains, and where converted models are cached."""

from __future__ import annotations

from dataclasses import dataclass

from rltrain.config.loader import check


@dataclass(frozen=True)
class ModelConfig:
    name: str = "smollm2-135m-instruct"
    """`smollm2-135m-instruct` (embedded, converted on first use), a local HF folder, or a hub id `org/name`."""
    cache_dir: str | None = None
    """Where the embedded model is converted to; default `$RLTRAIN_CACHE` or `~/.cache/rltrain`."""
    max_model_len: int = 1024
    """Longest prompt + response in tokens; sets the engine's context and the learner's truncation."""

    def __post_init__(self) -> None:
        check(bool(self.name), "model.name is empty; set it to smollm2-135m-instruct, a local folder or a hub id")
        check(self.max_model_len >= 16, f"model.max_model_len={self.max_model_len} is too small; use at least 16 (e.g. 1024)")
