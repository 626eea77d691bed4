"""The whole run's config: one section per role, composed and cross-checked before anything starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rltrain.config.costs import CostsConfig
from rltrain.config.env import EnvConfig
from rltrain.config.grpo import GRPOConfig
from rltrain.config.latro import LaTROConfig
from rltrain.config.learner import LearnerConfig
from rltrain.config.loader import apply_overrides, build, check, load_yaml
from rltrain.config.model import ModelConfig
from rltrain.config.placement import PlacementConfig
from rltrain.config.reward import RewardConfig
from rltrain.config.rollout import RolloutConfig
from rltrain.config.users import UsersConfig
from rltrain.config.watchdog import WatchdogConfig


@dataclass(frozen=True)
class TrainerConfig:
    name: str = "run"
    """Run name; outputs go to `<output_dir>/<name>/`."""
    output_dir: str = "runs"
    """Folder that holds run folders."""
    steps: int = 10
    """Training steps (rollout -> score -> update -> sync)."""
    prompts_per_step: int = 4
    """Distinct tasks per step."""
    group_size: int = 4
    """Samples per task (GRPO group, `n`)."""
    seed: int = 0
    """Seed for task sampling, engines and learners."""
    log_every: int = 1
    """Print a metrics line every this many steps (JSONL gets every step)."""
    loggers: tuple[Literal["jsonl", "tensorboard", "wandb"], ...] = ("jsonl", "tensorboard")
    """Where step metrics go besides Ray metrics: `<run>/metrics.jsonl` always; `tensorboard` writes `<run>/tb/`
    when tensorboardX or tensorboard is installed (skipped with a note otherwise); `wandb` needs the wandb package
    and WANDB_API_KEY in the environment (project from WANDB_PROJECT, default rltrain)."""
    save_final: bool = True
    """Save the trained weights as an HF folder at `<run>/final/` when the run ends, verified by reloading it with
    transformers and comparing logits (`rltrain export` converts checkpoints the same way)."""
    checkpoint_every: int = 0
    """Write a resumable checkpoint `<run>/step_<N>/` every this many steps and after the last step; 0 never. Each
    holds weights + optimizer state (about 12 bytes per parameter in fp32: 1.6 GB for a 135M model), so the
    default is off; set it for runs you may need to resume."""
    keep_checkpoints: int = 2
    """Complete checkpoints kept; older step folders are deleted once a newer one is complete."""
    resume: str | None = None
    """Resume from a run folder (its `latest` checkpoint) or a `step_<N>` folder: restores learners, RNG states, the
    step and weight version, appends to metrics.jsonl/trajectories.jsonl and continues to trainer.steps."""
    async_rollout: bool = False
    """Generate step t+1's episodes while the learner trains on step t's. The rollout then runs on weights one
    version old (off by one step, never more), and the PPO ratio uses the sampling log-probs as pi_old.
    Faster where rollout and update do not compete for the same devices; the default is synchronous."""

    def __post_init__(self) -> None:
        check(bool(self.name) and "/" not in self.name, f"trainer.name={self.name!r} must be a non-empty name without '/'")
        check(self.steps >= 0, f"trainer.steps={self.steps} must be >= 0")
        check(self.prompts_per_step >= 1, f"trainer.prompts_per_step={self.prompts_per_step} must be >= 1")
        check(self.group_size >= 1, f"trainer.group_size={self.group_size} must be >= 1")
        check(self.log_every >= 1, f"trainer.log_every={self.log_every} must be >= 1")
        check(self.checkpoint_every >= 0, f"trainer.checkpoint_every={self.checkpoint_every} must be >= 0 (0 never checkpoints)")
        check(self.keep_checkpoints >= 1, f"trainer.keep_checkpoints={self.keep_checkpoints} must be >= 1; use "
              f"trainer.checkpoint_every=0 for no checkpoints")

    @property
    def samples_per_step(self) -> int:
        return self.prompts_per_step * self.group_size

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


@dataclass(frozen=True)
class AlgorithmConfig:
    name: str = "grpo"
    """Registered algorithm (see `rltrain.algorithms.ALGORITHMS`)."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """Settings used when name=grpo."""
    latro: LaTROConfig = field(default_factory=LaTROConfig)
    """Settings used when name=latro."""


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None
    """Existing cluster to join (`auto` or `ray://host:10001`); null starts a private local one."""
    num_cpus: int | None = None
    """Logical CPUs for a local cluster; default: enough for every role (Ray's count is logical)."""
    dashboard: bool = True
    """Start the Ray dashboard with a local cluster."""
    dashboard_host: str = "127.0.0.1"
    """Dashboard bind address; localhost unless you mean to expose it."""
    metrics_export_port: int | None = None
    """Port of a local cluster's Prometheus endpoint (`http://127.0.0.1:<port>/metrics`); null lets Ray pick one.
    A joined cluster keeps its own (`ray start --metrics-export-port`)."""

    def __post_init__(self) -> None:
        port = self.metrics_export_port
        check(port is None or 1 <= port <= 65535, f"ray.metrics_export_port={port} must be a port number (1-65535) or null")


@dataclass(frozen=True)
class RunConfig:
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """The training loop: steps, batch shape, seed, outputs."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The policy model."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment and its tasks."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """Rollout workers and sampling."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """The reward accountant."""
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    """The learning algorithm."""
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    """The learner group."""
    users: UsersConfig = field(default_factory=UsersConfig)
    """The simulated-user service, started only for environments that need a user."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Where the actors run."""
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    """Which nodes and GPUs each role's actors share: placement groups, strategy, colocation, node pins."""
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    """How long the driver waits on each phase before it dumps every role's stacks and stops the run (exit 3)."""
    costs: CostsConfig = field(default_factory=CostsConfig)
    """Cost ledger: price table, budgets (docs/costs.md)."""

    def __post_init__(self) -> None:
        self._check_batch_arithmetic()
        self._check_placement()
        check(not (self.learner.lora.r > 0 and self.learner.zero_stage == 3),
              "learner.lora.r>0 with learner.zero_stage=3 is not supported; use zero_stage=2 with LoRA")
        if self.algorithm.name == "latro":
            self._check_latro()
        self._check_bounds()
        check(not self.trainer.async_rollout or self.algorithm.name == "grpo",
              f"trainer.async_rollout=true needs a PPO-ratio algorithm (grpo); {self.algorithm.name} learns on-policy only, "
              f"set trainer.async_rollout=false")

    def _check_placement(self) -> None:
        for role in ("rollout", "learner", "users"):
            gpus = getattr(self, role).num_gpus
            check(gpus <= 1 or float(gpus).is_integer(),
                  f"{role}.num_gpus={gpus:g}: Ray gives an actor a fraction of one GPU or whole GPUs; use a value <= 1 "
                  f"or a whole number")
        if self.placement.mode == "colocated":
            workers, ranks = self.rollout.num_workers, self.learner.num_learners
            check(workers % ranks == 0,
                  f"placement.mode=colocated gives each learner rank the same number of rollout workers in its bundle, "
                  f"but rollout.num_workers={workers} is not a multiple of learner.num_learners={ranks}; set "
                  f"rollout.num_workers={max(ranks, workers // ranks * ranks)}")
            shared = self.learner.num_gpus + workers // ranks * self.rollout.num_gpus
            check(shared <= 1 or float(shared).is_integer(),
                  f"placement.mode=colocated: a bundle holds learner.num_gpus={self.learner.num_gpus:g} + "
                  f"{workers // ranks} x rollout.num_gpus={self.rollout.num_gpus:g} = {shared:g} GPUs; Ray shares one GPU "
                  f"by fractions or gives whole GPUs, so make the sum <= 1 (e.g. 0.5 + 0.5) or a whole number")

    def _check_bounds(self) -> None:
        """The bounds nest: one verifier call < the reward phase; a collective < the update phase. (An env step <
        the rollout phase needs the environment: `rltrain.preflight.check_bounds`.)"""
        wd = self.watchdog
        check(wd.reward_s > self.reward.timeout_s,
              f"watchdog.reward_s={wd.reward_s:g} must exceed reward.timeout_s={self.reward.timeout_s:g} (one verifier call); "
              f"raise watchdog.reward_s or lower reward.timeout_s")
        check(wd.update_s > self.learner.collective_timeout_s,
              f"watchdog.update_s={wd.update_s:g} must exceed learner.collective_timeout_s={self.learner.collective_timeout_s:g}, "
              f"so that a rank blocked in a collective errors out (and is named) first; raise watchdog.update_s or lower "
              f"learner.collective_timeout_s")

    def _check_latro(self) -> None:
        """LaTRO scores rationales against their group on the learner: groups stay whole on one rank (spec §3.3)."""
        check(self.trainer.group_size >= 2, f"trainer.group_size={self.trainer.group_size}: LaTRO's RLOO baseline needs "
              f"K >= 2 rationales per question (the paper uses 16)")
        check(self.trainer.prompts_per_step % self.learner.num_learners == 0,
              f"trainer.prompts_per_step={self.trainer.prompts_per_step} must be a multiple of learner.num_learners="
              f"{self.learner.num_learners}, so that each question's rationales stay on one learner rank")
        check(self.mini_batch_size == self.trainer.samples_per_step,
              "LaTRO makes one optimizer step per rollout batch; leave learner.mini_batch_size unset")

    @property
    def mini_batch_size(self) -> int:
        return self.learner.mini_batch_size or self.trainer.samples_per_step

    @property
    def gradient_accumulation(self) -> int:
        return self.mini_batch_size // (self.learner.num_learners * self.learner.micro_batch_size)

    def _check_batch_arithmetic(self) -> None:
        samples, mini = self.trainer.samples_per_step, self.mini_batch_size
        ranks, micro = self.learner.num_learners, self.learner.micro_batch_size
        check(
            samples % mini == 0,
            f"learner.mini_batch_size={mini} must divide the step's batch, trainer.prompts_per_step x "
            f"trainer.group_size = {samples}; try learner.mini_batch_size={_divisor_near(samples, mini)}",
        )
        check(
            mini % (ranks * micro) == 0,
            f"each optimizer step's {mini} trajectories must split evenly over learner.num_learners={ranks} ranks "
            f"in micro-batches of learner.micro_batch_size={micro} ({mini} is not a multiple of {ranks * micro}); "
            f"try learner.micro_batch_size={_divisor_near(mini // ranks if mini % ranks == 0 else 1, micro)}"
            + ("" if mini % ranks == 0 else f" and a mini batch that is a multiple of {ranks}"),
        )


def _divisor_near(total: int, wanted: int) -> int:
    """The largest divisor of `total` not above `wanted` (at least 1): the suggested fix in errors."""
    return max(d for d in range(1, max(1, min(total, wanted)) + 1) if total % d == 0)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Load YAML (or nothing, for all defaults), apply dotted overrides, validate everything."""
    data: dict[str, Any] = load_yaml(path) if path is not None else {}
    return build(RunConfig, apply_overrides(data, list(overrides)))
