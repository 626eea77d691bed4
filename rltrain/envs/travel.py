"""TravelGym (UserBench, spec §2; UserRL's "TravelGym", spec §1.5): elicit hidden preferences, search, recommend.

A traveler needs several things booked (aspects: flight, hotel, apartment, rental_car, restaurant). Each aspect
hides 2-4 preferences; the agent must uncover them by asking, search the database with the right arguments,
and recommend the cheapest option that satisfies all of them. Verbs (spec §1.3, §2.2, §2.3):

- `[action] utterance`: a judge classifies the utterance (JUDGE, JSON {thought, type, preference_id}):
  type 2 (asks about a hidden preference) -> the user reveals it implicitly, reward `preference_correct_reward`
  ("active" elicitation); type 3 (asks about a preference the user does not have) and type 4 (too vague)
  -> canned replies; type 1 (anything else) -> a neutral reply that reveals nothing; all three reward 0.
  After two consecutive off-target turns (the counter reaches `elicitation_interval - 1`), the third one
  makes the user volunteer a random hidden preference ("passive" elicitation), still with reward 0.
- `[search] request`: every `search_failure_interval`-th search fails on purpose. Otherwise a judge compares
  the request with the ground-truth arguments (JSON {alignment_judgement True/False/N/A, alignment_aspect}):
  aligned with an aspect not searched yet -> the schema and the options (JSON lines), reward
  `search_correct_reward`; already searched -> a reminder, 0; otherwise -> "refine your request", 0.
- `[answer] ID`: ONE option id `^[ACFHR]\\d+$` (initial = aspect). Several ids, a bad format or (with
  `one_choice_per_aspect`) a second answer for the same aspect are rejected with 0. Best (cheapest correct)
  -> `choice_best_reward` 1.0, correct -> `choice_correct_reward` 0.8, wrong -> `-wrong_choice_penalty`;
  clipped to [0, 1]. With `one_choice_per_aspect`, the answered aspect's hidden preferences are dropped.
- `[finish]` ends the episode. It terminates when every best option is found or, with
  `one_choice_per_aspect`, when every aspect has its answer; it is truncated after `max_steps` (20).

Reward constants (spec §1.5, §1.11 "three different values in the repo"): UserRL's training env manager uses
search 0.0 / preference 0.8 with one choice per aspect; its eval script 0.2 / 0.6; the package defaults are
0.2 / 0.2. The defaults here are the training values; docs/travelgym.md says how to get the others.

Failure policy (shared with the other judged gyms, `rltrain.envs.judged`): a malformed judge or user reply is
asked again (`judge_retries`) and marked on its call record (`info["judge_error"]`); still malformed, it fails the
episode (`MalformedReplyError`: the simulator's fault, never reward 0). `on_malformed="fallback"` is UserBench's
rule instead, for parity: an utterance is then treated as type 1, a search as a backend failure, and a malformed
user reply gives the canned apology with reward 0. A `UserSimError` propagates: the agent loop marks the episode
failed.

Rules responders (`travel.judge`, `travel.search`, `travel.reveal`, `travel.elicit`, `travel.natural`) make the
gym deterministic without an LLM. The judge is truthful (`rltrain.envs.travel_truth`, issue 17): an utterance is
type 2 only when it IS a preference question of the grammar about a hidden preference's subcategory, type 3 for
such a question about another subcategory of the trip, type 4 for a vague preference question, else type 1, so a
list of keywords is type 1. A search aligns when it names exactly one aspect and contains every ground-truth
argument value. Scenarios: `rltrain/envs/travel_data.py`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from typing import Any, Literal

from rltrain.envs import travel_truth
from rltrain.envs.base import ENVIRONMENTS, StepResult
from rltrain.envs.judged import JudgedGym, JudgeError, fenced_json, normalize, one_of
from rltrain.envs.travel_data import ASPECT_INITIAL, ASPECT_WORDS, CATALOG, OPTION_SCHEMAS
from rltrain.tools.base import Tool
from rltrain.tools.interact import InteractTool
from rltrain.users import USER_RULES, UserRequest

INITIAL_ASPECT = {initial: aspect for aspect, initial in ASPECT_INITIAL.items()}
OPTION_ID = re.compile(r"^[ACFHR]\d+$")

NO_PREFERENCE_REPLY = ("This is a good question. However, I do not have a specific preference in the aspect you ask "
                       "about (or I have already told you). You may ask me about other detailed and specific preferences.")
VAGUE_REPLY = ("Your question is too vague and general, and I am not sure how to respond to it. Please ask me about "
               "specific aspects of my preferences, in a more detailed and concrete way.")
APOLOGY_REPLY = "I'm sorry, I'm not sure how to respond to your latest utterance right now. Please try again."
SEARCH_DOWN = "Currently the searching backend is experiencing some issues. Please try again later."
_REFINE = ("Please refine your search request to 1. align with the user's need, 2. make only one request at a time, "
           "and 3. cover and only cover the correct search arguments.")
SEARCH_WRONG = f"Something is wrong in your search request, or its arguments are not accurate. {_REFINE}"
SEARCH_UNRELATED = f"Your search request is not related to any aspect of this trip. {_REFINE}"

JUDGE_SYSTEM = """You classify a travel agent's latest utterance to a traveler with hidden preferences.
Types:
1 = normal conversation, not asking about a preference;
2 = a concrete question that matches one of the still-hidden preferences listed (give its ID);
3 = a concrete question about a preference the traveler does not have (not in the list);
4 = a vague or general question ("any preferences?") that does not target a specific detail.
Reply with JSON only, wrapped in ```json ... ```:
{"thought": "your reasoning", "type": "1" or "2" or "3" or "4", "preference_id": "P<n>" (only for type 2)}"""
JUDGE_USER = """Scenario: {scenario}

