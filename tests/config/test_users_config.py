"""The `users` section: strict values, and the checks against the environment made before Ray starts."""

from __future__ import annotations

from pathlib import Path

import pytest

import rltrain.envs.telepathy  # noqa: F401  (registers a gym that needs a user)
from rltrain.config import ConfigError, load_config
from rltrain.preflight import check_user_source, prepare, requirements


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["users.backend=llama"], "users.backend='llama' is not a valid choice; use one of: 'rules', 'vllm', 'openai'"),
        (["users.num_actors=-1"], "users.num_actors=-1 must be >= 0"),
        (["users.max_in_flight=0"], "users.max_in_flight=0 must be >= 1"),
        (["users.timeout_s=0"], "users.timeout_s=0.0 must be > 0"),
        (["users.retries=-2"], "users.retries=-2 must be >= 0"),
        (["users.cache_size=-1"], "users.cache_size=-1 must be >= 0 (0 disables the cache)"),
        (["users.personas=['a', ' ']"], "users.personas has an empty entry"),
        (["users.backend=openai"], "users.backend=openai needs users.model"),
        (["users.base_url=localhost:8000"], "users.base_url='localhost:8000' must start with http://"),
        (["users.api_key_env=sk-abc123"], "users.api_key_env must be the NAME of an environment variable"),
        (["users.max_restarts=-1"], "users.max_restarts=-1 must be >= 0"),
        (["users.audit.mode=downweight"], "users.audit.mode='downweight' is not a valid choice; use one of: 'drop', 'keep'"),
    ],
)
def test_bad_users_values_name_key_and_fix(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert needle in str(err.value)
    assert "abc123" not in str(err.value)  # a pasted key is never echoed


def test_a_gym_that_needs_a_user_checks_the_users_section(tiny_model: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    base = [f"model.name={tiny_model}", "env.name=telepathy", "users.backend=rules"]
    with pytest.raises(ConfigError, match="env.name='telepathy' needs a simulated user but users.num_actors=0; set users.num_actors=1"):
        prepare(load_config(None, [*base, "users.num_actors=0"]))
    with pytest.raises(ConfigError, match="users.replay_from='nope.jsonl' does not exist"):
        prepare(load_config(None, [*base, "users.replay_from=nope.jsonl"]))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    openai = [*base, "users.backend=openai", "users.model=m"]
    with pytest.raises(ConfigError, match="needs an endpoint: set users.base_url"):
        prepare(load_config(None, openai))
    monkeypatch.delenv("RLTRAIN_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ConfigError, match="environment variable RLTRAIN_TEST_UNSET_KEY, which is not set"):
        prepare(load_config(None, [*openai, "users.base_url=http://127.0.0.1:1/v1", "users.api_key_env=RLTRAIN_TEST_UNSET_KEY"]))
    prep = prepare(load_config(None, [*base, "users.backend=vllm", f"users.model={tiny_model}"]))
    assert prep.user_model_path == str(tiny_model)
    assert prepare(load_config(None, [*base, "users.num_actors=2"])).user_model_path is None  # rules: no model


def test_an_implicit_rules_user_is_refused_for_a_judged_gym(tmp_path: Path) -> None:
    """Issue 17: the rules responders are test fixtures. Training a judged gym (or a mix with one) on them must be
    asked for, in the YAML or by an override; the refusal comes before any model is resolved, naming key and fix."""
    refused = r"env.name='(telepathy|mix)' is a judged gym.*users.backend=vllm.*users.backend=rules explicitly"
    for overrides in (["env.name=telepathy"], ["env.name=mix", "env.kwargs={gyms: {function_gym: {}, travel: {}}}"]):
        cfg = load_config(None, overrides)
        assert cfg.users.backend == "rules" and not cfg.users.backend_explicit
        with pytest.raises(ConfigError, match=refused):
            prepare(cfg)
        with pytest.raises(ConfigError, match=refused):
            check_user_source(cfg, needs_users=True)
        check_user_source(load_config(None, [*overrides, "users.backend=rules"]), needs_users=True)  # on purpose
    yaml_file = tmp_path / "job.yaml"
    yaml_file.write_text("env: {name: turtle}\nusers: {backend: rules}\n")
    assert load_config(yaml_file).users.backend_explicit  # set in the file counts as explicit too
    check_user_source(load_config(yaml_file), needs_users=True)
    check_user_source(load_config(None, ["env.name=telepathy", "users.replay_from=x.jsonl"]), needs_users=True)  # replay
    check_user_source(load_config(None, ["env.name=function_gym"]), needs_users=True)  # not judged: rules are fine
    check_user_source(load_config(None, ["env.name=telepathy"]), needs_users=False)  # e.g. search judging by exact match


def test_user_actors_count_in_resources_only_when_the_gym_needs_them() -> None:
    plain = load_config(None, ["users.num_actors=4", "users.num_cpus=1"])  # arithmetic: no user actors
    telepathy = load_config(None, ["env.name=telepathy", "users.num_actors=4", "users.num_cpus=1", "users.num_gpus=0.5"])
    assert requirements(telepathy).cpus == requirements(plain).cpus + 4
    with pytest.raises(ConfigError, match=r"users.num_actors x users.num_cpus"):
        requirements(telepathy).check({"CPU": requirements(plain).cpus})
    with pytest.raises(ConfigError, match="the roles need 2 GPUs"):
        requirements(telepathy).check({"CPU": 64.0})
    requirements(telepathy).check({"CPU": 64.0, "GPU": 2.0})
    requirements(plain).check({"CPU": requirements(plain).cpus})
