"""The driver: validate, start the roles, then loop generate -> score -> batch -> update -> sync -> log.

It holds no model weights and moves no large tensors itself beyond the step's padded batch.
"""

from __future__ import annotations

import json
import logging
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import ray
import yaml
from tqdm import tqdm

from actors.ledger import start_ledger
from rewards.crm import crm_metrics
from rewards.router import routing_metrics
from rewards.toolcall import spectool_metrics
from rewards.userrl_metrics import userbench_metrics, userrl_scores
from rltrain import checkpoint, console
from rltrain.algorithms.base import Algorithm
from rltrain.algorithms.dynamic_sampling import fill_batch
from rltrain.batching import fill_to
from rltrain.checkpoint import Checkpoint
from rltrain.cluster import dump_stacks, start_ray
from rltrain.config import RunConfig, to_dict
from rltrain.data.schema import trajectory_to_row
from rltrain.envs.audit import audit_episodes
from rltrain.errors import BudgetReached, CallTimedOut, ConfigError, Preempted, RoleFailed
from rltrain.export import write_model_card
from rltrain.groups import (
    LearnerGroup,
    Location,
    Placement,
    RewardGroup,
    RolloutGroup,
    Submitted,
    UserGroup,
    dead_actors,
    get,
    heartbeats,
    shutdown_actors,
    targets,
)
from rltrain.models import base_model_name
from rltrain.preflight import Preflight, prepare
from rltrain.report import write_report
from rltrain.telemetry import MetricsLog as MetricsLog  # re-exported: it used to live here
from rltrain.telemetry import Telemetry
from rltrain.tools.metrics import tool_call_metrics
from rltrain.types import Trajectory
from rltrain.users import user_metrics
from rltrain.watchdog import Watchdog

logger = logging.getLogger("rltrain.driver")


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


def sample_step(play_round: Callable[[int], list[Trajectory]], algorithm: Algorithm, prompts_needed: int,
                stop: Callable[[], bool] | None = None) -> tuple[list[Trajectory], list[Trajectory], dict[str, float]]:
    """A step's episodes: (every episode generated, the episodes to train on, `dapo/*` metrics).

    `play_round(r)` plays, scores and records round r of the step (round 0 is the step's usual rollout). Without
    dynamic sampling (`algorithm.sampling_rounds` 1) that one round is the batch. With it (spec §4.5 filter_groups,
    §7.2 A4; issue 14), `fill_batch` drops the groups whose scores all agree and plays further rounds of fresh
    prompts until `prompts_needed` groups have signal or `algorithm.grpo.max_sampling_rounds` rounds have run;
    `stop()` is asked after each round and True (a cost budget reached) ends the refill. The episodes to train on
    are then renumbered groups 0..k-1; none when no round had a group with signal (the driver skips the update)."""
    generated: list[Trajectory] = []

    def play(r: int) -> list[Trajectory]:
        played = play_round(r)
        generated.extend(played)
        return played

    rounds = algorithm.sampling_rounds
    if rounds <= 1:
        played = play(0)
        return played, played, {}
    train_on, metrics = fill_batch(play, prompts_needed, rounds, check_budget=stop, score=algorithm.group_score)
    return generated, train_on, metrics