Conversation so far:
{history}

Latest agent utterance: {utterance}

Still-hidden preferences:
{preferences}"""

SEARCH_SYSTEM = """You check a travel agent's search request against the ground-truth search arguments of each
aspect of a trip. Be strict: the request must target exactly one aspect and contain every argument of it.
alignment_judgement is "True" when it does (and alignment_aspect names the aspect), "False" when it targets an
aspect of the trip but misses or misstates arguments or mixes several aspects, "N/A" when it relates to none.
Reply with JSON only, wrapped in ```json ... ```:
{"thought": "your reasoning", "alignment_judgement": "True" or "False" or "N/A", "alignment_aspect": "<aspect>"}"""
SEARCH_USER = """Search request: {request}

Ground-truth arguments:
{arguments}"""

REPLY_SYSTEM = {
    "reveal": "You role-play a traveler talking to a travel agent. The agent just asked about one of your "
              "preferences. Reveal it implicitly and indirectly, guided by the implicit statement; never state it "
              "outright.",
    "elicit": "You role-play a traveler talking to a travel agent. The conversation has drifted off target for a "
              "while. Answer the agent naturally, then volunteer this preference implicitly and indirectly, guided by "
              "the implicit statement; never state it outright.",
    "natural": "You role-play a traveler talking to a travel agent. Reply naturally and briefly, a little "
               "half-heartedly, and reveal no preferences.",
}
REPLY_USER = """{preference}Conversation so far:
{history}

Latest agent utterance: {utterance}

Reply with JSON only, wrapped in ```json ... ```: {{"thought": "...", "response": "what you say"}}"""

def says(text: str, words: Iterable[str]) -> bool:
    """Whether `text` contains one of `words` as a whole word, allowing a plural or -ing/-ed ending.

    Whole words, unlike `judged.mentions`' prefixes, keep "car" out of "carrier" and "bed" out of "bedroom".

    >>> says("Do you need a car?", ["car"]), says("Which carrier?", ["car"]), says("Swimming pool?", ["swim"])
    (True, False, True)
    """
    padded = normalize(text)
    return any(re.search(rf"\b{re.escape(normalize(w))}(?:s|es|ing|ed|ming)?\b", padded) for w in words)


USER_RULES.register("travel.judge")(travel_truth.judge_utterance)  # truthful: from the preferences, by the grammar


@USER_RULES.register("travel.search")
def judge_search(request: UserRequest) -> str:
    """True when the request names exactly one of the trip's aspects and holds all its argument values."""
    ctx = request.context
    text = ctx["request"]
    named = [a for a in ctx["arguments"] if says(text, ctx["aspect_words"][a])]
    if not named:
        return fenced_json({"thought": "no aspect of this trip", "alignment_judgement": "N/A", "alignment_aspect": ""})
    aspect = named[0]
    complete = all(normalize(str(v)) in normalize(text) for v in ctx["arguments"][aspect].values())
    aligned = complete and len(named) == 1
    return fenced_json({"thought": f"aspects named: {named}", "alignment_judgement": "True" if aligned else "False",
                        "alignment_aspect": aspect})


