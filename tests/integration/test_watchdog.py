"""No silent hangs (issue 13, part 3), and a dead accountant re-scores what it held (part 4).

One set of roles (tiny model, transformers engine, one rollout worker, two learner ranks), small bounds; then, one
after another, each role is made to stop answering. Every stall must end within its bound, name the phase and the
role, and leave the stacks of every role in `<run>/stall/`. The roles stay broken after their stall, so the order
is: learner (step 3's update), accountant (step 4's scoring), rollout engine (step 5's rollout).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from rltrain.cluster import start_ray
from rltrain.driver import Trainer
from rltrain.errors import CallTimedOut, RunStalled
from rltrain.preflight import prepare
from rltrain.watchdog import stacks_now
from tests.integration.test_training import read_jsonl, tiny_config

pytestmark = pytest.mark.ray

BOUNDS = ("env.step_timeout_s=3", "watchdog.rollout_s=8", "reward.timeout_s=2", "watchdog.reward_s=8",
          "learner.collective_timeout_s=6", "watchdog.update_s=30")
"""Small bounds that still nest: env step 3 s < rollout 8 s; one verifier call 2 s < reward 8 s; one collective
6 s < update 30 s."""
STACK_SLACK_S = 90.0
"""Time the stall report may add to a bound: py-spy attaches to every role's process and its subprocesses."""


def expect_stall(trainer: Trainer, step: int, phase: str, role: str, bound: float, doing: str) -> tuple[RunStalled, str]:
    """Run `step`, which must stall in `phase` on `role` within `bound`, with `role`'s heartbeat answering that it is
    alive and `doing` that phase; returns the error and the role's stacks."""
    stall_dir = trainer.run_dir / "stall"
    shutil.rmtree(stall_dir, ignore_errors=True)
    t0 = time.monotonic()
    with pytest.raises(CallTimedOut) as timed_out:
        trainer.step(step)
    stalled = trainer.watchdog.stalled(timed_out.value)  # what train() does with it
    elapsed = time.monotonic() - t0
    assert stalled.phase == phase and role in stalled.role.split(", "), str(stalled)
    assert stalled.seconds <= bound + 5 and elapsed < bound + STACK_SLACK_S, (stalled.seconds, elapsed)
    assert str(stalled) == (f"run stalled in {phase} on {stalled.role}: no progress for {stalled.seconds:.0f}s "
                            f"(stacks in {stall_dir}/)")
    written = {p.stem for p in stall_dir.glob("*.txt")}
    assert written == {"accountant", "rollout-0", "learner-0", "learner-1"}, written
    beats = {r["role"]: r["heartbeat"] for r in json.loads((stall_dir / "roles.json").read_text())["roles"]}
    assert set(beats) == written and all(isinstance(b, dict) for b in beats.values()), beats  # every role answers
    assert beats[role]["phase"] == doing and beats[role]["since_progress_s"] >= stalled.seconds - 1, beats
    stacks = (stall_dir / f"{role}.txt").read_text()
    assert "Thread" in stacks, stacks[:2000]  # py-spy's (or faulthandler's) per-thread stacks
    print(f"\n{stalled} after {elapsed:.1f}s (bound {bound:g}s)")
    return stalled, stacks


def test_each_role_that_stops_answering_is_named_with_its_stacks(
        tiny_model: Path, tmp_path: Path, ray_tmp: str, caplog: pytest.LogCaptureFixture) -> None:
    import ray

    caplog.set_level(logging.WARNING, logger="rltrain.groups")
    cfg = tiny_config(tiny_model, tmp_path, "rollout.engine=transformers", "rollout.dtype=float32", "rollout.num_workers=1",
                      "env.eval_tasks=0", "trainer.save_final=false", "trainer.steps=10", *BOUNDS)
    prep = prepare(cfg)
    cfg.trainer.run_dir.mkdir(parents=True)
    start_ray(prep.requirements, ray_tmp)
    trainer = Trainer(prep, cfg.trainer.run_dir)
    actors: list[Any] = [trainer.rewards.actor, *trainer.rollouts.workers, *trainer.learners.ranks]
    try:
        trainer.step(1)

        # `rltrain stacks RUN`: on demand, from the roles.json the driver keeps
        dumped = stacks_now(cfg.trainer.run_dir)
        assert {p.stem for p in dumped.glob("*.txt")} >= {"accountant", "rollout-0", "learner-0", "learner-1", "driver"}
        assert "Thread" in (dumped / "rollout-0.txt").read_text()

        # part 4: the accountant dies while it holds step 2's trajectories; Ray restarts it and they are scored again
        def die_while_scoring(accountant: Any) -> None:
            accountant._score_round = lambda _todo: os._exit(1)

        ray.get(trainer.rewards.actor.__ray_call__.remote(die_while_scoring), timeout=60)
        metrics = trainer.step(2)
        assert trainer.rewards.restarts == 1
        assert metrics["reward/failed"] == 0.0 and "reward/mean" in metrics  # every trajectory scored, none lost
        assert any("reward accountant died" in r.getMessage() and "scoring its 8 trajectories again" in r.getMessage()
                   for r in caplog.records)
        step2 = [t for t in read_jsonl(cfg.trainer.run_dir / "trajectories.jsonl") if t["step"] == 2]
        assert len(step2) == 8 and all(t["reward"] is not None and t["failure"] is None for t in step2)

        # a learner rank that blocks: rank 0 waits in the update's all-reduce until its collective timeout
        def blocked_rank(_learner: Any) -> None:
            time.sleep(3600)

        trainer.learners.ranks[1].__ray_call__.remote(blocked_rank)
        # rank 0's own collective timeout ends it (not the update phase's 30 s), and only the blocked rank is named:
        # DeepSpeed's groups from new_group() must get learner.collective_timeout_s too, not torch's 30-minute default
        # its heartbeat says "idle": the update call waits behind the blocked one and never started
        stalled, stacks = expect_stall(trainer, 3, "update", "learner-1", cfg.watchdog.update_s, "idle")
        assert stalled.role == "learner-1" and stalled.seconds < cfg.watchdog.update_s, str(stalled)
        assert "blocked_rank" in stacks  # py-spy shows where it is stuck

        # a verifier that never returns, and an accountant whose own per-call timeout does not cut it off
        def stuck_verifier(accountant: Any) -> None:
            import concurrent.futures as cf

            class NeverDone:
                def submit(self, *_args: Any, **_kwargs: Any) -> cf.Future:
                    return cf.Future()

                def shutdown(self, **_kwargs: Any) -> None:
                    pass

            accountant._pool, accountant.timeout_s = NeverDone(), 1e9

        ray.get(trainer.rewards.actor.__ray_call__.remote(stuck_verifier), timeout=60)
        _, stacks = expect_stall(trainer, 4, "reward", "accountant", cfg.watchdog.reward_s, "reward")
        assert "score" in stacks

        # a rollout engine that stops answering (the worker's event loop still runs: its ping answers)
        def silent_engine(worker: Any) -> None:
            import asyncio

            async def generate(*_args: Any, **_kwargs: Any) -> Any:
                await asyncio.Event().wait()

            worker.engine.generate = generate

        ray.get(trainer.rollouts.workers[0].__ray_call__.remote(silent_engine), timeout=60)
        expect_stall(trainer, 5, "rollout", "rollout-0", cfg.watchdog.rollout_s, "rollout")
    finally:
        for actor in actors:  # hung on purpose: their shutdown would only wait out its own timeout
            ray.kill(actor)
        trainer.close()
        ray.shutdown()
