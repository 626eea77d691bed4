"""The pre-flight runs once and builds the environment once (issue 13, part 1); what it refuses: tests/test_cli.py
(`--dry-run`) and tests/config/."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrain import preflight
from rltrain.config import ConfigError, load_config

TINY = Path(__file__).parents[1] / "launch" / "configs" / "tiny.yaml"


def test_the_environment_is_built_once(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    original = preflight.make_env
    monkeypatch.setattr(preflight, "make_env", lambda *args: built.append(args) or original(*args))
    prep = preflight.prepare(load_config(TINY, [f"model.name={tiny_model}"]))
    assert len(built) == 1
    # everything after reads the answer: users, the placement plan, the CPUs
    assert prep.needs_users is False and "users" not in prep.requirements.plan.slots
    assert prep.requirements.cpus == 2 * 1.0 + 2 * 1.0 + 0.5  # tiny.yaml: 2 workers, 2 ranks, the accountant (the ledger takes 0)
    assert prep.tokenizer is not None and prep.model_path == str(tiny_model)


def test_a_telepathy_run_reserves_its_users_once(tiny_model: Path) -> None:
    prep = preflight.prepare(load_config(TINY, [f"model.name={tiny_model}", "env.name=telepathy", "users.backend=rules", "users.num_actors=2",
                                               "users.num_cpus=2", "model.max_model_len=1024"]))
    assert prep.needs_users and len(prep.requirements.plan.slots["users"]) == 2
    assert prep.requirements.cpus == 4.5 + 4


def test_context_counts_the_chat_template(tiny_model: Path) -> None:
    cfg = load_config(TINY, [f"model.name={tiny_model}"])
    names = preflight.check_names(cfg)
    tokenizer = preflight.load_tokenizer(str(tiny_model), "model.name")
    longest = preflight.opening_prompt_tokens(cfg, names.env, tokenizer)
    assert 20 < longest < 120  # a short arithmetic question inside SmolLM2's chat template (system + user turns)
    fits = load_config(TINY, [f"model.name={tiny_model}", f"rollout.max_new_tokens={256 - longest}"])
    assert preflight.check_context(fits, names.env, tokenizer) == longest
    over = load_config(TINY, [f"model.name={tiny_model}", f"rollout.max_new_tokens={256 - longest + 1}"])
    with pytest.raises(ConfigError, match=f"lower rollout.max_new_tokens to at most {256 - longest}"):
        preflight.check_context(over, names.env, tokenizer)


def test_a_folder_without_a_tokenizer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model.name: the tokenizer in .* does not load"):
        preflight.load_tokenizer(str(tmp_path), "model.name")
