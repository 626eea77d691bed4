"""The extra cost of δ adaptation per prefill (issue 18, spec §5.1 "Cost"), against a plain prefill.

A plain prefill is one forward of the model over T prompt tokens. Adaptation adds, per Adam step, the logits of all
T positions (T×d·V), a softmax over V, and the gradient (V·d): no transformer forward or backward. Measured at
T = 512, 1024 and 4096 on the embedded SmolLM2-135M (d 576, V 49152) in the engine's dtype, with the function both
engines call (`rltrain.adapt.vector.adapt_step`, 512-position chunks, float32 math); median of `--repeats` runs.

Run: `python -m bench.adapt_cost [--dtype bfloat16] [--repeats 3] [--steps 1]` (prints a table, writes
`bench/results/adapt_cost.json`).
"""

from __future__ import annotations

import argparse
import time

import torch

from bench import common
from rltrain.adapt.vector import AdaptConfig, AdaptState, adapt_step

LENGTHS = (512, 1024, 4096)


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, kernel choice)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return common.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--lengths", type=int, nargs="*", default=list(LENGTHS))
    args = parser.parse_args(argv)
    from transformers import AutoModelForCausalLM

    from rltrain.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model), dtype=getattr(torch, args.dtype)).eval()
    head = model.get_output_embeddings().weight.detach()
    cfg = AdaptConfig(steps=args.steps)
    rows, results = [], []
    gen = torch.Generator().manual_seed(0)
    for length in args.lengths:
        ids = torch.randint(100, model.config.vocab_size - 100, (1, length), generator=gen)
        with torch.no_grad():
            hidden = model.model(input_ids=ids).last_hidden_state[0]
            state = AdaptState.zeros(head.shape[1])
            plain = _timed(lambda ids=ids: model(input_ids=ids, logits_to_keep=1), args.repeats)
            extra = _timed(lambda ids=ids, h=hidden, s=state: adapt_step(s, h[:-1], head, ids[0, 1:], None, cfg),
                           args.repeats)
        rows.append([length, plain * 1e3, extra * 1e3, extra / plain])
        results.append({"tokens": length, "plain_prefill_ms": plain * 1e3, "adapt_ms": extra * 1e3,
                        "extra_fraction": extra / plain})
    common.print_table(["prompt tokens", "plain prefill ms", "δ update ms", "extra / plain"], rows)
    common.write_results("adapt_cost", {"model": args.model, "dtype": args.dtype, "steps": args.steps,
                                        "threads": torch.get_num_threads(), "repeats": args.repeats, "rows": results,
                                        "versions": common.versions(*common.PACKAGES)})


if __name__ == "__main__":
    main()
