"""Methods added to vLLM's worker processes (`worker_extension_cls`), called through `collective_rpc`.

Names carry an `rltrain_` prefix: they must not clash with the worker's own methods (PLATFORM.md).
"""

from __future__ import annotations

import logging
from typing import Any

from rltrain.console import explain_reload_warnings

logger = logging.getLogger(__name__)

SESSION_KEY = "rltrain_session"
"""`SamplingParams.extra_args` key naming a request's adaptation session (spec §5.1, `rltrain.adapt`)."""


class AdaptExtension:
    """Per-session adaptation vectors δ inside vLLM's model runner (spec §5.1, §7.5 T1).

    A per-request logits processor sees only the sampled positions, so it cannot compute the prompt loss. Instead
    `rltrain_adapt_enable` wraps the runner's `_model_forward`: its output is the final-norm hidden state of every
    scheduled token, flattened over requests, in the order of `input_batch.req_ids` with spans given by
    `query_start_loc`. For each request whose `SamplingParams.extra_args` names a session:
    - prefill chunks: the chunk's hidden states are buffered (chunked prefill splits a prompt over several
      forwards); on the chunk that completes the prompt, the session takes its Adam step(s) on the whole prompt;
    - then δ is added to the request's hidden states of this forward, before `compute_logits` picks the sampled
      position, so the first token (sampled in the prefill's own forward) already uses the updated δ, and every
      decode step gets W_U(h + δ).
    A prompt whose first chunk does not start at token 0 was read from the prefix cache and has no hidden states
    for the cached tokens: the engine must send adapted requests with `skip_reading_prefix_cache=True`; the hook
    raises rather than adapt on a partial prompt. Requests without a session are never touched (bitwise).
    """

    def rltrain_adapt_enable(self, config: dict[str, Any], ttl_s: float = 3600.0, max_sessions: int = 4096) -> None:
        """Install the hook (idempotent) with an `AdaptConfig` given as a dict."""
        from rltrain.adapt.sessions import SessionStore
        from rltrain.adapt.vector import AdaptConfig

        runner = self.model_runner  # type: ignore[attr-defined]
        model = runner.get_model()
        self._rlt_cfg = AdaptConfig(**config)
        self._rlt_head = _lm_head_weight(model)
        self._rlt_sessions = SessionStore(self._rlt_head.shape[1], ttl_s=ttl_s, max_sessions=max_sessions)
        self._rlt_chunks: dict[str, list[Any]] = {}
        self._rlt_markers = None
        if self._rlt_cfg.mask_user:
            from transformers import AutoTokenizer

            from rltrain.adapt.masking import ChatMarkers

            self._rlt_markers = ChatMarkers.from_tokenizer(AutoTokenizer.from_pretrained(runner.model_config.tokenizer))
        if getattr(runner, "_rltrain_adapt_wrapped", False):
            return
        forward = runner._model_forward

        def adapted_forward(*args: Any, **kwargs: Any) -> Any:
            return self._rlt_apply(runner, forward(*args, **kwargs))

        runner._model_forward = adapted_forward
        runner._rltrain_adapt_wrapped = True

    def rltrain_adapt_reset(self, session: str) -> bool:
        """δ = 0 and Adam zeroed for `session`; False if it did not exist."""
        return self._rlt_sessions.reset(session)

    def rltrain_adapt_summary(self, session: str) -> dict[str, Any] | None:
        state = self._rlt_sessions.peek(session)
        return state.summary() if state is not None else None

    def rltrain_adapt_delta(self, session: str) -> list[float] | None:
        """δ itself (for tests that compare with the transformers reference)."""
        state = self._rlt_sessions.peek(session)
        return state.delta.tolist() if state is not None else None

    def _rlt_apply(self, runner: Any, hidden: Any) -> Any:
        import torch

        from rltrain.adapt.masking import loss_mask
        from rltrain.adapt.vector import adapt_step

        if not isinstance(hidden, torch.Tensor):  # pipeline stage that is not the last, or aux outputs: leave alone
            return hidden
        batch = runner.input_batch
        qsl = runner.query_start_loc.np
        out = None
        for i, req_id in enumerate(batch.req_ids[:batch.num_reqs]):
            request = runner.requests[req_id]
            extra = request.sampling_params.extra_args if request.sampling_params is not None else None
            session = (extra or {}).get(SESSION_KEY)
            if session is None:
                continue
            start, end = int(qsl[i]), int(qsl[i + 1])
            computed = int(batch.num_computed_tokens_cpu[i])
            prompt = list(request.prompt_token_ids)
            if computed < len(prompt):  # a prefill chunk
                chunks = self._rlt_chunks.setdefault(req_id, [])
                if computed == 0:
                    chunks.clear()
                if computed > 0 and not chunks:
                    # Raising here would kill the engine core for every request; count it on the session instead.
                    self._rlt_sessions.get(session).cached_prefills += 1
                    logger.error("adapted request %s started its prefill at token %d (prefix cache): δ not updated; send "
                                 "adapted requests with SamplingParams(skip_reading_prefix_cache=True)", req_id, computed)
                else:
                    chunks.append(hidden[start:end].detach().clone())
                    if computed + (end - start) < len(prompt):
                        continue  # more chunks to come; nothing is sampled from this forward
                    states = torch.cat(self._rlt_chunks.pop(req_id))[:len(prompt)]
                    ids = torch.tensor(prompt)
                    mask = torch.tensor(loss_mask(prompt, self._rlt_markers))
                    adapt_step(self._rlt_sessions.get(session), states[:-1], self._rlt_head, ids[1:], mask, self._rlt_cfg)
            state = self._rlt_sessions.get(session)
            if out is None:
                out = hidden.clone()
            out[start:end] += state.delta.to(out.dtype)
        return hidden if out is None else out


