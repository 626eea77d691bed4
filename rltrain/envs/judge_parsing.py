"""Strict parsing of simulator replies (issue 17): a reply either has the asked-for JSON shape or is malformed.

`parse_strict` is the parser, `ask_strict` asks again until a reply parses, and `MalformedReplyError` is what a
judged gym raises when none did (`JudgedGym.ask_json`): a `UserSimError`, so the episode is marked failed, never
scored 0. Pure logic, below the gyms: `rltrain.envs.judging` re-exports it with the config-time checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rltrain.users import UserSimError, parse_json_reply

T = TypeVar("T")


class JudgeError(ValueError):
    """A simulator reply that does not have the shape the gym asked for (raised by `ask_json` parsers)."""


class MalformedReplyError(UserSimError):
    """The simulated user or judge answered in a malformed way on every attempt: the simulator's failure, so the
    episode is marked failed (a `UserSimError`), never scored 0 as if the agent had erred."""


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