def pooled_means(parts: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    """Per-episode means of several rounds, pooled: each round's means weighted by its episode count."""
    total: dict[str, float] = {}
    counts: dict[str, int] = {}
    for n, means in parts:
        for key, value in means.items():
            total[key] = total.get(key, 0.0) + n * value
            counts[key] = counts.get(key, 0) + n
    return {key: total[key] / counts[key] for key in total if counts[key]}


def write_rows(path: Path, trajectories: Iterable[Trajectory], start: int, mode: str = "a",
               **extra: Any) -> int:
    """Write trajectories as versioned rows (`rltrain.data.schema`, format_version 1) with `extra` keys first (a run
    file's `step`); `start` numbers the first row (unique ids within the file). Returns the rows written.

    ASCII-escaped JSON: the file's readers (trim on resume, `users.replay_from`) open it in the locale's encoding."""
    n = 0
    with path.open(mode) as f:
        for n, traj in enumerate(trajectories, 1):
            f.write(json.dumps({**extra, **trajectory_to_row(traj, start + n - 1)}) + "\n")
    return n


def tool_metrics(trajectories: list[Trajectory]) -> dict[str, float]:
    """Tool-call parsing and execution (`tools/*`) and SpecTool's error patterns (`spectool/*`, spec §6.3)."""
    return {**tool_call_metrics(trajectories), **spectool_metrics(trajectories)}


class Trainer:
    """Owns the actor groups for one run and executes the loop."""

    def __init__(self, prep: Preflight, run_dir: Path, learn: bool = True, watchdog: Watchdog | None = None) -> None:
        """Start every role; `learn=False` starts no learners (evaluation only). `watchdog`: the run's (it learns
        where each role runs here); default one of its own."""
        cfg = self.cfg = prep.cfg
        self.prep, self.run_dir = prep, run_dir
        self.watchdog = watchdog or Watchdog(run_dir, dump_stacks, cfg.watchdog.dump_stacks)
        tag = cfg.trainer.name
        self.tokenizer = prep.tokenizer
        self._stack = ExitStack()
        try:  # a role that fails to start must not leave the ones before it running
            logger.info("Starting reward accountant (fn=%s, timeout %.0fs)", prep.reward_fn, cfg.reward.timeout_s)
            self.rewards = RewardGroup(cfg, prep.reward_fn, tag, self._stack)
            # every model call of every role (policy, users, judges, pool) is priced and totalled here (docs/costs.md)
            self.ledger = start_ledger(cfg.costs, tag, str(run_dir), base_model_name(prep.model_path))
            self._stack.callback(shutdown_actors, [self.ledger], None)
            self.budget_reached: str | None = None
            placement = Placement(cfg, tag, self._stack, prep.needs_users)  # one for all roles: colocated ones share groups
            logger.info("Placement plan: %s", placement.plan.describe())
            self.users = None
            if prep.needs_users:  # before the rollout workers, which get the user actors' handles
                uc = cfg.users
                logger.info("Starting %d simulated-user actor(s) (backend=%s%s)", uc.num_actors,
                            "replay" if uc.replay_from else uc.backend, f", model {uc.model}" if uc.model else "")
                self.users = UserGroup(cfg, prep.user_model_path, [type(prep.env).__module__], tag, self._stack, placement)
            logger.info("Starting %d rollout worker(s) (engine=%s, %s)", cfg.rollout.num_workers, cfg.rollout.engine, cfg.rollout.dtype)
            # the engines load while the learner ranks start: start-up takes the longer of the two, not their sum
            self.rollouts = RolloutGroup(cfg, prep.model_path, tag, self._stack, self.users, placement, wait=False)
            if learn:
                logger.info("Starting %d learner rank(s) (ZeRO-%d, lr %g, algorithm %s)", cfg.learner.num_learners,
                            cfg.learner.zero_stage, cfg.learner.lr, cfg.algorithm.name)
                self.learners = LearnerGroup(cfg, prep.model_path, prep.algorithm, tag, self._stack, placement)
            self.rollouts.wait_started()
            self.rewards.wait_started()
        except BaseException:
            self._stack.close()
            raise
        self.learn = learn
        logger.info("placement (%s): %s", cfg.placement.mode, "; ".join(map(str, self.locations)))
        self._track()
        self.version = 0
        self._next: list[Trajectory] | None = None  # the next step's episodes, played during this step's update (async)
        self._rows: int | None = None  # rows in trajectories.jsonl (their ids are numbered); counted at the first write
        self.current_step = 0
        self.lengths: tuple[int, int] | None = None  # (min, max) tokens per turn; benchmarks fix the response length

    @property
    def locations(self) -> list[Location]:
        """Where each role's actors run now (a restarted actor may have moved)."""
        return [*(self.users.locations if self.users else []), *self.rollouts.locations,
                *(self.learners.locations if self.learn else [])]

    @property
    def actors(self) -> dict[str, Any]:
        """role -> its actor handle, every role the watchdog tracks."""
        return {RewardGroup.ROLE: self.rewards.actor, **(dict(zip(self.users.roles, self.users.actors)) if self.users else {}),
                **dict(zip(self.rollouts.roles, self.rollouts.workers)),
                **(dict(zip(self.learners.roles, self.learners.ranks)) if self.learn else {})}

    def _track(self) -> None:
        """Tell the watchdog where every role's process is (again after a restart: a new process)."""
        self.watchdog.track(targets([self.rewards.location, *self.locations]), lambda: heartbeats(self.actors))

    def close(self) -> None:
        self._stack.close()

    def save_checkpoint(self, step: int, extra: dict[str, Any]) -> float:
        """Write `<run>/step_<step>/` (learners' DeepSpeed state, driver state, RNG, config); returns seconds.

        The asynchronous trainer's pending rollout is not saved: a resumed run submits it again."""
        t0 = time.perf_counter()
        self.watchdog.enter("checkpoint", ["learner"])

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
        t0 = time.perf_counter()
        self.watchdog.enter("resume", ["learner", "rollout"])
        self.learners.load_checkpoint(str(ckpt.path))
        self.version = ckpt.version
        checkpoint.set_rng_state(ckpt.driver_rng)
        self.rollouts.load_weights(self.learners.export_weights(self.version, self.cfg.rollout.dtype), self.version)
        seconds = time.perf_counter() - t0
        logger.info("restored %s (step %d, weight version %d) in %.1fs", ckpt.path, ckpt.step, ckpt.version, seconds)
        return seconds

    def score(self, trajectories: list[Trajectory]) -> list[Trajectory]:
        self.watchdog.enter("reward", [RewardGroup.ROLE])
        restarts = self.rewards.restarts
        scored = self.rewards.score(trajectories)
        if self.rewards.restarts != restarts:  # a new process: the stack dumps must find it
            self._track()
        return scored

    def meter(self, trajectories: list[Trajectory], step: int) -> dict[str, float]:
        """Record the step's model calls in the cost ledger; returns its `costs/*` metrics. A budget that is reached
        sets `budget_reached` (its message): the loop then checkpoints and stops cleanly."""
        bound = self.cfg.watchdog.reward_s
        get(self.ledger.add_trajectories.remote(trajectories, step), "cost ledger", bound, ["ledger"])
        metrics = get(self.ledger.metrics.remote(step), "cost ledger", bound, ["ledger"])
        exceeded = get(self.ledger.check_budget.remote(step), "cost ledger", bound, ["ledger"])
        if exceeded is not None:
            self.budget_reached = exceeded["message"]
        return {**metrics, **routing_metrics(trajectories)}

    def evaluate(self, tasks: list, tag: str) -> dict[str, float]:
        """Greedy episodes on held-out tasks, scored like training episodes."""
        if not tasks:
            return {}
        t0 = time.perf_counter()
        self.watchdog.enter(f"eval_{tag}", ["rollout"])
        rc = self.cfg.rollout
        played: list[Trajectory] = []
        for chunk in console.chunks(tasks, rc.num_workers * rc.max_concurrent_episodes, desc=f"eval {tag}"):
            played += self.rollouts.rollout(chunk, n=1, greedy=True)  # group ids restart per chunk; eval ignores them
        trajectories = self.score(played)
        audit = audit_episodes(trajectories, self.cfg.users.audit)  # issue 17: spoiled episodes marked failed
        metrics = trajectory_metrics(trajectories, f"eval_{tag}")
        metrics.update({f"eval_{tag}/{k}": v for k, v in audit.items()})
        metrics.update({f"eval_{tag}/{k}": v for k, v in tool_metrics(trajectories).items()})
        if self.prep.reward_fn == "crm":  # per skill and task type, single vs multi-turn, confidentiality (docs/crm.md)
            metrics.update({f"eval_{tag}/crm/{k}": v for k, v in crm_metrics(trajectories).items()})
        metrics.update({f"eval_{tag}/{k}": v for k, v in routing_metrics(trajectories).items()})
        if self.prep.env.protocol == "interact":  # UserRL gyms: the per-gym score (spec §1.10) and UserBench's (§2.4)
            metrics.update({f"eval_{tag}/score/{k}": v for k, v in userrl_scores(trajectories).items()})
            metrics.update({f"eval_{tag}/userbench/{k}": v for k, v in userbench_metrics(trajectories).items()})
        metrics[f"eval_{tag}/seconds"] = time.perf_counter() - t0
        write_rows(self.run_dir / f"eval_{tag}.jsonl", trajectories, 0, mode="w")
        return metrics

    def _submit(self, step: int, round_: int = 0) -> Submitted:
        """Submit round `round_` of a step's rollout; refill rounds (dynamic sampling) draw other prompts."""
        cfg = self.cfg
        seed = cfg.trainer.seed * 1_000_003 + step + round_ * 2**32  # round 0 keeps the seeds of runs without refills
        tasks = self.prep.env.tasks("train", cfg.trainer.prompts_per_step, seed=seed)
        return self.rollouts.submit(tasks, n=cfg.trainer.group_size, stop=self.prep.algorithm.rollout_stop_strings,
                                    lengths=self.lengths)

    def _record(self, step: int, trajectories: list[Trajectory], **extra: Any) -> None:
        """Append a round's episodes to trajectories.jsonl, each with its step (and refill round)."""
        path = self.run_dir / "trajectories.jsonl"
        if self._rows is None:  # a resumed run appends to the trimmed file
            self._rows = 0
            if path.is_file():
                with path.open() as f:
                    self._rows = sum(1 for _ in f)
        self._rows += write_rows(path, trajectories, self._rows, step=step, **extra)

    def step(self, step: int) -> dict[str, float]:
        """One step; returns its metrics.

        Synchronous: rollout -> score -> update -> sync. With `trainer.async_rollout`, step+1's rollout is
        submitted before this step's update and collected before the weight sync (engines swap weights idle), so
        it samples from the weights of step-1: one version stale, never more.

        With `algorithm.grpo.dynamic_sampling` (`sample_step`), refill rounds of fresh prompts are played, scored and
        metered until the batch has `trainer.prompts_per_step` groups with signal, all before the update; under
        `async_rollout` only the next step's first round is submitted early (issue 14). Every round's episodes go
        to trajectories.jsonl with their `sampling_round`.
        """
        cfg = self.cfg
        self.current_step = step
        t0 = time.perf_counter()
        sampled_with = self.version  # the weights of this step's rollout (round 0 may be one older under async)
        spent = {"rollout": 0.0, "reward": 0.0}
        cost_metrics: dict[str, float] = {}
        audits: list[tuple[int, dict[str, float]]] = []  # (episodes with user calls, the round's audit means)
        algorithm = self.prep.algorithm
        refills = algorithm.sampling_rounds > 1

        def play_round(r: int) -> list[Trajectory]:
            nonlocal cost_metrics
            t = time.perf_counter()
            self.watchdog.enter("rollout", ["rollout"])
            if r == 0 and self._next is not None:  # played during the last update (async_rollout)
                played, self._next = self._next, None
            else:
                played = self.rollouts.collect(self._submit(step, r))
            spent["rollout"] += time.perf_counter() - t
            t = time.perf_counter()
            played = self.score(played)
            # issue 17: drop spoiled episodes before the batch, and before the group filter (they carry no signal)
            audits.append((sum(bool(t.user_calls) for t in played), audit_episodes(played, cfg.users.audit)))
            cost_metrics = self.meter(played, step)  # every round is paid for, kept or not
            spent["reward"] += time.perf_counter() - t
            self._record(step, played, **({"sampling_round": r} if refills else {}))
            return played

        trajectories, train_on, sampling_metrics = sample_step(
            play_round, algorithm, cfg.trainer.prompts_per_step, stop=lambda: self.budget_reached is not None)
        cost_metrics.update(routing_metrics(trajectories))  # over every round, not only the last
        t2 = time.perf_counter()
        if not any(not t.failed and not t.context_drift for t in trajectories):
            failed = [t for t in trajectories if t.failed]
            raise RoleFailed(f"step {step}: no trajectory can be trained on: {len(failed)} failed"
                             f"{f' (first: {failed[0].failure})' if failed else ''}, {len(trajectories) - len(failed)} with "
                             f"context token drift; see {self.run_dir}/trajectories.jsonl")
        scored = [t for t in train_on if not t.failed and not t.context_drift]  # empty only under dynamic sampling
        batch_metrics: dict[str, float] = {}
        learner_metrics: dict[str, float] = {}
        pending = payload = None
        load_s = 0.0
        if scored:
            batch, batch_metrics = algorithm.make_batch(scored, self.tokenizer)
            batch = fill_to(batch, cfg.trainer.samples_per_step)
            pending = self._submit(step + 1) if cfg.trainer.async_rollout and step < cfg.trainer.steps else None
            self.watchdog.enter("update", ["learner"])
            learner_metrics = self.learners.update(batch, stale=cfg.trainer.async_rollout)
        else:  # dynamic sampling found no group with signal in any round: nothing to learn, the weights stay
            logger.warning("step %d: no group with reward signal in %d sampling round(s); update skipped", step,
                           int(sampling_metrics.get("dapo/rounds", 1)))
        if refills:
            sampling_metrics["dapo/skipped_update"] = float(not scored)
        t3 = time.perf_counter()
        if pending is not None:  # before the sync; a worker lost meanwhile replays its episodes with the same weights
            self.watchdog.enter("rollout_wait", ["rollout"])
            self._next = self.rollouts.collect(pending)
        t4 = time.perf_counter()
        if scored:
            self.version += 1
            self.watchdog.enter("sync", ["learner", "rollout"])
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
            **pooled_means(audits),
            **tool_metrics(trajectories), **cost_metrics, **sampling_metrics,
            "rollout/response_len": generated / n,
            "rollout/tokens": float(generated),
            "weights/version": float(self.version),
            "weights/staleness": float(sampled_with - min(t.weight_version for t in trajectories)),
            "time/rollout_s": spent["rollout"], "time/reward_s": spent["reward"], "time/update_s": t3 - t2,
            "time/rollout_wait_s": t4 - t3,
            "time/sync_s": t5 - t4, "time/export_s": payload.export_s if payload else 0.0, "time/load_s": load_s,
            "time/step_s": t5 - t0,
            "weights/remote_workers": float(self.rollouts.remote_from(payload.node_id)
                                            if payload is not None and payload.blob is not None else 0),
        }
        recovery = self.rollouts.take_recovery_metrics()
        if recovery["rollout/restarts"]:  # restarted workers run in new processes: the stack dumps must find them
            self._track()
        metrics.update(recovery)
        if not cfg.trainer.async_rollout:  # an overlapped rollout has no wall time of its own to divide by
            metrics["rollout/tokens_per_s"] = generated / spent["rollout"]
        return metrics

    def learner_failure(self) -> RoleFailed | None:
        """After a failed call: the error to report when learner ranks are dead (which, why, how to resume); None
        when every rank is alive (the failure was elsewhere). Ranks do not restart: the ZeRO state spans them all."""
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
    run_dir = cfg.trainer.run_dir
    latest = checkpoint.read_latest(run_dir) if run_dir.is_dir() else None
    source = run_dir if latest else cfg.trainer.resume  # no checkpoint of its own yet: where this run resumed from
    if source:
        ckpt = run_dir / latest if latest else checkpoint.resolve(source)
        return f"The last complete checkpoint is {ckpt}; continue from it with: {resume_command(cfg)}"
    if not cfg.trainer.checkpoint_every:
        return ("No checkpoint exists (trainer.checkpoint_every=0), so a new run starts from step 0; set "
                "trainer.checkpoint_every=N to make a run resumable")
    return (f"No checkpoint was written yet (the first is due at step {cfg.trainer.checkpoint_every}), so a new run "
            f"starts from step 0")


