"""Actor groups as the driver sees them: where each role runs, and one call per stage fanned out to its actors.

Placement (resources, placement groups, names) is decided here; what a role does lives in `actors/`.
Every remote call is awaited with a timeout and a dead actor is reported by name (`RoleFailed`).
"""

from __future__ import annotations

import logging
import os
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
from actors.common import remote_role
from actors.learner import Learner
from actors.rollout import NotStarted, RolloutWorker
from actors.user import UserService
from rltrain.algorithms.base import Algorithm
from rltrain.config.run import RunConfig
from rltrain.errors import CallTimedOut
from rltrain.errors import RoleFailed as RoleFailed  # re-exported: callers catch it where they call the groups
from rltrain.placement import ACCOUNTANT_CPUS, internal_resource, plan_placement
from rltrain.types import Task, TrainBatch, Trajectory
from rltrain.watchdog import Target
from rltrain.weights import WeightPayload

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 600.0
"""Seconds an actor may take to start where no config gives the bound (`watchdog.start_s` does for a run)."""


def get(refs: Any, what: str, timeout: float | None = None, roles: Sequence[str] = ()) -> Any:
    """`ray.get` that turns actor deaths and time-outs into `RoleFailed` naming the stage. `roles`: the role name of
    each ref (a list of refs), so that a time-out (`CallTimedOut`) names the roles that did not answer."""
    try:
        return ray.get(refs, timeout=timeout)
    except ray.exceptions.GetTimeoutError as err:
        raise _timed_out(what, timeout, _pending(refs, roles)) from err
    except ray.exceptions.ActorDiedError as err:
        raise RoleFailed(f"{what} failed: an actor died ({_first_line(err)}). Check memory (OOM kills) and the actor's log") from err
    except ray.exceptions.RayActorError as err:
        raise RoleFailed(f"{what} failed: {_first_line(err)}") from err
    except ray.exceptions.RayTaskError as err:
        raise RoleFailed(f"{what} raised {type(err.cause).__name__}: {err.cause}") from err


def _pending(refs: Any, roles: Sequence[str]) -> list[str]:
    """The roles (aligned with `refs`) whose result is not ready yet."""
    if not roles:
        return []
    refs = refs if isinstance(refs, list) else [refs]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
    done = set(ready)
    return [role for ref, role in zip(refs, roles) if ref not in done]


def _timed_out(what: str, timeout: float | None, pending: Sequence[str] = ()) -> CallTimedOut:
    return CallTimedOut(what, timeout, list(pending))


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
    pid: int = 0
    """The actor's process id on its node (for stack dumps: `rltrain.watchdog`)."""

    def __str__(self) -> str:
        gpus = f", GPU {','.join(self.gpu_ids)}" if self.gpu_ids else ""
        return f"{self.name} on node {self.node_id[:8]} ({self.ip}{gpus})"


def _where(_actor: Any) -> tuple[str, str, tuple[str, ...], int]:
    return (ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address(),
            tuple(str(g) for g in ray.get_gpu_ids()), os.getpid())


def locate(actors: Sequence[Any], names: Sequence[str], timeout: float = START_TIMEOUT_S) -> list[Location]:
    """Node id, IP, GPU ids and pid of each actor (asked of the actor itself, so no dashboard is needed)."""
    if not actors:
        return []
    found = get([a.__ray_call__.remote(_where) for a in actors], f"starting {names[0].rsplit('-', 1)[0]} actors", timeout,
                names)
    return [Location(name, *where) for name, where in zip(names, found)]


HEARTBEAT_TIMEOUT_S = 5.0
"""Seconds the watchdog waits for the roles' heartbeats (answered on a thread of their own: instantly when alive)."""


def heartbeats(actors: dict[str, Any], timeout: float = HEARTBEAT_TIMEOUT_S) -> dict[str, dict[str, Any] | None]:
    """role -> what its actor's heartbeat says (`rltrain.watchdog.Heartbeat.report`), None for one that did not
    answer within `timeout` (dead, restarting, or its process stuck without releasing the GIL)."""
    refs = {role: actor.heartbeat.remote() for role, actor in actors.items()}
    ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
    beats: dict[str, dict[str, Any] | None] = {}
    for role, ref in refs.items():
        try:
            beats[role] = ray.get(ref, timeout=0)
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
            beats[role] = None
    return beats


def targets(locations: Sequence[Location]) -> list[Target]:
    """What the watchdog dumps the stacks of: each located actor's process."""
    return [Target(loc.name, loc.node_id, loc.pid) for loc in locations]


