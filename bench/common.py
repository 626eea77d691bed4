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


def machine() -> dict[str, object]:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
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
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2))
    print(f"wrote {path}")
    return path
