"""transformers as a rollout engine: the universal fallback where vLLM is not installed.

Concurrent generate calls are gathered into batches (one `model.generate` per batch, left-padded), so an
async agent loop with many episodes in flight still runs batched.

It is also the reference implementation of test-time adaptation (spec §5.1, `rltrain.adapt`): a request that
names a session gets that session's δ. A forward hook on the decoder's final norm sees the prefill's hidden
states, takes the session's Adam step(s) on the prompt's next-token loss, and then adds δ to the hidden states
of that forward and of every decode step, so logits = W_U(h + δ) and the first token (sampled from the prefill's
own forward) already uses the updated δ. Rows without a session are left untouched (bitwise).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rltrain.adapt.masking import ChatMarkers, loss_mask
from rltrain.adapt.sessions import SessionStore
from rltrain.adapt.vector import AdaptConfig, AdaptState, adapt_step
from rltrain.engines.base import RolloutEngine, Sampling
from rltrain.types import Generation


@dataclass
class _Request:
    prompt_ids: list[int]
    sampling: Sampling
    done: asyncio.Future = field(repr=False)
    session: str | None = None


@dataclass
class _BatchAdapt:
    """What the norm hook needs for one `model.generate` batch: each row's δ state (None = not adapted)."""

    states: list[AdaptState | None]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prefill_done: bool = False