def wait_all(refs: list[Any], what: str, timeout: float | None, roles: Sequence[str]) -> list[Any]:
    """Every result of `refs` (calls to the ranks of one group, in order), with the bound `timeout` restarting whenever
    one comes back. A rank that fails because a collective timed out (`learner.collective_timeout_s`: its peer is
    stuck) becomes `CallTimedOut` naming the ranks that had not answered: they are the stuck ones."""
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = list(refs)
    t0 = time.monotonic()
    while waiting:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, waiting = ray.wait(waiting, num_returns=1, timeout=left)
        if not ready:
            raise _timed_out(what, timeout, _pending(refs, roles))
        role = roles[refs.index(ready[0])]
        try:
            ray.get(ready[0])
        except ray.exceptions.RayTaskError as err:
            if _collective_timeout(err):
                raise CallTimedOut(f"{what} ({role}: a collective timed out)", time.monotonic() - t0,
                                   _pending(refs, roles) or [role]) from err
            get(ready[0], f"{what} on {role}")  # raises RoleFailed naming the stage and the rank
        except ray.exceptions.RayError:
            get(ready[0], f"{what} on {role}")
        if timeout is not None:
            deadline = time.monotonic() + timeout
    return get(refs, what, 0 if refs else None)


def _collective_timeout(err: BaseException) -> bool:
    """Whether a rank's error is a collective that timed out (gloo: "Timed out waiting ...", NCCL: "Watchdog caught
    collective operation timeout")."""
    text = str(err).lower()
    return "timed out" in text or "collective operation timeout" in text


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
                 users: UserGroup | None = None, placement: Placement | None = None, wait: bool = True) -> None:
        """`placement`: the run's (shared with the learners in colocated mode); default one of its own. `wait=False`
        returns once the workers are created: the caller starts other roles meanwhile, then calls `wait_started`."""
        rc = self.rc = cfg.rollout
        self.bounds = cfg.watchdog
        placement = placement or Placement(cfg, run_tag, cleanup)
        remote = remote_role(RolloutWorker)
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
        self.roles = [f"rollout-{i}" for i in range(rc.num_workers)]
        self._starting = [w.start.remote() for w in self.workers]
        if wait:
            self.wait_started()

    def wait_started(self) -> None:
        """Wait until every worker's engine is loaded (bounded by `watchdog.start_s`); names a worker that failed."""
        self.engines = get(self._starting, "starting rollout workers", self.bounds.start_s, self.roles)
        self.locations = locate(self.workers, self.roles, self.bounds.start_s)
        logger.info("rollout workers ready: %s", ", ".join(f"rollout-{i} ({e})" for i, e in enumerate(self.engines)))

    def rollout(self, tasks: Sequence[Task], n: int, greedy: bool = False, stop: tuple[str, ...] = (),
                timeout: float | None = None) -> list[Trajectory]:
        """`timeout`: the most seconds without any worker finishing its block; default `watchdog.rollout_s`."""
        # `n` episodes of each task, the episodes of one task contiguous; group ids are the tasks' positions
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
        """The trajectories of a submitted rollout, in task order; a lost worker's block is played again. `timeout`:
        the most seconds without any worker finishing its block; default `watchdog.rollout_s`."""
        bound = self.bounds.rollout_s if timeout is None else timeout
        return [traj for part in self._await(submitted.calls, "rollout", bound) for traj in part]

    def load_weights(self, payload: WeightPayload | str, version: int) -> float:
        """Every worker loads `version` (a `WeightPayload`, or a folder every worker can read); returns the slowest
        worker's seconds. The arguments are kept as they are and replayed to a worker that Ray restarts later."""
        self._weights = (payload, version)
        calls = [_Call(i, partial(w.load_weights.remote, payload, version), resend=False) for i, w in enumerate(self.workers)]
        return max(self._await(_sent(calls), f"weight sync v{version}", self.bounds.sync_s))

    def take_recovery_metrics(self) -> dict[str, float]:
        """Worker restarts, re-queued episodes and recovery seconds since the last call, as step metrics."""
        r, self.recovery = self.recovery, Recovery()
        return {"rollout/restarts": float(r.restarts), "rollout/requeued_episodes": float(r.requeued), "time/recover_s": r.seconds}

    def _await(self, calls: list[_Call], what: str, timeout: float | None) -> list[Any]:
        """Each call's result, in order, taken as they finish, so that a lost worker is recovered while the others
        still run; its call is then sent again (or, `resend=False`, takes the recovery's seconds as its result).
        `timeout` bounds the time without progress: it restarts whenever a call comes back."""
        deadline = None if timeout is None else time.monotonic() + timeout
        results: list[Any] = [None] * len(calls)
        waiting = {call.ref: k for k, call in enumerate(calls)}
        while waiting:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = ray.wait(list(waiting), num_returns=1, timeout=left)
            if not ready:
                raise _timed_out(what, timeout, [self.roles[calls[k].worker] for k in waiting.values()])
            if timeout is not None:
                deadline = time.monotonic() + timeout
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
                    get(self.workers[i].start.remote(), f"restarting {name} (engine start)", self.bounds.start_s,
                        [self.roles[i]])
                if self._weights is not None:
                    get(self.workers[i].load_weights.remote(*self._weights), f"re-syncing {name} to v{version}",
                        self.bounds.sync_s, [self.roles[i]])
                break
            except RoleFailed as failed:
                if not isinstance(failed.__cause__, LOST):
                    raise
                cause = failed.__cause__  # died again while coming back; Ray's max_restarts ends this loop
        self.locations[i] = locate([self.workers[i]], [self.locations[i].name], self.bounds.start_s)[0]  # maybe another node
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
        self.cfg, self.bounds = cfg, cfg.watchdog
        placement = placement or Placement(cfg, run_tag, cleanup)
        remote = remote_role(Learner)
        self.ranks = [
            remote.options(name=f"{run_tag}-learner-{i}", **placement.options("learner", i)).remote(
                rank=i, world_size=lc.num_learners, model_path=model_path, cfg=lc, algorithm=algorithm,
                gradient_accumulation=cfg.gradient_accumulation, seed=cfg.trainer.seed,
                temperature=cfg.rollout.temperature)
            for i in range(lc.num_learners)
        ]
        cleanup.callback(shutdown_actors, self.ranks, None)
        self.roles = [f"learner-{i}" for i in range(lc.num_learners)]
        self.locations = locate(self.ranks, self.roles, self.bounds.start_s)
        # The process-group store lives on rank 0's node, at a port free there (ranks may span nodes).
        master_addr, master_port = get(self.ranks[0].rendezvous.remote(), "learner rendezvous", self.bounds.start_s,
                                       self.roles[:1])
        logger.info("learner rendezvous at %s:%d (rank 0's node %s)", master_addr, master_port, self.locations[0].node_id[:8])
        self.num_parameters = wait_all([r.setup.remote(master_addr, master_port) for r in self.ranks],
                                       "starting learners (DeepSpeed init)", self.bounds.start_s, self.roles)[0]

    def update(self, batch: TrainBatch, stale: bool = False) -> dict[str, float]:
        """One step's updates; metrics are averaged over ranks, times are the slowest rank's."""
        mini_batches = len(batch) // self.cfg.mini_batch_size
        shards = batch.split(len(self.ranks))  # contiguous: a task's group stays on one rank
        results = wait_all([r.update.remote(s, mini_batches, stale) for r, s in zip(self.ranks, shards)], "learner update",
                           self.bounds.update_s, self.roles)
        merged: dict[str, list[float]] = defaultdict(list)
        for result in results:
            for key, value in result.items():
                merged[key].append(value)
        return {k: (max(v) if k.startswith("time/") else sum(v) / len(v)) for k, v in merged.items()}

    def export_weights(self, version: int, dtype: str) -> WeightPayload:
        """Rank 0 writes weights `version` on its node; on a cluster of several nodes it also shares them through the
        object store, so that rollout workers anywhere (also ones restarted elsewhere) can load them."""
        share = sum(1 for n in ray.nodes() if n.get("Alive")) > 1
        return next(p for p in wait_all([r.export_weights.remote(version, dtype, share) for r in self.ranks],
                                         "weight export", self.bounds.sync_s, self.roles) if p is not None)

    def save_hf(self, out_dir: str) -> dict[str, float | str]:
        """Save and verify the HF folder (rank 0 writes; every rank joins the ZeRO-3 gather): {"path", "max_abs_diff"}."""
        return next(p for p in wait_all([r.save_hf.remote(out_dir) for r in self.ranks], "saving the final model",
                                         self.bounds.checkpoint_s, self.roles) if p is not None)

    def save_checkpoint(self, folder: str) -> None:
        """Every rank writes its DeepSpeed state into `folder` (they save collectively: all ranks, one call)."""
        wait_all([r.save_checkpoint.remote(folder) for r in self.ranks], "learner checkpoint save", self.bounds.checkpoint_s,
                 self.roles)

    def load_checkpoint(self, folder: str) -> None:
        wait_all([r.load_checkpoint.remote(folder) for r in self.ranks], "learner checkpoint load", self.bounds.checkpoint_s,
                 self.roles)

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
        remote = remote_role(UserService)
        self.names = [f"{run_tag}-user-{i}" for i in range(uc.num_actors)]
        self.actors = [
            remote.options(name=name, max_restarts=uc.max_restarts, **placement.options("users", i)).remote(
                i, uc, cfg.trainer.seed, model_path, tuple(rule_modules))
            for i, name in enumerate(self.names)
        ]
        cleanup.callback(shutdown_actors, self.actors, None)
        self.roles = [f"user-{i}" for i in range(uc.num_actors)]
        self.backends = get([a.start.remote() for a in self.actors], "starting simulated-user actors", cfg.watchdog.start_s,
                            self.roles)
        self.locations = locate(self.actors, self.roles, cfg.watchdog.start_s)
        logger.info("simulated-user actors ready: %s", ", ".join(f"{n} ({b})" for n, b in zip(self.names, self.backends)))

    def stats(self) -> list[dict[str, int]]:
        """Each actor's counters (calls, cache hits, retries, failures, peak in flight)."""
        return get([a.stats.remote() for a in self.actors], "user actor stats", 60)


