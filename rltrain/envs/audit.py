"""User-simulator audit (issue 17): flag the episodes a simulated user spoils, then drop or down-weight them.

A spoiled episode is one where the user (or judge)
- contradicts the task's ground truth: where the rules oracle can decide the question (the constrained grammar
  of `rltrain.envs.questions` over the task's structured facts), the LLM's Yes/No must agree with it; a judge
  that rejects a guess which IS the entity's name, an Intention evaluator that misses the detail whose
  authored question was asked verbatim, or a Travel judge that types a grammar question about a hidden
  preference as anything but 2 (or one about a subcategory without a hidden preference as 2), contradicts it too;
- leaks the answer: a reply the agent sees names the hidden entity (Telepathy), states a hidden preference
  word for word (Travel), or states a hidden detail the question did not cover (Intention's free-text
  responder), by string match;
- breaks its persona (optional, `persona=True`): a role-play reply that says it is an AI or a language model.

Cheap by design: no model call. Where the oracle cannot decide (Maybe, free text), nothing is flagged, so the
audit's false positives come only from the oracle being wrong, which the truthful-rules tests rule out
(measured: 0 flags on the clean episodes of `tests/envs/test_audit.py`).

How it runs in training: every judged gym audits each reply it accepts (`audit_record` is registered in
`judged.CALL_AUDITS`, which `JudgedGym.ask_json` runs; `rltrain.envs` imports this module) and keeps the flags on that call's record (`Trajectory.user_calls[i]["audit"]`, next to
`["malformed"]`). After scoring, the driver calls `audit_episodes(trajectories, cfg.users.audit)`: it marks the
spoiled episodes failed when `users.audit.mode=drop` (the batch then leaves them out, as it does any failed
episode) and returns the step's `user/*` metrics, `user/invalid_reply_rate` among them.

Offline: `AuditingUser` wraps any `UserSim` and logs every (request, reply); `audit_calls(log, task_data)`
returns the flags, `episode_weight(flags, mode)` the episode's weight (1 keep, 0 drop, `downweight` factor), and
`audit_metrics` the shares of spoiled and dropped episodes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rltrain.envs.judged import CALL_AUDITS, normalize
from rltrain.envs.questions import NO_FACTS, Facts
from rltrain.users import UserReply, UserRequest, UserSim, parse_json_reply

if TYPE_CHECKING:
    from rltrain.config.users import AuditConfig
    from rltrain.types import Trajectory

Kind = Literal["contradiction", "leak", "persona"]
Mode = Literal["keep", "drop", "downweight"]

PERSONA_BREAKS = re.compile(r"\b(as an ai|an ai (language )?model|a language model|i am an ai|i'm an ai|"
                            r"as a large language model|i am an assistant|i'm an assistant)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Flag:
    """One reason an episode is spoiled: the call's key, what kind, and the evidence."""

    key: str
    kind: Kind
    detail: str


@dataclass
class AuditingUser:
    """A `UserSim` that forwards to `inner` and keeps every (request, reply) for the audit."""

    inner: UserSim
    log: list[tuple[UserRequest, UserReply]] = field(default_factory=list)

    async def respond(self, request: UserRequest) -> UserReply:
        reply = await self.inner.respond(request)
        self.log.append((request, reply))
        return reply


def _field(reply_text: str, name: str) -> Any:
    value = parse_json_reply(reply_text)
    return value.get(name) if value else None


def _yes_no(value: Any) -> bool | None:
    text = value.strip().lower() if isinstance(value, str) else ""
    return {"yes": True, "no": False}.get(text)


def _facts(data: Mapping[str, Any]) -> Facts:
    facts = data.get("facts") or NO_FACTS
    return Facts.of(facts["true"], facts["false"])


