"""`rltrain sft CONFIG`: supervised fine-tuning (the cold start before RL) on the same learner group as RL.

The loop is small: data -> samples -> for each optimizer step, a batch -> `LearnerGroup.update` with the `sft`
algorithm (masked NLL, rltrain/algorithms/sft.py) -> metrics, validation loss, checkpoints. The learner ranks,
DeepSpeed (full or LoRA, ZeRO, precision), checkpoints and resume, telemetry and the verified HF export are the
RL run's own code (rltrain.groups, rltrain.checkpoint, rltrain.telemetry). The output `runs/<name>/final` is what an
RL config starts from: `model.name=runs/<name>/final` (docs/sft.md).

Data order is a pure function of (trainer.seed, epoch), so a resumed run sees exactly the batches the
uninterrupted one would have: step N of the plan is the same batch either way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import random
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rltrain.config.sft import SFTConfig, SFTDataset, SFTRun, load_sft_config
from rltrain.data.formats import to_unified
from rltrain.data.io import read_rows
from rltrain.data.sft import SampleBuilder, SFTSample
from rltrain.ops.schedule import lr_factor, warmup_steps

logger = logging.getLogger("rltrain.sft")

EXAMPLES = """\
examples:
  rltrain sft launch/configs/sft_function.yaml
      Cold start on FunctionGym demonstrations (UserRL's recipe), then:
  rltrain train launch/configs/userrl_function.yaml model.name=runs/sft_function/final
  rltrain sft launch/configs/sft_function.yaml sft.epochs=1 learner.lora.r=16 trainer.name=sft_lora
"""


@dataclasses.dataclass
class SFTData:
    """Tokenized training sets (one list per `sft.datasets` entry) and the validation samples."""

    train: list[list[SFTSample]]
    validation: list[SFTSample]
    dropped: dict[str, int]


def _rows(ds: SFTDataset) -> list[dict[str, Any]]:
    path = Path(ds.path)
    if not path.is_file():
        raise FileNotFoundError(f"sft.datasets path {ds.path!r} does not exist; make it with `rltrain data convert` or "
                                f"scripts/make_cold_start_data.py")
    return to_unified(read_rows(path), ds.format)


def load_data(sft: SFTConfig, tokenizer: Any, seed: int) -> SFTData:
    """Read, split and tokenize every set (the validation split is taken per set, seeded, before tokenizing)."""
    builder = SampleBuilder(tokenizer, sft.max_length)
    train, validation = [], []
    for k, ds in enumerate(sft.datasets):
        rows = _rows(ds)
        held = []
        if not sft.validation and sft.val_ratio > 0:
            order = list(range(len(rows)))
            random.Random(f"sft-val-{seed}-{k}").shuffle(order)
            cut = set(order[: max(1, round(sft.val_ratio * len(rows)))])
            held = [r for i, r in enumerate(rows) if i in cut]
            rows = [r for i, r in enumerate(rows) if i not in cut]
        train.append([s for r in rows for s in builder.build(r, sft.per_turn, ds.path)])
        validation += [s for r in held for s in builder.build(r, sft.per_turn, ds.path)]
    for ds in sft.validation:
        validation += [s for r in _rows(ds) for s in builder.build(r, sft.per_turn, ds.path)]
    if not any(train):
        raise ValueError(f"sft.datasets gave no trainable sample (dropped: {dict(builder.stats.dropped)}); check the "
                         f"files hold assistant turns and that sft.max_length={sft.max_length} fits them")
    return SFTData(train, validation, dict(builder.stats.dropped))


def epoch_order(data: SFTData, sft: SFTConfig, seed: int, epoch: int) -> list[SFTSample]:
    """The samples of one epoch in training order: each set repeated by its weight (the fraction a seeded subset),
    all shuffled together. Deterministic in (seed, epoch)."""
    rng = random.Random(f"sft-epoch-{seed}-{epoch}")
    picked: list[SFTSample] = []
    for ds, samples in zip(sft.datasets, data.train):
        whole, frac = divmod(ds.weight, 1.0)
        picked += samples * int(whole)
        picked += rng.sample(samples, round(frac * len(samples)))
    rng.shuffle(picked)
    return picked


def steps_per_epoch(data: SFTData, sft: SFTConfig, seed: int) -> int:
    return math.ceil(len(epoch_order(data, sft, seed, 0)) / sft.batch_size)


def _validation_loss(learners: Any, samples: list[SFTSample], pad_id: int, chunk: int) -> float:
    """Token-mean NLL of the validation targets under the current weights (no update)."""

    from rltrain.algorithms.sft import samples_to_batch

    total, count = 0.0, 0
    for i in range(0, len(samples), chunk):
        batch = samples_to_batch(samples[i:i + chunk], pad_id)
        logprobs = learners.call("sequence_logprobs", batch.input_ids, batch.attention_mask)[0]  # (B, T), every rank alike
        total -= float((logprobs * batch.loss_mask).sum())
        count += int(batch.loss_mask.sum())
    return total / max(1, count) if count else float("nan")


def _with_schedule(run: SFTRun, total: int) -> Any:
    """The RunConfig with the step count, warmup and decay of this SFT run: one optimizer step per trainer step, so
    the learner's schedule spans `total` optimizer steps (learner.lr_schedule, learner.total_steps)."""
    cfg, sft = run.run, run.sft
    learner = dataclasses.replace(cfg.learner, warmup_steps=warmup_steps(total, sft.warmup_ratio),
                                  lr_schedule=sft.lr_schedule, total_steps=total, min_lr_ratio=sft.min_lr_ratio)
    trainer = dataclasses.replace(cfg.trainer, steps=total)
    return dataclasses.replace(cfg, learner=learner, trainer=trainer)


RESUME_SFT_KEYS = ("datasets", "validation", "val_ratio", "epochs", "batch_size", "per_turn", "max_length", "packing",
                   "lr_schedule", "warmup_ratio", "min_lr_ratio")
"""`sft` keys that fix the data plan or the schedule: a resumed run must keep them (`sft.max_steps` may change)."""


def _check_same_plan(saved: dict[str, Any], current: dict[str, Any]) -> None:
    from rltrain.errors import ConfigError

    diffs = [f"sft.{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in RESUME_SFT_KEYS
             if k in saved and json.dumps(saved[k]) != json.dumps(current.get(k))]
    if diffs:
        raise ConfigError("cannot resume: the data plan or schedule differs from the checkpoint's (" + "; ".join(diffs)
                          + "); set them back, or start a new run without trainer.resume")


def sft(run: SFTRun, ray_temp_dir: str | None = None) -> dict[str, Any]:
    """Run a whole SFT job; returns the summary also written to `<run>/summary.json`."""
    import ray
    import yaml

    from rltrain import checkpoint
    from rltrain.algorithms.sft import SFT, SFTLossConfig, packed_batch, samples_to_batch
    from rltrain.batching import fill_to
    from rltrain.cluster import start_ray
    from rltrain.config import to_dict
    from rltrain.errors import ConfigError
    from rltrain.export import write_model_card
    from rltrain.groups import LearnerGroup
    from rltrain.models import resolve_model
    from rltrain.preflight import load_tokenizer, requirements
    from rltrain.telemetry import Telemetry

    sft_cfg = run.sft
    if sft_cfg.packing and sft_cfg.loss_agg_mode != "token-mean":  # a packed row holds several sequences
        raise ConfigError(f"sft.loss_agg_mode={sft_cfg.loss_agg_mode} averages per row, and with sft.packing=true a row "
                          f"holds several samples; use sft.loss_agg_mode=token-mean or sft.packing=false")
    model_path = str(resolve_model(run.run.model.name, Path(run.run.model.cache_dir) if run.run.model.cache_dir else None))
    tokenizer = load_tokenizer(model_path, "model.name")
    seed = run.run.trainer.seed
    data = load_data(sft_cfg, tokenizer, seed)
    per_epoch = steps_per_epoch(data, sft_cfg, seed)
    total = per_epoch * sft_cfg.epochs
    cfg = _with_schedule(run, total)
    logger.info("SFT: %d training samples (%s), %d validation, %d steps/epoch x %d epochs; dropped %s",
                sum(map(len, data.train)), ", ".join(ds.path for ds in sft_cfg.datasets), len(data.validation), per_epoch,
                sft_cfg.epochs, data.dropped or "none")
    resume = checkpoint.for_resume(cfg)
    if resume is not None:
        _check_same_plan(resume.state.get("sft", {}), dataclasses.asdict(sft_cfg))
    run_dir = cfg.trainer.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume is None:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    else:
        checkpoint.trim_jsonl(run_dir / "metrics.jsonl", resume.step)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**to_dict(cfg), "sft": dataclasses.asdict(sft_cfg)}, sort_keys=False))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eval_every = sft_cfg.eval_every or per_epoch
    stack, telemetry = ExitStack(), None
    try:
        start_ray(requirements(cfg, needs_users=False), ray_temp_dir)
        learners = LearnerGroup(cfg, model_path, SFT(SFTLossConfig(sft_cfg.loss_agg_mode)), cfg.trainer.name, stack)
        first = 1
        if resume is not None:
            learners.load_checkpoint(str(resume.path))
            checkpoint.set_rng_state(resume.driver_rng)
            first = resume.step + 1
            logger.info("resumed from %s at step %d", resume.path, resume.step)
        telemetry = Telemetry(cfg, run_dir)
        metrics: dict[str, float] = {}
        order: list[SFTSample] = []
        last = min(total, sft_cfg.max_steps or total)
        for step in range(first, last + 1):
            epoch, index = divmod(step - 1, per_epoch)
            if index == 0 or not order:
                order = epoch_order(data, sft_cfg, seed, epoch)
            t0 = time.perf_counter()
            rows = order[index * sft_cfg.batch_size:(index + 1) * sft_cfg.batch_size]
            if sft_cfg.packing:  # fewer, longer rows: fill only to a whole number of micro-batches on every rank
                batch = packed_batch(rows, pad_id, sft_cfg.max_length)
                unit = cfg.learner.num_learners * cfg.learner.micro_batch_size
                batch = fill_to(batch, -(-len(batch) // unit) * unit)
            else:
                batch = fill_to(samples_to_batch(rows, pad_id), sft_cfg.batch_size)
            metrics = {**learners.update(batch), "sft/epoch": epoch + (index + 1) / per_epoch,
                       "sft/lr": cfg.learner.lr * lr_factor(step - 1, total, warmup=cfg.learner.warmup_steps,
                                                            schedule=sft_cfg.lr_schedule, min_ratio=sft_cfg.min_lr_ratio),
                       "time/step_s": time.perf_counter() - t0}
            if data.validation and (step % eval_every == 0 or step == last):
                metrics["sft/val_loss"] = _validation_loss(learners, data.validation, pad_id, cfg.learner.micro_batch_size)
            every = cfg.trainer.checkpoint_every
            if every and (step % every == 0 or step == last):
                def write(folder: Path, step: int = step) -> None:
                    learners.save_checkpoint(str(folder))
                    checkpoint.write_driver_state(folder, step=step, version=step, config=to_dict(cfg),
                                                  extra={"model_path": model_path, "sft": dataclasses.asdict(sft_cfg)})
                checkpoint.write_checkpoint(run_dir, step, cfg.trainer.keep_checkpoints, write)
            telemetry.publish(step, metrics)
            logger.info("step %d/%d: %s", step, total, " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith("sft/")))
        summary: dict[str, Any] = {"run_dir": str(run_dir), "steps": last, "planned_steps": total, "samples": sum(map(len, data.train)),
                                   "validation_samples": len(data.validation), "dropped": data.dropped,
                                   **{k: v for k, v in metrics.items() if k.startswith("sft/")}}
        if cfg.trainer.save_final:
            final = learners.save_hf(str((run_dir / "final").resolve()))
            summary["final_model"], summary["final_verify/max_abs_diff"] = final["path"], final["max_abs_diff"]
            write_model_card(Path(str(final["path"])), to_dict(cfg), {"step": last, **metrics},
                             f"`rltrain sft` run {run_dir}, step {last}")
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    finally:
        if telemetry is not None:
            telemetry.close()
        stack.close()
        ray.shutdown()


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `sft` to the `rltrain` CLI; it sets `func(args) -> exit code`."""
    p = subparsers.add_parser("sft", help="supervised fine-tuning (cold start) on trajectory data",
                              description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="SFT YAML (launch/configs/sft_*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. sft.epochs=1")
    p.add_argument("--resume", default=None, help="a run folder or step_<N> checkpoint to continue from")
    p.set_defaults(func=_sft_cmd)


def _sft_cmd(args: argparse.Namespace) -> int:
    from rltrain.guard import run_guarded

    logging.basicConfig(level=logging.INFO, format="%(asctime)s sft %(levelname)s %(name)s: %(message)s")
    overrides = [*args.overrides, *([f"trainer.resume={args.resume}"] if args.resume else [])]
    code, summary = run_guarded(lambda: sft(load_sft_config(args.config, overrides)), "SFT")
    if summary:
        print(json.dumps(summary, indent=2))
    return code