def session_params(params: Any, session: str) -> Any:
    """`params` (vLLM SamplingParams) marked for adaptation session `session`: the hook finds the session in
    `extra_args`, and the prompt is never read from the prefix cache (trap (a): cached tokens have no hidden states)."""
    params.extra_args = {**(params.extra_args or {}), SESSION_KEY: session}
    params.skip_reading_prefix_cache = True
    return params


class WeightSyncExtension(AdaptExtension):
    """Weight reload that keeps a tied LM head in step with the embeddings."""

    def rltrain_reload(self, folder: str) -> None:
        """Reload weights from the safetensors file(s) in `folder`.

        Checkpoints of tied models omit `lm_head.weight`, so the layer-wise reload loads nothing into the LM
        head and restores its old kernel tensors; on the CPU backend those include a prepacked GEMM weight
        built from the *old* embeddings. Tie the head to the new embeddings and rebuild its kernel.
        """
        explain_reload_warnings()  # vLLM's per-sync "Failed to load weights" for the rotary table and a tied head
        self.reload_weights(weights_path=folder)  # type: ignore[attr-defined]
        model = self.model_runner.get_model()  # type: ignore[attr-defined]
        head = _tied_head(model)
        if head is None:
            return
        embed = model.model.embed_tokens  # the decoder-only layout of every vLLM model with tie_word_embeddings
        if head.weight.data_ptr() != embed.weight.data_ptr():
            head.weight.data.copy_(embed.weight.data)
        method = getattr(head, "quant_method", None)
        if method is not None:
            method.process_weights_after_loading(head)  # CPU: re-prepack the logits GEMM


    def rltrain_threads(self) -> int:
        """torch threads in the worker process that runs the model."""
        import torch

        return torch.get_num_threads()


def _lm_head_weight(model: Any) -> Any:
    """W_U as a (vocab, hidden) tensor. On the CPU backend the head's GEMM weight may be repacked after loading;
    a tied head is read from the embeddings, whose layout loading leaves alone."""
    if getattr(getattr(model, "config", None), "tie_word_embeddings", False):
        weight = model.model.embed_tokens.weight
    else:
        weight = model.lm_head.weight
    if weight.dim() != 2 or weight.shape[0] == 0:
        raise RuntimeError(f"the LM head weight of this vLLM model has shape {tuple(weight.shape)} (repacked by the "
                           f"backend); δ adaptation needs W_U as (vocab, hidden): use rollout.engine=transformers")
    return weight.detach()


def _tied_head(model: Any) -> Any:
    if not getattr(getattr(model, "config", None), "tie_word_embeddings", False):
        return None
    return getattr(model, "lm_head", None)
