"""The user service under failure: a user actor killed mid-episode, and every user actor gone.

Two rollout-like Ray tasks each play TelepathyGym episodes through the real agent loop (`run_episode`) against
two simulated-user actors. The policy is a scripted engine that always asks a question, so every turn calls the
user: the real rollout workers need a policy that writes valid tool calls, which a random tiny model does not.
Every episode must either complete (its calls failed over to the live actor) or be marked failed: never scored 0.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from actors.common import remote_role
from actors.user import UserClient, UserService
from rltrain.config.users import UsersConfig
from rltrain.engines.base import RolloutEngine, Sampling
from rltrain.types import Generation, Trajectory
from rltrain.users import UserReply, UserRequest

pytestmark = pytest.mark.ray
TURNS = 4
RULES = ("rltrain.envs.telepathy",)  # the user actors import the gym's rules responders


class SlowUserService(UserService):
    """A user actor whose calls take 0.2 s, so that calls are in flight when the test kills it."""

    async def respond(self, request: UserRequest) -> UserReply:
        self.counts["in_flight"] += 1
        try:
            await asyncio.sleep(0.2)
        finally:
            self.counts["in_flight"] -= 1
        return await super().respond(request)


class AskingEngine(RolloutEngine):
    """A policy that asks the same yes/no question every turn."""

    def __init__(self, tokenizer: Any) -> None:
        self.ids = tokenizer("[action] Is it an animal?", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    async def start(self) -> None:
        pass

    async def generate(self, prompt_ids: list[int], sampling: Sampling) -> Generation:
        await asyncio.sleep(0.01)
        return Generation(list(self.ids), [0.0] * len(self.ids), "stop")

    async def load_weights(self, folder: str, version: int) -> None:
        pass


def play(actors: list[Any], cfg: UsersConfig, model_path: str, worker: int, episodes: int) -> list[Trajectory]:
    """One rollout-like worker: `episodes` concurrent TelepathyGym episodes with a UserClient over `actors`."""
    from transformers import AutoTokenizer

    from rltrain.agent import ChatRenderer, run_episode
    from rltrain.engines.base import Sampling
    from rltrain.envs.telepathy import TelepathyGym

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    renderer, engine = ChatRenderer(tokenizer), AskingEngine(tokenizer)
    tasks = TelepathyGym().tasks("train", 4, seed=0)[2 * worker : 2 * worker + 2]  # distinct episodes per worker

    async def main() -> list[Trajectory]:
        client = UserClient(actors, cfg)
        sampling = Sampling(max_new_tokens=32, stop_token_ids=(tokenizer.eos_token_id,))
        return list(await asyncio.gather(*(
            run_episode(engine, TelepathyGym(max_steps=TURNS), renderer, task, env_name="telepathy", group_id=g,
                        sampling=sampling, max_turns=TURNS, max_model_len=1024, user=client, sample=s)
            for g, task in enumerate(tasks) for s in range(episodes // len(tasks)))))

    return asyncio.run(main())


def start_users(n: int, cfg: UsersConfig) -> list[Any]:
    import ray

    remote = remote_role(SlowUserService).options(num_cpus=0, max_restarts=cfg.max_restarts)
    actors = [remote.remote(i, cfg, 0, None, RULES) for i in range(n)]
    ray.get([a.start.remote() for a in actors])
    return actors


def test_a_user_actor_killed_mid_episode(ray_cluster: None, tiny_model: Path) -> None:
    import ray

    cfg = UsersConfig(num_actors=2, timeout_s=5, retries=3, backoff_s=0.1, max_restarts=2)
    actors = start_users(2, cfg)
    victim = actors[0]
    try:
        play_remote = ray.remote(play).options(num_cpus=0)
        refs = [play_remote.remote(actors, cfg, str(tiny_model), w, 8) for w in range(2)]
        deadline = time.monotonic() + 120
        while ray.get(victim.stats.remote())["in_flight"] == 0:  # kill it while it is answering
            assert time.monotonic() < deadline, "no user call ever reached user actor 0"
            time.sleep(0.02)
        ray.kill(victim, no_restart=False)  # Ray restarts it (max_restarts); its in-flight calls fail
        trajectories = [t for part in ray.get(refs, timeout=300) for t in part]
        assert len(trajectories) == 16
        for traj in trajectories:
            assert traj.reward is None  # nothing here is scored; the check is on failure vs completion
            if traj.failure is None:  # completed: every turn got its user reply, up to the gym's max_steps
                assert len(traj.user_calls) == len(traj.turn_rewards) == TURNS, traj.user_calls
            else:
                assert "UserSimError" in traj.failure, traj.failure
        records = [c for t in trajectories for c in t.user_calls]
        assert any(c["attempts"] > 1 for c in records), "no call failed over, so the kill was not mid-episode"
        assert sum(t.failure is None for t in trajectories) == 16  # two actors and 3 retries: all fail over
        assert isinstance(ray.get(victim.stats.remote(), timeout=60), dict)  # restarted, and answering again
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)


def test_every_user_actor_dead_marks_episodes_failed_never_zero(ray_cluster: None, tiny_model: Path) -> None:
    import ray

    from actors.accountant import RewardAccountant

    cfg = UsersConfig(num_actors=2, timeout_s=2, retries=2, backoff_s=0.05, max_restarts=0)
    actors = start_users(2, cfg)
    for actor in actors:
        ray.kill(actor, no_restart=True)
    trajectories = play(actors, cfg, str(tiny_model), worker=0, episodes=4)
    assert all(t.failure and "failed on every try" in t.failure and "users.num_actors" in t.failure for t in trajectories)
    scored = RewardAccountant("turn_rewards", {}, timeout_s=20, num_procs=1).score(trajectories)
    assert all(t.reward is None and t.failed for t in scored)  # a dead user service is never reward 0


def test_groups_start_user_actors_and_hand_them_to_rollout_workers(ray_cluster: None, tiny_model: Path) -> None:
    """The driver's wiring: UserGroup starts named actors, RolloutGroup's workers build clients, ExitStack stops all."""
    from contextlib import ExitStack

    import ray

    from rltrain.config import load_config
    from rltrain.groups import RolloutGroup, UserGroup

    cfg = load_config(None, [f"model.name={tiny_model}", "rollout.engine=transformers", "rollout.num_workers=2",
                             "rollout.num_cpus=0", "rollout.max_new_tokens=4", "users.num_actors=2", "users.num_cpus=0"])
    with ExitStack() as stack:
        users = UserGroup(cfg, None, RULES, "wiring", stack)
        assert users.names == ["wiring-user-0", "wiring-user-1"] and users.backends == ["rules", "rules"]
        assert ray.get_actor("wiring-user-1") is not None
        rollouts = RolloutGroup(cfg, str(tiny_model), "wiring", stack, users)
        from rltrain.envs import make_env

        trajectories = rollouts.rollout(make_env("arithmetic", {}).tasks("train", 2, seed=0), n=2)
        assert len(trajectories) == 4 and all(t.failure is None for t in trajectories)
        assert [s["calls"] for s in users.stats()] == [0, 0]  # arithmetic never asks the user
    with pytest.raises(ValueError):  # the ExitStack stopped the user actors with the rest
        ray.get_actor("wiring-user-0")


def test_real_rollout_workers_fail_over_when_a_user_actor_dies(ray_cluster: None, tiny_model: Path) -> None:
    """The driver's roles for real: 2 rollout workers (transformers engine, tiny model) and 2 rules user actors.
    User actor 0 dies for good between two rollouts; the episodes whose calls stick to it move to actor 1 and
    complete. (`env.plain_text_as_action` sends the random model's text to the user as `[action]`, so every turn
    calls the service.) The mid-episode kill is `test_a_user_actor_killed_mid_episode` above."""
    from contextlib import ExitStack

    import ray

    from rltrain.config import load_config
    from rltrain.envs import make_env
    from rltrain.groups import RolloutGroup, UserGroup

    cfg = load_config(None, [f"model.name={tiny_model}", "rollout.engine=transformers", "rollout.num_workers=2",
                             "rollout.num_cpus=0", "rollout.max_new_tokens=8", "env.name=telepathy", f"env.max_turns={TURNS}",
                             "env.plain_text_as_action=true", "users.num_actors=2", "users.num_cpus=0", "users.timeout_s=5",
                             "users.backoff_s=0.1", "users.max_restarts=0"])
    tasks = make_env("telepathy", {}).tasks("train", 4, seed=0)
    with ExitStack() as stack:
        users = UserGroup(cfg, None, RULES, "kill", stack)
        rollouts = RolloutGroup(cfg, str(tiny_model), "kill", stack, users)
        before = rollouts.rollout(tasks, n=4)
        assert all(t.failure is None and t.user_calls for t in before)
        assert all(s["calls"] > 0 for s in users.stats())  # both actors were serving
        ray.kill(users.actors[0], no_restart=True)
        after = rollouts.rollout(tasks, n=4)
        assert len(after) == 16 and all(t.failure is None and t.reward is None for t in after)
        records = [c for t in after for c in t.user_calls]
        assert any(c["attempts"] > 1 for c in records), "no call was routed to the dead actor first"
        assert ray.get(users.actors[1].stats.remote())["calls"] >= len(records)


def test_recorded_user_turns_replay_into_identical_trajectories(ray_cluster: None, tiny_model: Path, tmp_path: Path) -> None:
    """Same seeds and recorded user turns give the identical trajectory (issue 3). The recording is edited first
    (every "Yes" <-> "No"), so a replay that asked the rules instead of reading the file would not match it."""
    import json

    import ray

    live = UsersConfig(num_actors=1, timeout_s=10)
    actors = start_users(1, live)
    try:
        recorded = play(actors, live, str(tiny_model), worker=0, episodes=4)
    finally:
        ray.kill(actors[0], no_restart=True)
    swap = {'"Yes"': '"No"', '"No"': '"Yes"'}
    for traj in recorded:
        for call in traj.user_calls:
            call["text"] = next((call["text"].replace(a, b) for a, b in swap.items() if a in call["text"]), call["text"])
    path = tmp_path / "trajectories.jsonl"
    path.write_text("".join(json.dumps({"step": 1, **json.loads(t.to_json())}) + "\n" for t in recorded))

    replay = UsersConfig(num_actors=1, timeout_s=10, replay_from=str(path))
    runs = []
    for _ in range(2):
        actors = start_users(1, replay)
        try:
            runs.append(play(actors, replay, str(tiny_model), worker=0, episodes=4))
        finally:
            ray.kill(actors[0], no_restart=True)
    first, second = runs
    fields = ("task_id", "prompt_ids", "response_ids", "loss_mask", "messages", "turn_rewards")
    for a, b, edited in zip(first, second, recorded):
        assert all(getattr(a, f) == getattr(b, f) for f in fields)  # replay is deterministic
        assert [c["text"] for c in a.user_calls] == [c["text"] for c in edited.user_calls]  # and reads the file
        assert {c["backend"] for c in a.user_calls} == {"replay"}
    observations = [m["content"] for t in first for m in t.messages if m["role"] == "tool"]
    originals = [m["content"] for t in recorded for m in t.messages if m["role"] == "tool"]
    assert observations != originals  # the edited answers reached the policy's context