def _reply_rule(request: UserRequest) -> str:
    """The implicit statement (prefixed when volunteered), or a neutral line for type-1 turns."""
    kind, statement = request.context["kind"], request.context.get("statement", "")
    response = {"reveal": statement, "elicit": f"Sure. By the way, {statement[:1].lower()}{statement[1:]}",
                "natural": "Sure, that sounds fine. I don't have much to add on that."}[kind]
    return fenced_json({"thought": kind, "response": response})


for _kind in REPLY_SYSTEM:
    USER_RULES.register(f"travel.{_kind}")(_reply_rule)


@ENVIRONMENTS.register("travel")
class TravelGym(JudgedGym):
    """UserBench's TravelGym: preference elicitation, database search and one recommendation per aspect."""

    name = "travel"
    data_file = "travel.json"
    verbs = {"action": "talk to the traveler (ask about their preferences)",
             "search": "query the travel database for ONE aspect with all its arguments (place, dates)",
             "answer": "recommend ONE option by its id, e.g. F12"}

    def __init__(self, max_steps: int = 20, one_choice_per_aspect: bool = True, search_correct_reward: float = 0.0,
                 preference_correct_reward: float = 0.8, choice_best_reward: float = 1.0,
                 choice_correct_reward: float = 0.8, wrong_choice_penalty: float = 0.0, search_failure_interval: int = 5,
                 elicitation_interval: int = 3, wrong_choice_number: int = 10, noise_choice_number: int = 5,
                 step_penalty: float = 0.0, normalize_rewards: bool = False,
                 on_malformed: Literal["fail", "fallback"] = "fail") -> None:
        """Defaults are UserRL's training values (spec §1.5); UserBench's eval uses search 0.2 / preference 0.6.

        Args:
            max_steps: steps before truncation (spec §2.3: 20).
            one_choice_per_aspect: one answer per aspect; a second is rejected, the first ends that aspect.
            search_correct_reward: reward of a search that first returns an aspect's options.
            preference_correct_reward: reward of a question that reveals a hidden preference (type 2).
            choice_best_reward, choice_correct_reward, wrong_choice_penalty: answer rewards (spec §2.3).
            search_failure_interval: every n-th search fails on purpose (spec §2.3: 5).
            elicitation_interval: the user volunteers a preference on every n-th off-target turn (spec §2.2: 3).
            wrong_choice_number, noise_choice_number: how many wrong / noise options a search shows (10 / 5).
            step_penalty, normalize_rewards: spec §1.4 (TravelGym does not clip: normalize_rewards False).
            on_malformed: a simulator reply still malformed after `judge_retries` asks: "fail" fails the episode
                (the simulator's fault); "fallback" is UserBench's rule (type 1, backend failure, or the canned
                apology, each with reward 0), for parity runs.
        """
        super().__init__(max_steps=max_steps, step_penalty=step_penalty, normalize_rewards=normalize_rewards)
        if search_failure_interval < 1 or elicitation_interval < 1:
            raise ValueError("search_failure_interval and elicitation_interval must be at least 1")
        if on_malformed not in ("fail", "fallback"):
            raise ValueError(f"on_malformed={on_malformed!r} must be 'fail' or 'fallback' (env.kwargs.on_malformed)")
        self.on_malformed = on_malformed
        self.one_choice_per_aspect = one_choice_per_aspect
        self.search_correct_reward, self.preference_correct_reward = search_correct_reward, preference_correct_reward
        self.choice_best_reward, self.choice_correct_reward = choice_best_reward, choice_correct_reward
        self.wrong_choice_penalty = wrong_choice_penalty
        self.search_failure_interval, self.elicitation_interval = search_failure_interval, elicitation_interval
        self.wrong_choice_number, self.noise_choice_number = wrong_choice_number, noise_choice_number
        self.goal = ("You are a travel agent. Help the traveler book what they ask for. They have preferences they "
                     "have not told you: ask about them, one specific detail at a time. Search the database, then "
                     "recommend the cheapest option that satisfies all their preferences."
                     + (" You may recommend only one option per travel aspect." if one_choice_per_aspect else ""))
        # Per episode, set by `opening`.
        self.remaining: list[dict[str, Any]] = []  # hidden preferences not yet revealed nor dropped
        self.total_preferences = 0
        self.active = self.passive = 0  # preferences revealed on request / volunteered
        self.off_target = 0  # consecutive turns that revealed nothing (UserBench's nonpreference_times)
        self.searches = 0
        self.unsearched: list[str] = []
        self.remaining_best: list[str] = []
        self.remaining_correct: list[str] = []
        self.answered: list[str] = []  # aspects with an accepted answer
        self.history: list[dict[str, str]] = []
        self.rng = random.Random(0)

    # -- episode state -----------------------------------------------------------------------------------------

    def tools(self) -> list[Tool]:
        """UserBench's interact_with_env, with its required `thought` field (spec §1.3; Travel only)."""
        return [InteractTool(thought=True)]

    def opening(self, data: dict[str, Any]) -> str:
        dims = data["dimensions"]
        self.remaining = [{"id": f"P{i + 1}", "aspect": p[0], "subcategory": p[1], "preference": p[2], "implicit": p[3]}
                          for i, p in enumerate(p for aspect in dims for p in data[aspect]["preferences"])]
        self.total_preferences = len(self.remaining)
        self.active = self.passive = self.off_target = self.searches = 0
        self.unsearched = list(dims)
        self.remaining_best = [data[a]["best_id"] for a in dims]
        self.remaining_correct = [i for a in dims for i in data[a]["correct_ids"]]
        self.answered, self.history = [], []
        # Which preference is volunteered is random per episode, reproducible from its key.
        self.rng = random.Random(f"travel/{self.episode or data['id']}")
        return data["initial_description"]

    def presented_options(self, aspect: str) -> list[dict[str, Any]]:
        """What a correct search shows: correct + first 10 wrong + first 5 noise, shuffled per task (spec §2.1).

        Seeded by the task, not the episode, so that every sample of a GRPO group sees the same list.
        """
        options = self.data[aspect]["options"]
        shown = options["correct"] + options["wrong"][: self.wrong_choice_number] + options["noise"][: self.noise_choice_number]
        random.Random(f"{self.data['id']}/{aspect}").shuffle(shown)
        return shown

    def counts(self) -> dict[str, Any]:
        """Elicitation counts as UserBench's observation carries them (spec §2.3), plus judge errors."""
        elicited = self.active + self.passive
        return {"total_preferences": self.total_preferences, "remaining_preferences": len(self.remaining),
                "elicitation_ratio": elicited / self.total_preferences if self.total_preferences else 0.0,
                "active_elicited_preferences": self.active, "passive_elicited_preferences": self.passive,
                "judge_errors": self.judge_errors}

    async def act(self, verb: str, content: str) -> StepResult:
        if verb == "action":
            feedback, reward, info = await self._converse(content)
        elif verb == "search":
            feedback, reward, info = await self._search(content)
        else:
            feedback, reward, info = self._answer(content)
        dims = self.data["dimensions"]
        terminated = not self.remaining_best or (self.one_choice_per_aspect and len(self.answered) == len(dims))
        return StepResult(feedback, reward=reward, terminated=terminated, info={**info, **self.counts()})

    # -- [action] ----------------------------------------------------------------------------------------------

    async def _converse(self, utterance: str) -> tuple[str, float, dict[str, Any]]:
        judged = await self.ask_json(self._judge_request(utterance), self._parse_judgment)
        kind, pref = judged or ("1", None)  # fallback mode: a malformed judgment is normal conversation (spec §2.2)
        reward = self.preference_correct_reward if kind == "2" else 0.0
        if pref is not None:
            self.off_target = 0
            reply = await self._user_reply("reveal", utterance, pref)
            if reply is None:
                return APOLOGY_REPLY, 0.0, {"judge_type": kind}
            self.active += 1
        elif self.off_target >= self.elicitation_interval - 1 and self.remaining:
            self.off_target = 0
            pref = self.rng.choice(self.remaining)
            reply = await self._user_reply("elicit", utterance, pref)
            if reply is None:
                return APOLOGY_REPLY, 0.0, {"judge_type": kind}
            self.passive += 1
        else:
            self.off_target += 1
            canned = {"3": NO_PREFERENCE_REPLY, "4": VAGUE_REPLY}.get(kind)
            reply = canned or await self._user_reply("natural", utterance, None)
            if reply is None:
                return APOLOGY_REPLY, 0.0, {"judge_type": kind}
        if pref is not None:
            self.remaining.remove(pref)
        self.history += [{"role": "agent", "content": utterance}, {"role": "user", "content": reply}]
        return reply, reward, {"judge_type": kind, "elicited": pref["id"] if pref else None}

    def _parse_judgment(self, value: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        kind = one_of(str(value["type"]), ("1", "2", "3", "4"), "type")
        if kind != "2":
            return kind, None
        wanted = str(value["preference_id"]).strip()
        for pref in self.remaining:
            if pref["id"] == wanted:
                return kind, pref
        raise JudgeError(f"preference_id={wanted!r} is not a hidden preference")

    def _judge_request(self, utterance: str) -> UserRequest:
        dims = self.data["dimensions"]
        listing = "\n".join(f"Preference ID: {p['id']}\tAspect: {p['aspect']}\nPreference: {p['preference']}"
                            for p in self.remaining) or "(none)"
        prompt = JUDGE_USER.format(scenario=self.data["scenario"], history=self._history_text(), utterance=utterance,
                                   preferences=listing)
        context = {"utterance": utterance,
                   "available": [{k: p[k] for k in ("id", "aspect", "subcategory")} for p in self.remaining],
                   "keywords": {a: {p.subcategory: list(p.keywords) for p in CATALOG[a]} for a in dims}}
        return UserRequest(hat="judge", system=JUDGE_SYSTEM, messages=({"role": "user", "content": prompt},),
                           rule="travel.judge", context=context, max_tokens=512)

    async def _user_reply(self, kind: str, utterance: str, pref: dict[str, Any] | None) -> str | None:
        """The simulated traveler's words; None (a judge error) when its reply is malformed."""
        preference = "" if pref is None else (f"Preference: {pref['preference']}\n"
                                              f"Implicit statement: {pref['implicit']}\n\n")
        prompt = REPLY_USER.format(preference=preference, history=self._history_text(), utterance=utterance)
        request = UserRequest(hat="user", system=REPLY_SYSTEM[kind], messages=({"role": "user", "content": prompt},),
                              rule=f"travel.{kind}", context={"kind": kind, "statement": pref["implicit"] if pref else ""},
                              max_tokens=512)
        return await self.ask_json(request, lambda v: _nonempty(v["response"]))

    def _history_text(self) -> str:
        return "\n".join(f"{turn['role']}: {turn['content']}" for turn in self.history) or "(none yet)"

    # -- [search] ----------------------------------------------------------------------------------------------

    async def _search(self, text: str) -> tuple[str, float, dict[str, Any]]:
        self.searches += 1
        if self.searches % self.search_failure_interval == 0:  # UserBench simulates a backend failure
            return SEARCH_DOWN, 0.0, {"search": "failed"}
        dims = self.data["dimensions"]
        arguments = {a: self.data[a]["arguments"] for a in dims}
        listing = "\n\n".join(f"Aspect: {a}\n{json.dumps(args, indent=2)}" for a, args in arguments.items())
        request = UserRequest(hat="judge", system=SEARCH_SYSTEM,
                              messages=({"role": "user", "content": SEARCH_USER.format(request=text, arguments=listing)},),
                              rule="travel.search", max_tokens=512,
                              context={"request": text, "arguments": arguments,
                                       "aspect_words": {a: list(ASPECT_WORDS[a]) for a in dims}})
        verdict = await self.ask_json(request, self._parse_search)
        if verdict is None:
            return SEARCH_DOWN, 0.0, {"search": "failed"}
        judgement, aspect = verdict
        if judgement == "N/A":
            return SEARCH_UNRELATED, 0.0, {"search": "unrelated"}
        if judgement == "False":
            return SEARCH_WRONG, 0.0, {"search": "wrong"}
        if aspect not in self.unsearched:
            return (f"You have provided the correct search request arguments. However, you already have the results "
                    f"for <{aspect}>; please refer to them.", 0.0, {"search": "repeated", "aspect": aspect})
        self.unsearched.remove(aspect)
        lines = "\n".join(json.dumps(option) for option in self.presented_options(aspect))
        feedback = (f"You have provided the correct search request arguments.\n\n{OPTION_SCHEMAS[aspect]}\n\n"
                    f"Here are all the options for <{aspect}>:\n{lines}")
        return feedback, self.search_correct_reward, {"search": "aligned", "aspect": aspect}

    def _parse_search(self, value: dict[str, Any]) -> tuple[str, str]:
        judgement = one_of(str(value["alignment_judgement"]), ("True", "False", "N/A"), "alignment_judgement")
        if judgement != "True":
            return judgement, ""
        aspect = normalize(str(value["alignment_aspect"])).replace(" ", "_")
        aspect = "rental_car" if aspect == "car_rental" else aspect
        if aspect not in self.data["dimensions"]:
            raise JudgeError(f"alignment_aspect={value['alignment_aspect']!r} is not an aspect of this trip")
        return judgement, aspect

    # -- [answer] ----------------------------------------------------------------------------------------------

    def _answer(self, content: str) -> tuple[str, float, dict[str, Any]]:
        ids = [i for i in re.split(r"[,;\s]+", content.strip().rstrip(".")) if i]
        if len(ids) != 1:
            return "You have chosen multiple options. Please choose only one option at a time.", 0.0, \
                {"answer": {"id": content, "outcome": "rejected"}}
        option = ids[0]
        if not OPTION_ID.match(option):
            return (f"Invalid option ID format detected for {option!r}. Expected format: H1, F12, C4, etc.", 0.0,
                    {"answer": {"id": option, "outcome": "rejected"}})
        aspect = INITIAL_ASPECT[option[0]]
        if aspect not in self.data["dimensions"]:  # UserBench would count the initial towards termination; we don't
            return (f"This trip has no {aspect.replace('_', ' ')} to book.", 0.0,
                    {"answer": {"id": option, "aspect": aspect, "outcome": "rejected"}})
        if self.one_choice_per_aspect and aspect in self.answered:
            return (f"You have already recommended an option with the initial {option[0]!r}. You may recommend only "
                    f"one option per travel aspect; focus on the other aspects now.", 0.0,
                    {"answer": {"id": option, "aspect": aspect, "outcome": "rejected"}})
        if option in self.remaining_best:
            outcome, reward = "best", self.choice_best_reward
            self.remaining_best.remove(option)
            self.remaining_correct.remove(option)
        elif option in self.remaining_correct:
            outcome, reward = "correct", self.choice_correct_reward
            self.remaining_correct.remove(option)
        else:
            outcome, reward = "wrong", -self.wrong_choice_penalty
        if aspect not in self.answered:
            self.answered.append(aspect)
        if self.one_choice_per_aspect:  # nothing more to learn about an aspect that is settled
            self.remaining = [p for p in self.remaining if p["aspect"] != aspect]
        feedback = {"best": "Your chosen option is the best option!",
                    "correct": "Your chosen option is correct, but not the best option.",
                    "wrong": "Your chosen option is not a correct option."}[outcome]
        feedback += (" Your choice is recorded; do not choose options of this travel aspect again. Focus on the other "
                     "travel aspects." if self.one_choice_per_aspect else
                     " Your choice is recorded; do not choose this option again.")
        return feedback, min(1.0, max(0.0, reward)), {"answer": {"id": option, "aspect": aspect, "outcome": outcome}}


def _nonempty(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JudgeError("response is empty")
    return value.strip()
