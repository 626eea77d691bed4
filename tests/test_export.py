"""`rltrain export`: checkpoints (ZeRO-2, ZeRO-3 over 2 ranks, LoRA) and HF folders -> verified HF folders.

Each source run is 1 step of the tiny model with a checkpoint; its `final/` (saved by the learners) is the
reference the export from the DeepSpeed files must reproduce.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rltrain import export as ex
from tests.integration.test_resume import train_fresh
from tests.integration.test_training import tiny_config

BASE = ("rollout.engine=transformers", "rollout.dtype=float32", "rollout.num_workers=1", "env.eval_tasks=0",
        "trainer.steps=1", "trainer.checkpoint_every=1", "algorithm.grpo.entropy_coef=0.01")
"""entropy_coef: the random model earns no reward, so without it the update (and a LoRA adapter) would not move."""


def _run(tiny_model: Path, out: Path, *overrides: str) -> Path:
    cfg = tiny_config(tiny_model, out, *BASE, *overrides)
    train_fresh(cfg)
    return cfg.trainer.run_dir


@pytest.fixture(scope="module")
def zero2_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tiny_model, tmp_path_factory.mktemp("export"), "learner.num_learners=1", "learner.zero_stage=2",
                "trainer.name=z2")  # ZeRO-2 set: one rank alone would get ZeRO-0


def _same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert x.keys() == y.keys()
    assert max(float((x[k].float() - y[k].float()).abs().max()) for k in x) <= atol


@pytest.mark.ray
def test_export_zero2_checkpoint_equals_final_and_has_everything(zero2_run: Path, tmp_path: Path) -> None:
    report = ex.export(zero2_run, tmp_path / "out", vllm_check=False)  # the run folder: its latest checkpoint
    out = tmp_path / "out"
    assert report["max_abs_diff"] == 0.0 and "OK" in report["transformers"]
    _same_weights(out, zero2_run / "final")
    for name in ("config.json", "generation_config.json", "tokenizer.json", "README.md"):
        assert (out / name).is_file(), name
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).chat_template
    card = (out / "README.md").read_text()
    assert "step_1" in card and "## Training config" in card and "reward/mean" in card and "zero_stage: 2" in card
    assert "MISMATCH" not in report["transformers"] and not (tmp_path / "out.tmp").exists()
    with pytest.raises(ex.ExportError, match="not empty"):
        ex.export(zero2_run, out, vllm_check=False)


@pytest.mark.ray
def test_export_bf16_from_the_final_hf_folder(zero2_run: Path, tmp_path: Path) -> None:
    report = ex.export(zero2_run / "final", tmp_path / "bf16", dtype="bf16", vllm_check=False)
    weights = load_file(tmp_path / "bf16" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    assert "bf16 rounding moves logits" in report["transformers"]
    assert (tmp_path / "bf16" / "README.md").is_file()


@pytest.mark.ray
def test_verification_catches_a_corrupted_weight(zero2_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write = ex.write_folder

    def write_then_corrupt(source: ex.Source, out: Path, dtype: str) -> None:
        write(source, out, dtype)
        weights = load_file(out / "model.safetensors")
        weights["model.layers.1.mlp.down_proj.weight"][0, :] += 0.5  # one row of one matrix
        save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})

    monkeypatch.setattr(ex, "write_folder", write_then_corrupt)
    with pytest.raises(ex.ExportError, match=r"verification failed.*MISMATCH.*left at"):
        ex.export(zero2_run / "step_1", tmp_path / "bad", vllm_check=False)
    assert not (tmp_path / "bad").exists() and (tmp_path / "bad.tmp").is_dir()


@pytest.mark.ray
def test_cli_command_exports_and_checks_vllm(zero2_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    ex.add_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", str(zero2_run / "step_1"), str(tmp_path / "cli")])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "verification (transformers logits): OK" in printed
    from rltrain.engines import vllm_available

    assert ("verification (vLLM): OK: generated" if vllm_available() else "vLLM is not installed") in printed
    args = parser.parse_args(["export", str(tmp_path / "missing"), str(tmp_path / "x")])
    assert args.func(args) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.ray
def test_export_zero3_two_ranks(tiny_model: Path, tmp_path: Path) -> None:
    run = _run(tiny_model, tmp_path, "learner.num_learners=2", "learner.zero_stage=3", "trainer.name=z3")
    assert len(list((run / "step_1" / "deepspeed").glob("*optim_states.pt"))) == 2  # one shard per rank
    ex.export(run / "step_1", tmp_path / "out", vllm_check=False)
    _same_weights(tmp_path / "out", run / "final", atol=1e-6)


@pytest.mark.ray
def test_export_lora_merged_and_as_adapter(tiny_model: Path, tmp_path: Path) -> None:
    run = _run(tiny_model, tmp_path, "learner.num_learners=1", "learner.lora.r=4", "trainer.name=lora")
    ex.export(run, tmp_path / "merged", merge_lora=True, vllm_check=False)
    _same_weights(tmp_path / "merged", run / "final", atol=1e-6)  # final/ holds merged weights too
    base = load_file(tiny_model / "model.safetensors")
    merged = load_file(tmp_path / "merged" / "model.safetensors")
    assert not torch.equal(merged["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])
    report = ex.export(run, tmp_path / "adapter", vllm_check=False)
    assert report["adapter"] and (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert not (tmp_path / "adapter" / "model.safetensors").exists()


class FakeApi:
    def __init__(self, token: str) -> None:
        self.token, self.calls = token, []

    def create_repo(self, **kwargs: object) -> None:
        self.calls.append(("create_repo", kwargs))

    def upload_folder(self, **kwargs: object) -> None:
        self.calls.append(("upload_folder", kwargs))


def test_push_to_hub_uses_hf_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret123")
    apis: list[FakeApi] = []
    url = ex.upload(tmp_path, "me/model", lambda token: apis.append(FakeApi(token)) or apis[-1])
    assert url == "https://huggingface.co/me/model"
    assert apis[0].token == "hf_secret123"
    assert [c[0] for c in apis[0].calls] == ["create_repo", "upload_folder"]
    assert apis[0].calls[1][1]["folder_path"] == str(tmp_path) and apis[0].calls[1][1]["repo_id"] == "me/model"
    assert "hf_secret123" not in capsys.readouterr().out


def test_push_to_hub_without_token_or_offline_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ex.ExportError, match="HF_TOKEN"):
        ex.upload(tmp_path, "me/model")
    monkeypatch.setenv("HF_TOKEN", "hf_secret123")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ex.ExportError, match=r"uploading .* failed .*HF_HUB_OFFLINE") as err:
        ex.upload(tmp_path, "me/model")  # the real client: offline mode (or no network) refuses before any upload
    assert "hf_secret123" not in str(err.value)
