"""xRouter's cost-shaped, success-gated reward (spec §4.4) and the task verifiers that give its success score s.

    R = s · (K − min(λ·C, c_max))          λ = 3.0, K = 1.0, c_max = 0.8 by default (released script)

- C: USD of the trajectory's routed calls, priced by the run's price table (the same records the cost ledger
  stores; `rltrain.costs`). Failed calls cost 0.
- s ∈ [0, 1] from a verifier on the final solution (`VERIFIERS`): `last_number` (the quickstart's rule: the last
  number in the text equals the answer; SmolLM2 never answers with the bare number), `word_problems` ("the answer
  is N", else the last number), `string_match` (normalised equality), or a user function `module:function`.
- Final-answer extraction (§4.4.1): the solution is valid only if the LAST turn routed to the user alone (a plain-
  text answer, or a lone `select_response`); otherwise it is "No valid solution found!" and s = 0.
- "simple" sources (§4.4.1): s = 1 iff no tool was called anywhere in the episode (trivial queries must be answered
  directly), whatever the text says.

The router environment (`rltrain/envs/router.py`) knows all of these facts when its episode ends, so it computes R
with `router_reward` and returns it as the final turn's reward (the UserRL pattern, spec §7.4 W1); the run's reward
function is then `turn_rewards`. `router_reward` is pure and tested branch by branch (tests/envs/test_router.py).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewards.word_problems import parse_answer

NO_SOLUTION = "No valid solution found!"
"""The solution when the last turn did not route to the user (§4.4.1); it scores 0 under every verifier."""

_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)


def strip_think(text: str) -> str:
    """The text without `<think>...</think>` blocks (an unclosed one runs to the end).

    >>> strip_think("<think>add them</think>The sum is 7.")
    'The sum is 7.'
    """
    return _THINK.sub("", text).strip()


def last_number(text: str) -> float | None:
    """The last number in `text` (commas as thousands separators), or None.

    >>> last_number("3 + 4 = 7.")
    7.0
    >>> last_number("about 1,200 apples") is None
    False
    >>> last_number("none") is None
    True
    """
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", "").rstrip("."))
    except ValueError:
        return None


def _number_equal(value: float | None, answer: Any) -> bool:
    try:
        return value is not None and abs(value - float(answer)) <= 1e-6 * max(1.0, abs(float(answer)))
    except (TypeError, ValueError):
        return False


def verify_last_number(solution: str, answer: Any) -> float:
    """1 when the last number in the solution equals the answer (the quickstart's arithmetic rule)."""
    return float(_number_equal(last_number(strip_think(solution)), answer))


def verify_word_problems(solution: str, answer: Any) -> float:
    """1 when "the answer is N" (else the last number) equals the answer (`rewards.word_problems`)."""
    parsed = parse_answer(strip_think(solution))
    return float(parsed is not None and _number_equal(float(parsed), answer))


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def verify_string_match(solution: str, answer: Any) -> float:
    """1 when the solution equals the answer after lower-casing and dropping punctuation (any of a list of answers)."""
    answers = answer if isinstance(answer, (list, tuple)) else [answer]
    return float(_normalise(strip_think(solution)) in {_normalise(str(a)) for a in answers})


Verifier = Callable[[str, Any], float]
VERIFIERS: dict[str, Verifier] = {"last_number": verify_last_number, "word_problems": verify_word_problems,
                                  "string_match": verify_string_match}


def resolve_verifier(name: str) -> Verifier:
    """A named verifier, or a user function given as `module:function` (called as `fn(solution, answer) -> float`)."""
    if name in VERIFIERS:
        return VERIFIERS[name]
    module, _, attr = name.partition(":")
    if not attr:
        raise ValueError(f"verifier {name!r} is not one of {sorted(VERIFIERS)} and not a 'module:function' path; set "
                         f"env.kwargs.verifier (or the task's 'verifier') to one of them")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"verifier {name!r} cannot be imported ({type(err).__name__}: {err}); it must be an importable "
                         f"function fn(solution: str, answer) -> float in [0, 1]") from None
    return fn


@dataclass(frozen=True)
class Route:
    """One assistant turn of a router episode, as §4.1's per-turn record: where it routed and what came back.

    Attributes:
        route_to: "user" for a plain-text answer or a select_response, else the model ids called, in order.
        feedback: the text that goes to the user for a "user" route (the answer, or the selected output).
        selected: the "user" route was a `select_response` call (a tool call, for the "simple" rule).
    """

    route_to: tuple[str, ...]
    feedback: str = ""
    selected: bool = False


def final_solution(routes: list[Route]) -> str:
    """§4.4.1: the last turn's feedback if it routed to the user alone, else `NO_SOLUTION`.

    >>> final_solution([Route(("m1",)), Route(("user",), "42")])
    '42'
    >>> final_solution([Route(("m1",))])
    'No valid solution found!'
    """
    if routes and routes[-1].route_to == ("user",):
        return routes[-1].feedback
    return NO_SOLUTION