def audit_call(request: UserRequest, reply: UserReply, data: Mapping[str, Any], facts: Facts | None = None,
               persona: bool = False) -> list[Flag]:
    """The flags of one simulator call against the task `data` (the ground truth the gym was given)."""
    rule, text, flags = request.rule or "", reply.text, []
    ctx = request.context
    if rule in ("telepathy.question", "turtle.question"):
        truth = (facts or _facts(data)).decide(ctx.get("question", ""))
        said = _yes_no(_field(text, "response"))
        if truth is not None and said is not None and said != truth:
            flags.append(Flag(request.key, "contradiction",
                              f"{ctx.get('question')!r}: the user said {'Yes' if said else 'No'}, the facts say "
                              f"{'Yes' if truth else 'No'}"))
    elif rule == "telepathy.guess":
        from rltrain.envs.telepathy import names_entity  # the oracle's own rule

        names = [data["target_entity"], *data.get("aliases", [])]
        judged = _yes_no(_field(text, "judgment"))
        if judged is False and names_entity(ctx.get("guess", ""), names):
            flags.append(Flag(request.key, "contradiction", f"the guess {ctx.get('guess')!r} is the entity, judged No"))
        feedback = _field(text, "feedback")
        if judged is False and isinstance(feedback, str) and _names(feedback, names):
            flags.append(Flag(request.key, "leak", f"the feedback to a wrong guess names the entity: {feedback!r}"))
    elif rule == "intention.evaluate":
        from rltrain.envs.intention import asks_detail

        covered = _field(text, "covered_detail_indices")
        asked = [i for i, d in enumerate(ctx.get("details", []), 1) if asks_detail(ctx.get("question", ""), d)]
        if isinstance(covered, list) and asked and not set(asked) <= set(covered):
            flags.append(Flag(request.key, "contradiction",
                              f"{ctx.get('question')!r} is the authored question of details {asked}; covered {covered}"))
    elif rule == "intention.respond":  # free text: a detail the question did not cover, stated outright, is a leak
        for description in ctx.get("withheld_descriptions", []):
            if normalize(description) and normalize(description) in normalize(text):
                flags.append(Flag(request.key, "leak", f"states a detail that was not asked: {description!r}"))
    elif rule == "travel.judge":
        flags += _travel_judgment(request, text)
    elif rule.startswith("travel.") and rule != "travel.search":
        response = _field(text, "response")
        explicit = [row[2] for dim in data.get("dimensions", []) for row in data.get(dim, {}).get("preferences", [])]
        for statement in explicit:
            if isinstance(response, str) and normalize(statement) in normalize(response):
                flags.append(Flag(request.key, "leak", f"states a hidden preference outright: {statement!r}"))
    if persona and request.hat == "user":
        shown = _field(text, "response")
        shown = shown if isinstance(shown, str) else text
        if PERSONA_BREAKS.search(shown):
            flags.append(Flag(request.key, "persona", f"breaks the persona: {shown[:80]!r}"))
    return flags


def _travel_judgment(request: UserRequest, text: str) -> list[Flag]:
    """Where the grammar decides the utterance (`travel_truth`): an exact question about a hidden preference judged
    anything but type 2, or a question about a subcategory the traveler has no hidden preference in judged type 2."""
    from rltrain.envs.travel_truth import judge_type, judge_utterance  # the oracle's own rule

    truth, _ = judge_type(judge_utterance(request))
    said = str(_field(text, "type") or "").strip()
    utterance = request.context.get("utterance")
    if (truth == "2" and said in ("1", "3", "4")) or (truth == "3" and said == "2"):
        return [Flag(request.key, "contradiction", f"{utterance!r}: the judge said type {said}, the preferences say "
                                                   f"type {truth}")]
    return []


def _names(text: str, names: Iterable[str]) -> bool:
    padded = f" {normalize(text)} "
    return any(normalize(n) and f" {normalize(n)} " in padded for n in names)