def make_accountant(cfg: RunConfig, fn_name: str, run_tag: str) -> Any:
    """The reward accountant actor; Ray restarts it when it dies (`reward.max_restarts`)."""
    rc = cfg.reward
    return remote_role(RewardAccountant).options(name=f"{run_tag}-accountant", num_cpus=ACCOUNTANT_CPUS,
                                                 max_restarts=rc.max_restarts).remote(
        fn_name, rc.kwargs, rc.timeout_s, rc.num_procs)


class RewardGroup:
    """The reward accountant as the driver sees it. When it dies while scoring, Ray restarts it (its verifier pool
    and all: it keeps no state between calls) and the group sends it the same trajectories again, so the episodes
    it held are scored, not lost; after `reward.max_restarts` deaths the run stops naming it."""

    ROLE = "accountant"

    def __init__(self, cfg: RunConfig, fn_name: str, run_tag: str, cleanup: ExitStack) -> None:
        self.cfg = cfg
        self.actor = make_accountant(cfg, fn_name, run_tag)
        cleanup.callback(shutdown_actors, [self.actor], None)
        # not waited for here: the other roles start while the accountant's process comes up
        self._started = self.actor.__ray_call__.remote(_where)
        self._location: Location | None = None
        self.restarts = 0

    def wait_started(self) -> Location:
        """Wait until the accountant runs (bounded by `watchdog.start_s`); names it if it failed to start."""
        if self._location is None:
            where = get([self._started], "starting accountant actors", self.cfg.watchdog.start_s, [self.ROLE])[0]
            self._location = Location(self.ROLE, *where)
        return self._location

    @property
    def location(self) -> Location:
        """Where the accountant runs."""
        return self.wait_started()

    @location.setter
    def location(self, value: Location) -> None:
        self._location = value

    def score(self, trajectories: list[Trajectory]) -> list[Trajectory]:
        """Score `trajectories`; bounded by `watchdog.reward_s`, re-sent to the restarted accountant after a death."""
        while True:
            try:
                return get(self.actor.score.remote(trajectories), "reward accountant", self.cfg.watchdog.reward_s,
                           [self.ROLE])
            except RoleFailed as failed:
                cause = failed.__cause__
                if not isinstance(cause, ray.exceptions.RayActorError):
                    raise
                self.restarts += 1
                if self.restarts > self.cfg.reward.max_restarts:
                    raise RoleFailed(f"the reward accountant died {self.restarts} times ({death_cause(cause)}); Ray restarts "
                                     f"it at most reward.max_restarts={self.cfg.reward.max_restarts} times. Check its log "
                                     f"and memory (a verifier that leaks or crashes the process), or raise "
                                     f"reward.max_restarts") from failed
                logger.warning("reward accountant died (%s); Ray restarts it; scoring its %d trajectories again",
                               death_cause(cause), len(trajectories))
                self.location = self._back(cause)

    def _back(self, cause: BaseException) -> Location:
        """The restarted accountant's location, once Ray runs it again (calls to it wait for the restart; one that
        reaches the dying process is asked again)."""
        deadline = time.monotonic() + self.cfg.watchdog.start_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                return Location(self.ROLE, *ray.get(self.actor.__ray_call__.remote(_where), timeout=min(left, 5.0)))
            except ray.exceptions.GetTimeoutError:
                continue
            except ray.exceptions.ActorUnavailableError:
                time.sleep(0.2)
            except ray.exceptions.RayActorError as dead:
                raise RoleFailed(f"the reward accountant died ({death_cause(cause)}) and cannot be restarted: "
                                 f"{death_cause(dead)}; check its log and memory") from dead
        raise CallTimedOut(f"restarting the reward accountant after it died ({death_cause(cause)})",
                           self.cfg.watchdog.start_s, [self.ROLE])


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