@dataclass(frozen=True)
class RouterReward:
    """The reward's constants (spec §4.4.3; configurable as env.kwargs.reward)."""

    lam: float = 3.0
    k: float = 1.0
    c_max: float = 0.8

    def __post_init__(self) -> None:
        if self.lam < 0 or self.c_max < 0 or self.k <= 0:
            raise ValueError(f"router reward needs lam >= 0, c_max >= 0 and k > 0, got lam={self.lam}, k={self.k}, "
                             f"c_max={self.c_max} (env.kwargs.reward)")

    def shape(self, score: float, cost_usd: float) -> float:
        """R = s · (K − min(λ·C, c_max)).

        >>> RouterReward().shape(1.0, 0.05)  # 1 - 3 * 0.05
        0.85
        >>> RouterReward().shape(1.0, 1.0)  # the penalty is capped at c_max
        0.19999999999999996
        >>> RouterReward().shape(0.0, 0.0)  # wrong answers get 0 whatever they cost
        0.0
        """
        return score * (self.k - min(self.lam * cost_usd, self.c_max))


def router_reward(routes: list[Route], answer: Any, verifier: Verifier, cost_usd: float, simple: bool = False,
                  constants: RouterReward | None = None) -> dict[str, float]:
    """R and its parts for one finished episode: `reward`, `score` (s), `cost_usd` (C), `valid` (the last turn routed
    to the user), `tool_called`.

    `simple`: the task's source contains "simple" — s = 1 iff no tool was called anywhere (§4.4.1).
    """
    constants = constants or RouterReward()
    tool_called = any(route.route_to != ("user",) or route.selected for route in routes)
    solution = final_solution(routes)
    valid = solution is not NO_SOLUTION
    if simple:
        score = float(not tool_called and valid)
    else:
        score = float(verifier(solution, answer)) if valid else 0.0
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"the verifier returned s={score}, outside [0, 1]; a router verifier must score in [0, 1]")
    return {"reward": constants.shape(score, cost_usd), "score": score, "cost_usd": cost_usd, "valid": float(valid),
            "tool_called": float(tool_called)}


def routing_metrics(trajectories: list[Any], prefix: str = "router", collapse_share: float = 0.9) -> dict[str, float]:
    """Per-step (or per-eval) routing metrics of router trajectories; empty when none made or could make pool calls.

    `accuracy` (share with s > 0, i.e. R > 0 since K > c_max), `usd_per_query` (pool USD, from the records' `usd`),
    `calls_per_query`, `direct_rate` (no pool call), `failed_call_rate`, `cost_utility` (accuracy / USD per query),
    `share/<model>` (each model's share of the successful pool calls), `entropy` (of that distribution, nats) and
    `collapsed` (1 when one model takes more than `collapse_share` of the calls; a warning is logged: Router-R1 sends
    about 98 % of its calls to one model, and we want to see that happen).
    """
    import logging
    import math

    scored = [t for t in trajectories if not getattr(t, "failed", False) and getattr(t, "env", "") == "router"]
    if not scored:
        return {}
    n = len(scored)
    pool = [[c for c in t.user_calls if c.get("role") == "pool"] for t in scored]
    ok = [c for calls in pool for c in calls if c.get("success", True)]
    usd = sum(float(c.get("usd") or 0.0) for calls in pool for c in calls) / n
    accuracy = sum((t.reward or 0.0) > 0 for t in scored) / n
    out = {f"{prefix}/accuracy": accuracy, f"{prefix}/usd_per_query": usd,
           f"{prefix}/calls_per_query": sum(len(calls) for calls in pool) / n,
           f"{prefix}/direct_rate": sum(not calls for calls in pool) / n,
           f"{prefix}/failed_call_rate": (sum(len(calls) for calls in pool) - len(ok)) / max(1, sum(len(c) for c in pool)),
           f"{prefix}/cost_utility": accuracy / usd if usd > 0 else float("inf") if accuracy > 0 else 0.0}
    if ok:
        counts: dict[str, int] = {}
        for c in ok:
            counts[str(c.get("model"))] = counts.get(str(c.get("model")), 0) + 1
        shares = {m: k / len(ok) for m, k in counts.items()}
        out.update({f"{prefix}/share/{m}": s for m, s in shares.items()})
        out[f"{prefix}/entropy"] = -sum(s * math.log(s) for s in shares.values())
        top, share = max(shares.items(), key=lambda kv: kv[1])
        out[f"{prefix}/collapsed"] = float(share > collapse_share and len(ok) >= 10)
        if out[f"{prefix}/collapsed"]:
            logging.getLogger(__name__).warning("routing collapse: %s takes %.0f%% of %d pool calls", top, 100 * share, len(ok))
    return out
