"""Rollout workers: one inference engine each, many episodes in flight, versioned weight updates."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import ray

from actors.common import Role, init_role, torch_threads
from actors.user import UserClient
from rltrain.agent import ChatRenderer, run_episode, tool_settings
from rltrain.config.env import EnvConfig
from rltrain.config.rollout import RolloutConfig
from rltrain.config.users import UsersConfig
from rltrain.engines import make_engine
from rltrain.engines.base import Sampling
from rltrain.envs import make_env
from rltrain.envs.base import STEP_RUNNER, resolve_max_turns
from rltrain.telemetry import ActorMetrics
from rltrain.types import Task, Trajectory
from rltrain.watchdog import in_phase
from rltrain.weights import WeightInbox, WeightPayload

logger = logging.getLogger(__name__)


class NotStarted(RuntimeError):
    """This life of the worker has not started its engine: Ray restarted it (`rollout.max_restarts`), which re-runs
    `__init__` only, and the driver has not re-synced it yet. The driver treats it like the worker's death."""


class RolloutWorker(Role):
    """Plays episodes of one environment with one engine."""

    def __init__(self, rank: int, model_path: str, cfg: RolloutConfig, env_cfg: EnvConfig, max_model_len: int,
                 users: tuple[Sequence[Any], UsersConfig, Sequence[str]] | None = None) -> None:
        """`users`: (user actor handles, users config, actor names) for gyms with a simulated user; None otherwise."""
        self.beat = init_role(f"rollout-{rank}", cfg.threads)
        self.metrics = ActorMetrics(f"rollout-{rank}")
        self.rank, self.cfg, self.env_cfg, self.max_model_len = rank, cfg, env_cfg, max_model_len
        self.model_path = model_path
        env = make_env(env_cfg.name, env_cfg.kwargs)  # bad env kwargs fail here, before the engine loads
        self.max_turns = resolve_max_turns(env, env_cfg.max_turns)
        self.tools = tool_settings(env_cfg, env, users[1] if users is not None else None)
        # Sync env steps run on this worker's own bounded threads; a hung one cannot drain a shared pool.
        STEP_RUNNER.configure(env_cfg.step_threads, max_hung=max(16, 4 * cfg.max_concurrent_episodes))
        self.engine = make_engine(cfg.engine, model_path, dtype=cfg.dtype, max_model_len=max_model_len,
                                  gpu_memory_utilization=cfg.gpu_memory_utilization, kv_cache_gib=cfg.kv_cache_gib,
                                  seed=cfg.seed + rank, threads=cfg.threads)
        self._limit = asyncio.Semaphore(cfg.max_concurrent_episodes)
        self.user = UserClient(*users) if users is not None else None
        self.inbox = WeightInbox(ray.get_runtime_context().get_node_id())
        self._started = False
        self._rollouts = 0  # rollout calls running now, for `ping`

    @in_phase("start")
    async def start(self) -> str:
        """Load the engine; returns its class name."""
        from transformers import AutoTokenizer

        t0 = time.perf_counter()
        self.renderer = ChatRenderer(AutoTokenizer.from_pretrained(self.model_path))
        await self.engine.start()
        logger.info("engine %s ready in %.1fs", type(self.engine).__name__, time.perf_counter() - t0)
        self._started = True
        return type(self.engine).__name__

    async def ping(self) -> dict[str, Any]:
        """A cheap probe (answered between generation batches): whether this life of the actor has started its
        engine, the weight version it holds, rollout calls running, and its node."""
        return {"started": self._started, "version": self.engine.version, "rollouts": self._rollouts,
                "node": ray.get_runtime_context().get_node_id()}

    def _check_started(self) -> None:
        if not self._started:
            raise NotStarted(f"rollout-{self.rank} was restarted by Ray and has not been re-synced yet")

    @in_phase("rollout")
    async def rollout(self, tasks: list[Task], group_ids: list[int], n: int, greedy: bool = False,
                      stop: tuple[str, ...] = (), lengths: tuple[int, int] | None = None) -> list[Trajectory]:
        """`n` episodes of each task, all in flight at once (bounded by max_concurrent_episodes).

        `lengths`: (min, max) new tokens per turn instead of (0, rollout.max_new_tokens), for fixed-length benchmarks.
        """
        self._check_started()
        low, high = lengths or (0, self.cfg.max_new_tokens)
        sampling = Sampling(
            max_new_tokens=high,
            min_new_tokens=low,
            temperature=0.0 if greedy else self.cfg.temperature,
            top_p=1.0 if greedy else self.cfg.top_p,
            stop_token_ids=(self.renderer.end_of_turn_id,),
            stop_strings=tuple(stop),
        )

        async def one(task: Task, group_id: int, sample: int) -> Trajectory:
            async with self.metrics.episode(self._limit):  # the slot, counted as queued/in flight
                played = await run_episode(self.engine, make_env(self.env_cfg.name, self.env_cfg.kwargs), self.renderer, task,
                                           env_name=self.env_cfg.name, group_id=group_id, sampling=sampling,
                                           max_turns=self.max_turns, max_model_len=self.max_model_len,
                                           echo_reward=self.env_cfg.echo_reward,
                                           plain_text_as_action=self.env_cfg.plain_text_as_action, user=self.user,
                                           sample=sample, tools=self.tools)
            self.beat.progress()
            return played

        self._rollouts += 1
        try:
            trajectories = list(await asyncio.gather(*(one(t, g, s) for t, g in zip(tasks, group_ids) for s in range(n))))
        finally:
            self._rollouts -= 1
        self.metrics.episodes_done(trajectories)
        return trajectories

    @in_phase("sync")
    async def load_weights(self, payload: WeightPayload | str, version: int) -> float:
        """Load weights `version`: from learner rank 0's folder on this node, else pulled from the object store
        (`rltrain.weights`); a string is a folder readable here. Returns the seconds it took."""
        self._check_started()
        t0 = time.perf_counter()
        async with self.inbox.receive(payload) as folder:
            await self.engine.load_weights(folder, version)
        return time.perf_counter() - t0

    async def shutdown(self) -> None:
        await self.engine.shutdown()

    def threads(self) -> int:
        return torch_threads()

    async def engine_threads(self) -> int:
        """torch threads where the model runs (vLLM: its worker process, which inherits OMP_NUM_THREADS)."""
        return await self.engine.threads()

    def version(self) -> int:
        return self.engine.version
