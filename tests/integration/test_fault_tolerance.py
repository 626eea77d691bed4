"""Fault tolerance (issue 4): rollout workers that die mid-rollout come back, re-synced, and replay their episodes;
a dead learner rank stops the run with the command that resumes it; a node that leaves takes its rollout worker
with it, and Ray brings the worker back on the node that is left.

Each test runs the real loop (`rltrain.driver.train`, tiny model, transformers engine) and kills something at a
chosen point through a hook on a group method. Recovery and resume times are printed (`pytest -s`) for
docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rltrain.driver import train
from rltrain.groups import LearnerGroup, RoleFailed, RolloutGroup
from tests.integration.test_training import assert_nothing_left, processes_of, read_jsonl, tiny_config

pytestmark = pytest.mark.ray

FAST = ("rollout.engine=transformers", "rollout.dtype=float32", "env.eval_tasks=0", "trainer.save_final=false",
        "rollout.max_new_tokens=24", "rollout.max_concurrent_episodes=1")
"""One episode at a time per worker and a random model that rarely stops early: a worker's block takes a while,
so a kill lands while it plays."""
EPISODES = 8  # tiny.yaml: prompts_per_step 2 x group_size 4
PER_WORKER = 4  # 2 workers, one task (4 episodes) each


def pid_of(actor: Any) -> int:
    import ray

    return ray.get(actor.__ray_call__.remote(lambda _self: os.getpid()), timeout=60)


def wait_playing(worker: Any) -> None:
    """Return once `worker` is playing the episodes of a rollout."""
    import ray

    deadline = time.monotonic() + 120
    while ray.get(worker.ping.remote(), timeout=60)["rollouts"] == 0:
        assert time.monotonic() < deadline, "the worker never started its rollout"
        time.sleep(0.01)


def kill_while_playing(worker: Any) -> float:
    """SIGKILL `worker`'s process (a crash, as an OOM kill) once it is playing episodes; returns when (perf_counter)."""
    wait_playing(worker)
    os.kill(pid_of(worker), signal.SIGKILL)
    return time.perf_counter()


def hook(monkeypatch: pytest.MonkeyPatch, cls: type, method: str, at_call: int,
         before: Callable[[Any], Any], after: Callable[[Any, Any], None] = lambda _self, _state: None) -> None:
    """Run `before(self)` ahead of the `at_call`-th call of `cls.method` (1-based) and `after(self, what before
    returned)` behind it."""
    original = getattr(cls, method)
    calls = [0]

    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] != at_call:
            return original(self, *args, **kwargs)
        state = before(self)
        result = original(self, *args, **kwargs)
        after(self, state)
        return result

    monkeypatch.setattr(cls, method, wrapped)


def check_episodes(run_dir: Path, steps: int, versions: list[int]) -> None:
    """Every step trained on all its episodes (none lost), each tagged with the weight version it was sampled with."""
    trajectories = read_jsonl(run_dir / "trajectories.jsonl")
    assert Counter(t["step"] for t in trajectories) == dict.fromkeys(range(1, steps + 1), EPISODES)
    assert [t["weight_version"] for t in trajectories] == [v for v in versions for _ in range(EPISODES)]
    assert all(t["failure"] is None for t in trajectories)