def audit_calls(log: Iterable[tuple[UserRequest, UserReply]], data: Mapping[str, Any], persona: bool = False) -> list[Flag]:
    """Every flag of one episode's simulator calls (an `AuditingUser.log`) against its task `data`."""
    facts = _facts(data)
    return [flag for request, reply in log for flag in audit_call(request, reply, data, facts, persona)]


def episode_weight(flags: list[Flag], mode: Mode = "drop", downweight: float = 0.0) -> float:
    """The weight of an episode in the loss: 1 when clean or `mode` is keep; 0 (drop) or `downweight` when spoiled."""
    if not 0.0 <= downweight <= 1.0:
        raise ValueError(f"users.audit.downweight={downweight} must be in [0, 1]")
    if not flags or mode == "keep":
        return 1.0
    return 0.0 if mode == "drop" else downweight


def audit_metrics(flags_per_episode: list[list[Flag]], weights: list[float]) -> dict[str, float]:
    """Step metrics: the share of spoiled episodes, the share dropped (weight 0), by kind."""
    n = len(flags_per_episode)
    if not n:
        return {}
    out = {"user/audit_spoiled_rate": sum(bool(f) for f in flags_per_episode) / n,
           "user/audit_dropped_share": sum(w == 0.0 for w in weights) / n}
    for kind in ("contradiction", "leak", "persona"):
        out[f"user/audit_{kind}_rate"] = sum(any(x.kind == kind for x in f) for f in flags_per_episode) / n
    return out


def decidable_share(questions: Iterable[str], data: Mapping[str, Any]) -> float:
    """The share of `questions` the oracle decides for task `data` (how much of a user's answering it can check)."""
    facts, qs = _facts(data), list(questions)
    return sum(facts.decide(q) is not None for q in qs) / len(qs) if qs else 0.0



@CALL_AUDITS.register("ground_truth")
def audit_record(request: UserRequest, record: Mapping[str, Any], data: Mapping[str, Any]) -> list[dict[str, str]]:
    """The flags of one recorded call (`UserReply.record`, as the gym keeps it) against the task `data`, as plain
    dicts for the trajectory file. Every kind is flagged here, persona included; `audit_episodes` decides which
    count (`users.audit.persona`)."""
    reply = UserReply(str(record.get("text", "")))
    return [{"kind": f.kind, "detail": f.detail} for f in audit_call(request, reply, data, persona=True)]


def audit_episodes(trajectories: list[Trajectory], cfg: AuditConfig) -> dict[str, float]:
    """The driver's hook after scoring: drop the spoiled episodes (`users.audit.mode=drop`: marked failed, so the
    batch leaves them out and the accountant's score is not trained on) and return the step's `user/*` metrics.

    Metrics (over the episodes that called a simulated user; none without such episodes):
    `user/invalid_reply_rate`: the mean per-episode share of malformed simulator replies (retried or not);
    `user/audit_spoiled_rate`, `user/audit_dropped_share` and `user/audit_<kind>_rate` (`audit_metrics`).
    """
    counted = {"contradiction", "leak"} | ({"persona"} if cfg.persona else set())
    episodes = [t for t in trajectories if t.user_calls]
    if not episodes:
        return {}
    flags_per_episode, weights = [], []
    for t in episodes:
        flags = [Flag(call.get("key", ""), flag["kind"], flag["detail"])
                 for call in t.user_calls for flag in call.get("audit", ()) if flag["kind"] in counted]
        weight = episode_weight(flags, "drop" if cfg.mode == "drop" else "keep") if t.failure is None else 1.0
        if weight == 0.0:  # an episode that failed already keeps its own reason and is not the audit's drop
            t.failure = f"user audit ({len(flags)} flag(s); users.audit.mode=drop): {flags[0].kind}: {flags[0].detail}"
        flags_per_episode.append(flags)
        weights.append(weight)
    invalid = [sum("malformed" in c for c in t.user_calls) / len(t.user_calls) for t in episodes]
    return {"user/invalid_reply_rate": sum(invalid) / len(invalid), **audit_metrics(flags_per_episode, weights)}
