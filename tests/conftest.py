"""Shared fixtures: the real SmolLM2 tokenizer, tiny random models built from a config, a private Ray cluster."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The converted embedded SmolLM2-135M-Instruct folder (converted once per machine)."""
    from rltrain.models import EMBEDDED_MODEL, resolve_model

    return resolve_model(EMBEDDED_MODEL)


@pytest.fixture(scope="session")
def tiny_model(embedded_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama with the real SmolLM2 tokenizer and chat template.

    Head size 64: vLLM's CPU attention rejects 16 (PLATFORM.md, "Tiny test models").
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _short_temp_dir() -> str:
    # Ray's socket paths live under its temp dir, and AF_UNIX paths may not exceed 107 bytes.
    return tempfile.mkdtemp(prefix="rlt-", dir="/tmp")


@pytest.fixture
def ray_tmp():
    """A short, private Ray temp dir for a test that starts its own cluster through `train`."""
    path = _short_temp_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster():
    """A private local Ray cluster (own temp dir, free ports); never `ray stop`."""
    import ray

    path = _short_temp_dir()
    ray.init(address="local", num_cpus=8, include_dashboard=False, _temp_dir=path, log_to_driver=False)
    yield
    ray.shutdown()
    shutil.rmtree(path, ignore_errors=True)
