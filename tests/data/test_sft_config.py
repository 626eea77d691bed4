"""Tests for rltrain/config/sft.py and the data plan of rltrain/sft.py (no Ray)."""

import pytest

from rltrain.config.loader import ConfigError
from rltrain.config.sft import load_sft_config
from rltrain.data.sft import SFTSample
from rltrain.sft import SFTData, epoch_order


def test_preset_and_overrides():
    run = load_sft_config(None, ["sft.preset=userrl_cold_start", "sft.datasets=[{path: a.jsonl}, {path: b.json, weight: 0.5}]",
                                 "sft.epochs=1", "learner.micro_batch_size=2"])
    assert (run.sft.epochs, run.sft.lr_schedule, run.sft.warmup_ratio, run.run.learner.lr) == (1, "cosine", 0.1, 1e-5)
    assert run.sft.datasets[1].weight == 0.5 and run.sft.batch_size == 8
    assert run.run.mini_batch_size == 8 and run.run.gradient_accumulation == 4  # 8 samples = 1 rank x 2 x 4
    assert run.run.rollout.temperature == 1.0


def test_errors_name_the_key():
    with pytest.raises(ConfigError, match="sft.datasets is empty"):
        load_sft_config(None, [])
    with pytest.raises(ConfigError, match="not used by `rltrain sft`"):
        load_sft_config(None, ["sft.datasets=[{path: a}]", "env.name=function_gym"])
    with pytest.raises(ConfigError, match="sft.preset"):
        load_sft_config(None, ["sft.datasets=[{path: a}]", "sft.preset=nope"])
    with pytest.raises(ConfigError, match="micro_batch_size"):
        load_sft_config(None, ["sft.datasets=[{path: a}]", "sft.batch_size=6", "learner.micro_batch_size=4"])


def test_mixture_weights_and_deterministic_order():
    run = load_sft_config(None, ["sft.datasets=[{path: a}, {path: b, weight: 2}, {path: c, weight: 0.5}]"])
    sets = [[SFTSample(f"{name}{i}", [1, 2], [0, 1]) for i in range(4)] for name in "abc"]
    data = SFTData(sets, [], {})
    order = epoch_order(data, run.sft, seed=0, epoch=0)
    counts = {name: sum(s.sample_id.startswith(name) for s in order) for name in "abc"}
    assert counts == {"a": 4, "b": 8, "c": 2}
    assert [s.sample_id for s in epoch_order(data, run.sft, 0, 0)] == [s.sample_id for s in order]
    assert [s.sample_id for s in epoch_order(data, run.sft, 0, 1)] != [s.sample_id for s in order]
