"""`rltrain export CKPT OUT`: a checkpoint -> a verified Hugging Face model folder (optionally pushed to the hub).

CKPT is a run folder (its `latest` checkpoint), a `step_<N>/` checkpoint (DeepSpeed files of any ZeRO stage,
gathered with DeepSpeed's zero_to_fp32), or an HF folder such as a run's `final/`. OUT gets safetensors, config,
generation config, the tokenizer with its chat template and a model card (README.md) with the training config
and the final metrics. A LoRA checkpoint becomes a full model with `--merge-lora`, else a PEFT adapter folder.

Verification is part of export: the written folder is loaded with transformers and its logits on a probe batch
are compared with the source weights'; where vLLM is installed the folder is also loaded in vLLM (a subprocess)
and generates a few tokens. A folder that fails is left at OUT.tmp for inspection, never at OUT.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from rltrain.checkpoint import DS_TAG, load
from rltrain.config import RunConfig
from rltrain.config.loader import build
from rltrain.engines import vllm_available
from rltrain.errors import ConfigError
from rltrain.models import base_model_name, resolve_model

logger = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
PROBE_PROMPTS = ("What is 3 + 4?", "Name a color.", "Write one short sentence about the sea.")
"""Chat prompts of the probe batch whose logits must match (different lengths: padding is exercised too)."""
RELATIVE_TOLERANCE = 1e-4
"""Max |logit difference| allowed, relative to the largest |logit|. The reference is the source weights rounded to
the written dtype and computed in fp32 like the candidate, so a faithful folder gives ~0; a wrong tensor gives O(1)."""

EXAMPLES = """\
examples:
  rltrain export runs/quickstart out/quickstart-grpo                 the run's latest checkpoint, fp32
  rltrain export runs/quickstart/step_40 out/q --dtype bf16          one checkpoint, bf16 weights
  rltrain export runs/lora/step_20 out/lora --merge-lora             LoRA merged into a full model
  rltrain export runs/quickstart/final out/q --push-to-hub me/q      also upload (token from HF_TOKEN)
"""


class ExportError(RuntimeError):
    """Export or its verification failed; the message says what and how to fix it."""


@dataclass(frozen=True)
class Verification:
    """Logits of the written folder (loaded by transformers) against the source weights on the probe batch."""

    max_abs_diff: float
    tolerance: float
    dtype_drift: float | None = None
    """bf16 only: max |logit diff| against the unrounded fp32 weights, the cost of the dtype (informational)."""

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def __str__(self) -> str:
        drift = f", bf16 rounding moves logits by up to {self.dtype_drift:.3g}" if self.dtype_drift is not None else ""
        return (f"{'OK' if self.ok else 'MISMATCH'}: max |logit diff| {self.max_abs_diff:.3g} "
                f"(tolerance {self.tolerance:.3g}){drift}")


@dataclass
class Source:
    """What an export starts from: the weights in memory (fp32) and where the rest comes from."""

    model: torch.nn.Module
    """fp32, eval mode; a peft PeftModel for a LoRA checkpoint exported without --merge-lora."""
    base_path: str
    """Folder of the tokenizer and generation config (the base model of a checkpoint)."""
    description: str
    config: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def adapter(self) -> bool:
        return hasattr(self.model, "peft_config") and hasattr(self.model, "merge_and_unload")


# --- reading sources -----------------------------------------------------------------------------------------

def peft_lora_config(lora: Any) -> Any:
    """peft's LoraConfig for `learner.lora` (rltrain.config.learner.LoraConfig); shared by learners and export."""
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(lora.target_modules), task_type="CAUSAL_LM")


def load_source(ckpt: str | Path, merge_lora: bool = False) -> Source:
    """A run folder, a `step_<N>` checkpoint or an HF folder -> Source. Raises ExportError naming what is wrong."""
    path = Path(ckpt)
    if (path / "config.json").is_file():
        return _hf_source(path)
    if (path / "adapter_config.json").is_file():
        raise ExportError(f"{path} is a PEFT adapter folder; export from the training checkpoint (runs/<name>/step_<N>) "
                          f"instead, with --merge-lora for a full model")
    try:
        ckpt_ = load(path)
    except ConfigError as err:
        raise ExportError(f"{err} (an HF folder with config.json is accepted too)") from err
    return _deepspeed_source(ckpt_, merge_lora)


