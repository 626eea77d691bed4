"""The learner update alone on one GPU: rltrain's step (packed rows, fused LM head) against the plain padded step.

Needs only torch and transformers (no Ray, vLLM, DeepSpeed, peft or hub access), so it runs on a bare GPU machine.
The model is a Llama built from a config with random weights: SmolLM2's tokenizer vocabulary (49152 ids, the
token ids are random too, so no tokenizer is loaded) at about 0.5B parameters (d=1024, 24 layers, 16 heads of 64,
4 KV heads, MLP 5120, tied embeddings: 0.49B). `--tiny` shrinks it to a 2-layer toy that runs on CPU in seconds
(tests/bench/test_gpu_learner.py).

The batch is GRPO-shaped (issue 19, long-response shape scaled up): `--groups` groups of `--group-size` samples,
a `--prompt-len`-token prompt per group, response lengths uniform in [`--min-response`, `--max-response`]; the loss
is rltrain's PPO clip loss (`rltrain.ops.policy_loss.ppo_clip_loss`, token-mean over the whole batch, advantages
random, old log-probs = the detached current ones as in a single on-policy step), one AdamW step per batch.

Arms (each on a fresh model from the same seed, run one after the other, warm-up step(s) untimed):
- `plain_padded`: what actors/learner.py does today: micro-batches of `--micro-batch` rows right-padded to their
  longest row, full `(B, T, V)` logits from the model, then `token_logprobs_and_entropy`.
- `padded_fused` and `packed_full_logits`: one lever each, to give each lever its own row.
- `rltrain_packed_fused`: the samples packed into rows of at most `--pack-tokens` tokens (`rltrain.ops.packing`,
  block-diagonal causal attention: an explicit 4-D mask with SDPA/eager, `position_ids` restarts with
  flash_attention_2), `--pack-rows` rows per micro-batch, and the LM head fused with the log-prob
  (`rltrain.ops.fused_lm_head`), computed on the trained tokens only.

Reported per arm: tokens/s (real tokens, padding excluded), seconds per step (all timed steps), peak GPU memory, and
MFU = model FLOPs / s / `--peak-tflops`. Model FLOPs per step, the same for every arm (the work the step needs):
6 × (decoder matmul parameters) × real tokens + 6 × d × V × trained tokens (the head where log-probs are needed)
+ 6 × layers × d × Σ n_i² (causal attention, n_i a sample's length). Also: each arm's log-probs of every trained
token before any update against `plain_padded`'s (max abs difference: the numerics check), and first-step losses.

Run: `python -m bench.gpu_learner [--steps 5] [--peak-tflops 989] [--precision bfloat16]` → bench/results/gpu_learner.json
(989 TFLOP/s: H200 / H100 SXM dense bf16 peak). `python -m bench.gpu_learner --tiny --out /tmp/x.json` on CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench.common import RESULTS, machine
from rltrain.ops.fused_lm_head import NO_LOGITS, fused_token_logprobs, lm_head_weight
from rltrain.ops.logprobs import token_logprobs_and_entropy
from rltrain.ops.packing import block_causal_mask, pack, plan_bins
from rltrain.ops.policy_loss import ppo_clip_loss

SMOLLM2_VOCAB = 49152
"""len(SmolLM2 tokenizer): the vocabulary of the project's models."""

H200_BF16_TFLOPS = 989.0
"""Dense bf16 tensor-core peak of an H200 (as H100 SXM), TFLOP/s."""

FULL = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 4,
        "intermediate_size": 5120}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
        "intermediate_size": 128}


@dataclass(frozen=True)
class Sample:
    ids: list[int]
    mask: list[int]  # 1 on response tokens (aligned with ids: position j is predicted from j-1)
    advantage: float


