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
