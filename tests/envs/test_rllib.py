"""The RLlib two-agent wrapper (`rltrain.envs.rllib`): RLlib's own env checker, and the agent/user turn order."""

from __future__ import annotations

import pytest

pytest.importorskip("ray.rllib")

from ray.rllib.utils.pre_checks.env import check_multiagent_environments  # noqa: E402

from rltrain.envs.rllib import AGENT, USER, TextMultiAgentEnv  # noqa: E402


@pytest.mark.parametrize("config", [{"env": "function_gym"}, {"env": "telepathy", "user": "rules", "split": "test"}])
def test_rllib_checker(config: dict) -> None:
    env = TextMultiAgentEnv(config)
    check_multiagent_environments(env)  # returns early (with a warning) unless the base attributes exist
    assert hasattr(env, "_agent_ids") and env.get_action_space(AGENT) is not None


def test_turns_reproduce_the_gym(rules_user) -> None:
    """Passing the proposed reply through unchanged plays the gym exactly; rewards go to the agent."""
    env = TextMultiAgentEnv({"env": "telepathy", "user": rules_user, "num_tasks": 1})
    obs, infos = env.reset(seed=0)
    entity = env.env.data["target_entity"]
    assert set(obs) == {AGENT} and "[finish]" in obs[AGENT] and env.observation_spaces[AGENT].contains(obs[AGENT])
    obs, rewards, done, cut, _ = env.step({AGENT: "[action] Is it an animal?"})
    assert set(obs) == {USER} and obs[USER]["proposed_reply"] in ("Yes", "No") and rewards == {AGENT: 0.0}
    assert obs[USER]["message"].startswith("[action]") and env.observation_spaces[USER].contains(obs[USER])
    obs, rewards, done, cut, _ = env.step({USER: "No (rewritten by the user agent)"})
    assert obs == {AGENT: "No (rewritten by the user agent)"} and rewards == {USER: 0.0} and not done["__all__"]
    call = f'<tool_call>{{"name": "interact_with_env", "arguments": {{"choice": "answer", "content": "{entity}"}}}}</tool_call>'
    obs, rewards, done, cut, _ = env.step({AGENT: call})
    assert rewards == {AGENT: 1.0} and done["__all__"] and not cut["__all__"]
    assert [c["key"] for c in env.env.user_calls] == [f"{infos[AGENT]['task_id']}#0/0", f"{infos[AGENT]['task_id']}#0/1"]


def test_format_error_and_truncation() -> None:
    env = TextMultiAgentEnv({"env": "function_gym", "env_kwargs": {"max_steps": 1}})
    env.reset(seed=1)
    _, rewards, done, _, infos = env.step({AGENT: "no tool call here"})
    assert done["__all__"] and rewards == {AGENT: 0.0} and infos[AGENT]["format_error"].startswith("no_call")
    env.reset()
    _, _, done, cut, _ = env.step({AGENT: "[action] 1,2,3,4"})
    assert cut["__all__"] and not done["__all__"]


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="env_config needs 'env'"):
        TextMultiAgentEnv({"env": "turtle", "users": "rules"})
