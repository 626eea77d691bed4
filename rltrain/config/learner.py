"""The learner group: DeepSpeed ranks, optimizer, micro-batching and LoRA."""

from __future__ import annotations

from dataclasses import dataclass, field

from rltrain.config.loader import check
from rltrain.ops.schedule import SCHEDULES

LEARNER_DTYPES = ("float32", "bfloat16", "autocast_bfloat16")
"""Values of `learner.dtype` (see LearnerConfig.dtype)."""


def default_zero_stage(num_learners: int, dtype: str) -> tuple[int, str]:
    """The ZeRO stage for an unset `learner.zero_stage`, and why (logged by the pre-flight).

    One rank has nothing to partition: ZeRO-0 skips the flat partition buffers (bench/README.md: about 0.8 GB less
    on SmolLM2-135M at the same speed). Not in DeepSpeed's bf16 mode, where stage 0 swaps the ZeRO optimizer for
    DeepSpeed's separate bf16 optimizer wrapper, a numerics path no rltrain test covers.
    """
    if num_learners > 1:
        return 2, f"learner.num_learners={num_learners}: ZeRO-2 partitions gradients and optimizer state over the ranks"
    if dtype == "bfloat16":
        return 2, "learner.dtype=bfloat16: DeepSpeed's bf16 mode stays on its tested ZeRO-2 optimizer"
    return 0, "one learner rank has nothing to partition, so ZeRO-0 saves ZeRO's partition buffers"


