"""The seeded generator of SearchGym's local corpus and two-hop questions, written to `rltrain/envs/data/search.json`.

UserRL's SearchGym asks Bamboogle questions over Google results (Serper, spec §1.5). Here the web is replaced
by a fictional world (invented names, so a model cannot answer from memory): countries, cities, people,
companies, products, novels and films, one short passage per entity. Every question needs two passages:
one to resolve the bridge entity ("the company that makes the Zorvan X2") and one for the answer
("... was founded in 1987"). Questions are split 40 train / 8 test (16.7%), never shared.

Regenerate (deterministic; a test checks the shipped file equals this output):
    .venv/bin/python -m rltrain.envs.search_data
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from rltrain.envs.judged import render_data_file

DATA_FILE = Path(__file__).parent / "data" / "search.json"
NUM_QUESTIONS, NUM_TEST = 48, 8

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ei")
_CODAS = ("", "", "n", "r", "l", "s", "m", "th")
_INDUSTRIES = ("robotics", "shipbuilding", "textile", "software", "aerospace", "coffee", "pharmaceutical", "toy")
_PRODUCTS = ("drone", "sewing machine", "bicycle", "espresso machine", "tablet", "telescope", "tractor", "camera")
_PROFESSIONS = ("engineer", "chemist", "painter", "economist", "architect", "physician", "inventor", "novelist")
_FEATURES = ("its glass bridges", "a lantern festival", "salt markets", "an old observatory", "its tram network",
             "terraced gardens", "a clock tower", "copper rooftops")
_CURRENCIES = ("florin", "mark", "crown", "dinar", "lira", "real", "talent", "ducat")

# (question template, relation): the relation names the two hops that `_answer` follows.
TEMPLATES = (
    ("In which city was the founder of {company} born?", "company"),
    ("In what year was the company that makes the {product} founded?", "product_year"),
    ("In which city is the company that makes the {product} headquartered?", "product_hq"),
    ("Who wrote the novel that the film {film} is based on?", "film"),
    ("What is the capital of the country where {city} is located?", "city"),
    ("Which river flows through the birthplace of {person}?", "person"),
    ("In which city was the author of {novel} born?", "novel"),
)


class _Names:
    """Unique invented names: one to three syllables, never reused across the whole world."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.used = rng, set()

    def word(self, syllables: int) -> str:
        while True:
            name = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + self.rng.choice(_CODAS)
                           for _ in range(syllables)).capitalize()
            if name not in self.used and len(name) > 3:
                self.used.add(name)
                return name


def _world(rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    names = _Names(rng)
    countries = [{"name": names.word(2), "currency": f"{names.word(2).lower()} {rng.choice(_CURRENCIES)}"}
                 for _ in range(14)]
    # The first cities go one to each country and become its capital; the rest are spread at random.
    cities = [{"name": names.word(rng.choice((2, 3))),
               "country": (countries[i] if i < len(countries) else rng.choice(countries))["name"],
               "river": names.word(2), "feature": rng.choice(_FEATURES)} for i in range(44)]
    for country, capital in zip(countries, cities):
        country["capital"] = capital["name"]
    people = [{"name": f"{names.word(2)} {names.word(rng.choice((2, 3)))}", "born_in": rng.choice(cities)["name"],
               "year": rng.randint(1890, 1990), "profession": rng.choice(_PROFESSIONS)} for _ in range(64)]
    companies = [{"name": f"{names.word(2)} {rng.choice(('Works', 'Industries', 'Labs', 'Dynamics', 'Group'))}",
                  "founder": rng.choice(people)["name"], "hq": rng.choice(cities)["name"],
                  "year": rng.randint(1900, 2015), "industry": rng.choice(_INDUSTRIES)} for _ in range(40)]
    products = [{"name": f"{names.word(2)} {rng.choice('XZQV')}{rng.randint(2, 90)}", "kind": rng.choice(_PRODUCTS),
                 "maker": rng.choice(companies)["name"], "year": rng.randint(1950, 2024)} for _ in range(44)]
    novels = [{"name": f"The {names.word(2)} {rng.choice(('Letters', 'Harbor', 'Winter', 'Garden', 'Tide'))}",
               "author": rng.choice(people)["name"], "year": rng.randint(1900, 2020)} for _ in range(32)]
    films = [{"name": f"{names.word(3)}", "director": rng.choice(people)["name"], "novel": rng.choice(novels)["name"],
              "year": rng.randint(1950, 2024)} for _ in range(32)]
    return {"country": countries, "city": cities, "person": people, "company": companies, "product": products,
            "novel": novels, "film": films}


def _passage(kind: str, e: dict[str, Any]) -> str:
    return {
        "country": "{name} is a country whose capital is {capital}. Its currency is the {currency}.",
        "city": "{name} is a city in {country}, on the banks of the {river} River. It is known for {feature}.",
        "person": "{name} (born {year}) is a {profession} who was born in the city of {born_in}.",
        "company": "{name} is a {industry} company founded in {year} by {founder}. It is headquartered in {hq}.",
        "product": "The {name} is a {kind} made by {maker}, first released in {year}.",
        "novel": "{name} is a novel by {author}, published in {year}.",
        "film": "{name} is a {year} film directed by {director}, adapted from the novel {novel}.",
    }[kind].format(**e)


def _answer(world: dict[str, list[dict[str, Any]]], relation: str, entity: dict[str, Any]) -> str:
    """Follow the two hops of `relation` from `entity`."""
    def get(kind: str, name: str) -> dict[str, Any]:
        return next(e for e in world[kind] if e["name"] == name)

    if relation == "company":
        return get("person", entity["founder"])["born_in"]
    if relation == "product_year":
        return str(get("company", entity["maker"])["year"])
    if relation == "product_hq":
        return get("company", entity["maker"])["hq"]
    if relation == "film":
        return get("novel", entity["novel"])["author"]
    if relation == "city":
        return get("country", entity["country"])["capital"]
    if relation == "person":
        return get("city", entity["born_in"])["river"]
    return get("person", entity["author"])["born_in"]  # novel


_SUBJECT = {"company": "company", "product_year": "product", "product_hq": "product", "film": "film", "city": "city",
            "person": "person", "novel": "novel"}


def generate(seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    world = _world(rng)
    corpus = [{"id": f"{kind}-{i}", "title": e["name"], "text": _passage(kind, e)}
              for kind, entities in world.items() for i, e in enumerate(entities)]
    questions, seen = [], set()
    while len(questions) < NUM_QUESTIONS:
        template, relation = TEMPLATES[len(questions) % len(TEMPLATES)]
        subject = _SUBJECT[relation]
        entity = rng.choice(world[subject])
        answer = _answer(world, relation, entity)
        if (relation, entity["name"]) in seen or answer in _passage(subject, entity):  # one hop would do
            continue
        seen.add((relation, entity["name"]))
        questions.append({"id": f"search-{len(questions):02d}", "question": template.format(**{subject: entity["name"]}),
                          "answer": answer, "relation": relation})
    rng.shuffle(questions)
    return {"corpus": corpus, "train": questions[NUM_TEST:], "test": questions[:NUM_TEST]}


def render(data: dict[str, Any]) -> str:
    """The file text, one passage or question per line."""
    return render_data_file(data, ("train", "test", "corpus"))

if __name__ == "__main__":
    DATA_FILE.parent.mkdir(exist_ok=True)
    DATA_FILE.write_text(render(generate()))
    print(f"wrote {DATA_FILE}")
