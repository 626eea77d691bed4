"""The reward accountant: turns finished trajectories into scored ones.

Verifiers run in a process pool with a timeout, so a slow or crashing verifier cannot stall the run. A
verifier that raises or times out marks the trajectory failed with the reason; it is never scored 0.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
from typing import Any

from actors.common import Role, init_role, torch_threads
from rewards import REWARD_FNS
from rewards.base import RewardInput
from rltrain.engines.shm import ShmLedger
from rltrain.types import Trajectory
from rltrain.watchdog import in_phase

logger = logging.getLogger(__name__)


def _score_one(fn_name: str, sample: RewardInput, kwargs: dict[str, Any]) -> dict[str, float]:
    return REWARD_FNS.get(fn_name)(sample, **kwargs)


def _warm_up() -> None:
    """Nothing: a spawned process has imported this module (and with it every reward function) to run it."""


class RewardAccountant(Role):
    """Scores trajectories with a registered reward function."""

    def __init__(self, fn_name: str, kwargs: dict[str, Any], timeout_s: float, num_procs: int) -> None:
        self.beat = init_role("accountant", threads=1)
        REWARD_FNS.get(fn_name)  # fail now, with the list of names, rather than in the pool
        self.fn_name, self.kwargs, self.timeout_s, self.num_procs = fn_name, dict(kwargs), timeout_s, num_procs
        self._shm = ShmLedger()  # the spawn pool's semaphores, unlinked at shutdown even when its processes are killed
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        # spawn: forking a process that holds Ray's threads can deadlock the child
        self._shm.before_start()
        pool = cf.ProcessPoolExecutor(self.num_procs, mp_context=mp.get_context("spawn"))
        # Start every process now, so that reward.timeout_s measures verifiers, not interpreter start-up.
        cf.wait([pool.submit(_warm_up) for _ in range(self.num_procs)])
        self._shm.after_start()
        return pool

    @in_phase("reward")
    def score(self, trajectories: list[Trajectory]) -> list[Trajectory]:
        """Set `reward` and `reward_terms` on each trajectory, or `failure` when scoring broke."""
        todo = [t for t in trajectories if not t.failed]
        while todo:
            todo = self._score_round(todo)
        failed = sum(t.failed for t in trajectories)
        if failed:
            logger.warning("%d of %d trajectories failed to score or roll out", failed, len(trajectories))
        return trajectories

    def _score_round(self, todo: list[Trajectory]) -> list[Trajectory]:
        """Score `todo`; after a time-out the pool is replaced and the trajectories not yet scored are returned."""
        futures = {}
        for traj in todo:
            sample = RewardInput(messages=traj.messages, task=traj.task_data, turn_rewards=traj.turn_rewards)
            futures[self._pool.submit(_score_one, self.fn_name, sample, self.kwargs)] = traj
        for future, traj in futures.items():
            try:
                future.result(timeout=self.timeout_s)
            except cf.TimeoutError:
                traj.failure = f"reward function {self.fn_name!r} timed out after {self.timeout_s}s (reward.timeout_s)"
                for other_future, other in futures.items():  # keep what finished before the pool goes
                    if other.reward is None and other.failure is None and other_future.done() and other_future.exception() is None:
                        self._take(other_future, other)
                self._restart_pool()  # a hung verifier never returns; only killing its process frees the slot
                return [t for t in futures.values() if t.reward is None and t.failure is None]
            except Exception as err:  # the verifier's own bug: report it on the trajectory, keep the run going
                traj.failure = f"reward function {self.fn_name!r} raised {type(err).__name__}: {err}"
            else:
                self._take(future, traj)
            self.beat.progress()  # one trajectory
        return []

    @staticmethod
    def _take(future: cf.Future, traj: Trajectory) -> None:
        traj.reward_terms = {k: float(v) for k, v in future.result().items()}
        traj.reward = sum(traj.reward_terms.values())

    def shutdown(self) -> None:
        self._restart_pool(replace=False)
        self._shm.release()

    def _restart_pool(self, replace: bool = True) -> None:
        for proc in list(getattr(self._pool, "_processes", {}).values()):
            proc.kill()  # a hung verifier never returns; only killing frees its slot
        self._pool.shutdown(wait=False, cancel_futures=True)
        if replace:
            self._pool = self._new_pool()

    def threads(self) -> int:
        return torch_threads()
