"""Rules users are truthful test fixtures (issue 17): they answer only from a task's structured ground truth.

Properties over every task's facts (many generated questions per task), plus hand-written adversarial phrasings:
negation, double negation, compound questions, synonyms outside the grammar. "Never contradict" means the
answer is the truth or the gym's "cannot answer" reply, never the opposite of the truth.
"""

from __future__ import annotations

import json
import re

import pytest

from rltrain.envs.intention import asks_detail
from rltrain.envs.judged import load_tasks
from rltrain.envs.persuade import conceded
from rltrain.envs.questions import Facts, parse
from rltrain.envs.telepathy import CANNOT_ANSWER, answer_question, facts_of
from rltrain.envs.turtle import answer_question as turtle_answer
from rltrain.envs.turtle import facts_of as turtle_facts
from rltrain.users import UserRequest

ALL = {gym: [t for split in ("train", "test") for t in load_tasks(f"{gym}.json")[split]]
       for gym in ("telepathy", "turtle", "persuade", "intention")}


def natural_questions(fact: str) -> list[str]:
    """Yes/no questions a player would ask about "it <verb> <rest>" / "<subject> <verb> <rest>" facts."""
    words = fact.split()
    subject, verb, rest = (words[0], words[1], " ".join(words[2:])) if words[0] == "it" else (None, None, None)
    if subject is None:
        return [f"Is it true that {fact}?"]
    if verb in ("is", "was", "are"):
        return [f"{verb.capitalize()} it {rest}?", f"{verb.capitalize()} it not {rest}?", f"{verb.capitalize()}n't it {rest}?"]
    if verb == "has":
        return [f"Does it have {rest}?", f"Doesn't it have {rest}?"]
    if verb == "can":
        return [f"Can it {rest}?", f"Can't it {rest}?"]
    base = re.sub(r"(?<=[^s])es$|s$", "", verb)
    return [f"Does it {base} {rest}?", f"Does it not {base} {rest}?"]


def ask(rule, data: dict, question: str) -> str:
    context = {"facts": data["facts"], "question": question}
    return json.loads(rule(UserRequest(hat="user", system="", messages=(), context=context)).strip("`json\n"))["response"]


def test_telepathy_never_contradicts_the_facts() -> None:
    """Every fact of every entity, asked in player phrasings (plain, negated, contracted): truth or Maybe."""
    decided = total = 0
    for data in ALL["telepathy"]:
        facts = facts_of(data)
        for proposition, value in [*((p, True) for p in data["facts"]["true"]), *((p, False) for p in data["facts"]["false"])]:
            for question in natural_questions(proposition):
                answer = facts.decide(question)
                total += 1
                if answer is not None:
                    decided += 1
                    negated = parse(question).negated
                    assert answer == (value != negated), (data["id"], question, answer)
        for question, truth in facts.questions():
            assert facts.decide(question) == truth, (data["id"], question)
    assert total > 20_000 and decided / total > 0.95  # the natural phrasings are (almost all) in the grammar


def test_turtle_never_contradicts_the_facts() -> None:
    for data in ALL["turtle"]:
        facts = turtle_facts(data)
        for question, truth in facts.questions():
            assert facts.decide(question) == truth, (data["id"], question)
        for proposition in data["facts"]["true"]:
            assert facts.decide(f"Is it true that {proposition}?") is True


@pytest.mark.parametrize(("question", "answer"), [
    ("Is it alive?", "Yes"),  # the false answers, fixed
    ("Is it not an animal?", "No"),
    ("Is it an animal?", "Yes"),
    ("Is it not not an animal?", "Yes"),  # double negation
    ("Isn't it not an animal?", "Yes"),
    ("Is it never alive?", "No"),
    ("Is it a mammal?", "Yes"),
    ("Is it a fish?", "No"),
    ("Can it fly?", "No"),
    ("Can't it fly?", "Yes"),  # read literally: "it can not fly" is true
    ("Does it have a trunk?", "Yes"),
    ("Is it a trunk?", CANNOT_ANSWER),  # "has a trunk" is not "is a trunk"
    ("Is it an animal or a plant?", CANNOT_ANSWER),  # compound
    ("Is it an animal and a mammal?", CANNOT_ANSWER),
    ("Is it big, grey and heavy?", CANNOT_ANSWER),
    ("Is it bigger than a car?", CANNOT_ANSWER),  # comparison: not in the facts
    ("Is it a living creature?", CANNOT_ANSWER),  # synonyms outside the grammar
    ("Is it a beast?", CANNOT_ANSWER),
    ("Maybe it is an animal?", CANNOT_ANSWER),
    ("animal mammal trunk tusk grey africa", CANNOT_ANSWER),  # keywords are not a question
    ("Is it an elephant?", CANNOT_ANSWER),  # questions never confirm the name: guesses do
])
def test_elephant_adversarial(question: str, answer: str) -> None:
    data = next(t for t in ALL["telepathy"] if t["id"] == "telepathy-elephant")
    assert ask(answer_question, data, question) == answer