def _hf_source(path: Path) -> Source:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    run = path.parent
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else None
    return Source(model, str(path), f"HF folder {path}", config, _run_metrics(run, None))


def _deepspeed_source(ckpt: Any, merge_lora: bool) -> Source:
    from transformers import AutoModelForCausalLM

    cfg = build(RunConfig, ckpt.config)
    base_path = _base_model_path(ckpt.state.get("model_path"), cfg)
    state = _deepspeed_state_dict(ckpt.path, cfg.learner.zero_stage)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    if cfg.learner.lora.r > 0:
        from peft import get_peft_model

        model = get_peft_model(model, peft_lora_config(cfg.learner.lora))
    elif merge_lora:
        logger.warning("--merge-lora ignored: %s was trained without LoRA (learner.lora.r=0)", ckpt.path)
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    missing = [k for k in missing if not (tied and k.endswith("lm_head.weight"))]
    if missing or unexpected:
        raise ExportError(f"the DeepSpeed state in {ckpt.path} does not fit the model {base_path}: missing "
                          f"{missing[:5]}, unexpected {unexpected[:5]}; was model.name changed since training?")
    if cfg.learner.lora.r > 0 and merge_lora:
        model = model.merge_and_unload()
    metrics = {**_run_metrics(ckpt.path.parent, ckpt.step), **ckpt.state.get("eval_before", {})}
    return Source(model.eval(), base_path, f"`rltrain train` checkpoint {ckpt.path} (step {ckpt.step})", ckpt.config, metrics)


def _base_model_path(saved: str | None, cfg: Any) -> str:
    """The learners' source folder as the checkpoint recorded it, else model.name resolved again."""
    if saved and Path(saved).is_dir():
        return saved
    try:
        return str(resolve_model(cfg.model.name, Path(cfg.model.cache_dir) if cfg.model.cache_dir else None))
    except Exception as err:
        raise ExportError(f"the checkpoint's base model ({saved or cfg.model.name}) is not available here ({err}); it "
                          f"provides the architecture, tokenizer and generation config: make it available again") from err


def _deepspeed_state_dict(folder: Path, zero_stage: int) -> dict[str, torch.Tensor]:
    """Full fp32 weights from every rank's DeepSpeed files; ZeRO-1/2/3 shards are gathered by zero_to_fp32."""
    ds = folder / DS_TAG
    if not ds.is_dir():
        raise ExportError(f"{folder} has no {DS_TAG}/ folder of DeepSpeed state; is it a complete rltrain checkpoint?")
    if zero_stage == 0:  # no partitioning: rank 0's model file holds the whole module
        return torch.load(ds / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)["module"]
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(folder), tag=DS_TAG)


def _run_metrics(run: Path, step: int | None) -> dict[str, Any]:
    """The last logged step's metrics (up to `step`) and the run summary's held-out scores, for the model card."""
    out: dict[str, Any] = {}
    log = run / "metrics.jsonl"
    if log.is_file():
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if step is None or r.get("step", 0) <= step]
        if rows:
            out.update(rows[-1])
    summary = run / "summary.json"
    if summary.is_file() and step is None:
        out.update({k: v for k, v in json.loads(summary.read_text()).items() if k.startswith("eval_")})
    return out


# --- writing and verifying -----------------------------------------------------------------------------------

def write_model_card(folder: Path, config: dict[str, Any] | None, metrics: dict[str, Any], source: str) -> None:
    """README.md with hub metadata, where the weights come from, the training config and the final metrics."""
    shown = {k: v for k, v in metrics.items() if not k.startswith("time/")}
    rows = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in shown.items())
    base = [f"base_model: {base_model_name(config['model']['name'])}"] if config and config.get("model") else []
    card = ["---", "library_name: transformers", *base, "tags: [rltrain, reinforcement-learning]", "---", "",
            f"# {folder.name}", "", f"Trained with rltrain; exported from {source}.", ""]
    if rows:
        card += ["## Final metrics", "", "| metric | value |", "|---|---|", rows, ""]
    if config is not None:
        card += ["## Training config", "", "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```", ""]
    (folder / "README.md").write_text("\n".join(card))


