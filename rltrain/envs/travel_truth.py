"""The truthful rules judge of TravelGym's utterances (issue 17): the `travel.judge` responder.

TravelGym (`rltrain/envs/travel.py`) registers it as its `travel.judge` rule, in place of the keyword matcher it had.

The judge decides from the traveler's structured preferences (the hidden preferences still available, each an
aspect and a subcategory of the catalog) through the question grammar of `rltrain.envs.questions`: an
utterance is type 2 (asks a hidden preference) only when it IS one of the preference questions below about
that subcategory, type 3 when it is such a question about a subcategory of a requested aspect the traveler has
no hidden preference on, type 4 when it is a vague preference question, and type 1 otherwise. A compound
question or a list of subcategories matches no question, so stuffing every keyword into one turn is type 1.
"""

from __future__ import annotations

import functools
from typing import Any

from rltrain.envs.judged import fenced_json
from rltrain.envs.questions import parse
from rltrain.users import UserRequest

ASK = ("Do you have a preference about {w}?", "Do you have any preference for {w}?", "Is {w} important to you?",
       "Do you need {w}?", "What {w} do you prefer?", "Do you have any requirements for {w}?")
"""The preference questions the grammar decides, about one subcategory word {w}."""
VAGUE = ("Do you have any preferences?", "Do you have any preferences for the {a}?", "What do you want?",
         "Do you have any requirements?", "Is there anything else I should know?")


@functools.cache  # pure, and parsing every template for every keyword took ~13 ms per judged utterance
def _keys(templates: tuple[str, ...], **slot: str) -> frozenset[str]:
    return frozenset(parse(t.format(**slot)).key for t in templates)


def judge_utterance(request: UserRequest) -> str:
    """Type 2/3/4/1 by the grammar (see the module docstring); the same JSON as the LLM judge."""
    ctx = request.context
    key = parse(ctx["utterance"]).key
    subcategories: dict[tuple[str, str], list[str]] = {
        (aspect, sub): words for aspect, subs in ctx["keywords"].items() for sub, words in subs.items()}
    asked = [pair for pair, words in subcategories.items() if any(key in _keys(ASK, w=w) for w in words)]
    for pref in ctx["available"]:
        if (pref["aspect"], pref["subcategory"]) in asked:
            return fenced_json({"thought": f"asks about {pref['subcategory']}", "type": "2", "preference_id": pref["id"]})
    if asked:
        return fenced_json({"thought": "a specific question, no such hidden preference", "type": "3"})
    vague = _keys(VAGUE, a="") | {k for aspect in ctx["keywords"] for k in _keys(VAGUE, a=aspect.replace("_", " "))}
    if key in vague:
        return fenced_json({"thought": "vague", "type": "4"})
    return fenced_json({"thought": "normal conversation", "type": "1"})


def judge_type(reply: str) -> tuple[str, Any]:
    """(type, preference_id) of a judge reply, for tests."""
    from rltrain.users import parse_json_reply

    value = parse_json_reply(reply) or {}
    return str(value.get("type")), value.get("preference_id")