def test_a_rollout_worker_killed_mid_rollout_is_restarted_resynced_and_replays_its_episodes(
        tiny_model: Path, tmp_path: Path, ray_tmp: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import ray

    caplog.set_level(logging.WARNING, logger="rltrain.groups")
    cfg = tiny_config(tiny_model, tmp_path, *FAST, "trainer.steps=3", "learner.num_learners=1")
    seen: dict[str, Any] = {}

    def kill(group: RolloutGroup) -> float:  # step 2's episodes are in flight: the group submitted them
        return kill_while_playing(group.workers[1])

    def check(group: RolloutGroup, killed_at: float) -> None:
        seen["kill_to_collected_s"] = time.perf_counter() - killed_at
        seen["ping"] = ray.get(group.workers[1].ping.remote(), timeout=60)

    hook(monkeypatch, RolloutGroup, "collect", 2, kill, check)  # env.eval_tasks=0: collect k is step k's rollout
    train(cfg, ray_temp_dir=ray_tmp)

    metrics = read_jsonl(cfg.trainer.run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert [m["rollout/restarts"] for m in metrics] == [0, 1, 0]
    assert [m["rollout/requeued_episodes"] for m in metrics] == [0, PER_WORKER, 0]
    assert metrics[1]["time/recover_s"] > 0 and metrics[0]["time/recover_s"] == metrics[2]["time/recover_s"] == 0
    assert seen["ping"]["started"] and seen["ping"]["version"] == 1  # re-synced to the weights of step 1
    check_episodes(cfg.trainer.run_dir, 3, versions=[0, 1, 2])
    [line] = [r.getMessage() for r in caplog.records if "died" in r.getMessage()]
    assert line.startswith("tiny-rollout-1 died (")  # Ray's cause: the worker process died, or a call to it broke off
    assert "restarted and re-synced to v1 in" in line and line.endswith(f"re-queued {PER_WORKER} episodes"), line
    print(f"\n{line}\nrollout worker killed mid-rollout: recovered (restart + engine start + re-sync) in "
          f"{metrics[1]['time/recover_s']:.1f}s; kill to step 2's episodes all collected {seen['kill_to_collected_s']:.1f}s "
          f"(step 1 took {metrics[0]['time/step_s']:.1f}s, step 2 {metrics[1]['time/step_s']:.1f}s)")


def test_async_rollout_survives_a_worker_killed_during_the_update(
        tiny_model: Path, tmp_path: Path, ray_tmp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """trainer.async_rollout: step 3's rollout runs during step 2's update. The worker dies there; its episodes are
    replayed before the weight sync, so they still sample with weights v1, like the rest of step 3."""
    import ray

    cfg = tiny_config(tiny_model, tmp_path, *FAST, "trainer.steps=3", "trainer.async_rollout=true",
                      "learner.num_learners=1")
    hook(monkeypatch, LearnerGroup, "update", 2, lambda _learners: kill_while_playing(ray.get_actor("tiny-rollout-1")))
    train(cfg, ray_temp_dir=ray_tmp)

    metrics = read_jsonl(cfg.trainer.run_dir / "metrics.jsonl")
    assert [m["rollout/restarts"] for m in metrics] == [0, 1, 0]
    assert [m["rollout/requeued_episodes"] for m in metrics] == [0, PER_WORKER, 0]
    assert [m["weights/staleness"] for m in metrics] == [0, 1, 1]
    check_episodes(cfg.trainer.run_dir, 3, versions=[0, 0, 1])
    print(f"\nasync rollout, worker killed during the update: recovered in {metrics[1]['time/recover_s']:.1f}s")


def test_a_dead_learner_rank_stops_the_run_and_the_printed_command_resumes_it(
        tiny_model: Path, tmp_path: Path, ray_tmp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(tiny_model, tmp_path, *FAST, "trainer.steps=4", "trainer.checkpoint_every=1")
    run = cfg.trainer.run_dir
    hook(monkeypatch, LearnerGroup, "update", 3, lambda learners: os.kill(pid_of(learners.ranks[1]), signal.SIGKILL))
    before = processes_of(ray_tmp)
    with pytest.raises(RoleFailed) as failed:
        train(cfg, ray_temp_dir=ray_tmp)
    message = str(failed.value)
    assert message.startswith("learner rank 1 (tiny-learner-1): The actor is dead because its worker process has died")
    assert "The run stopped at step 3" in message and f"The last complete checkpoint is {run / 'step_2'};" in message
    command = message.split("continue from it with: ")[1]
    assert command == shlex.join(["rltrain", "train", str(run / "config.yaml"), "--resume", str(run)])
    assert_nothing_left(before, ray_tmp)
    monkeypatch.undo()
    print(f"\nrltrain: run stopped: {message}")

    # The command as printed, in a new process (its own private Ray temp dir: RAY_TMPDIR).
    ray_dir = tempfile.mkdtemp(prefix="rlt-", dir="/tmp")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_dir}
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "rltrain.cli", *shlex.split(command)[1:]], env=env,
                              capture_output=True, text=True, timeout=900, start_new_session=True)
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    resume_wall_s = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = read_jsonl(run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]  # steps 1-2 from the first run, 3-4 resumed
    assert "time/resume_s" in metrics[2] and metrics[-1]["weights/version"] == 4
    check_episodes(run, 4, versions=[0, 1, 2, 3])
    print(f"\nlearner rank killed at step 3: resumed from step_2 with the printed command; resume (load + re-sync) "
          f"{metrics[2]['time/resume_s']:.1f}s, whole resumed process (Ray start to exit, 2 steps) {resume_wall_s:.0f}s")


def test_a_removed_node_takes_its_rollout_worker_and_ray_restarts_it_on_the_other(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two Ray nodes on this machine: the head (driver, accountant, learner, one rollout worker, and room for one
    more) and a second node that holds the other rollout worker (placement.rollout.strategy=SPREAD). The second
    node is removed while its worker plays step 2's episodes."""
    import ray
    from ray.cluster_utils import Cluster

    ray_dir = tempfile.mkdtemp(prefix="rlt-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_dir)  # Cluster writes its address file into <Ray's temp root>/ray/
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "temp_dir": os.path.join(ray_dir, "ray"),
                                                            "include_dashboard": False})
    try:
        second = cluster.add_node(num_cpus=1)
        cfg = tiny_config(tiny_model, tmp_path, *FAST, "trainer.steps=3", "learner.num_learners=1",
                          "placement.rollout.strategy=SPREAD", f"ray.address={cluster.address}")
        seen: dict[str, Any] = {}

        def remove_node(group: RolloutGroup) -> float:
            head = ray.get_runtime_context().get_node_id()  # the driver runs on the head
            away = [i for i, loc in enumerate(group.locations) if loc.node_id != head]
            assert len(away) == 1, [str(loc) for loc in group.locations]
            seen["victim"] = group.workers[away[0]]
            wait_playing(seen["victim"])
            t0 = time.perf_counter()
            cluster.remove_node(second, allow_graceful=False)  # as a crash: every process of the node killed
            return t0

        def check(_group: RolloutGroup, removed_at: float) -> None:
            seen["removed_to_collected_s"] = time.perf_counter() - removed_at
            seen["ping"] = ray.get(seen["victim"].ping.remote(), timeout=60)
            seen["head"] = ray.get_runtime_context().get_node_id()

        hook(monkeypatch, RolloutGroup, "collect", 2, remove_node, check)
        train(cfg)
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)

    metrics = read_jsonl(cfg.trainer.run_dir / "metrics.jsonl")
    assert [m["rollout/restarts"] for m in metrics] == [0, 1, 0]
    assert metrics[1]["rollout/requeued_episodes"] == PER_WORKER
    assert seen["ping"]["node"] == seen["head"] and seen["ping"]["version"] == 1
    check_episodes(cfg.trainer.run_dir, 3, versions=[0, 1, 2])
    print(f"\nnode removed mid-rollout: worker back on the head node and re-synced in {metrics[1]['time/recover_s']:.1f}s "
          f"after the driver noticed; removal to step 2's episodes all collected {seen['removed_to_collected_s']:.1f}s")


