"""Judged gyms, the config-time refusal of an implicit `rules` user, and strict judge parsing with retries (issue 17)."""

from __future__ import annotations

import asyncio

import pytest

import rltrain.envs  # noqa: F401  (registers the gyms)
from rltrain.envs.judged import JudgeError
from rltrain.envs.judging import ask_strict, check_user_backend, invalid_reply_rate, judged_gym, parse_strict
from rltrain.errors import ConfigError


@pytest.mark.parametrize(("name", "kwargs", "judged"), [
    ("telepathy", None, True), ("turtle", None, True), ("persuade", None, True), ("intention", None, True),
    ("travel", None, True), ("function_gym", None, False), ("arithmetic", None, False),
    ("mix", {"gyms": {"function_gym": {}, "persuade": {"weight": 2}}}, True),
    ("mix", {"gyms": {"function_gym": {}, "arithmetic": {}}}, False),
])
def test_judged_gym(name: str, kwargs, judged: bool) -> None:
    assert judged_gym(name, kwargs) is judged


def test_implicit_rules_backend_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"env.name='telepathy' is a judged gym.*users.backend=vllm.*users.model=.*"
                                          r"users.backend=rules explicitly"):
        check_user_backend("telepathy", None, "rules", rules_explicit=False)
    with pytest.raises(ConfigError, match="env.name='mix' is a judged gym"):
        check_user_backend("mix", {"gyms": {"function_gym": {}, "turtle": {}}}, "rules", rules_explicit=False)
    check_user_backend("telepathy", None, "rules", rules_explicit=True)  # asked for on purpose
    check_user_backend("telepathy", None, "vllm", rules_explicit=False)
    check_user_backend("function_gym", None, "rules", rules_explicit=False)  # no judge: rules are the default
    with pytest.raises(ConfigError, match="not a registered environment"):
        check_user_backend("telepathyy", None, "rules", rules_explicit=False)


def verdict(value: dict) -> str:
    if value["judgment"] not in ("Yes", "No"):
        raise JudgeError(f"judgment={value['judgment']!r} is not Yes or No")
    return value["judgment"]


@pytest.mark.parametrize(("text", "reason"), [
    ("Yes.", "no JSON object"), ('{"verdict": "Yes"}', "missing field 'judgment'"),
    ('{"judgment": "Probably"}', "not Yes or No"), ('```json\n{"judgment": Yes}\n```', "no JSON object"),
])
def test_parse_strict_rejects(text: str, reason: str) -> None:
    with pytest.raises(JudgeError, match=reason):
        parse_strict(text, verdict)


def test_retries_then_user_failure() -> None:
    replies = iter(["Sure!", '{"judgment": "maybe"}', '{"judgment": "Yes"}'])
    attempts: list[int] = []

    async def ask(attempt: int) -> str:
        attempts.append(attempt)
        return next(replies)

    value, tries, reasons = asyncio.run(ask_strict(ask, verdict, retries=2))
    assert (value, tries, attempts) == ("Yes", 3, [0, 1, 2]) and len(reasons) == 2

    async def broken(attempt: int) -> str:
        return "no json"

    value, tries, reasons = asyncio.run(ask_strict(broken, verdict, retries=1))
    assert value is None and tries == 2 and reasons == ["no JSON object in the reply"] * 2  # a user failure
    assert invalid_reply_rate(replies=4, malformed=1) == {"user/invalid_reply_rate": 0.25}
    assert invalid_reply_rate(0, 0) == {"user/invalid_reply_rate": 0.0}