class HFEngine(RolloutEngine):
    """A transformers causal LM behind a batching queue."""

    def __init__(self, model_path: str, *, dtype: str, seed: int, max_batch: int = 64, adapt: AdaptConfig | None = None,
                 session_ttl_s: float = 3600.0, max_sessions: int = 4096) -> None:
        self.model_path = model_path
        self.dtype = getattr(torch, dtype)
        self.seed = seed
        self.max_batch = max_batch
        self.adapt = adapt or AdaptConfig()
        self._session_limits = (session_ttl_s, max_sessions)
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._loop_task: asyncio.Task | None = None
        self._batch_adapt: _BatchAdapt | None = None

    async def start(self) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=self.dtype).eval()
        pad = self.model.generation_config.pad_token_id
        self.pad_id = pad if pad is not None else (self.model.config.eos_token_id or 0)
        self._reseed(0)
        self.sessions = SessionStore(self.model.config.hidden_size, ttl_s=self._session_limits[0],
                                     max_sessions=self._session_limits[1])
        self._markers: ChatMarkers | None = None
        if self.adapt.mask_user:
            from transformers import AutoTokenizer

            self._markers = ChatMarkers.from_tokenizer(AutoTokenizer.from_pretrained(self.model_path))
        self.model.get_decoder().norm.register_forward_hook(self._norm_hook)
        self._loop_task = asyncio.get_running_loop().create_task(self._serve())

    async def generate(self, prompt_ids: list[int], sampling: Sampling, *, session: str | None = None) -> Generation:
        """Generate; with `session`, adapt that session's δ on this prompt first and decode with it (spec §5.1)."""
        done = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(list(prompt_ids), sampling, done, session))
        return await done

    async def reset_session(self, session: str) -> bool:
        """δ = 0 and Adam zeroed for `session` (call at each episode start, or each turn); False if it was unknown."""
        return self.sessions.reset(session)

    async def session_summary(self, session: str) -> dict | None:
        """δ's norm, Adam steps, prefills and last loss for `session`; None if it does not exist."""
        state = self.sessions.peek(session)
        return state.summary() if state is not None else None

    def _norm_hook(self, module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        """Final-norm output -> h + δ per adapted row; on the batch's prefill, first update δ from the prompt."""
        ctx = self._batch_adapt
        if ctx is None:
            return None
        head = self.model.get_output_embeddings().weight
        if not ctx.prefill_done:  # the first forward of a generate call is the prefill: every prompt position
            ctx.prefill_done = True
            for row, state in enumerate(ctx.states):
                if state is None:
                    continue
                keep = ctx.attention_mask[row].bool()
                ids = ctx.input_ids[row, keep]
                mask = torch.tensor(loss_mask(ids.tolist(), self._markers))
                adapt_step(state, output[row, keep][:-1], head, ids[1:], mask, self.adapt)
        out = output.clone()
        for row, state in enumerate(ctx.states):
            if state is not None:
                out[row] += state.delta.to(out.dtype)
        return out

    async def _serve(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(0)  # let the other episodes of this tick enqueue
            while not self._queue.empty() and len(batch) < self.max_batch:
                batch.append(self._queue.get_nowait())
            by_sampling: dict[Sampling, list[_Request]] = {}
            for request in batch:
                by_sampling.setdefault(request.sampling, []).append(request)
            for sampling, requests in by_sampling.items():
                sessions = [r.session for r in requests]
                try:
                    results = await asyncio.to_thread(self._generate_batch, [r.prompt_ids for r in requests], sampling, sessions)
                except Exception as err:  # fail these requests, keep serving others
                    for r in requests:
                        if not r.done.done():
                            r.done.set_exception(err)
                    continue
                for r, result in zip(requests, results):
                    if not r.done.done():  # the caller may have been cancelled meanwhile
                        r.done.set_result(result)

    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]], sampling: Sampling,
                        sessions: list[str | None] | None = None) -> list[Generation]:
        width = max(map(len, prompts))
        input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])  # (B, P) left-padded
        attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        stops = list(sampling.stop_token_ids) or [self.model.config.eos_token_id]
        if sessions is not None and len(set(s for s in sessions if s is not None)) < sum(s is not None for s in sessions):
            raise ValueError("two requests of one batch name the same adaptation session; a session is one episode, "
                             "whose turns are sequential: give concurrent episodes distinct session ids")
        states = [self.sessions.get(s) if s is not None else None for s in (sessions or [])]
        self._batch_adapt = _BatchAdapt(states, input_ids, attention_mask) if any(st is not None for st in states) else None
        try:
            return self._generate_rows(input_ids, attention_mask, width, stops, sampling)
        finally:
            self._batch_adapt = None

    def _generate_rows(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int, stops: list[int],
                       sampling: Sampling) -> list[Generation]:
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=sampling.max_new_tokens,
            min_new_tokens=sampling.min_new_tokens or None,
            do_sample=not sampling.greedy,
            temperature=sampling.temperature if not sampling.greedy else None,
            top_p=sampling.top_p if not sampling.greedy else None,
            top_k=None,
            eos_token_id=stops,
            pad_token_id=self.pad_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        new = out.sequences[:, width:]  # (B, N)
        logits = torch.stack(out.logits, dim=1).float()  # (B, N, V) raw logits
        if not sampling.greedy:
            logits = logits / sampling.temperature
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)  # (B, N)
        results = []
        for row_ids, row_lp in zip(new.tolist(), logprobs.tolist()):
            end = next((i + 1 for i, t in enumerate(row_ids) if t in stops), None)
            n = end if end is not None else len(row_ids)
            results.append(Generation(row_ids[:n], row_lp[:n], "stop" if end is not None else "length"))
        return results

    async def load_weights(self, folder: str, version: int) -> None:
        from safetensors.torch import load_file

        state = {}
        for file in sorted(Path(folder).glob("*.safetensors")):
            state.update(load_file(file))
        missing, unexpected = self.model.load_state_dict({k: v.to(self.dtype) for k, v in state.items()}, strict=False)
        tied = {"lm_head.weight"} if self.model.config.tie_word_embeddings else set()
        if unexpected or set(missing) - tied:
            raise ValueError(f"weights in {folder} do not fit the model: missing {sorted(set(missing) - tied)[:5]}, unexpected {unexpected[:5]}")
        self.version = version
        self._reseed(version)

    def _reseed(self, version: int) -> None:
        """The one place that seeds sampling. `generate` draws from torch's global generator (it takes none of its
        own), so its state would depend on everything sampled since start-up. Reseeding from (seed, weight version)
        at each weight load makes step k's samples (drawn with weights k-1) a function of (seed, k) alone: a run
        resumed from a checkpoint samples exactly what the uninterrupted run did."""
        torch.manual_seed(self.seed * 1_000_003 + version)

    async def shutdown(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
