"""Actor groups as the driver sees them: where each role runs, and one call per stage fanned out to its actors.

Placement (resources, placement groups, names) is decided here; what a role does lives in `actors/`.
Every remote call is awaited with a timeout and a dead actor is reported by name (`RoleFailed`).
"""

from __future__ import annotations

import logging
import socket
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors.accountant import RewardAccountant
from actors.learner import Learner
from actors.rollout import RolloutWorker
from actors.user import UserService
from rltrain.algorithms.base import Algorithm
from rltrain.config.run import RunConfig
from rltrain.types import Task, TrainBatch, Trajectory

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
        raise RoleFailed(f"{what} did not finish within {timeout:.0f}s; check the actor logs in the Ray dashboard") from err
    except ray.exceptions.ActorDiedError as err:
        raise RoleFailed(f"{what} failed: an actor died ({_first_line(err)}). Check memory (OOM kills) and the actor's log") from err
    except ray.exceptions.RayActorError as err:
        raise RoleFailed(f"{what} failed: {_first_line(err)}") from err
    except ray.exceptions.RayTaskError as err:
        raise RoleFailed(f"{what} raised {type(err.cause).__name__}: {err.cause}") from err


def _first_line(err: BaseException) -> str:
    return next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reserve(bundles: list[dict[str, float]], name: str) -> PlacementGroup | None:
    """A placement group when GPUs are requested (gang scheduling); plain scheduling otherwise."""
    if not any(b.get("GPU") for b in bundles):
        return None
    group = placement_group(bundles, strategy="PACK", name=name)
    if not group.wait(timeout_seconds=120):
        remove_placement_group(group)
        raise RoleFailed(f"could not reserve {bundles} for {name} within 120s: the cluster lacks these resources. "
                         f"Lower num_gpus in the config or add nodes")
    return group


def _options(name: str, num_cpus: float, num_gpus: float, group: PlacementGroup | None, index: int) -> dict[str, Any]:
    options: dict[str, Any] = {"name": name, "num_cpus": num_cpus, "num_gpus": num_gpus}
    if group is not None:
        options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)
    return options


class RolloutGroup:
    """N rollout workers; tasks are spread over them in contiguous blocks."""

    def __init__(self, cfg: RunConfig, model_path: str, run_tag: str, cleanup: ExitStack,
                 users: UserGroup | None = None) -> None:
        rc = cfg.rollout
        self.group = _reserve([{"CPU": rc.num_cpus, "GPU": rc.num_gpus}] * rc.num_workers, f"{run_tag}-rollout")
        remote = ray.remote(RolloutWorker)
        user_args = (users.actors, cfg.users, users.names) if users is not None else None
        self.workers = [
            remote.options(**_options(f"{run_tag}-rollout-{i}", rc.num_cpus, rc.num_gpus, self.group, i)).remote(
                i, model_path, rc, cfg.env, cfg.model.max_model_len, user_args)
            for i in range(rc.num_workers)
        ]
        cleanup.callback(shutdown_actors, self.workers, self.group)
        self.engines = get([w.start.remote() for w in self.workers], "starting rollout workers", START_TIMEOUT_S)
        logger.info("rollout workers ready: %s", ", ".join(f"rollout-{i} ({e})" for i, e in enumerate(self.engines)))

    def rollout(self, tasks: Sequence[Task], n: int, greedy: bool = False, stop: tuple[str, ...] = (),
                timeout: float | None = None) -> list[Trajectory]:
        """`n` episodes of each task, the episodes of one task contiguous; group ids are the tasks' positions."""
        return self.collect(self.submit(tasks, n, greedy, stop), timeout)

    def submit(self, tasks: Sequence[Task], n: int, greedy: bool = False, stop: tuple[str, ...] = (),
               lengths: tuple[int, int] | None = None) -> list[Any]:
        """Start a rollout without waiting (the asynchronous trainer overlaps it with the update); see `collect`."""
        per = -(-len(tasks) // len(self.workers))  # contiguous blocks keep the result in task order
        blocks = [list(range(len(tasks)))[i * per : (i + 1) * per] for i in range(len(self.workers))]
        return [w.rollout.remote([tasks[j] for j in block], block, n, greedy, stop, lengths)
                for w, block in zip(self.workers, blocks) if block]

    def collect(self, refs: list[Any], timeout: float | None = None) -> list[Trajectory]:
        """The trajectories of a submitted rollout, in task order."""
        return [traj for part in get(refs, "rollout", timeout) for traj in part]

    def load_weights(self, folder: str, version: int) -> float:
        """Every worker loads `version`; returns the slowest worker's seconds."""
        return max(get([w.load_weights.remote(folder, version) for w in self.workers], f"weight sync v{version}", START_TIMEOUT_S))

class LearnerGroup:
    """N DeepSpeed ranks; the batch is split evenly across them."""

    def __init__(self, cfg: RunConfig, model_path: str, algorithm: Algorithm, run_tag: str, cleanup: ExitStack) -> None:
        lc = cfg.learner
        self.cfg = cfg
        self.group = _reserve([{"CPU": lc.num_cpus, "GPU": lc.num_gpus}] * lc.num_learners, f"{run_tag}-learner")
        port = _free_port()
        remote = ray.remote(Learner)
        self.ranks = [
            remote.options(**_options(f"{run_tag}-learner-{i}", lc.num_cpus, lc.num_gpus, self.group, i)).remote(
                i, lc.num_learners, port, model_path, lc, algorithm, cfg.gradient_accumulation, cfg.trainer.seed,
                cfg.rollout.temperature)
            for i in range(lc.num_learners)
        ]
        cleanup.callback(shutdown_actors, self.ranks, self.group)
        self.num_parameters = get([r.setup.remote() for r in self.ranks], "starting learners (DeepSpeed init)", START_TIMEOUT_S)[0]

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

    def export_weights(self, folder: str, dtype: str) -> float:
        return next(s for s in get([r.export_weights.remote(folder, dtype) for r in self.ranks], "weight export") if s is not None)

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
                 cleanup: ExitStack) -> None:
        uc = cfg.users
        self.group = _reserve([{"CPU": uc.num_cpus, "GPU": uc.num_gpus}] * uc.num_actors, f"{run_tag}-users")
        remote = ray.remote(UserService)
        self.names = [f"{run_tag}-user-{i}" for i in range(uc.num_actors)]
        self.actors = [
            remote.options(**_options(name, uc.num_cpus, uc.num_gpus, self.group, i), max_restarts=uc.max_restarts).remote(
                i, uc, cfg.trainer.seed, model_path, tuple(rule_modules))
            for i, name in enumerate(self.names)
        ]
        cleanup.callback(shutdown_actors, self.actors, self.group)
        self.backends = get([a.start.remote() for a in self.actors], "starting simulated-user actors", START_TIMEOUT_S)
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
