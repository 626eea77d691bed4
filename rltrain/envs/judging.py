"""Which gyms are judged, the config-time refusal of an implicit `rules` user for them, and strict judge parsing.

A judged gym is one whose reward comes from a simulated user or judge (issue 17): every `JudgedGym`
(Telepathy, Turtle, Persuade, Intention, Travel, Search), and a `mix` that contains one. The `rules` backend's
responders are test fixtures (truthful, but they decide only what their grammar parses), so training a judged
gym on them must be asked for explicitly. `check_user_backend` is the config-time check; `parse_strict` is the
judge-reply parser, and `ask_strict` asks again until a reply parses (both defined in `rltrain.envs.judge_parsing`,
below the gyms, and re-exported here). The pre-flight (`rltrain/preflight.py`) calls the first; every judged gym's
`JudgedGym.ask_json` goes through the second: a reply still malformed after the retries raises
`MalformedReplyError`, a `UserSimError`, so the episode is marked failed (never reward 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rltrain.envs.base import ENVIRONMENTS
from rltrain.envs.judge_parsing import JudgeError, MalformedReplyError, ask_strict, invalid_reply_rate, parse_strict
from rltrain.envs.judged import JudgedGym
from rltrain.errors import ConfigError

__all__ = ["RULES_SCORABLE", "JudgeError", "MalformedReplyError", "ask_strict", "check_user_backend", "invalid_reply_rate",
           "judged_gym", "parse_strict"]

RULES_SCORABLE = {"telepathy": "questions and guesses (attributes and names are decidable)",
                  "turtle": "questions, and stories written one fact per clause",
                  "intention": "questions that are a detail's authored question",
                  "persuade": "arguments that state an authored counterpoint; not free-text persuasion"}
"""What the rules fixtures can score for each judged gym (docs/gyms.md, "Which gyms a rules user can score")."""


def judged_gym(env_name: str, env_kwargs: Mapping[str, Any] | None = None) -> bool:
    """Whether `env_name` (with its kwargs, for `mix`) takes its reward from a simulated user or judge.

    >>> import rltrain.envs  # registers the gyms
    >>> judged_gym("telepathy"), judged_gym("function_gym")
    (True, False)
    >>> judged_gym("mix", {"gyms": {"function_gym": {}, "turtle": {"weight": 2}}})
    True
    """
    if env_name == "mix":
        return any(judged_gym(name, (spec or {}).get("kwargs")) for name, spec in dict((env_kwargs or {}).get("gyms", {})).items())
    if env_name not in ENVIRONMENTS:
        raise ConfigError(f"env.name={env_name!r} is not a registered environment; choose from {', '.join(ENVIRONMENTS)}")
    cls = ENVIRONMENTS.get(env_name)
    return isinstance(cls, type) and issubclass(cls, JudgedGym)


def check_user_backend(env_name: str, env_kwargs: Mapping[str, Any] | None, backend: str, rules_explicit: bool) -> None:
    """Refuse training a judged gym against the `rules` fixtures unless the config says so explicitly.

    Args:
        env_name, env_kwargs: the config's `env.name` and `env.kwargs`.
        backend: `users.backend`.
        rules_explicit: whether the config (file or override) set `users.backend: rules` itself, rather than
            inheriting the default.

    Raises:
        ConfigError: naming the gym, why, and both fixes.
    """
    if backend != "rules" or rules_explicit or not judged_gym(env_name, env_kwargs):
        return
    raise ConfigError(
        f"env.name={env_name!r} is a judged gym (its reward comes from a simulated user or judge), and users.backend "
        "defaults to 'rules': keyword-free test fixtures that score only what their question grammar decides "
        "(docs/gyms.md, 'Which gyms a rules user can score'). Set users.backend=vllm with "
        "users.model=<a local instruct model folder, e.g. qwen2.5-coder-0.5b-instruct>, or users.backend=openai with "
        "users.base_url=<endpoint>; or set users.backend=rules explicitly to train against the fixtures on purpose.")
