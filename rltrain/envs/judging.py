"""Which gyms are judged, the config-time refusal of an implicit `rules` user for them, and strict judge parsing.

A judged gym is one whose reward comes from a simulated user or judge (issue 17): every `JudgedGym`
(Telepathy, Turtle, Persuade, Intention, Travel, Search), and a `mix` that contains one. The `rules` backend's
responders are test fixtures (truthful, but they decide only what their grammar parses), so training a judged
gym on them must be asked for explicitly. `check_user_backend` is the config-time check; `parse_strict` is the
judge-reply parser with retries. Both are pure functions: the config loader (`rltrain/config/users.py`) and the
user service (`actors/user.py`) call them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from rltrain.envs.base import ENVIRONMENTS
from rltrain.envs.judged import JudgedGym, JudgeError
from rltrain.errors import ConfigError
from rltrain.users import parse_json_reply

T = TypeVar("T")

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


def parse_strict(text: str, parse: Callable[[dict[str, Any]], T]) -> T:
    """The judge reply's JSON object through `parse`; JudgeError when there is none or it has the wrong shape.

    >>> parse_strict('```json\\n{"response": "Yes"}\\n```', lambda v: v["response"])
    'Yes'
    """
    value = parse_json_reply(text)
    if value is None:
        raise JudgeError("no JSON object in the reply")
    try:
        return parse(value)
    except JudgeError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise JudgeError(f"missing field {err}" if isinstance(err, KeyError) else str(err)) from err


async def ask_strict(ask: Callable[[int], Awaitable[str]], parse: Callable[[dict[str, Any]], T], retries: int = 2
                     ) -> tuple[T | None, int, list[str]]:
    """Ask a judge up to `1 + retries` times until its reply parses strictly.

    `ask(attempt)` returns the reply text of one attempt (the caller varies the seed per attempt). Returns (the
    parsed value or None when every attempt was malformed, the attempts made, the reasons of the malformed
    ones). None is a user failure, counted in `user/invalid_reply_rate` and never the agent's fault: the
    caller marks the turn (or, by its policy, the episode) as the simulator's, not as reward 0 for a bad move.
    """
    if retries < 0:
        raise ValueError(f"retries={retries} must be >= 0")
    reasons: list[str] = []
    for attempt in range(1 + retries):
        try:
            return parse_strict(await ask(attempt), parse), attempt + 1, reasons
        except JudgeError as err:
            reasons.append(str(err))
    return None, 1 + retries, reasons


def invalid_reply_rate(replies: int, malformed: int) -> dict[str, float]:
    """The per-episode metric `user/invalid_reply_rate` (malformed replies / replies; 0 without replies)."""
    return {"user/invalid_reply_rate": malformed / replies if replies else 0.0}