def make_batch(groups: int, group_size: int, prompt_len: int, min_response: int, max_response: int, vocab: int,
               seed: int) -> list[Sample]:
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(groups):
        prompt = torch.randint(0, vocab, (prompt_len,), generator=gen).tolist()
        for _ in range(group_size):
            n = int(torch.randint(min_response, max_response + 1, (1,), generator=gen))
            response = torch.randint(0, vocab, (n,), generator=gen).tolist()
            samples.append(Sample(prompt + response, [0] * prompt_len + [1] * n, float(torch.randn(1, generator=gen))))
    return samples


def build_model(cfg: dict, vocab: int, dtype: torch.dtype, device: torch.device, attn: str, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, max_position_embeddings=8192, tie_word_embeddings=True,
                         attn_implementation=attn, **cfg)
    return LlamaForCausalLM(config).to(device=device, dtype=dtype)


def _micro_batches_padded(samples: list[Sample], micro: int, pad_id: int) -> list[dict[str, torch.Tensor]]:
    out = []
    for s in range(0, len(samples), micro):
        part = samples[s:s + micro]
        width = max(len(x.ids) for x in part)
        ids = torch.full((len(part), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(part), width), dtype=torch.long)
        mask = torch.zeros((len(part), width), dtype=torch.bool)
        adv = torch.zeros((len(part), width))
        for i, x in enumerate(part):
            n = len(x.ids)
            ids[i, :n], attention[i, :n] = torch.tensor(x.ids), 1
            mask[i, :n], adv[i, :n] = torch.tensor(x.mask, dtype=torch.bool), x.advantage
        out.append({"input_ids": ids, "attention_mask": attention, "loss_mask": mask, "advantages": adv})
    return out


def _micro_batches_packed(samples: list[Sample], capacity: int, rows: int, pad_id: int, attn: str, dtype: torch.dtype
                          ) -> tuple[list[dict[str, torch.Tensor]], list[tuple[int, int, int]]]:
    """Packed rows of at most `capacity` tokens, `rows` rows per micro-batch; and (micro-batch, row, start) per sample.

    Rows are packed for the whole batch at once (`plan_bins` over all samples), then cut into micro-batches, each
    right-padded only to its own widest row."""
    bins = plan_bins([len(x.ids) for x in samples], capacity)
    out, where = [], [(0, 0, 0)] * len(samples)
    for m, first in enumerate(range(0, len(bins), rows)):
        members = bins[first:first + rows]
        order = [i for b in members for i in b]
        local = [[order.index(i) for i in b] for b in members]  # bins in the micro-batch's own sample numbering
        packed = pack([samples[i].ids for i in order], [samples[i].mask for i in order], capacity, pad_id, bins=local)
        adv = torch.zeros(packed.input_ids.shape)
        for k, (r, s) in enumerate(packed.rows_of):
            adv[r, s:s + len(samples[order[k]].ids)] = samples[order[k]].advantage
            where[order[k]] = (m, r, s)
        micro = {"input_ids": packed.input_ids, "position_ids": packed.position_ids,
                 "loss_mask": packed.loss_mask.bool(), "advantages": adv}
        if attn != "flash_attention_2":  # flash-attention finds the samples from the position_ids restarts
            micro["attention_mask"] = block_causal_mask(packed.position_ids, dtype)
        out.append(micro)
    return out, where


def plain_logprobs(model, micro: dict[str, torch.Tensor]) -> torch.Tensor:
    """Today's learner: full logits, then the chunked log-prob (actors/learner.py `_logprobs`)."""
    ids = micro["input_ids"]
    kwargs = {k: micro[k] for k in ("attention_mask", "position_ids") if k in micro}
    logits = model(input_ids=ids, use_cache=False, **kwargs).logits  # (B, T, V)
    logprobs, _ = token_logprobs_and_entropy(logits, ids.roll(-1, dims=1), with_entropy=False)
    return torch.nn.functional.pad(logprobs[:, :-1], (1, 0))


