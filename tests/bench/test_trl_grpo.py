"""bench.trl_grpo: rltrain's quickstart settings map onto TRL's GRPOConfig one by one, and the reward adapter
scores like rltrain's accountant. Only the last test needs TRL (the bench extra); it skips without it."""

from __future__ import annotations

import json

import pytest

from bench.trl_grpo import StepLog, grpo_config_kwargs, load_quickstart, make_reward_func


@pytest.fixture(scope="module")
def cfg():
    return load_quickstart()


def test_mapping_matches_quickstart(cfg) -> None:
    kw = grpo_config_kwargs(cfg, "fp32", steps=3)
    grpo, learner, rollout, trainer = cfg.algorithm.grpo, cfg.learner, cfg.rollout, cfg.trainer
    expected = {
        "num_generations": trainer.group_size,  # 8
        "generation_batch_size": trainer.prompts_per_step * trainer.group_size,  # 16
        "per_device_train_batch_size": learner.micro_batch_size,  # 8
        "gradient_accumulation_steps": cfg.gradient_accumulation,  # 2
        "max_steps": 3,
        "seed": trainer.seed,
        "max_completion_length": rollout.max_new_tokens,  # 32
        "temperature": rollout.temperature,
        "top_p": rollout.top_p,
        "learning_rate": learner.lr,  # 5e-6
        "weight_decay": learner.weight_decay,
        "adam_beta1": learner.betas[0],
        "adam_beta2": learner.betas[1],
        "max_grad_norm": learner.grad_clip,
        "gradient_checkpointing": learner.gradient_checkpointing,
        "beta": grpo.kl_coef,  # 0.0
        "epsilon": grpo.clip_low,  # 0.2
        "epsilon_high": grpo.clip_high,  # 0.28
        "delta": grpo.dual_clip_c,  # 3.0
        "num_iterations": grpo.epochs,
        "entropy_coef": grpo.entropy_coef,
    }
    assert {k: kw[k] for k in expected} == expected
    assert kw["generation_batch_size"] == kw["per_device_train_batch_size"] * kw["gradient_accumulation_steps"]
    assert kw["loss_type"] == "bnpo" and grpo.loss_agg == "token-mean"
    assert kw["scale_rewards"] == "group" and grpo.norm_adv_by_std
    assert kw["lr_scheduler_type"] == "constant" and learner.warmup_steps == 0
    assert kw["vllm_importance_sampling_correction"] is False
    assert kw["bf16"] is False and "use_vllm" not in kw
    assert kw["model_init_kwargs"] == {"dtype": learner.dtype}


def test_configurations(cfg) -> None:
    assert grpo_config_kwargs(cfg, "bf16")["bf16"] is True
    colocate = grpo_config_kwargs(cfg, "vllm_colocate")
    assert colocate["use_vllm"] and colocate["vllm_mode"] == "colocate" and colocate["bf16"] is False
    assert colocate["vllm_max_model_length"] == cfg.model.max_model_len
    assert colocate["vllm_gpu_memory_utilization"] == cfg.rollout.gpu_memory_utilization
    with pytest.raises(ValueError, match="unknown configuration"):
        grpo_config_kwargs(cfg, "fp16")


def test_unmappable_settings_raise() -> None:
    with pytest.raises(ValueError, match="loss_agg"):
        grpo_config_kwargs(load_quickstart(["algorithm.grpo.loss_agg=seq-mean-token-sum"]))
    assert grpo_config_kwargs(load_quickstart(["algorithm.grpo.loss_agg=seq-mean-token-mean"]))["loss_type"] == "grpo"
    assert grpo_config_kwargs(load_quickstart(["algorithm.grpo.norm_adv_by_std=false"]))["scale_rewards"] == "none"


def test_reward_adapter_sums_terms_and_logs() -> None:
    from rewards import REWARD_FNS

    log, metrics = StepLog(), {}
    reward = make_reward_func(REWARD_FNS.get("arithmetic"), {"correct_reward": 1.0, "format_reward": 0.2}, log, "arithmetic")
    prompt = [{"role": "user", "content": "What is 3+4? Answer with just the number."}]
    answers = ["7", "3 + 4 = 7", "8"]
    scores = reward(prompts=[prompt] * 3, completions=[[{"role": "assistant", "content": a}] for a in answers],
                    completion_ids=[[1, 2], [1, 2, 3], [1]], task=[json.dumps({"a": 3, "b": 4, "answer": 7})] * 3,
                    log_metric=metrics.__setitem__, trainer_state=None)
    assert scores == pytest.approx([1.2, 1.0, 0.2])
    assert reward.__name__ == "arithmetic"
    assert log.rewards == [{"samples": 3, "gen_tokens": 6, "max_response_len": 3, "reward": pytest.approx(0.8),
                            "correct_rate": pytest.approx(2 / 3)}]
    assert metrics["correct_rate"] == pytest.approx(2 / 3)


def test_trl_accepts_the_mapping(cfg, tmp_path) -> None:
    trl = pytest.importorskip("trl")
    kw = grpo_config_kwargs(cfg, "fp32", steps=2)
    args = trl.GRPOConfig(output_dir=str(tmp_path), report_to="none",
                          **{k: v for k, v in kw.items() if k != "model_init_kwargs"})
    # TRL derives these: one generation of the whole step's batch per optimizer step, split into 2 micro-batches
    assert args.steps_per_generation == 2 and args.generation_batch_size == 16
    for key, value in kw.items():
        if key not in ("model_init_kwargs", "lr_scheduler_type", "optim"):  # enums in TrainingArguments
            assert getattr(args, key) == value, key
    assert args.lr_scheduler_type == "constant" and args.optim == "adamw_torch"
