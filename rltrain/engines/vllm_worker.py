"""Methods added to vLLM's worker processes (`worker_extension_cls`), called through `collective_rpc`.

Names carry an `rltrain_` prefix: they must not clash with the worker's own methods (PLATFORM.md).
"""

from __future__ import annotations

from typing import Any


class WeightSyncExtension:
    """Weight reload that keeps a tied LM head in step with the embeddings."""

    def rltrain_reload(self, folder: str) -> None:
        """Reload weights from the safetensors file(s) in `folder`.

        Checkpoints of tied models omit `lm_head.weight`, so the layer-wise reload loads nothing into the LM
        head and restores its old kernel tensors; on the CPU backend those include a prepacked GEMM weight
        built from the *old* embeddings. Tie the head to the new embeddings and rebuild its kernel.
        """
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


def _tied_head(model: Any) -> Any:
    if not getattr(getattr(model, "config", None), "tie_word_embeddings", False):
        return None
    return getattr(model, "lm_head", None)
