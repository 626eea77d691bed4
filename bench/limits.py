"""The machine's limits, measured in this process, and the step floor they imply (issue 5).

* Dense matmul rate, fp32 and bf16: `torch.matmul` of two n x n matrices into a preallocated output, 2 n^3 FLOP
  each. n grows from 512 until one product takes >= 50 ms (or n = 4096); then each measurement repeats the product
  for about `TARGET_S` seconds, and the best of `REPEATS` measurements is reported (the best, because on a shared
  machine the noise only ever slows a run down).
* Memory bandwidth: a `BANDWIDTH_MIB` fp32 tensor, far beyond the last-level cache. `copy_` into a preallocated
  tensor of the same size moves 2 x size bytes (read the source, write the destination; the write-allocate read
  of the destination that some CPUs add is not counted, so this is the rate a program sees, not the bus's);
  `sum` reads size bytes. Same repeat-and-best scheme.

The floor of one training step (`step_floor_s`) is the issue's estimate: 6 x parameters x trained tokens at the
measured matmul rate (forward 2N + backward 4N FLOP per token, attention and the optimizer ignored), plus the
bytes generation reads at the measured read bandwidth. Batched decoding reads every weight once per decode step
whatever the batch size (at this model size the weights dominate the KV cache), so generation bytes ~= parameter
bytes x decode steps (`generation_bytes`); prefill is compute and is left out (it is small next to training).

Run: `python -m bench.limits` (prints a table, writes `bench/results/limits.json`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

TARGET_S = 1.5
REPEATS = 3
BANDWIDTH_MIB = 512
QUICKSTART_SAMPLES, QUICKSTART_NEW_TOKENS = 16, 32  # launch/configs/quickstart.yaml: 2 prompts x 8, 32 new tokens


def step_floor_s(params: float, trained_tokens: float, gen_bytes_read: float, flops_per_s: float, bytes_per_s: float) -> float:
    """Seconds one step cannot go below: 6 x params x trained_tokens / flops_per_s + gen_bytes_read / bytes_per_s.

    `trained_tokens`: every token that goes through the learner's forward and backward (prompt and response).
    `gen_bytes_read`: bytes the rollout reads, see `generation_bytes`.

    >>> step_floor_s(params=100e6, trained_tokens=1000, gen_bytes_read=2e9, flops_per_s=100e9, bytes_per_s=10e9)
    6.2
    """
    if flops_per_s <= 0 or bytes_per_s <= 0:
        raise ValueError("flops_per_s and bytes_per_s must be > 0")
    return 6 * params * trained_tokens / flops_per_s + gen_bytes_read / bytes_per_s


def generation_bytes(param_bytes: float, decode_steps: int) -> float:
    """Bytes a batched decode reads: all weights once per decode step (the batch shares each read).

    >>> generation_bytes(param_bytes=270e6, decode_steps=32)
    8640000000.0
    """
    return float(param_bytes) * decode_steps


def _best_rate(work: Callable[[], None], units_per_call: float, calls: int, repeats: int) -> tuple[float, list[float]]:
    """Best units/s over `repeats` timed loops of `calls` calls, and every loop's rate."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            work()
        rates.append(units_per_call * calls / (time.perf_counter() - t0))
    return max(rates), rates


def _calls_for(work: Callable[[], None], target_s: float) -> int:
    t0 = time.perf_counter()
    work()
    return max(1, round(target_s / max(time.perf_counter() - t0, 1e-6)))


def matmul_rate(dtype_name: str, target_s: float = TARGET_S, repeats: int = REPEATS) -> dict[str, object]:
    """Dense matmul FLOP/s for one dtype (see the module docstring)."""
    import torch

    dtype = getattr(torch, dtype_name)
    n = 512
    while True:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        out = torch.empty(n, n, dtype=dtype)
        torch.matmul(a, b, out=out)  # warm-up: thread pool, kernel selection (oneDNN/AMX for bf16)
        t0 = time.perf_counter()
        torch.matmul(a, b, out=out)
        if time.perf_counter() - t0 >= 0.05 or n >= 4096:
            break
        n *= 2

    def work() -> None:
        torch.matmul(a, b, out=out)

    calls = _calls_for(work, target_s)
    best, rates = _best_rate(work, 2.0 * n**3, calls, repeats)
    return {"dtype": dtype_name, "n": n, "calls": calls, "flops_per_s": best, "all_flops_per_s": rates}