def resume_command(cfg: RunConfig) -> str:
    """The command that continues this run: from its own latest checkpoint, else from where it resumed itself."""
    run_dir = cfg.trainer.run_dir
    own = run_dir.is_dir() and checkpoint.read_latest(run_dir) is not None
    source = run_dir if own else (cfg.trainer.resume or run_dir)
    return shlex.join(["rltrain", "train", str(run_dir / "config.yaml"), "--resume", str(source)])


class Preemption:
    """SIGTERM (a scheduler preempting the job) while training: the current step finishes, a checkpoint is written
    and the run stops with `Preempted` (exit 143), so that `--resume` continues it. Only the main thread can take
    signals; elsewhere SIGTERM keeps its default action."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def arm(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def disarm(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.requested = True
        logger.warning("SIGTERM: finishing this step, then writing a checkpoint and stopping")


def train(cfg: RunConfig, ray_temp_dir: str | None = None) -> dict[str, Any]:
    """Run a whole training job; returns the summary that is also written to `<run>/summary.json`."""
    prep = prepare(cfg)  # everything a user can get wrong fails here, before Ray starts
    resume = checkpoint.for_resume(cfg)
    if resume is not None:
        logger.info("Resuming from %s (step %d, weight version %d)", resume.path, resume.step, resume.version)
    run_dir = cfg.trainer.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    console.attach_run_log(run_dir)
    for name in ("metrics.jsonl", "trajectories.jsonl"):
        if resume is None:
            (run_dir / name).unlink(missing_ok=True)
        else:  # append; drop the steps a stopped run logged after its last checkpoint, which are run again
            checkpoint.trim_jsonl(run_dir / name, resume.step)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    logger.info("Run folder: %s (model %s)", run_dir, prep.model_path)
    trainer = telemetry = None
    watchdog = Watchdog(run_dir, dump_stacks, cfg.watchdog.dump_stacks)
    preemption = Preemption()
    try:
        start_ray(prep.requirements, ray_temp_dir)
        preemption.arm()  # after ray.init, which installs its own SIGTERM handler (sys.exit) in the driver
        trainer = Trainer(prep, run_dir, watchdog=watchdog)
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
            stop = preemption.requested or trainer.budget_reached is not None
            if (every and (step % every == 0 or step == cfg.trainer.steps)) or stop:
                metrics["time/checkpoint_s"] = trainer.save_checkpoint(step, {"eval_before": before})
            telemetry.publish(step, metrics)
            if trainer.budget_reached is not None:
                raise BudgetReached(f"{trainer.budget_reached} (checkpoint at step {step}; continue with: "
                                    f"{resume_command(cfg)})")
            if preemption.requested and step < cfg.trainer.steps:
                raise Preempted(f"stopped by SIGTERM after step {step}, with a checkpoint; continue with: "
                                f"{resume_command(cfg)}")
            bar.set_postfix(reward=f"{metrics.get('reward/mean', float('nan')):.3f}", step_s=f"{metrics['time/step_s']:.1f}")
        after = trainer.evaluate(eval_tasks, "after")
        if after:
            logger.info("held-out after training: %s", _fmt(after))
        summary = {"run_dir": str(run_dir), "steps": cfg.trainer.steps, **before, **after}
        if cfg.trainer.save_final:
            final = trainer.learners.save_hf(str((run_dir / "final").resolve()))
            summary["final_model"], summary["final_verify/max_abs_diff"] = final["path"], final["max_abs_diff"]
            write_model_card(Path(str(final["path"])), to_dict(cfg), {"step": cfg.trainer.steps, **metrics, **after},
                             f"`rltrain train` run {run_dir}, step {cfg.trainer.steps}")
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    except CallTimedOut as err:  # a phase made no progress within its bound: stacks, then exit 3
        raise watchdog.stalled(err) from err
    except RoleFailed as err:
        failure = trainer.learner_failure() if trainer is not None else None
        if failure is None:
            raise
        raise failure from err
    finally:  # also on Ctrl-C: writers flushed and closed, every actor stopped, then Ray
        preemption.disarm()
        if telemetry is not None:
            telemetry.close()
        if trainer is not None:
            trainer.close()
        ray.shutdown()
        write_report([run_dir])  # failed and interrupted runs too; a report failure never fails the run


def evaluate(cfg: RunConfig, tasks: int | None = None, ray_temp_dir: str | None = None) -> dict[str, float]:
    """`rltrain eval` (`rltrain.evaluation`): the policy played greedily on the test split by the roles of a run minus
    the learners; returns the summary that is also written to `<run>/eval/summary.json`."""
    count = tasks if tasks is not None else cfg.env.eval_tasks
    if count < 1:
        raise ConfigError("nothing to evaluate: set env.eval_tasks >= 1 or pass --tasks N")
    prep = prepare(cfg)
    out = cfg.trainer.run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    console.attach_run_log(cfg.trainer.run_dir)
    trainer = None
    watchdog = Watchdog(out, dump_stacks, cfg.watchdog.dump_stacks)
    try:
        start_ray(prep.requirements, ray_temp_dir)
        trainer = Trainer(prep, out, learn=False, watchdog=watchdog)
        test = prep.env.tasks("test", count, seed=cfg.trainer.seed)
        logger.info("Evaluating %s greedily on %d held-out task(s) of %s", prep.model_path, len(test), cfg.env.name)
        metrics = trainer.evaluate(test, "test")
    except CallTimedOut as err:
        raise watchdog.stalled(err) from err
    finally:
        if trainer is not None:
            trainer.close()
        ray.shutdown()
    (out / "eval_test.jsonl").replace(out / "trajectories.jsonl")
    summary = {"model": prep.model_path, "env": cfg.env.name, **{k.removeprefix("eval_test/"): v for k, v in metrics.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary



def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
