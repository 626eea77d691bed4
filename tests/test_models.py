"""The embedded default model: converted from the GGUF with the right special tokens."""

from __future__ import annotations

import json
from pathlib import Path


def test_converted_folder_has_end_of_turn_as_eos(embedded_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|im_end|>"
    config = json.loads((embedded_model / "config.json").read_text())
    generation = json.loads((embedded_model / "generation_config.json").read_text())
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config["eos_token_id"] == end and generation["eos_token_id"] == end
    assert not (embedded_model / "quantization_config.json").exists() and "quantization_config" not in config


def test_generation_stops_at_end_of_turn(embedded_model: Path) -> None:
    """PLATFORM.md: left with the GGUF's eos (<|im_start|>), generation runs past the answer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    model = AutoModelForCausalLM.from_pretrained(embedded_model)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                         add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=40, do_sample=False)
    new = out[0, ids.shape[1]:].tolist()
    assert new[-1] == tokenizer.eos_token_id and len(new) < 40
    assert "Paris" in tokenizer.decode(new, skip_special_tokens=True)


def test_checkpoints_are_named_and_priced_as_the_model_they_were_trained_from(tmp_path: Path) -> None:
    """An export's model card names its `base_model`, through a chain of runs (SFT, then RL from the SFT export), so
    the ledger and `rltrain eval` of a router checkpoint price it as that model, not as a model called "final"."""
    from rltrain.costs import load_price_table
    from rltrain.export import write_model_card
    from rltrain.models import base_model_name

    sft, rl, bare = tmp_path / "sft" / "final", tmp_path / "rl" / "final", tmp_path / "bare"
    for folder in (sft, rl, bare):
        folder.mkdir(parents=True)
    write_model_card(sft, {"model": {"name": "smollm2-135m-instruct"}}, {"sft/nll": 0.1}, "`rltrain sft` run sft")
    write_model_card(rl, {"model": {"name": str(sft)}}, {}, "`rltrain train` run rl")
    assert "base_model: smollm2-135m-instruct" in (rl / "README.md").read_text()
    assert base_model_name(rl) == base_model_name(sft) == "smollm2-135m-instruct"
    assert base_model_name(bare) == "bare" and base_model_name("qwen2.5-coder-0.5b-instruct") == "qwen2.5-coder-0.5b-instruct"
    table = load_price_table("synthetic-cpu")
    assert table.usd(base_model_name(rl), 1000, 100) == table.usd("smollm2-135m-instruct", 1000, 100) > 0