@pytest.mark.parametrize(("question", "answer"), [
    ("Is the wife alive?", "No"),  # the false answer, fixed
    ("Is his wife alive?", "No"),
    ("Is the wife not alive?", "Yes"),
    ("Did his wife die?", "Yes"),
    ("Was he shipwrecked?", "Yes"),
    ("Was he not shipwrecked?", "No"),
    ("Was the soup poisoned?", "No"),
    ("Was he shipwrecked or poisoned?", "Maybe"),
    ("Was the soup poisoned, and was he murdered?", "Maybe"),
    ("Was the soup spoiled?", "Maybe"),  # not in the facts: cannot answer
    ("wife died flesh shipwreck island", "Maybe"),
])
def test_albatross_adversarial(question: str, answer: str) -> None:
    data = next(t for t in ALL["turtle"] if t["id"] == "turtle-albatross-soup")
    assert ask(turtle_answer, data, question) == answer


def test_facts_reject_contradictions_and_negative_facts() -> None:
    with pytest.raises(ValueError, match="contradict"):
        Facts({"it is alive": True, "it is alive.": False})
    with pytest.raises(ValueError, match="positive proposition"):
        Facts({"it is not alive": True})


def test_persuade_concedes_only_stated_points() -> None:
    for data in ALL["persuade"]:
        points = data["counterpoints"]
        for p in points:
            point = p["point"]
            assert conceded(f"{point[0].upper()}{point[1:]}.", points)[:1] == [point]
            assert conceded(f"Maybe {point}.", points) == []  # a hedge states nothing
            assert conceded(f"Perhaps {point}, or perhaps not.", points) == []
        assert conceded(" ".join(k for p in points for k in p.get("keywords", [])), points) == []


def test_intention_covers_only_the_detail_asked() -> None:
    for data in ALL["intention"]:
        details = data["missing_details"]
        for d in details:
            hits = [other["description"] for other in details if asks_detail(d["inquiry"], other)]
            assert d["description"] in hits
            assert len(hits) == 1 or all(parse(o["inquiry"]).key == parse(d["inquiry"]).key
                                         for o in details if o["description"] in hits)
        both = f"{details[0]['inquiry'].rstrip('?')}, and {details[1]['inquiry'][0].lower()}{details[1]['inquiry'][1:]}"
        assert not any(asks_detail(both, d) for d in details)


def test_task_sets_scale_and_held_out_entities() -> None:
    """Issue 17 item 4: hundreds of train tasks, >= 50 test tasks, no test entity seen in training, for every judged
    gym; Turtle's generated families are held out whole (no test template in training)."""
    from rltrain.envs.taskgen.stats import stats

    table = stats()
    print(json.dumps(table))  # the counts for the closing note (pytest -s)
    for gym in ("telepathy", "persuade", "intention", "turtle", "travel"):
        assert table[gym]["train"]["tasks"] >= 200 and table[gym]["test"]["tasks"] >= 50, gym
    assert all(row["test"]["shared_entities"] == 0 for row in table.values())
    turtle = load_tasks("turtle.json")
    templates = [{t.get("template", t["id"]) for t in turtle[split]} for split in ("train", "test")]
    assert not templates[0] & templates[1]


def test_shipped_turtle_file_is_the_generators_output() -> None:
    """`python -m rltrain.envs.taskgen.turtle` rebuilds turtle.json exactly (authored stories, then the families)."""
    from rltrain.envs.taskgen.turtle import build

    shipped = {split: list(rows) for split, rows in load_tasks("turtle.json").items()}
    assert build(shipped) == shipped, "regenerate: python -m rltrain.envs.taskgen.turtle"


def test_travel_truthful_judge() -> None:
    """`travel_truth.judge_utterance` (the replacement for the keyword `travel.judge`): types from the grammar."""
    import dataclasses

    from rltrain.envs import make_env
    from rltrain.envs.travel_truth import judge_type, judge_utterance

    env = make_env("travel", {})
    for task in env.tasks("test", len(load_tasks("travel.json")["test"]), 0):
        env.reset(task)
        request = env._judge_request("")
        ctx = request.context

        def judge(utterance: str, request=request, ctx=ctx) -> tuple:
            return judge_type(judge_utterance(dataclasses.replace(request, context={**ctx, "utterance": utterance})))

        for pref in ctx["available"]:
            word = ctx["keywords"][pref["aspect"]][pref["subcategory"]][0]
            kind, pid = judge(f"Do you have a preference about {word}?")
            hit = next(p for p in ctx["available"] if p["id"] == pid)  # the word may name this subcategory in 2 aspects
            assert kind == "2" and word in ctx["keywords"][hit["aspect"]][hit["subcategory"]]
            assert judge(f"Maybe {word}?")[0] == "1"
        every = ", ".join(w for subs in ctx["keywords"].values() for words in subs.values() for w in words)
        assert judge(f"Do you have a preference about {every}?")[0] == "1"  # stuffing: no question of the grammar
        assert judge("Do you have any preferences?")[0] == "4"