def probe_batch(tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of PROBE_PROMPTS, rendered with the chat template where there is one."""
    rows = []
    for prompt in PROBE_PROMPTS:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                             tokenize=False) if tokenizer.chat_template else prompt
        rows.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


@torch.no_grad()
def _logits(model: torch.nn.Module, probe: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    ids, mask = probe
    return model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()[mask.bool()]  # (tokens, V)


def _rounded(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy whose parameters went through `dtype` and back to fp32: what a folder written in `dtype` holds."""
    if dtype == torch.float32:
        return model
    out = copy.deepcopy(model)
    for p in out.parameters():
        p.data = p.data.to(dtype).float()
    return out


def verify_logits(reference: torch.nn.Module, folder: str | Path, tokenizer: Any, dtype: str = "float32",
                  base_path: str | None = None) -> Verification:
    """Load `folder` with transformers (fp32 compute) and compare its probe-batch logits with `reference`'s weights
    rounded to `dtype`. `base_path`: the base model of an adapter folder (loaded with peft)."""
    from transformers import AutoModelForCausalLM

    probe = probe_batch(tokenizer)
    was_training = reference.training
    reference.eval()
    exact = _logits(reference, probe)
    ref = _logits(_rounded(reference, DTYPES[dtype]), probe)
    if base_path is not None:
        from peft import PeftModel

        candidate = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), str(folder))
    else:
        candidate = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    got = _logits(candidate.eval(), probe)
    reference.train(was_training)
    tolerance = RELATIVE_TOLERANCE * max(1.0, float(ref.abs().max()))
    drift = None if DTYPES[dtype] == torch.float32 else float((exact - got).abs().max())
    return Verification(float((ref - got).abs().max()), tolerance, drift)


VLLM_PROBE = """
import json, sys
from vllm import LLM, SamplingParams
llm = LLM(model=sys.argv[1], dtype=sys.argv[2], max_model_len=256, enforce_eager=True, seed=0, gpu_memory_utilization=0.3)
out = llm.generate(["Hello"], SamplingParams(max_tokens=4, temperature=0.0))[0].outputs[0]
print("RLTRAIN_VLLM " + json.dumps({"tokens": len(out.token_ids), "text": out.text}))
"""


def verify_vllm(folder: str | Path, dtype: str, timeout_s: float = 600) -> dict[str, Any]:
    """Load `folder` in vLLM in a subprocess (its engine owns the process) and generate 4 tokens greedily.
    Returns {"ok", "tokens", "text", "seconds"} or {"ok": False, "error"}; {"skipped": why} without vLLM."""
    if not vllm_available():
        return {"skipped": "vLLM is not installed"}
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", VLLM_PROBE, str(folder), "bfloat16" if DTYPES[dtype] == torch.bfloat16
                               else "float32"], capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"vLLM did not load and generate within {timeout_s:.0f}s"}
    seconds = time.perf_counter() - t0
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RLTRAIN_VLLM ")), None)
    if proc.returncode != 0 or line is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        return {"ok": False, "error": f"vLLM exited with code {proc.returncode}: {tail}", "seconds": seconds}
    result = json.loads(line.removeprefix("RLTRAIN_VLLM "))
    return {"ok": result["tokens"] > 0, **result, "seconds": seconds}


def write_folder(source: Source, out: Path, dtype: str) -> None:
    """Weights (safetensors) in `dtype`, config, generation config, tokenizer with chat template, model card."""
    from transformers import AutoTokenizer

    out.mkdir(parents=True)
    if source.adapter:  # PEFT writes only the adapter and its config (fp32); the card names the base model
        source.model.save_pretrained(str(out))
    else:
        model = source.model if DTYPES[dtype] == torch.float32 else copy.deepcopy(source.model).to(DTYPES[dtype])
        model.save_pretrained(str(out))
    tokenizer = AutoTokenizer.from_pretrained(source.base_path)
    if not tokenizer.chat_template:
        logger.warning("the tokenizer of %s has no chat template; the export has none either", source.base_path)
    tokenizer.save_pretrained(str(out))
    write_model_card(out, source.config, source.metrics, source.description)