def fused_logprobs(model, micro: dict[str, torch.Tensor]) -> torch.Tensor:
    """rltrain's step: no logits from the model; the fused head on the trained tokens only."""
    ids = micro["input_ids"]
    kwargs = {k: micro[k] for k in ("attention_mask", "position_ids") if k in micro}
    hidden = model(input_ids=ids, use_cache=False, logits_to_keep=NO_LOGITS, output_hidden_states=True,
                   **kwargs).hidden_states[-1]
    # position t predicts token t+1; the log-prob of token j (aligned with input_ids) is computed at hidden j-1
    wanted = torch.nn.functional.pad(micro["loss_mask"][:, 1:], (0, 1))
    logprobs, _ = fused_token_logprobs(hidden, lm_head_weight(model), ids.roll(-1, dims=1), positions=wanted)
    return torch.nn.functional.pad(logprobs[:, :-1], (1, 0))


ARMS = {"plain_padded": ("padded", plain_logprobs), "padded_fused": ("padded", fused_logprobs),
        "packed_full_logits": ("packed", plain_logprobs), "rltrain_packed_fused": ("packed", fused_logprobs)}
"""Arm -> (batch layout, log-prob function). The middle two isolate one lever each (one README row per lever)."""


def step(model, optimizer, micros: list[dict[str, torch.Tensor]], logprobs_fn, total_tokens: int) -> float:
    """One update: forward/backward per micro-batch (gradients accumulate), one optimizer step. Returns the loss."""
    total = 0.0
    for micro in micros:
        logprobs = logprobs_fn(model, micro)
        mask = micro["loss_mask"]
        loss, _ = ppo_clip_loss(logprobs, logprobs.detach(), micro["advantages"], mask, 0.2, 0.2, None, "token-mean")
        loss = loss * (mask.sum() / total_tokens)  # token-mean over the whole batch, however it is cut
        loss.backward()
        total += float(loss.detach())
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def model_flops(cfg: dict, vocab: int, n_params: int, samples: list[Sample]) -> float:
    """Model FLOPs of one update (forward + backward = 3 × forward), see the module docstring."""
    d, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    decoder_matmul = n_params - vocab * d - (2 * layers + 1) * d  # minus the (tied) embedding and the norm weights
    tokens = sum(len(x.ids) for x in samples)
    trained = sum(sum(x.mask) for x in samples)
    attention = sum(len(x.ids) ** 2 for x in samples)
    return 6.0 * (decoder_matmul * tokens + d * vocab * trained + layers * d * attention)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_arm(name: str, args: argparse.Namespace, cfg: dict, samples: list[Sample], device: torch.device,
            dtype: torch.dtype) -> dict:
    model = build_model(cfg, args.vocab, dtype, device, args.attn, args.seed)
    model.train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=device.type == "cuda")
    layout, logprobs_fn = ARMS[name]
    if layout == "padded":
        micros = _micro_batches_padded(samples, args.micro_batch, pad_id=0)
        where = [(i // args.micro_batch, i % args.micro_batch, 0) for i in range(len(samples))]
    else:
        micros, where = _micro_batches_packed(samples, args.pack_tokens, args.pack_rows, 0, args.attn, dtype)
    micros = [{k: v.to(device) for k, v in m.items()} for m in micros]
    total_tokens = sum(sum(x.mask) for x in samples)
    with torch.no_grad():  # the numerics check: the untrained model's log-probs of every trained token, input order
        values = [logprobs_fn(model, m).float().cpu() for m in micros]
    trained = torch.cat([values[m][row, s:s + len(x.ids)][torch.tensor(x.mask, dtype=torch.bool)]
                         for x, (m, row, s) in zip(samples, where)])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses, seconds = [], []
    for i in range(args.warmup + args.steps):
        _sync(device)
        t0 = time.perf_counter()
        losses.append(step(model, optimizer, micros, logprobs_fn, total_tokens))
        _sync(device)
        if i >= args.warmup:
            seconds.append(time.perf_counter() - t0)
    real_tokens = sum(len(x.ids) for x in samples)
    flops = model_flops(cfg, args.vocab, n_params, samples)
    med = statistics.median(seconds)
    padded_tokens = sum(int(m["input_ids"].numel()) for m in micros)
    out = {"parameters": n_params, "micro_batches": len(micros), "tokens_with_padding": padded_tokens,
           "seconds_per_step": seconds, "median_s": med, "tokens_per_s": real_tokens / med,
           "model_tflops_per_step": flops / 1e12, "mfu": flops / med / (args.peak_tflops * 1e12),
           "first_loss": losses[0],
           "peak_gpu_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"result": out, "trained_logprobs": trained}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_learner", description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="2-layer toy model and batch (CPU, seconds): for tests")
    parser.add_argument("--steps", type=int, default=5, help="timed update steps per arm")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=256)
    parser.add_argument("--min-response", type=int, default=64)
    parser.add_argument("--max-response", type=int, default=1024)
    parser.add_argument("--micro-batch", type=int, default=8, help="rows per micro-batch of the padded arm")
    parser.add_argument("--pack-tokens", type=int, default=2048,
                        help="tokens per packed row; SDPA attends over whole rows (masked), so keep rows short")
    parser.add_argument("--pack-rows", type=int, default=4, help="packed rows per micro-batch")
    parser.add_argument("--vocab", type=int, default=SMOLLM2_VOCAB)
    parser.add_argument("--precision", choices=["bfloat16", "float32"], default="bfloat16",
                        help="parameter dtype of both arms (AdamW on the same dtype)")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "flash_attention_2"])
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS,
                        help="the GPU's dense peak at --precision, TFLOP/s (MFU's denominator)")
    parser.add_argument("--arms", nargs="+", choices=[a for a in ARMS if a != "plain_padded"],
                        default=[a for a in ARMS if a != "plain_padded"], help="arms besides plain_padded (always run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu_learner.json")
    args = parser.parse_args(argv)
    cfg = TINY if args.tiny else FULL
    if args.tiny:
        args.vocab = min(args.vocab, 512)
        args.groups, args.group_size, args.prompt_len = 2, 3, 8
        args.min_response, args.max_response = min(args.min_response, 4), min(args.max_response, 16)
        args.micro_batch, args.pack_tokens, args.pack_rows = 3, 32, 2
        args.steps, args.warmup = 1, 0
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    dtype = torch.bfloat16 if args.precision == "bfloat16" else torch.float32
    samples = make_batch(args.groups, args.group_size, args.prompt_len, args.min_response, args.max_response,
                         args.vocab, args.seed)
    runs = {name: run_arm(name, args, cfg, samples, device, dtype) for name in ["plain_padded", *args.arms]}
    base = runs["plain_padded"]["trained_logprobs"]
    for run in runs.values():  # the numerics check of each lever against today's path
        run["result"]["logprobs_max_abs_diff_vs_plain"] = float((run["trained_logprobs"] - base).abs().max())
    arms = {n: r["result"] for n, r in runs.items()}
    data = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "precision": args.precision, "attn": args.attn, "peak_tflops": args.peak_tflops, "tiny": args.tiny,
        "model": {**cfg, "vocab_size": args.vocab, "tie_word_embeddings": True},
        "batch": {"samples": len(samples), "tokens": sum(len(x.ids) for x in samples),
                  "trained_tokens": sum(sum(x.mask) for x in samples), "groups": args.groups,
                  "group_size": args.group_size, "prompt_len": args.prompt_len,
                  "response_len": [args.min_response, args.max_response]},
        "arms": arms,
        "speedup_vs_plain": {n: arms["plain_padded"]["median_s"] / r["median_s"] for n, r in arms.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                    **data}, indent=2))
    for name, r in arms.items():
        print(f"{name:>22}: {r['tokens_per_s']:.0f} tokens/s, {r['median_s']:.3f} s/step, MFU {r['mfu']:.3f}, "
              f"peak {r['peak_gpu_mem_gib']} GiB, x{data['speedup_vs_plain'][name]:.2f} vs plain, "
              f"log-probs max |diff| vs plain {r['logprobs_max_abs_diff_vs_plain']:.2e}")
    print(f"wrote {args.out}")
    return data


if __name__ == "__main__":
    main()
