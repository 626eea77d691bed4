"""Actor groups as the driver sees them: where each role runs, and one call per stage fanned out to its actors.

Placement (resources, placement groups, names) is decided here; what a role does lives in `actors/`.
Every remote call is awaited with a timeout and a dead actor is reported by name (`RoleFailed`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors.accountant import RewardAccountant
from actors.learner import Learner
from actors.rollout import NotStarted, RolloutWorker
from actors.user import UserService
from rltrain.algorithms.base import Algorithm
from rltrain.config.run import RunConfig
from rltrain.placement import internal_resource, plan_placement
from rltrain.types import Task, TrainBatch, Trajectory
from rltrain.weights import WeightPayload

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 600.0
"""Seconds an actor may take to start (engine load, process-group rendezvous) before the run stops."""


class RoleFailed(RuntimeError):
    """An actor died or timed out; the message names the role and what to look at."""


def get(refs: Any, what: str, timeout: float | None = None) -> Any:
    """`ray.get` that turns actor deaths and time-outs into `RoleFailed` naming the stage."""
    try:
        return ray.get(refs, timeout=timeout)
    except ray.exceptions.GetTimeoutError as err:
        raise _timed_out(what, timeout) from err
    except ray.exceptions.ActorDiedError as err:
        raise RoleFailed(f"{what} failed: an actor died ({_first_line(err)}). Check memory (OOM kills) and the actor's log") from err
    except ray.exceptions.RayActorError as err:
        raise RoleFailed(f"{what} failed: {_first_line(err)}") from err
    except ray.exceptions.RayTaskError as err:
        raise RoleFailed(f"{what} raised {type(err.cause).__name__}: {err.cause}") from err


def _timed_out(what: str, timeout: float | None) -> RoleFailed:
    return RoleFailed(f"{what} did not finish within {timeout or 0:.0f}s; check the actor logs in the Ray dashboard")


def _first_line(err: BaseException) -> str:
    return next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)


def dead_actors(actors: Sequence[Any], timeout: float = 10.0) -> dict[int, str]:
    """Which of `actors` are dead, by position, with Ray's cause: a probe for reporting a failed call (an actor still
    busy after `timeout` counts as alive)."""
    probes = [actor.__ray_ready__.remote() for actor in actors]
    ray.wait(probes, num_returns=len(probes), timeout=timeout)
    dead = {}
    for i, probe in enumerate(probes):
        try:
            ray.get(probe, timeout=0)
        except ray.exceptions.RayActorError as err:
            dead[i] = death_cause(err)
        except ray.exceptions.GetTimeoutError:
            pass
    return dead


def death_cause(err: BaseException) -> str:
    """Why Ray says an actor died ("killed by `ray.kill`", "its node has died", an OOM kill...): one line, no
    final period."""
    if isinstance(err, ray.exceptions.RayTaskError):  # the actor's own report (NotStarted)
        cause = str(err.cause)
    elif isinstance(err, ray.exceptions.ActorUnavailableError):  # lost mid-call; Ray's own words are mostly boilerplate
        cause = "unreachable: " + str(err).rsplit("unavailable: ", 1)[-1].split(". The task may")[0]
    else:
        lines = [line.strip() for line in str(err).splitlines()]
        because = next((line for line in lines if line.startswith("The actor is dead because")), None)
        cause = (because or _first_line(err)).split(" Some common causes include")[0]
    return cause.rstrip(". ")


class Placement:
    """The run's placement groups (`rltrain.placement` plans them), reserved when a role first asks for one of its
    actors' options and removed at cleanup, after the actors (the callback is registered before any of them).

    One per run: in colocated mode the learner and rollout groups must take their options from the same instance,
    so that they share one reserved policy group."""

    def __init__(self, cfg: RunConfig, run_tag: str, cleanup: ExitStack, with_users: bool = True) -> None:
        self.plan = plan_placement(cfg, with_users)
        self.run_tag = run_tag
        self.timeout_s = cfg.placement.timeout_s
        self.groups: dict[str, PlacementGroup] = {}
        cleanup.callback(self.release)

    def options(self, role: str, index: int) -> dict[str, Any]:
        """Ray actor options for actor `index` of `role` (learner, rollout, users): resources and scheduling."""
        slot = self.plan.slots[role][index]
        options: dict[str, Any] = {"num_cpus": slot.num_cpus, "num_gpus": slot.num_gpus}
        if slot.resources:
            options["resources"] = dict(slot.resources)
        if slot.group is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(self._reserve(slot.group),
                                                                              placement_group_bundle_index=slot.bundle)
        elif slot.labels:
            options["label_selector"] = dict(slot.labels)
        return options

    def _reserve(self, key: str) -> PlacementGroup:
        if key not in self.groups:
            plan = self.plan.groups[key]
            group = placement_group(list(plan.bundles), strategy=plan.strategy, name=f"{self.run_tag}-{key}",
                                    bundle_label_selector=list(plan.labels) if any(plan.labels) else None)
            if not group.wait(timeout_seconds=self.timeout_s):
                remove_placement_group(group)
                raise RoleFailed(f"could not reserve {plan.describe()} within placement.timeout_s={self.timeout_s:g}s: the "
                                 f"cluster lacks these resources or the nodes they are pinned to ({_cluster_summary()}). "
                                 f"Lower {', '.join(f'{m}.num_cpus/num_gpus' for m in plan.members)}, change the "
                                 f"placement.* pins or strategy, or add nodes")
            self.groups[key] = group
        return self.groups[key]

    def release(self) -> None:
        for group in self.groups.values():
            remove_placement_group(group)
        self.groups.clear()


def _cluster_summary() -> str:
    free = ray.available_resources()
    return "free now: " + ", ".join(f"{k} {v:g}" for k, v in sorted(free.items()) if not internal_resource(k))


@dataclass(frozen=True)
class Location:
    """Where one actor runs."""

    name: str
    node_id: str
    ip: str
    gpu_ids: tuple[str, ...]

    def __str__(self) -> str:
        gpus = f", GPU {','.join(self.gpu_ids)}" if self.gpu_ids else ""
        return f"{self.name} on node {self.node_id[:8]} ({self.ip}{gpus})"


def _where(_actor: Any) -> tuple[str, str, tuple[str, ...]]:
    return (ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address(),
            tuple(str(g) for g in ray.get_gpu_ids()))


def locate(actors: Sequence[Any], names: Sequence[str]) -> list[Location]:
    """Node id, IP and GPU ids of each actor (asked of the actor itself, so no dashboard is needed)."""
    if not actors:
        return []
    found = get([a.__ray_call__.remote(_where) for a in actors], f"starting {names[0].rsplit('-', 1)[0]} actors", START_TIMEOUT_S)
    return [Location(name, *where) for name, where in zip(names, found)]


LOST = (ray.exceptions.RayActorError, NotStarted)
"""What a call to a rollout worker raises when the worker's process is gone: dead, restarting, or restarted and not
yet re-synced. Anything else is an error of the call itself and stops the run."""


@dataclass
class _Call:
    """One remote call to one rollout worker, which can be sent again once the worker is back."""

    worker: int
    send: Callable[[], Any]
    """Sends the call; returns its ObjectRef."""
    episodes: int = 0
    """Episodes the call plays (counted as re-queued when it is sent again)."""
    resend: bool = True
    """False: the recovery itself does the call's work (a weight sync), so its result is the recovery's seconds."""
    ref: Any = None


@dataclass
class Submitted:
    """A rollout in flight (`RolloutGroup.submit`): one call per worker, each playing one block of tasks."""

    calls: list[_Call]


def _sent(calls: list[_Call]) -> list[_Call]:
    for call in calls:
        call.ref = call.send()
    return calls


@dataclass
class Recovery:
    """Rollout-worker recoveries since the driver last took them (one step's worth)."""

    restarts: int = 0
    requeued: int = 0
    seconds: float = 0.0


class RolloutGroup:
    """N rollout workers; tasks are spread over them in contiguous blocks.

    Ray restarts a dead worker (`rollout.max_restarts`), without its state. The group notices when a call to it
    fails (`LOST`), waits for it to come back, starts its engine, loads the last weights the group sent (so its
    trajectories carry the current version) and sends the lost call again, to the same worker: a lost rollout's
    episodes are re-queued, not dropped, and the result keeps its task order. A worker that cannot come back
    (restarts used up, no node with room) stops the run with `RoleFailed` naming it.
    """

    def __init__(self, cfg: RunConfig, model_path: str, run_tag: str, cleanup: ExitStack,
                 users: UserGroup | None = None, placement: Placement | None = None) -> None:
        """`placement`: the run's (shared with the learners in colocated mode); default one of its own."""
        rc = self.rc = cfg.rollout
        placement = placement or Placement(cfg, run_tag, cleanup)
        remote = ray.remote(RolloutWorker)
        user_args = (users.actors, cfg.users, users.names) if users is not None else None
        self.names = [f"{run_tag}-rollout-{i}" for i in range(rc.num_workers)]
        self.workers = [
            remote.options(name=self.names[i], max_restarts=rc.max_restarts, **placement.options("rollout", i)).remote(
                i, model_path, rc, cfg.env, cfg.model.max_model_len, user_args)
            for i in range(rc.num_workers)
        ]
        self._weights: tuple[Any, int] | None = None  # the last load_weights arguments, replayed to a restarted worker
        self.recovery = Recovery()
        cleanup.callback(shutdown_actors, self.workers, None)
        self.engines = get([w.start.remote() for w in self.workers], "starting rollout workers", START_TIMEOUT_S)
        self.locations = locate(self.workers, [f"rollout-{i}" for i in range(rc.num_workers)])
        logger.info("rollout workers ready: %s", ", ".join(f"rollout-{i} ({e})" for i, e in enumerate(self.engines)))

    def rollout(self, tasks: Sequence[Task], n: int, greedy: bool = False, stop: tuple[str, ...] = (),
                timeout: float | None = None) -> list[Trajectory]:
        """`n` episodes of each task, the episodes of one task contiguous; group ids are the tasks' positions."""
        return self.collect(self.submit(tasks, n, greedy, stop), timeout)

    def submit(self, tasks: Sequence[Task], n: int, greedy: bool = False, stop: tuple[str, ...] = (),
               lengths: tuple[int, int] | None = None) -> Submitted:
        """Start a rollout without waiting (the asynchronous trainer overlaps it with the update); see `collect`."""
        per = -(-len(tasks) // len(self.workers))  # contiguous blocks keep the result in task order
        blocks = [list(range(len(tasks)))[i * per : (i + 1) * per] for i in range(len(self.workers))]
        return Submitted(_sent([
            _Call(i, partial(self.workers[i].rollout.remote, [tasks[j] for j in block], block, n, greedy, stop, lengths),
                  episodes=len(block) * n)
            for i, block in enumerate(blocks) if block]))

    def collect(self, submitted: Submitted, timeout: float | None = None) -> list[Trajectory]:
        """The trajectories of a submitted rollout, in task order; a lost worker's block is played again."""
        return [traj for part in self._await(submitted.calls, "rollout", timeout) for traj in part]

    def load_weights(self, payload: WeightPayload | str, version: int) -> float:
        """Every worker loads `version` (a `WeightPayload`, or a folder every worker can read); returns the slowest
        worker's seconds. The arguments are kept as they are and replayed to a worker that Ray restarts later."""
        self._weights = (payload, version)
        calls = [_Call(i, partial(w.load_weights.remote, payload, version), resend=False) for i, w in enumerate(self.workers)]
        return max(self._await(_sent(calls), f"weight sync v{version}", START_TIMEOUT_S))

    def take_recovery_metrics(self) -> dict[str, float]:
        """Worker restarts, re-queued episodes and recovery seconds since the last call, as step metrics."""
        r, self.recovery = self.recovery, Recovery()
        return {"rollout/restarts": float(r.restarts), "rollout/requeued_episodes": float(r.requeued), "time/recover_s": r.seconds}

    def _await(self, calls: list[_Call], what: str, timeout: float | None) -> list[Any]:
        """Each call's result, in order, taken as they finish, so that a lost worker is recovered while the others
        still run; its call is then sent again (or, `resend=False`, takes the recovery's seconds as its result)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        results: list[Any] = [None] * len(calls)
        waiting = {call.ref: k for k, call in enumerate(calls)}
        while waiting:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = ray.wait(list(waiting), num_returns=1, timeout=left)
            if not ready:
                raise _timed_out(what, timeout)
            k = waiting.pop(ready[0])
            call = calls[k]
            try:
                results[k] = get(ready[0], f"{what} on {self.names[call.worker]}")
            except RoleFailed as failed:
                if not isinstance(failed.__cause__, LOST):
                    raise
                seconds = self._recover(call.worker, failed.__cause__, call.episodes if call.resend else 0)
                if call.resend:
                    call.ref = call.send()
                    waiting[call.ref] = k
                else:
                    results[k] = seconds
        return results

    def _recover(self, i: int, cause: BaseException, requeued: int) -> float:
        """Bring worker `i` back after `cause`: wait for Ray's restart, start the engine, load the last weights.
        Returns the seconds it took; raises RoleFailed when the worker cannot come back."""
        name, t0 = self.names[i], time.perf_counter()
        version = self._weights[1] if self._weights else 0
        while True:
            state = self._wait_alive(i, cause)
            if state["started"] and state["version"] == version:  # another lost call of the same death recovered it
                logger.warning("%s: re-queued %d episodes (the worker was already restarted and re-synced)", name, requeued)
                self.recovery.requeued += requeued
                return 0.0
            try:
                if not state["started"]:
                    get(self.workers[i].start.remote(), f"restarting {name} (engine start)", START_TIMEOUT_S)
                if self._weights is not None:
                    get(self.workers[i].load_weights.remote(*self._weights), f"re-syncing {name} to v{version}",
                        START_TIMEOUT_S)
                break
            except RoleFailed as failed:
                if not isinstance(failed.__cause__, LOST):
                    raise
                cause = failed.__cause__  # died again while coming back; Ray's max_restarts ends this loop
        self.locations[i] = locate([self.workers[i]], [self.locations[i].name])[0]  # possibly another node now
        seconds = time.perf_counter() - t0
        self.recovery.restarts += not state["started"]
        self.recovery.requeued += requeued
        self.recovery.seconds += seconds
        logger.warning("%s died (%s); restarted and re-synced to v%d in %.1fs on %s; re-queued %d episodes", name,
                       death_cause(cause), version, seconds, self.locations[i], requeued)
        return seconds

    def _wait_alive(self, i: int, cause: BaseException) -> dict[str, Any]:
        """Worker `i`'s `ping` once Ray runs it again (Ray holds calls to a restarting actor until it is back).
        RoleFailed when it is dead for good or not back within rollout.restart_timeout_s."""
        name, timeout = self.names[i], self.rc.restart_timeout_s
        deadline = time.monotonic() + timeout
        ref = None
        while (left := deadline - time.monotonic()) > 0:
            ref = ref or self.workers[i].ping.remote()
            try:
                return ray.get(ref, timeout=min(left, 5.0))
            except ray.exceptions.GetTimeoutError:
                continue
            except ray.exceptions.ActorUnavailableError:  # this ping reached the dying process; ask the next life
                ref = None
                time.sleep(0.2)
            except (ray.exceptions.ActorDiedError, ray.exceptions.ActorUnschedulableError) as dead:
                raise RoleFailed(f"rollout worker {name} died and cannot be restarted: {death_cause(dead)}. Ray restarts "
                                 f"a worker at most rollout.max_restarts={self.rc.max_restarts} times. Check its log and "
                                 f"memory (OOM kills); raise rollout.max_restarts or lower rollout.num_workers") from dead
        raise RoleFailed(f"rollout worker {name} died ({death_cause(cause)}) and Ray did not bring it back within "
                         f"rollout.restart_timeout_s={timeout:g}s, most likely because no node has room for it "
                         f"({self.rc.num_cpus:g} CPUs, {self.rc.num_gpus:g} GPUs). Check `ray status`; add a node or free "
                         f"resources, or raise rollout.restart_timeout_s") from cause

    def remote_from(self, node_id: str) -> int:
        """Workers on other nodes than `node_id` (they pull exported weights through the object store)."""
        return sum(loc.node_id != node_id for loc in self.locations)


class LearnerGroup:
    """N DeepSpeed ranks; the batch is split evenly across them."""

    def __init__(self, cfg: RunConfig, model_path: str, algorithm: Algorithm, run_tag: str, cleanup: ExitStack,
                 placement: Placement | None = None) -> None:
        """`placement`: the run's (shared with the rollout workers in colocated mode); default one of its own."""
        lc = cfg.learner
        self.cfg = cfg
        placement = placement or Placement(cfg, run_tag, cleanup)
        remote = ray.remote(Learner)
        self.ranks = [
            remote.options(name=f"{run_tag}-learner-{i}", **placement.options("learner", i)).remote(
                i, lc.num_learners, model_path, lc, algorithm, cfg.gradient_accumulation, cfg.trainer.seed,
                cfg.rollout.temperature)
            for i in range(lc.num_learners)
        ]
        cleanup.callback(shutdown_actors, self.ranks, None)
        self.locations = locate(self.ranks, [f"learner-{i}" for i in range(lc.num_learners)])
        # The process-group store lives on rank 0's node, at a port free there (ranks may span nodes).
        master_addr, master_port = get(self.ranks[0].rendezvous.remote(), "learner rendezvous", START_TIMEOUT_S)
        logger.info("learner rendezvous at %s:%d (rank 0's node %s)", master_addr, master_port, self.locations[0].node_id[:8])
        self.num_parameters = get([r.setup.remote(master_addr, master_port) for r in self.ranks],
                                  "starting learners (DeepSpeed init)", START_TIMEOUT_S)[0]

    def update(self, batch: TrainBatch, stale: bool = False) -> dict[str, float]:
        """One step's updates; metrics are averaged over ranks, times are the slowest rank's."""
        mini_batches = len(batch) // self.cfg.mini_batch_size
        shards = batch.split(len(self.ranks))  # contiguous: a task's group stays on one rank
        results = get([r.update.remote(s, mini_batches, stale) for r, s in zip(self.ranks, shards)], "learner update")
        merged: dict[str, list[float]] = defaultdict(list)
        for result in results:
            for key, value in result.items():
                merged[key].append(value)
        return {k: (max(v) if k.startswith("time/") else sum(v) / len(v)) for k, v in merged.items()}

    def export_weights(self, version: int, dtype: str) -> WeightPayload:
        """Rank 0 writes weights `version` on its node; on a cluster of several nodes it also shares them through the
        object store, so that rollout workers anywhere (also ones restarted elsewhere) can load them."""
        share = sum(1 for n in ray.nodes() if n.get("Alive")) > 1
        return next(p for p in get([r.export_weights.remote(version, dtype, share) for r in self.ranks], "weight export")
                    if p is not None)

    def save_hf(self, out_dir: str) -> dict[str, float | str]:
        """Save and verify the HF folder (rank 0 writes; every rank joins the ZeRO-3 gather): {"path", "max_abs_diff"}."""
        return next(p for p in get([r.save_hf.remote(out_dir) for r in self.ranks], "saving the final model") if p is not None)

    def save_checkpoint(self, folder: str) -> None:
        """Every rank writes its DeepSpeed state into `folder` (they save collectively: all ranks, one call)."""
        get([r.save_checkpoint.remote(folder) for r in self.ranks], "learner checkpoint save", START_TIMEOUT_S)

    def load_checkpoint(self, folder: str) -> None:
        get([r.load_checkpoint.remote(folder) for r in self.ranks], "learner checkpoint load", START_TIMEOUT_S)

    def call(self, method: str, *args: Any) -> list[Any]:
        """Call a method on every rank (for probes and tests)."""
        return get([getattr(r, method).remote(*args) for r in self.ranks], f"learner.{method}")


class UserGroup:
    """N simulated-user actors (`actors/user.py`), placed apart from the policy; rollout workers get the handles.

    Ray restarts a dead one (`users.max_restarts`); meanwhile each rollout worker's `UserClient` sends the calls of
    its episodes to the others.
    """

    def __init__(self, cfg: RunConfig, model_path: str | None, rule_modules: Sequence[str], run_tag: str,
                 cleanup: ExitStack, placement: Placement | None = None) -> None:
        uc = cfg.users
        placement = placement or Placement(cfg, run_tag, cleanup)
        remote = ray.remote(UserService)
        self.names = [f"{run_tag}-user-{i}" for i in range(uc.num_actors)]
        self.actors = [
            remote.options(name=name, max_restarts=uc.max_restarts, **placement.options("users", i)).remote(
                i, uc, cfg.trainer.seed, model_path, tuple(rule_modules))
            for i, name in enumerate(self.names)
        ]
        cleanup.callback(shutdown_actors, self.actors, None)
        self.backends = get([a.start.remote() for a in self.actors], "starting simulated-user actors", START_TIMEOUT_S)
        self.locations = locate(self.actors, [f"user-{i}" for i in range(uc.num_actors)])
        logger.info("simulated-user actors ready: %s", ", ".join(f"{n} ({b})" for n, b in zip(self.names, self.backends)))

    def stats(self) -> list[dict[str, int]]:
        """Each actor's counters (calls, cache hits, retries, failures, peak in flight)."""
        return get([a.stats.remote() for a in self.actors], "user actor stats", 60)


def make_accountant(cfg: RunConfig, fn_name: str, run_tag: str) -> Any:
    rc = cfg.reward
    return ray.remote(RewardAccountant).options(name=f"{run_tag}-accountant", num_cpus=0.5).remote(
        fn_name, rc.kwargs, rc.timeout_s, rc.num_procs)


def shutdown_actors(actors: list[Any], group: PlacementGroup | None) -> None:
    """Let each actor release its engine processes (briefly), then kill it and free its placement group."""
    refs = []
    for actor in actors:
        try:
            refs.append(actor.shutdown.remote())
        except AttributeError:  # roles without a shutdown method hold no child processes
            pass
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=15)
    for actor in actors:
        ray.kill(actor)
    if group is not None:
        remove_placement_group(group)
