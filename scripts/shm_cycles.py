"""Kill-and-restart cycles of a real vLLM engine in a Ray actor; prints what /dev/shm gained, as JSON.

Each cycle starts an engine (which sweeps the entries of engines that died before it), notes its /dev/shm
entries, then kills the actor the way Ray does on failure (the whole process tree, SIGKILL). After the last
cycle the sweep runs once more, as the next engine start would. The delta is the set of `psm_*`/`sem.mp-*`
entries present after and not before that no living process maps (an entry another program is using is not
a leak). Without rltrain's bookkeeping every cycle leaves 3 entries (2 psm_ of about 160 MB apparent size, 1
sem.mp-).

    .venv/bin/python scripts/shm_cycles.py --cycles 10              # the tiny random model, built once
    .venv/bin/python scripts/shm_cycles.py --cycles 3 --model PATH  # any HF folder vLLM can load

Runs Ray, vLLM and a model: on a shared machine run it under the heavy-job lock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from the checkout without installing

from rltrain.engines.shm import PREFIXES, SHM, descendants, mapped_shm_inodes, start_time, sweep  # noqa: E402


def leaked(before: set[str]) -> list[str]:
    """New engine entries that no living process maps."""
    live = mapped_shm_inodes(p for p in descendants(1) | {1})
    out = []
    for entry in SHM.iterdir():
        if entry.name.startswith(PREFIXES) and entry.name not in before:
            try:
                if entry.stat().st_ino not in live:
                    out.append(entry.name)
            except FileNotFoundError:
                pass
    return sorted(out)


def tiny_model(folder: Path) -> Path:
    """A random 2-layer Llama with the embedded model's tokenizer (head size 64: PLATFORM.md, tiny test models)."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rltrain.models import EMBEDDED_MODEL, resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(EMBEDDED_MODEL))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run(cycles: int, model: Path, timeout_s: float = 60.0) -> dict:
    import ray

    @ray.remote(num_cpus=1)
    class EngineHost:
        def __init__(self, path: str) -> None:
            from rltrain.engines.vllm_engine import VLLMEngine

            self.engine = VLLMEngine(path, dtype="bfloat16", max_model_len=256, gpu_memory_utilization=0.1,
                                     kv_cache_gib=1, seed=0, threads=1)

        async def start(self) -> dict:
            await self.engine.start()
            ledger = self.engine._shm
            return {"names": sorted(ledger.names), "processes": sorted(ledger.processes)}

    before = {e.name for e in SHM.iterdir()}
    temp = tempfile.mkdtemp(prefix="rlt-", dir="/tmp")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    report: dict = {"cycles": [], "model": str(model)}
    try:
        for _ in range(cycles):
            t0 = time.perf_counter()
            host = EngineHost.remote(str(model))
            started = ray.get(host.start.remote(), timeout=300)
            ray.kill(host)  # like an actor failure: Ray SIGKILLs the actor and every process below it
            deadline = time.monotonic() + timeout_s
            while any(start_time(p) is not None for p in started["processes"]) and time.monotonic() < deadline:
                time.sleep(0.2)
            report["cycles"].append({"entries": started["names"], "left_after_kill": leaked(before),
                                     "seconds": round(time.perf_counter() - t0, 1)})
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    report["swept_at_end"] = sweep()  # what the next engine start does
    report["delta"] = leaked(before)
    report["raw_delta"] = sorted({e.name for e in SHM.iterdir()} - before)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--model", type=Path, help="an HF folder (default: a tiny random Llama, built once)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = args.model or tiny_model(Path(tempfile.gettempdir()) / "rltrain-shm-cycles-model")
    report = run(args.cycles, model)
    print(json.dumps(report, indent=1))
    print(f"{args.cycles} kill-and-restart cycles: {sum(len(c['entries']) for c in report['cycles'])} /dev/shm entries "
          f"created, {len(report['swept_at_end'])} swept at the end, delta {len(report['delta'])} "
          f"(raw delta {len(report['raw_delta'])})")
    return 0 if not report["delta"] else 1


if __name__ == "__main__":
    sys.exit(main())
