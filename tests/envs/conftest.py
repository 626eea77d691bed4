"""In-process stand-ins for the simulated-user service (`rltrain.users.UserSim`), shared by the gym tests.

- `RulesUser`: answers every request with its registered rules responder (`USER_RULES`), as the service's
  rules backend does.
- `ScriptedUser`: answers with given texts in order, for the requests whose rule is scripted (all of them by
  default; `rules=` names the scripted ones and the rest go to the rules responders). Used where the rule is
  not what a test checks, e.g. to feed judged scores or malformed JSON to the gym.
- `FailingUser`: raises `UserSimError`, as the service does when it is down.

Each keeps the requests it received in `requests`. Fixtures: `rules_user`, `scripted_user(*texts, rules=...)`,
`failing_user`, and `start_gym(name, user, task_id, **kwargs)`, which makes a registered gym, binds the user
under episode "t#0" and resets it on the task with that id. `papers_rule(env)` puts a judged gym in the papers'
malformed-reply rule (no retry, the gym's fallback with reward 0), where a test checks that fallback.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rltrain.envs import TextEnv, make_env
from rltrain.types import Task
from rltrain.users import USER_RULES, UserReply, UserRequest, UserSimError


class RulesUser:
    """Answers with the rules responder named by each request's `rule`."""

    def __init__(self) -> None:
        self.requests: list[UserRequest] = []

    async def respond(self, request: UserRequest) -> UserReply:
        self.requests.append(request)
        assert request.rule is not None, "a request without a rule cannot be answered by the rules backend"
        return UserReply(text=USER_RULES.get(request.rule)(request), backend="rules")


class ScriptedUser(RulesUser):
    """Answers the scripted requests with `texts` in order; other rules (if `rules` is given) by their responders."""

    def __init__(self, *texts: str, rules: set[str] | None = None) -> None:
        super().__init__()
        self.texts, self.rules = list(texts), rules

    async def respond(self, request: UserRequest) -> UserReply:
        if self.rules is not None and request.rule not in self.rules:
            return await super().respond(request)
        self.requests.append(request)
        assert self.texts, f"script exhausted at {request.rule} (call {request.call})"
        return UserReply(text=self.texts.pop(0), backend="scripted", prompt_tokens=10, completion_tokens=5)


class FailingUser(RulesUser):
    """The service is down."""

    async def respond(self, request: UserRequest) -> UserReply:
        self.requests.append(request)
        raise UserSimError("user service unreachable (test stand-in)")


@pytest.fixture
def rules_user() -> RulesUser:
    return RulesUser()


@pytest.fixture
def scripted_user() -> Callable[..., ScriptedUser]:
    return ScriptedUser


@pytest.fixture
def failing_user() -> FailingUser:
    return FailingUser()


@pytest.fixture
def start_gym() -> Callable[..., TextEnv]:
    def start(name: str, user: RulesUser | None, task: str | Task, **kwargs: object) -> TextEnv:
        env = make_env(name, dict(kwargs))
        if isinstance(task, str):
            pool = [t for split in ("train", "test") for t in env.tasks(split, 200, seed=0)]
            task = next(t for t in pool if t.task_id == task)
        env.bind_user(user, "t#0")
        env.reset(task)
        return env

    return start


def papers_rule(env: TextEnv) -> TextEnv:
    """No retry, and the gym's fallback with reward 0 for a malformed reply (UserRL spec §1.4), instead of the
    default: retries, then `MalformedReplyError` (issue 17, tests/envs/test_judged.py)."""
    env.judge_retries, env.on_malformed = 0, "fallback"  # type: ignore[attr-defined]
    return env