@dataclass(frozen=True)
class LoraConfig:
    r: int = 0
    """LoRA rank; 0 trains all weights."""
    alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.0
    """Dropout on the LoRA input."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    """Module names that get adapters."""

    def __post_init__(self) -> None:
        check(self.r >= 0, f"learner.lora.r={self.r} must be >= 0 (0 disables LoRA)")
        check(self.r == 0 or len(self.target_modules) > 0, "learner.lora.target_modules is empty; name modules such as [q_proj, v_proj]")


@dataclass(frozen=True)
class LearnerConfig:
    num_learners: int = 1
    """Data-parallel learner ranks (DeepSpeed world size)."""
    num_cpus: float = 1.0
    """Logical Ray CPUs reserved per learner rank."""
    num_gpus: float = 0.0
    """GPUs per learner rank; 0 trains on CPU with the gloo backend."""
    threads: int = 2
    """torch threads per learner rank. Ray leaves actors with 1 thread."""
    zero_stage: int | None = None
    """DeepSpeed ZeRO stage: 0, 1, 2 or 3. Unset: 0 for one rank in float32 or autocast_bfloat16 (nothing to
    partition, so no partitioning overhead), else 2 (`default_zero_stage`). Resolved when the config is built, so
    `learner.zero_stage` always holds a number afterwards."""
    dtype: str = "float32"
    """The learner's precision. float32: fp32 weights, gradients, optimizer and compute. bfloat16: DeepSpeed's bf16
    mode, bf16 weights, activations and gradients, fp32 master weights in the optimizer. autocast_bfloat16: fp32
    weights, gradients and optimizer as with float32, with the forward and backward matmuls in bf16 under
    torch.autocast (what TRL/accelerate do with bf16=True, on CPU too); the log-softmax, log-probs, entropy and
    loss stay fp32, and no weight or gradient is ever rounded to bf16."""
    lr: float = 1e-6
    """AdamW learning rate (the peak: after warmup, `lr_schedule` decays from it)."""
    warmup_steps: int = 0
    """Optimizer steps of linear warmup."""
    lr_schedule: str = "constant"
    """After warmup: constant, cosine or linear decay over `total_steps` optimizer steps down to `min_lr_ratio` x lr
    (rltrain.ops.schedule, Hugging Face's get_cosine_schedule_with_warmup). `rltrain sft` sets it from sft.lr_schedule."""
    min_lr_ratio: float = 0.0
    """Floor of the cosine/linear decay, as a share of `lr`."""
    total_steps: int = 0
    """Optimizer steps the decay spans (warmup included); needed by a cosine or linear `lr_schedule` (`rltrain sft`
    derives it from the data). In an RL run: trainer.steps x mini-batches per step x algorithm epochs."""
    fused_lm_head: bool = False
    """Compute token log-probs and entropy from the final hidden states with the chunked fused LM head
    (rltrain.ops.fused_lm_head), never forming the (B, T, vocab) logits. Falls back to the plain path, with a log
    line, where the head is not a bias-free nn.Linear (LoRA on lm_head) or is ZeRO-3 partitioned."""
    weight_decay: float = 0.01
    """AdamW weight decay (UserRL 0.01)."""
    betas: tuple[float, ...] = (0.9, 0.999)
    """AdamW betas."""
    grad_clip: float = 1.0
    """Gradient norm clip (0 disables)."""
    mini_batch_size: int | None = None
    """Trajectories per optimizer step, across all ranks. Default: the whole step's batch (one update)."""
    micro_batch_size: int = 8
    """Trajectories per forward/backward on one rank; lower it if memory runs out."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward to save memory."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA adapters through peft; weight sync then sends merged weights."""
    collective_timeout_s: float = 1800.0
    """Seconds a rank waits in one collective (all-reduce, barrier) before it errors out by itself: a rank whose
    peer hangs or died fails with a named error instead of waiting forever. Must stay below watchdog.update_s."""

    def __post_init__(self) -> None:
        check(self.collective_timeout_s > 0, f"learner.collective_timeout_s={self.collective_timeout_s} must be > 0 (seconds)")
        check(self.num_learners >= 1, f"learner.num_learners={self.num_learners} must be >= 1")
        if self.zero_stage is None:  # frozen: set through object.__setattr__, as dataclasses do in __init__
            object.__setattr__(self, "zero_stage", default_zero_stage(self.num_learners, self.dtype)[0])
        check(self.zero_stage in (0, 1, 2, 3), f"learner.zero_stage={self.zero_stage} must be 0, 1, 2 or 3")
        check(self.dtype in LEARNER_DTYPES, f"learner.dtype={self.dtype!r} must be one of {', '.join(LEARNER_DTYPES)}")
        check(self.lr > 0, f"learner.lr={self.lr} must be > 0")
        check(self.warmup_steps >= 0, f"learner.warmup_steps={self.warmup_steps} must be >= 0")
        check(self.lr_schedule in SCHEDULES,
              f"learner.lr_schedule={self.lr_schedule!r} must be one of {', '.join(SCHEDULES)}")
        check(0 <= self.min_lr_ratio <= 1, f"learner.min_lr_ratio={self.min_lr_ratio} must be in [0, 1]")
        check(self.total_steps >= 0, f"learner.total_steps={self.total_steps} must be >= 0")
        check(self.lr_schedule == "constant" or self.total_steps >= 1,
              f"learner.lr_schedule={self.lr_schedule} needs learner.total_steps >= 1 (the optimizer steps the decay "
              f"spans, warmup included; `rltrain sft` sets it), or learner.lr_schedule=constant")
        check(self.mini_batch_size is None or self.mini_batch_size >= 1,
              f"learner.mini_batch_size={self.mini_batch_size} must be >= 1, or null for the whole step's batch")
        check(self.num_cpus >= 0 and self.num_gpus >= 0, f"learner.num_cpus={self.num_cpus} and learner.num_gpus={self.num_gpus} must be >= 0")
        check(self.micro_batch_size >= 1, f"learner.micro_batch_size={self.micro_batch_size} must be >= 1")
        check(self.threads >= 1, f"learner.threads={self.threads} must be >= 1")
        check(len(self.betas) == 2, f"learner.betas={list(self.betas)} must hold two numbers, e.g. [0.9, 0.999]")