def bandwidth(size_mib: int = BANDWIDTH_MIB, target_s: float = TARGET_S, repeats: int = REPEATS) -> dict[str, object]:
    """Copy and read bandwidth in bytes/s (see the module docstring for the byte accounting)."""
    import torch

    src = torch.rand(size_mib * 2**20 // 4)  # fp32; rand touches every page, so no first-touch faults are timed
    dst = torch.empty_like(src)
    dst.copy_(src)
    nbytes = src.numel() * src.element_size()

    def copy() -> None:
        dst.copy_(src)

    def read() -> None:
        src.sum()

    copy_best, copy_all = _best_rate(copy, 2.0 * nbytes, _calls_for(copy, target_s), repeats)
    read_best, read_all = _best_rate(read, float(nbytes), _calls_for(read, target_s), repeats)
    return {"size_mib": size_mib, "copy_bytes_per_s": copy_best, "copy_all": copy_all,
            "read_bytes_per_s": read_best, "read_all": read_all}


def quickstart_example(fp32_flops: float, read_bytes_per_s: float) -> dict[str, float]:
    """The floor of one quickstart step on this machine, with upper-bound lengths: every response runs to
    `max_new_tokens`. Learner in fp32 (rltrain's learner.dtype); decode reading bf16 (rltrain's vLLM) or fp32
    weights (TRL's fp32 generate)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from rltrain.agent import ChatRenderer
    from rltrain.envs import make_env
    from rltrain.models import resolve_model

    path = resolve_model("smollm2-135m-instruct")
    with torch.device("meta"):  # count parameters without allocating them
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    params = float(sum(p.numel() for p in model.parameters()))  # tied embeddings are counted once
    env = make_env("arithmetic", {})
    renderer = ChatRenderer(AutoTokenizer.from_pretrained(path))
    prompt_len = sum(len(renderer.prompt_ids(env.reset(t)[0])) for t in env.tasks("train", 2, seed=1_000_003)) / 2
    trained = QUICKSTART_SAMPLES * (prompt_len + QUICKSTART_NEW_TOKENS)
    out = {"params": params, "mean_prompt_tokens": prompt_len, "trained_tokens": trained, "decode_steps": QUICKSTART_NEW_TOKENS,
           "train_s": 6 * params * trained / fp32_flops}
    for label, width in (("bf16", 2), ("fp32", 4)):
        gen = generation_bytes(params * width, QUICKSTART_NEW_TOKENS)
        out[f"decode_{label}_s"] = gen / read_bytes_per_s
        out[f"floor_decode_{label}_s"] = step_floor_s(params, trained, gen, fp32_flops, read_bytes_per_s)
    return out


def measure(target_s: float = TARGET_S) -> dict[str, object]:
    """All of the machine's limits in one dict: `matmul_gflops` {fp32, bf16}, `bandwidth_gbs` (read, the rate
    generation is bound by), `copy_gbs`, the thread count, and every raw measurement under `matmul`/`bandwidth`."""
    import torch

    mm = {label: matmul_rate(name, target_s) for label, name in (("fp32", "float32"), ("bf16", "bfloat16"))}
    bw = bandwidth(target_s=target_s)
    return {"torch_threads": torch.get_num_threads(), "target_s": target_s, "repeats": REPEATS,
            "matmul_gflops": {label: m["flops_per_s"] / 1e9 for label, m in mm.items()},
            "bandwidth_gbs": bw["read_bytes_per_s"] / 1e9, "copy_gbs": bw["copy_bytes_per_s"] / 1e9,
            "matmul": mm, "bandwidth": bw}


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure matmul FLOP/s and memory bandwidth.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--target-s", type=float, default=TARGET_S, help="seconds per measurement")
    args = parser.parse_args()

    import torch

    from bench import common

    if args.threads:
        torch.set_num_threads(args.threads)
    limits = measure(args.target_s)
    mm, bw = limits["matmul"], limits["bandwidth"]
    example = quickstart_example(mm["fp32"]["flops_per_s"], bw["read_bytes_per_s"])

    print(f"\ntorch threads: {limits['torch_threads']}; best of {REPEATS} measurements of ~{args.target_s} s each")
    rows = [[f"matmul {m['dtype']}", f"n={m['n']} x{m['calls']}", round(m["flops_per_s"] / 1e9, 1), "GFLOP/s"] for m in mm.values()]
    rows += [["copy_", f"{bw['size_mib']} MiB, read+write", round(bw["copy_bytes_per_s"] / 1e9, 2), "GB/s"],
             ["sum", f"{bw['size_mib']} MiB, read", round(bw["read_bytes_per_s"] / 1e9, 2), "GB/s"]]
    common.print_table(["measure", "shape", "rate", "unit"], rows)
    print(f"\nquickstart step floor (fp32 learner, {QUICKSTART_SAMPLES} samples x ({example['mean_prompt_tokens']:.0f} prompt + "
          f"{QUICKSTART_NEW_TOKENS} new tokens), {example['params'] / 1e6:.1f}M params): train {example['train_s']:.2f} s + "
          f"decode {example['decode_bf16_s']:.2f} s (bf16 weights) / {example['decode_fp32_s']:.2f} s (fp32) = "
          f"{example['floor_decode_bf16_s']:.2f} / {example['floor_decode_fp32_s']:.2f} s")
    common.write_results("limits", {**limits, "quickstart_floor": example})


if __name__ == "__main__":
    main()