def test_a_worker_restarted_while_idle_is_resynced_before_it_plays_and_one_out_of_restarts_stops(
        tiny_model: Path, ray_tmp: str) -> None:
    """The group on its own: a worker dies between rollouts and Ray restarts it. The restarted worker refuses work
    until it is re-synced (`NotStarted`), so the next rollout brings it back first and its episodes carry the last
    version sent. A second death is one more than rollout.max_restarts=1 allows: the rollout stops, naming it."""
    from contextlib import ExitStack

    import ray

    from rltrain.config import load_config
    from rltrain.envs import make_env

    ray.init(address="local", num_cpus=4, include_dashboard=False, _temp_dir=ray_tmp, log_to_driver=False)
    try:
        cfg = load_config(None, [f"model.name={tiny_model}", "rollout.engine=transformers", "rollout.num_workers=2",
                                 "rollout.max_new_tokens=4", "rollout.max_restarts=1"])
        tasks = make_env("arithmetic", {}).tasks("train", 2, seed=0)
        with ExitStack() as stack:
            rollouts = RolloutGroup(cfg, str(tiny_model), "idle", stack)
            rollouts.load_weights(str(tiny_model), 5)  # a folder every worker reads, called version 5
            victim = rollouts.workers[1]
            ray.kill(victim, no_restart=False)
            deadline = time.monotonic() + 120
            state = {"started": True}
            while state["started"]:  # the old life may still answer, or fail, a ping; Ray holds it for the new one
                assert time.monotonic() < deadline, "the worker was not restarted"
                try:
                    state = ray.get(victim.ping.remote(), timeout=60)
                except ray.exceptions.ActorUnavailableError:
                    time.sleep(0.2)
            assert state["version"] == 0  # back, but with nothing loaded

            trajectories = rollouts.rollout(tasks, n=2)
            assert len(trajectories) == 4 and {t.weight_version for t in trajectories} == {5}
            recovery = rollouts.take_recovery_metrics()
            assert recovery["rollout/restarts"] == 1 and recovery["rollout/requeued_episodes"] == 2
            assert recovery["time/recover_s"] > 0 and rollouts.take_recovery_metrics()["rollout/restarts"] == 0

            ray.kill(victim, no_restart=False)
            with pytest.raises(RoleFailed, match=r"rollout worker idle-rollout-1 died and cannot be restarted: The actor "
                                                 r"is dead because .*killed by `ray.kill`.*rollout.max_restarts=1 times"):
                rollouts.rollout(tasks, n=2)
    finally:
        ray.shutdown()
