"""After a weight sync, the engines' log-probs equal the learner's (ARCHITECTURE.md complaint 2)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray
import torch

from rltrain.algorithms import build_algorithm
from rltrain.config import load_config
from rltrain.envs import make_env
from rltrain.groups import LearnerGroup, RolloutGroup, make_accountant, shutdown_actors

pytestmark = pytest.mark.ray


def sequences(trajectories):
    width = max(len(t.prompt_ids) + len(t.response_ids) for t in trajectories)
    ids = torch.zeros(len(trajectories), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, t in enumerate(trajectories):
        row = t.prompt_ids + t.response_ids
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def engine_vs_learner(rollouts: RolloutGroup, learners: LearnerGroup, tasks) -> float:
    """Max |engine logprob - learner logprob| over the response tokens of fresh samples."""
    trajectories = rollouts.rollout(tasks, n=2)
    ids, mask = sequences(trajectories)
    learner = learners.call("sequence_logprobs", ids, mask)[0]
    worst = 0.0
    for i, t in enumerate(trajectories):
        p = len(t.prompt_ids)
        engine = torch.tensor(t.rollout_logprobs)
        worst = max(worst, float((learner[i, p : p + len(engine)] - engine).abs().max()))
    return worst


@pytest.mark.parametrize(("engine", "lora_rank", "temperature", "threads"),
                         [("vllm", 0, 0.7, 2), ("transformers", 0, 1.0, 1), ("transformers", 8, 1.0, 1)])
def test_engine_logprobs_match_learner_after_sync(engine: str, lora_rank: int, temperature: float, threads: int,
                                                  tiny_model: Path, ray_cluster) -> None:
    """Full weights to vLLM and transformers engines; LoRA adapters are merged into the weights sent.

    The tiny model ties its LM head to the embeddings, as SmolLM2 does: a reload that skipped the head (vLLM's
    CPU backend keeps a prepacked copy of it) fails here. With temperature 0.7 the learner must score the
    tempered distribution that vLLM sampled from.
    """
    cfg = load_config(Path(__file__).parents[2] / "launch/configs/tiny.yaml", [
        f"model.name={tiny_model}", f"rollout.engine={engine}", "rollout.dtype=float32", "rollout.num_workers=1",
        f"rollout.temperature={temperature}", f"rollout.threads={threads}",
        "rollout.max_new_tokens=12", "learner.num_learners=1", "learner.lr=0.05", f"learner.lora.r={lora_rank}",
        f"trainer.name=sync-{engine}-{lora_rank}"])
    algorithm = build_algorithm(cfg.algorithm)
    with ExitStack() as cleanup:
        rollouts = RolloutGroup(cfg, str(tiny_model), cfg.trainer.name, cleanup)
        learners = LearnerGroup(cfg, str(tiny_model), algorithm, cfg.trainer.name, cleanup)
        accountant = make_accountant(cfg, "arithmetic", cfg.trainer.name)
        cleanup.callback(shutdown_actors, [accountant], None)
        assert ray.get(rollouts.workers[0].engine_threads.remote()) == threads  # vLLM's own worker process too
        tasks = make_env("arithmetic", {}).tasks("train", 2, seed=0)
        assert engine_vs_learner(rollouts, learners, tasks) < 2e-3  # same initial weights

        trajectories = ray.get(accountant.score.remote(rollouts.rollout(tasks, n=4)))
        for i, t in enumerate(trajectories):  # a non-zero, varied advantage so that the weights really move
            t.reward = float(i % 3)
        batch, _ = algorithm.make_batch(trajectories, SimpleNamespace(pad_token_id=0, eos_token_id=0))
        learners.update(batch)
        stale = engine_vs_learner(rollouts, learners, tasks)
        assert stale > 1e-2, "the update should have moved the learner away from the engine's weights"

        rollouts.load_weights(learners.export_weights(1, cfg.rollout.dtype), version=1)
        assert engine_vs_learner(rollouts, learners, tasks) < 2e-3


def test_every_role_sets_its_threads(tiny_model: Path, ray_cluster) -> None:
    """Ray leaves actors with 1 torch thread (PLATFORM.md); each role sets its own from the config."""
    import ray

    cfg = load_config(Path(__file__).parents[2] / "launch/configs/tiny.yaml", [
        f"model.name={tiny_model}", "rollout.engine=transformers", "rollout.num_workers=1", "rollout.threads=2",
        "learner.num_learners=1", "learner.threads=3", "trainer.name=threads"])
    with ExitStack() as cleanup:
        rollouts = RolloutGroup(cfg, str(tiny_model), "threads", cleanup)
        learners = LearnerGroup(cfg, str(tiny_model), build_algorithm(cfg.algorithm), "threads", cleanup)
        accountant = make_accountant(cfg, "arithmetic", "threads")
        cleanup.callback(shutdown_actors, [accountant], None)
        assert ray.get(rollouts.workers[0].threads.remote()) == 2
        assert learners.call("threads") == [3]
        assert ray.get(accountant.threads.remote()) == 1
