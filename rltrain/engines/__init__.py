"""Inference engines behind one interface (`RolloutEngine`): vLLM, and transformers as the fallback."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from rltrain.engines.base import RolloutEngine, Sampling

if TYPE_CHECKING:
    from rltrain.adapt.vector import AdaptConfig

__all__ = ["RolloutEngine", "Sampling", "make_engine", "vllm_available"]


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def make_engine(kind: str, model_path: str, *, dtype: str, max_model_len: int, gpu_memory_utilization: float,
                kv_cache_gib: int, seed: int, threads: int, adapt: AdaptConfig | None = None) -> RolloutEngine:
    """Build the engine named by `rollout.engine` (`auto` picks vLLM where installed); `adapt` enables per-session
    adaptation vectors (rltrain.adapt) in either engine."""
    if kind == "auto":
        kind = "vllm" if vllm_available() else "transformers"
    if kind == "vllm":
        if not vllm_available():
            raise ValueError("rollout.engine=vllm but vLLM is not installed; pip install 'rltrain[cpu]' (or [gpu]), or set rollout.engine=transformers")
        from rltrain.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model_path, dtype=dtype, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                          kv_cache_gib=kv_cache_gib, seed=seed, threads=threads, adapt=adapt)
    from rltrain.engines.hf_engine import HFEngine

    return HFEngine(model_path, dtype=dtype, seed=seed, adapt=adapt)
