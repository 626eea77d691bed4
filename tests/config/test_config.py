"""Bad configs fail before anything starts, with errors that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrain.config import ConfigError, RunConfig, describe, load_config
from rltrain.config.loader import apply_overrides
from rltrain.models import ModelNotFoundError, resolve_model
from rltrain.preflight import prepare, requirements

CONFIGS = sorted((Path(__file__).parents[2] / "launch" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    """Every shipped config loads with the loader of its command: `rltrain sft` (sft_*), `rltrain adapt` (adapt*),
    otherwise `rltrain train`/`eval`."""
    if path.name.startswith("sft_"):
        from rltrain.config.sft import SFTRun, load_sft_config

        assert isinstance(load_sft_config(path), SFTRun)
    elif path.name.startswith("adapt"):
        from rltrain.adapt.command import AdaptRunConfig, load_adapt_config

        assert isinstance(load_adapt_config(str(path), []), AdaptRunConfig)
    else:
        assert isinstance(load_config(path), RunConfig)


def test_overrides_are_typed() -> None:
    cfg = load_config(None, ["learner.lr=1e-5", "trainer.group_size=8", "algorithm.grpo.dual_clip_c=null"])
    assert cfg.learner.lr == 1e-5 and cfg.trainer.group_size == 8 and cfg.algorithm.grpo.dual_clip_c is None


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["learner.lrr=1"], "unknown key(s) learner.lrr; valid keys in learner are"),
        (["learner.lr=fast"], "learner.lr must be of type float"),
        (["rollout.engine=sglang"], "rollout.engine='sglang' is not a valid choice; use one of: 'auto', 'vllm', 'transformers'"),
        (["algorithm.grpo.loss_agg=mean"], "algorithm.grpo.loss_agg='mean' is not a valid choice"),
        (["learner.micro_batch_size=3"], "try learner.micro_batch_size=2"),
        (["learner.mini_batch_size=5"], "try learner.mini_batch_size=4"),
        (["learner.num_learners=3"], "split evenly over learner.num_learners=3"),
        (["algorithm.grpo.dual_clip_c=0.5"], "algorithm.grpo.dual_clip_c=0.5 must be > 1"),
        (["trainer.group_size=0"], "trainer.group_size=0 must be >= 1"),
        (["learner.zero_stage=4"], "learner.zero_stage=4 must be 0, 1, 2 or 3"),
        (["rollout.temperature=0"], "rollout.temperature=0.0 must be > 0"),
        (["trainer=3"], "trainer must be a mapping"),
        (["rollout.top_p=0.9"], "rollout.top_p=0.9: training rollouts must sample the full distribution"),
        (["learner.mini_batch_size=-8"], "learner.mini_batch_size=-8 must be >= 1"),
        (["learner.lora.r=8", "learner.lora.target_modules=[]"], "learner.lora.target_modules is empty"),
        (["rollout.max_restarts=-1"], "rollout.max_restarts=-1 must be >= 0 (-1 is not allowed: a crash loop must end)"),
        (["rollout.restart_timeout_s=0"], "rollout.restart_timeout_s=0.0 must be > 0"),
    ],
)
def test_bad_values_name_key_and_fix(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert needle in str(err.value)


def test_malformed_override() -> None:
    with pytest.raises(ConfigError, match="not of the form section.key=value"):
        apply_overrides({}, ["learner.lr"])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(listy)


def test_resources_checked_against_cluster() -> None:
    cfg = load_config(None, ["rollout.num_workers=4", "learner.num_gpus=1"])
    with pytest.raises(ConfigError, match="the roles need 5.5 CPUs"):
        requirements(cfg).check({"CPU": 2.0})
    with pytest.raises(ConfigError, match="the roles need 1 GPUs but the cluster has 0"):
        requirements(cfg).check({"CPU": 16.0})
    requirements(cfg).check({"CPU": 16.0, "GPU": 1.0})


def test_unknown_names_fail_in_prepare(tiny_model: Path) -> None:
    base = [f"model.name={tiny_model}"]
    with pytest.raises(ConfigError, match="env.name='chess' is not registered; choose one of: arithmetic"):
        prepare(load_config(None, [*base, "env.name=chess"]))
    with pytest.raises(ConfigError, match="unknown algorithm 'ppo'; registered: grpo"):
        prepare(load_config(None, [*base, "algorithm.name=ppo"]))
    with pytest.raises(ConfigError, match="reward.fn='exact' is not a registered reward function"):
        prepare(load_config(None, [*base, "reward.fn=exact"]))
    with pytest.raises(ConfigError, match="env.kwargs for 'arithmetic' are invalid"):
        prepare(load_config(None, [*base, "env.kwargs={colour: red}"]))
    with pytest.raises(ConfigError, match="reward.kwargs do not fit reward function 'arithmetic'.*format_reward"):
        prepare(load_config(None, [*base, "reward.kwargs={format_rewrd: 0.5}"]))


def test_unknown_and_unreachable_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelNotFoundError, match="not a local folder, not a hub id"):
        resolve_model("smollm-9000")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        resolve_model(str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="could not be fetched from the Hugging Face Hub.*set model.name to its local folder"):
        resolve_model("no-such-org/no-such-model")


def test_every_field_is_documented() -> None:
    undocumented = [key for key, _, doc in describe(RunConfig) if not doc]
    assert undocumented == []
