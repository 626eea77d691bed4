"""Weight sync: seconds from learner weights to N rollout workers generating again, vs one in-memory copy.

For each model and N in (1, 2): one DeepSpeed learner (`LearnerGroup`, ZeRO-2, fp32) and N vLLM rollout
workers (`RolloutGroup`, bf16). One sync is what the trainer does after each update:
`LearnerGroup.export_weights` (bf16 safetensors under /dev/shm, tied head dropped) + `RolloutGroup.load_weights`
+ one short rollout (one task per worker, up to 8 tokens). The first sync is a warm-up; the table shows the
median of the next `REPEATS`. The floor is copying the same bf16 state dict once in this process (the
one-machine memory-copy limit): `clone` into fresh memory, and `copy_` into buffers allocated beforehand.

LoRA: rltrain's learner merges the adapters and sends full weights (`docs/design.md`, "LoRA weight sync"), so a
LoRA run's sync is measured as that path (`smollm2+lora`: r=16 on every linear layer, N=1): merge, export,
load, generate. Adapter-only sync is not implemented. Run: `python -m bench.sync` (`--models smollm2` for the
small model only).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench import common

WORKERS, REPEATS, NEW_TOKENS, COPY_REPEATS = (1, 2), 3, 8, 5


def random_qwen2(tokenizer_path: str, out: Path) -> str:
    """A random Qwen2-style model (~0.4B with the 49152-token SmolLM2 vocabulary) saved in bf16 with the tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def copy_floor(model_path: str) -> dict[str, float]:
    """Parameters, bytes, and median seconds to copy the bf16 state dict once (tied head dropped, as exported):
    `clone` into fresh memory (page faults included) and `copy_` into buffers allocated beforehand (bandwidth)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # in RAM, not mmapped from the file
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    out = {"parameters": sum(p.numel() for p in model.parameters()), "bf16_bytes": sum(v.nbytes for v in state.values())}
    buffers = {k: torch.empty_like(v) for k, v in state.items()}
    for name, copy in (("clone_s", lambda: {k: v.clone() for k, v in state.items()}),
                       ("copy_into_s", lambda: [buffers[k].copy_(v) for k, v in state.items()])):
        times = []
        for _ in range(COPY_REPEATS + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            copy()
            times.append(time.perf_counter() - t0)
        out[name] = common.median(times[1:])
    return out


def measure_syncs(model_path: str, label: str, workers_list: tuple[int, ...] = WORKERS,
                  lora_r: int = 0) -> dict[int, list[dict[str, float]]]:
    """Per worker count, the timings of each measured sync."""
    from rltrain.algorithms import build_algorithm
    from rltrain.config import load_config
    from rltrain.envs import make_env
    from rltrain.groups import LearnerGroup, RolloutGroup

    def config(workers: int):
        return load_config(None, [f"model.name={model_path}", "model.max_model_len=512", "rollout.engine=vllm",
                                  f"rollout.num_workers={workers}", "rollout.threads=2", f"rollout.max_new_tokens={NEW_TOKENS}",
                                  "learner.num_learners=1", "learner.threads=2", "ray.dashboard=false",
                                  f"learner.lora.r={lora_r}"])

    out: dict[int, list[dict[str, float]]] = {}
    with ExitStack() as stack:
        cfg = config(1)
        learners = LearnerGroup(cfg, model_path, build_algorithm(cfg.algorithm), f"bench-{label}", stack)
        for workers in workers_list:
            with ExitStack() as inner:
                rollouts = RolloutGroup(config(workers), model_path, f"bench-{label}-{workers}", inner)
                tasks = make_env("arithmetic", {}).tasks("train", workers, seed=0)  # one task per worker
                rollouts.rollout(tasks, n=1)  # the first generate warms the engines up
                out[workers] = []
                for version in range(1, REPEATS + 2):
                    t0 = time.perf_counter()
                    payload = learners.export_weights(version, "bfloat16")
                    t1 = time.perf_counter()
                    rollouts.load_weights(payload, version)
                    t2 = time.perf_counter()
                    rollouts.rollout(tasks, n=1)
                    t3 = time.perf_counter()
                    if version > 1:
                        out[workers].append({"export_s": t1 - t0, "load_s": t2 - t1, "generate_s": t3 - t2, "total_s": t3 - t0})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2,qwen2-0.4b", help="comma-separated: smollm2, qwen2-0.4b")
    models = parser.parse_args().models.split(",")

    from rltrain.models import EMBEDDED_MODEL, resolve_model

    smollm2 = str(resolve_model(EMBEDDED_MODEL))
    results, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="rltrain-bench-qwen2-") as tmp:
        paths = {"smollm2": smollm2}
        if "qwen2-0.4b" in models:
            paths["qwen2-0.4b"] = random_qwen2(smollm2, Path(tmp))
        runs = [(label, label, WORKERS, 0) for label in models]
        if "smollm2" in models:
            runs.append(("smollm2+lora", "smollm2", (1,), 16))
        for label, model, workers_list, lora_r in runs:
            floor = copy_floor(paths[model])
            with common.private_ray():
                syncs = measure_syncs(paths[model], label.replace("+", "-"), workers_list, lora_r)
            results[label] = {**floor, "syncs": {}}
            for workers, reps in syncs.items():
                med = {key: common.median([r[key] for r in reps]) for key in reps[0]}
                results[label]["syncs"][workers] = {"repeats": reps, "median": med}
                rows.append([label, f"{floor['parameters'] / 1e6:.0f}M", f"{floor['bf16_bytes'] / 2**20:.0f}", workers,
                             round(med["export_s"], 3), round(med["load_s"], 3), round(med["generate_s"], 3),
                             round(med["total_s"], 3), round(floor["clone_s"], 4), round(floor["copy_into_s"], 4),
                             round(med["total_s"] / floor["clone_s"])])
    print(f"\nfull-weight sync learner -> N vLLM workers, median of {REPEATS} after a warm-up sync")
    common.print_table(["model", "params", "MiB bf16", "N", "export s", "load s", "generate s", "total s", "clone s",
                        "copy_ s", "total/clone"], rows)
    print("smollm2+lora: LoRA r=16 learner; rltrain merges the adapters and syncs full weights (adapter-only sync is not "
          "implemented)")
    common.write_results("sync", {"repeats": REPEATS, "new_tokens": NEW_TOKENS, "results": results,
                                  "lora": "r=16, merged and synced as full weights; adapter-only sync not implemented"})


if __name__ == "__main__":  # vLLM starts its engine process with spawn
    main()
