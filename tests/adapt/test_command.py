"""`rltrain adapt` config checks and its study on the tiny model (one cell pair, two tasks)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from rltrain.adapt import add_command
from rltrain.adapt.command import load_adapt_config, run_study
from rltrain.config.loader import ConfigError

CONFIG = str(Path(__file__).parents[2] / "launch/configs/adapt_formats.yaml")


def test_config_loads_and_rejects_bad_values():
    cfg = load_adapt_config(CONFIG, ["adapt.lr=0.05", "tasks=3"])
    assert cfg.adapt.lr == 0.05 and cfg.tasks == 3 and cfg.adapt.steps == 1 and cfg.env_kwargs["level"] == 0
    with pytest.raises(ConfigError, match="adapt.lr"):
        load_adapt_config(CONFIG, ["adapt.lr=-1"])
    with pytest.raises(ConfigError, match="softmax_mask"):
        load_adapt_config(CONFIG, ["adapt.softmax_mask=other"])
    with pytest.raises(ConfigError, match="cells"):
        load_adapt_config(CONFIG, ["cells=[on/maybe]"])
    with pytest.raises(ConfigError, match="engine='sglang'.*transformers, vllm"):
        load_adapt_config(CONFIG, ["engine=sglang"])
    sub = argparse.ArgumentParser().add_subparsers()
    add_command(sub)
    assert "adapt" in sub.choices


@pytest.mark.parametrize("engine", ["transformers", pytest.param("vllm", marks=pytest.mark.vllm)])
def test_study_runs_on_the_tiny_model_and_records_delta_per_episode(tiny_model, tmp_path, engine):
    """Both engines serve the study's sessions: δ adapts per episode (prefills, norm > 0) and is reset after it."""
    if engine == "vllm":
        pytest.importorskip("vllm")
    cfg = load_adapt_config(CONFIG, [f"model={tiny_model}", "tasks=2", "max_turns=1", "max_new_tokens=6",
                                     "dtype=float32", "cells=[off/off, on/on]", "dynamics.steps=1",
                                     "dynamics.episodes_per_persona=1", f"output={tmp_path}", f"engine={engine}",
                                     "max_model_len=1024"])
    summary = asyncio.run(run_study(cfg))
    rows = {(r["delta"], r["dynamics"]): r for r in summary["rows"]}
    assert set(rows) == {("off", "off"), ("on", "on")} and all(r["episodes"] == 2 for r in rows.values())
    assert summary["exploration"]["episodes"] == 3  # three personas × one episode
    episodes = (tmp_path / "episodes.jsonl").read_text().splitlines()
    import json

    on = [json.loads(e) for e in episodes if json.loads(e)["cell"] == "on/on"]
    assert all(e["delta_state"]["prefills"] >= 1 and e["delta_state"]["delta_norm"] > 0 for e in on)
    assert "summariser rules" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "dynamics" / "formats.json").exists()
