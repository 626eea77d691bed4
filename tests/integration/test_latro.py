"""LaTRO end to end on the tiny model, and its answer-likelihood term doing its job (spec §3)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch

from rltrain.algorithms import build_algorithm
from rltrain.config import load_config
from rltrain.driver import train
from rltrain.groups import LearnerGroup
from rltrain.ops import masked_sum
from rltrain.types import Trajectory

pytestmark = pytest.mark.ray
LATRO = Path(__file__).parents[2] / "launch" / "configs" / "latro_arith.yaml"


def test_two_steps_two_ranks(tiny_model: Path, tmp_path: Path, ray_tmp: str) -> None:
    cfg = load_config(LATRO, [f"model.name={tiny_model}", f"trainer.output_dir={tmp_path}", "trainer.steps=2",
                              "env.eval_tasks=4", "rollout.max_new_tokens=16", "rollout.num_workers=1",
                              "rollout.engine=transformers", "rollout.dtype=float32",  # vLLM: test_training.py
                              "learner.num_learners=2", "learner.micro_batch_size=2",
                              "ray.dashboard=false", "trainer.save_final=false"])
    summary = train(cfg, ray_temp_dir=ray_tmp)
    metrics = [json.loads(x) for x in (cfg.trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2
    for key in ("latro/self_reward", "latro/kl", "latro/adv_mean", "latro/adv_std", "latro/finished_frac",
                "latro/rationale_len", "learner/pg_loss", "learner/answer_nll"):
        assert key in metrics[0], key
    assert abs(metrics[0]["latro/adv_mean"]) < 1e-5  # RLOO advantages are centred within each group
    assert metrics[0]["learner/logprob_mismatch"] < 0.05  # rationale tokens: the engine's vs the learner's
    assert "eval_after/correct_rate" in summary


def test_gold_answer_likelihood_rises_on_a_fixed_batch(tiny_model: Path, ray_cluster) -> None:
    from transformers import AutoTokenizer

    cfg = load_config(LATRO, [f"model.name={tiny_model}", "learner.lr=1e-3", "learner.micro_batch_size=4",
                              "algorithm.latro.kl_coef=0", "trainer.name=latro-fixed"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    algorithm = build_algorithm(cfg.algorithm)
    prompt = tokenizer.encode("Tom has 3 apples and buys 4. How many?", add_special_tokens=False)
    rationales = ["3 and 4 make 7.", "He has 3, then 4 more.", "Count them all.", "Add the two."]
    trajectories = [Trajectory(task_id=f"q{g}", group_id=g, env="word_problems", prompt_ids=prompt, task_data={"answer": 7},
                               response_ids=tokenizer.encode(r, add_special_tokens=False) + [tokenizer.eos_token_id],
                               loss_mask=[1] * (len(tokenizer.encode(r, add_special_tokens=False)) + 1),
                               rollout_logprobs=[-1.0] * (len(tokenizer.encode(r, add_special_tokens=False)) + 1))
                    for g in (0, 1) for r in rationales]
    batch, _ = algorithm.make_batch(trajectories, tokenizer)
    with ExitStack() as cleanup:
        learners = LearnerGroup(cfg, str(tiny_model), algorithm, "latro-fixed", cleanup)

        def gold_logprob() -> float:
            lp = learners.call("sequence_logprobs", batch.input_ids, batch.attention_mask)[0]
            return float(masked_sum(lp, batch.answer_mask, dim=-1).mean())

        before = gold_logprob()
        for _ in range(5):
            metrics = learners.update(batch)
        after = gold_logprob()
    assert after > before + 1.0, (before, after)
    assert metrics["latro/answer_logprob"] > before  # the learner's own self-reward input saw the rise too
    assert torch.isfinite(torch.tensor(metrics["learner/answer_nll"]))
