"""Learner ranks: DeepSpeed data-parallel training, algorithm-blind.

Each rank receives its shard of the step's batch, recomputes log-probs, asks the algorithm for the loss of
each micro-batch and steps the DeepSpeed engine (which accumulates over micro-batches and averages over
ranks). Rank 0 exports the full weights for the rollout engines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta

import ray
import torch
import torch.distributed.distributed_c10d as c10d

from actors.common import Role, init_role, torch_threads
from rltrain.algorithms.base import Algorithm, LossInputs
from rltrain.checkpoint import DS_TAG, rank_file, rng_state, set_rng_state
from rltrain.config.learner import LearnerConfig
from rltrain.export import ExportError, peft_lora_config, verify_logits
from rltrain.ops import entropy_from_logits, masked_mean, token_logprobs_and_entropy
from rltrain.ops.fused_lm_head import NO_LOGITS, fused_token_logprobs, lm_head_weight
from rltrain.ops.packing import block_causal_mask
from rltrain.ops.schedule import lambda_scheduler
from rltrain.telemetry import ActorMetrics
from rltrain.types import TrainBatch
from rltrain.watchdog import in_phase
from rltrain.weights import WeightOutbox, WeightPayload

logger = logging.getLogger(__name__)

CPU_BUCKET_ELEMENTS = 20_000_000
"""ZeRO bucket size for CPU learners (80 MB of fp32): see Learner._zero_buckets."""


def lr_scheduler_factory(cfg: LearnerConfig) -> Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None:
    """What `deepspeed.initialize(lr_scheduler=...)` gets for `learner.lr_schedule`: None for constant (the warmup,
    if any, is DeepSpeed's WarmupLR from the config, as before), else a callable that DeepSpeed calls with its
    optimizer. DeepSpeed steps the scheduler at each optimizer step and saves/loads its state in checkpoints."""
    if cfg.lr_schedule == "constant":
        return None

    def make(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return lambda_scheduler(optimizer, cfg.total_steps, warmup=cfg.warmup_steps, schedule=cfg.lr_schedule,
                                min_ratio=cfg.min_lr_ratio)
    return make


def model_inputs(batch: TrainBatch, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Forward kwargs for `batch`: padded rows take the 2-D attention mask; packed rows (`position_ids` set, several
    samples per row, rltrain.ops.packing) take the positions, restarting per sample, and the block-diagonal causal
    mask (additive, in the attention's `dtype`), so no sample attends to another."""
    ids = batch.input_ids.to(device)
    if batch.position_ids is None:
        return {"input_ids": ids, "attention_mask": batch.attention_mask.to(device)}
    positions = batch.position_ids.to(device)
    return {"input_ids": ids, "position_ids": positions, "attention_mask": block_causal_mask(positions, dtype)}


def token_logprobs_of(model: torch.nn.Module, batch: TrainBatch, *, device: torch.device, temperature: float = 1.0,
                      with_entropy: bool = False, entropy_grad: bool = False, fused: bool = False,
                      autocast: torch.dtype | None = None, autocast_forward: bool = True,
                      mask_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs of `batch` under `model`, aligned with `input_ids` (entry 0 of each row is 0), and
    optionally the entropy (differentiable when `entropy_grad`).

    `fused`: the LM head runs fused with the chunked log-softmax (rltrain.ops.fused_lm_head) on real tokens only:
    no (B, T, V) logits; padding gets 0. The caller checks that the model supports it (`lm_head_weight`).
    `autocast`: the dtype of `learner.dtype=autocast_bfloat16` (None: off), around the model's forward unless
    `autocast_forward` is False (a DeepSpeed engine applies its own), and always around the fused head, which runs
    outside the forward but must see the precision the plain head sees inside it."""
    def amp(on: bool) -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=autocast) if on and autocast is not None else contextlib.nullcontext()

    inputs = model_inputs(batch, device, mask_dtype)
    ids = inputs["input_ids"]
    # Position t predicts token t+1. Scoring all T positions (the last one's label wraps around and is dropped)
    # rather than the slice logits[:, :-1] spares a (B, T, V) zero-filled gradient in backward.
    labels = ids.roll(-1, dims=1)
    if fused:
        with amp(autocast_forward):
            out = model(**inputs, use_cache=False, logits_to_keep=NO_LOGITS, output_hidden_states=True)
        wanted = torch.nn.functional.pad(batch.attention_mask[:, 1:].to(device).bool(), (0, 1))  # real targets only
        with amp(True):
            logprobs, entropy = fused_token_logprobs(out.hidden_states[-1], lm_head_weight(model), labels,
                                                     temperature=temperature, with_entropy=with_entropy, positions=wanted)
    else:
        with amp(autocast_forward):
            logits = model(**inputs, use_cache=False).logits  # (B, T, V)
        # The log-softmax reads the (bf16, under autocast) logits in fp32 chunks, as TRL does.
        logprobs, entropy = token_logprobs_and_entropy(logits, labels, temperature=temperature,
                                                      with_entropy=with_entropy and not entropy_grad)
        if with_entropy and entropy_grad:  # an entropy bonus in the loss needs the differentiable (unfused) entropy
            entropy = entropy_from_logits(logits / temperature if temperature != 1.0 else logits)
    pad = torch.nn.functional.pad
    return pad(logprobs[:, :-1], (1, 0)), None if entropy is None else pad(entropy[:, :-1], (1, 0))


class Learner(Role):
    """One data-parallel rank."""

    def __init__(self, *, rank: int, world_size: int, model_path: str, cfg: LearnerConfig, algorithm: Algorithm,
                 gradient_accumulation: int, seed: int, temperature: float = 1.0) -> None:
        """Keyword arguments only: eight of them, several of the same type, are too easy to pass in the wrong order."""
        self.beat = init_role(f"learner-{rank}", cfg.threads)
        self.metrics = ActorMetrics(f"learner-{rank}")
        self.rank, self.world_size, self.cfg, self.algorithm = rank, world_size, cfg, algorithm
        self.model_path, self.gradient_accumulation, self.seed = model_path, gradient_accumulation, seed
        self.temperature = temperature  # the rollout's: log-probs must describe the distribution that was sampled
        # LOCAL_RANK 0: Ray shows each rank only its own GPU(s) (CUDA_VISIBLE_DEVICES).
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK="0")
        if cfg.num_gpus == 0:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        self.steps = 0
        self.fused = False  # learner.fused_lm_head, once setup has checked the model supports it
        self.outbox = WeightOutbox(f"rltrain-w{rank}-")  # rank 0's node-local folder of exported weights

    def rendezvous(self) -> tuple[str, int]:
        """This node's IP and a TCP port free on it; asked of rank 0, whose node hosts the process-group store.

        Ranks may sit on other nodes, so neither 127.0.0.1 nor a port picked on the driver's machine would do."""
        with socket.socket() as s:
            s.bind(("", 0))  # every interface: the port the other ranks connect to must be free on the one they reach
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    @in_phase("start")
    def setup(self, master_addr: str, master_port: int) -> int:
        """Join the process group at rank 0's `master_addr:master_port` (see `rendezvous`), then build the model,
        optimizer and (when needed) the reference. Returns #params."""
        import deepspeed
        from transformers import AutoModelForCausalLM

        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port))
        torch.manual_seed(self.seed)
        backend = "nccl" if self.cfg.num_gpus > 0 else "gloo"
        # A collective that waits longer than this raises in this rank (gloo and NCCL both honour it), so a rank
        # whose peer is stuck or gone errors out by itself instead of hanging the run. DeepSpeed runs its collectives
        # on groups it makes with new_group(), which take torch's default timeout (30 min), not the world group's:
        # the defaults are set too, or a blocked peer would hold this rank for half an hour.
        timeout = timedelta(seconds=self.cfg.collective_timeout_s)
        c10d.default_pg_timeout = c10d.default_pg_nccl_timeout = timeout
        deepspeed.init_distributed(dist_backend=backend, timeout=timeout)
        self.device = torch.device("cuda", 0) if self.cfg.num_gpus > 0 else torch.device("cpu")
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32)
        if self.cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        if self.cfg.lora.r > 0:
            from peft import get_peft_model  # optional: only LoRA runs need peft

            model = get_peft_model(model, peft_lora_config(self.cfg.lora))
        self.tied = bool(getattr(model.config, "tie_word_embeddings", False))
        params = [p for p in model.parameters() if p.requires_grad]
        self.engine, *_ = deepspeed.initialize(model=model, model_parameters=params, config=self._ds_config(),
                                               lr_scheduler=lr_scheduler_factory(self.cfg))
        self.reference = None
        if self.algorithm.needs_reference:
            self.reference = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32).to(self.device).eval()
            self.reference.requires_grad_(False)
        self.fused = self.cfg.fused_lm_head and all(map(self._fused_ok, [self.engine.module, self.reference]))
        n = sum(p.numel() for p in model.parameters())
        logger.info("rank %d/%d ready: %.1fM parameters, ZeRO-%d, %s, lora r=%d", self.rank, self.world_size, n / 1e6,
                    self.cfg.zero_stage, backend, self.cfg.lora.r)
        return n

    def _ds_config(self) -> dict:
        cfg = self.cfg
        config = {
            "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation,
            "train_batch_size": cfg.micro_batch_size * self.gradient_accumulation * self.world_size,
            # fused: torch's one-kernel AdamW (CPU and CUDA) updates in place; the default per-tensor loop makes
            # temporaries the size of the flat parameter partition (sqrt, division): measured on SmolLM2-135M, fp32,
            # ZeRO-2, CPU (bench/learner_precision.py), 1.1 GB less at the first step and 6% faster updates.
            "optimizer": {"type": "AdamW", "params": {"lr": cfg.lr, "betas": list(cfg.betas), "eps": 1e-8,
                                                      "weight_decay": cfg.weight_decay, "torch_adam": True,
                                                      "fused": True}},
            "gradient_clipping": cfg.grad_clip,
            "zero_optimization": {"stage": cfg.zero_stage, **self._zero_buckets()},
            "bf16": {"enabled": cfg.dtype == "bfloat16"},
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        if cfg.dtype == "autocast_bfloat16":
            # DeepSpeed enters torch.autocast around the engine's forward (an outer autocast would be switched off
            # there). No module is "lower-precision safe": by default DeepSpeed would mark every nn.Linear so and
            # reduce its gradients in bf16, rounding each micro-batch's gradient even on one rank; TRL (DDP) keeps
            # gradients fp32, and so does this mode.
            config["torch_autocast"] = {"enabled": True, "dtype": "bfloat16", "lower_precision_safe_modules": []}
        if cfg.warmup_steps and cfg.lr_schedule == "constant":  # a decay schedule includes its warmup (setup)
            config["scheduler"] = {"type": "WarmupLR", "params": {"warmup_min_lr": 0.0, "warmup_max_lr": cfg.lr,
                                                                 "warmup_num_steps": cfg.warmup_steps, "warmup_type": "linear"}}
        return config

    def _zero_buckets(self) -> dict[str, int]:
        """ZeRO communication bucket sizes (elements) for learners on CPU; DeepSpeed's defaults on GPU.

        DeepSpeed's defaults (5e8 elements, 2 GB of fp32 per bucket) are sized to keep NCCL busy. On CPU the
        buckets are plain RAM that gloo reduces at memory speed, so a bucket larger than a few layers only
        raises the peak: with the defaults ZeRO-2 copies every gradient of a small model into one buffer before
        reducing any. Measured on SmolLM2-135M, fp32, ZeRO-2 (bench/learner_precision.py): 250 MB lower peak,
        no slower.
        """
        if self.cfg.num_gpus > 0:
            return {}
        return {"reduce_bucket_size": CPU_BUCKET_ELEMENTS, "allgather_bucket_size": CPU_BUCKET_ELEMENTS,
                "stage3_prefetch_bucket_size": CPU_BUCKET_ELEMENTS, "stage3_max_live_parameters": 4 * CPU_BUCKET_ELEMENTS}

    @staticmethod
    def _fused_ok(model: torch.nn.Module | None) -> bool:
        """Whether `learner.fused_lm_head` can run on `model` (None: no model, nothing to check); if not, say why
        (the plain path is then used)."""
        if model is None:
            return True
        try:
            lm_head_weight(model)
        except ValueError as err:
            logger.warning("learner.fused_lm_head=true falls back to the plain logits path: %s", err)
            return False
        return True

    def _logprobs(self, model: torch.nn.Module, batch: TrainBatch, with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-token log-probs aligned with `input_ids` (entry 0 of each row is 0), and optionally entropy."""
        # The engine applies its own autocast (its config) to its forward. Other modules (frozen old log-probs, the
        # reference, probes) get ours, so that they see the precision the trained forward sees: a policy/old or
        # policy/reference gap from precision alone would bias the ratio or KL.
        return token_logprobs_of(model, batch, device=self.device, temperature=self.temperature,
                                 with_entropy=with_entropy, fused=self.fused,
                                 entropy_grad=with_entropy and self.algorithm.entropy_in_loss and torch.is_grad_enabled(),
                                 autocast=torch.bfloat16 if self.cfg.dtype == "autocast_bfloat16" else None,
                                 autocast_forward=model is not self.engine,
                                 mask_dtype=torch.bfloat16 if self.cfg.dtype == "bfloat16" else torch.float32)

    @torch.no_grad()
    def _frozen_logprobs(self, model: torch.nn.Module, batch: TrainBatch) -> torch.Tensor:
        parts = [self._logprobs(model, part)[0] for part in batch.split(len(batch) // self.cfg.micro_batch_size)]
        width = batch.input_ids.shape[1]
        return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts]).cpu()

    @in_phase("update")
    def update(self, batch: TrainBatch, mini_batches: int, stale: bool = False) -> dict[str, float]:
        """Train on this rank's shard: `epochs` passes of `mini_batches` optimizer steps each.

        `stale`: the batch was sampled by older weights (asynchronous rollout), so the PPO ratio's pi_old is the
        sampling policy itself, i.e. the engine's log-probs, not the current weights' (decoupled PPO).
        """
        t0 = time.perf_counter()
        self.engine.train()
        # Packed rows (`position_ids` set) hold several samples each, so a packed step batch has fewer rows than one
        # mini-batch's samples (the driver counts rows): it is then one mini-batch.
        mini_batches = max(1, mini_batches)
        lr = float(self.engine.get_lr()[0])  # what this update's (first) optimizer step runs at (the schedule's)
        accumulation = len(batch) // (mini_batches * self.cfg.micro_batch_size)
        if accumulation != self.gradient_accumulation:  # a step batch of another size than the config's (benchmarks)
            self.engine.set_train_batch_size(self.cfg.micro_batch_size * accumulation * self.world_size)
            self.gradient_accumulation = accumulation
        single_pass = mini_batches * self.algorithm.epochs == 1
        # With one optimizer step per batch the policy is unchanged until that step, so the forward pass's own
        # (detached) log-probs are the old log-probs; otherwise they are recomputed once before any update.
        frozen = not stale and (not single_pass or self.algorithm.needs_frozen_logprobs)
        old_all = batch.rollout_logprobs if stale else self._frozen_logprobs(self.engine.module, batch) if frozen else None
        ref_all = self._frozen_logprobs(self.reference, batch) if self.reference is not None else None
        batch, prepared = self.algorithm.prepare_on_learner(batch, old_all, ref_all)
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        generator = torch.Generator().manual_seed(self.seed + self.steps)
        for _ in range(self.algorithm.epochs):
            order = torch.randperm(len(batch), generator=generator) if not single_pass else torch.arange(len(batch))
            for mini in order.chunk(mini_batches):
                for rows in mini.chunk(self.gradient_accumulation):
                    micro = batch.select(rows)
                    width = micro.input_ids.shape[1]
                    policy_logprobs, entropy = self._logprobs(self.engine, micro, with_entropy=True)
                    old = policy_logprobs.detach() if old_all is None else old_all[rows, :width].to(self.device)
                    ref = None if ref_all is None else ref_all[rows, :width].to(self.device)
                    mask = micro.loss_mask.to(self.device)
                    loss, metrics = self.algorithm.loss(LossInputs(
                        policy_logprobs=policy_logprobs, old_logprobs=old, rollout_logprobs=micro.rollout_logprobs.to(self.device),
                        ref_logprobs=ref, entropy=entropy, advantages=micro.advantages.to(self.device), loss_mask=mask,
                        answer_mask=None if micro.answer_mask is None else micro.answer_mask.to(self.device)))
                    self.engine.backward(loss)
                    self.engine.step()
                    self.beat.progress()  # one micro-batch
                    metrics["learner/entropy"] = masked_mean(entropy.detach(), mask)
                    # how far the sampler was from the weights being trained (precision, plus staleness when async)
                    current = policy_logprobs.detach() if stale else old
                    metrics["learner/logprob_mismatch"] = masked_mean((current - micro.rollout_logprobs.to(self.device)).abs(), mask)
                    metrics["learner/loss"] = loss.detach()
                    has_signal = mask.any() or (micro.answer_mask is not None and micro.answer_mask.any())
                    if has_signal:  # micro-batches made only of filler rows (failed trajectories) are not averaged in
                        for key, value in metrics.items():
                            sums[key] += float(value)
                            counts[key] += 1
        self.steps += 1
        out = {**prepared, **{k: sums[k] / counts[k] for k in sums}}
        out["learner/grad_norm"] = float(self.engine.get_global_grad_norm() or 0.0)
        out["learner/lr"] = lr
        out["time/learner_update_s"] = time.perf_counter() - t0
        self.metrics.update_done(out["time/learner_update_s"])
        return out

    def full_state_dict(self, dtype: torch.dtype) -> dict[str, torch.Tensor] | None:
        """The full (merged, gathered) weights under HF names; on rank 0 only, None elsewhere."""
        import deepspeed

        module = self.engine.module
        params = list(module.parameters())
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=self.cfg.zero_stage == 3):
            if self.rank != 0:
                return None
            if self.cfg.lora.r > 0:
                module.merge_adapter()
                try:  # copy while merged: state_dict() returns live tensors that unmerge changes back
                    out = {k.replace(".base_layer", ""): v.detach().to(dtype).clone()
                           for k, v in module.get_base_model().state_dict().items() if "lora_" not in k}
                finally:
                    module.unmerge_adapter()
            else:
                out = {k: v.detach().to(dtype).contiguous().clone() for k, v in module.state_dict().items()}
        if self.tied:
            out.pop("lm_head.weight", None)  # tied to the embeddings; safetensors refuses shared tensors
        return out

    @in_phase("sync")
    def export_weights(self, version: int, dtype: str, share: bool = False) -> WeightPayload | None:
        """Write the full weights of `version` for the rollout workers (`rltrain.weights.WeightOutbox`; rank 0; None
        on other ranks, which join the ZeRO-3 gather). With `share` the file's bytes also go into Ray's object store,
        for rollout workers on other nodes."""
        t0 = time.perf_counter()
        state = self.full_state_dict(getattr(torch, dtype))
        if state is None:
            return None
        return self.outbox.publish(state, version, share, t0)

    def shutdown(self) -> None:
        """Delete this rank's exported weights (shared memory is not freed with the process)."""
        self.outbox.close()

    def save_hf(self, out_dir: str) -> dict[str, float | str] | None:
        """Save the current weights as an HF folder (config, generation config, safetensors, tokenizer with chat
        template) from rank 0, then verify it: reloaded with transformers, its logits on a probe batch must equal
        these weights'. Returns {"path", "max_abs_diff"} on rank 0, None elsewhere; raises ExportError on a mismatch."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        state = self.full_state_dict(torch.float32)
        if state is None:
            return None
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32)
        model.load_state_dict(state, strict=not self.tied)
        model.save_pretrained(out_dir)
        tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        tokenizer.save_pretrained(out_dir)
        check = verify_logits(model, out_dir, tokenizer, "float32")
        if not check.ok:
            raise ExportError(f"the saved model in {out_dir} does not reproduce the trained weights: {check}")
        logger.info("saved %s; verified with transformers: %s", out_dir, check)
        return {"path": out_dir, "max_abs_diff": check.max_abs_diff}

    @in_phase("checkpoint")
    def save_checkpoint(self, folder: str) -> None:
        """Write this rank's DeepSpeed state (weights, optimizer, scheduler) and RNG/counters into `folder`.

        Every rank writes its own shard files; on several nodes `folder` must be on a shared file system."""
        self.engine.save_checkpoint(folder, tag=DS_TAG, save_latest=False)  # the driver keeps its own `latest`
        with rank_file(folder, self.rank).open("wb") as f:
            pickle.dump({"rng": rng_state(), "steps": self.steps, "gradient_accumulation": self.gradient_accumulation}, f)

    @in_phase("checkpoint")
    def load_checkpoint(self, folder: str) -> None:
        """Restore what `save_checkpoint` wrote: DeepSpeed state, RNG states and the update counter (which seeds
        the mini-batch shuffle, so a resumed run shuffles as the uninterrupted one did)."""
        path, _ = self.engine.load_checkpoint(folder, tag=DS_TAG, load_optimizer_states=True, load_lr_scheduler_states=True)
        if path is None:
            raise FileNotFoundError(f"rank {self.rank}: no DeepSpeed state under {folder}/{DS_TAG}; the checkpoint is "
                                    f"incomplete or was written by another number of learner ranks")
        with rank_file(folder, self.rank).open("rb") as f:
            state = pickle.load(f)
        set_rng_state(state["rng"])
        self.steps = state["steps"]
        if state["gradient_accumulation"] != self.gradient_accumulation:
            self.engine.set_train_batch_size(self.cfg.micro_batch_size * state["gradient_accumulation"] * self.world_size)
            self.gradient_accumulation = state["gradient_accumulation"]

    @torch.no_grad()
    def sequence_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Log-probs of fixed sequences under the current weights (for sync checks and probes)."""
        self.engine.eval()
        batch = TrainBatch(input_ids, attention_mask, attention_mask.bool(), torch.zeros(input_ids.shape),
                           torch.zeros(input_ids.shape), torch.zeros(len(input_ids)))
        return self._logprobs(self.engine.module, batch)[0].cpu()

    def threads(self) -> int:
        return torch_threads()