def export(ckpt: str | Path, out: str | Path, *, merge_lora: bool = False, dtype: str = "fp32",
           push_to_hub: str | None = None, vllm_check: bool = True) -> dict[str, Any]:
    """Export and verify; returns a report. Raises ExportError (nothing is left at `out` when verification fails)."""
    from transformers import AutoTokenizer

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not empty; choose a new output folder or delete it")
    t0 = time.perf_counter()
    source = load_source(ckpt, merge_lora)
    if source.adapter and DTYPES[dtype] != torch.float32:
        logger.warning("a LoRA adapter folder is written in fp32 (--dtype %s applies to merged models: add --merge-lora)", dtype)
        dtype = "fp32"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_folder(source, tmp, dtype)
    check = verify_logits(source.model, tmp, AutoTokenizer.from_pretrained(source.base_path), dtype,
                          base_path=source.base_path if source.adapter else None)
    if not check.ok:
        raise ExportError(f"verification failed, the written weights do not reproduce the source's logits ({check}); "
                          f"the folder is left at {tmp} for inspection")
    report: dict[str, Any] = {"source": source.description, "out": str(out), "dtype": dtype, "adapter": source.adapter,
                              "transformers": str(check), "max_abs_diff": check.max_abs_diff}
    if vllm_check and not source.adapter:
        report["vllm"] = vllm = verify_vllm(tmp, dtype)
        if vllm.get("ok") is False:
            raise ExportError(f"transformers verification passed but vLLM could not serve the folder: {vllm['error']}; "
                              f"the folder is left at {tmp}. Use --no-vllm-check to export anyway")
    if out.exists():
        out.rmdir()  # empty (checked above)
    tmp.rename(out)
    if push_to_hub:
        report["hub"] = upload(out, push_to_hub)
    report["seconds"] = time.perf_counter() - t0
    return report


# --- the hub -------------------------------------------------------------------------------------------------

def _hf_api(token: str) -> Any:
    """huggingface_hub's client (a seam for offline tests)."""
    from huggingface_hub import HfApi

    return HfApi(token=token)


def upload(folder: Path, repo: str, api_factory: Callable[[str], Any] | None = None) -> str:
    """Create `repo` if needed and upload `folder`; the token comes from HF_TOKEN only and is never printed."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise ExportError(f"--push-to-hub {repo} needs a write token in the HF_TOKEN environment variable; export it "
                          f"(the folder {folder} is written and verified; upload later with --push-to-hub from it)")
    api = (api_factory or _hf_api)(token)
    try:
        api.create_repo(repo_id=repo, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model", commit_message="Upload from rltrain export")
    except Exception as err:  # network, offline mode, permissions: all end the same way for the user
        message = str(err).replace(token, "***")
        raise ExportError(f"uploading {folder} to https://huggingface.co/{repo} failed ({type(err).__name__}: {message}); "
                          f"check the network, that HF_HUB_OFFLINE is unset, and that HF_TOKEN may write to {repo}. The "
                          f"verified folder stays at {folder}") from err
    return f"https://huggingface.co/{repo}"


# --- CLI -----------------------------------------------------------------------------------------------------

def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` to the `rltrain` CLI; it sets `func(args) -> exit code`."""
    p = subparsers.add_parser("export", help="convert a checkpoint into a verified Hugging Face model folder",
                              description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt", metavar="CKPT", help="runs/<name> (its latest checkpoint), runs/<name>/step_<N>, or an HF folder")
    p.add_argument("out", metavar="OUT", help="output folder (must not exist or be empty)")
    p.add_argument("--merge-lora", action="store_true", help="merge LoRA adapters into a full model (else: adapter folder)")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="fp32", help="weight dtype of the export (default fp32)")
    p.add_argument("--push-to-hub", metavar="REPO", help="upload to this hub repo (org/name); token from HF_TOKEN")
    p.add_argument("--no-vllm-check", action="store_true", help="skip loading the export in vLLM")
    p.set_defaults(func=_export_cmd)


def _export_cmd(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s export %(levelname)s %(name)s: %(message)s")
    try:
        report = export(args.ckpt, args.out, merge_lora=args.merge_lora, dtype=args.dtype, push_to_hub=args.push_to_hub,
                        vllm_check=not args.no_vllm_check)
    except ExportError as err:
        print(f"rltrain export: {err}", file=sys.stderr)
        return 1
    print(f"exported {report['source']} -> {report['out']} ({report['dtype']}{', adapter' if report['adapter'] else ''})")
    print(f"verification (transformers logits): {report['transformers']}")
    vllm = report.get("vllm")
    if vllm is not None:
        print(f"verification (vLLM): {vllm.get('skipped') or 'OK: generated ' + str(vllm['tokens']) + ' tokens ' + repr(vllm['text'])}")
    if "hub" in report:
        print(f"uploaded: {report['hub']}")
    return 0
