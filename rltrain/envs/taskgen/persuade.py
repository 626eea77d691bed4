"""Persuade tasks at UserRL scale: the authored claims plus seeded ones from claim templates.

A template is a claim about an organisation ("{org} should switch to a four-day work week."), the persuadee's
own argument, and three counterpoints (the persuadee's stances: points it concedes once argued, rules only).
Each template is filled with every organisation of its list; train and test use different templates and
different organisations. `python -m rltrain.envs.taskgen.persuade` rewrites `rltrain/envs/data/persuade.json`,
keeping the authored tasks (ids unchanged) and replacing the generated ones.
"""

from __future__ import annotations

import json
from typing import Any

from rltrain.envs.judged import DATA_DIR, render_data_file
from rltrain.envs.taskgen.telepathy import slug

Template = tuple[str, str, tuple[str, str, str]]
TRAIN_ORGS = ["The city council", "Our school", "The hospital", "The library", "The university", "Our company",
              "The post office", "The museum", "The football club", "The local bakery", "The bank", "The airport",
              "The zoo", "The supermarket", "The train company", "The theatre", "The newspaper", "The factory",
              "The youth centre", "The fire department", "The police station", "The town hall", "The hotel chain",
              "The software firm", "The art college", "The farm cooperative", "The swimming pool", "The cinema",
              "The call centre", "The law firm", "The sports centre", "The primary school", "The dental clinic",
              "The bookshop", "The charity", "The radio station", "The ferry company", "The car factory",
              "The science park", "The marketing agency"]
TEST_ORGS = ["The ski resort", "The shipping company", "The game studio", "The orchestra", "The research lab",
             "The coffee chain", "The nursing home", "The construction firm", "The fashion brand", "The bus company",
             "The botanical garden", "The brewery", "The hardware store", "The recycling plant", "The data centre",
             "The music school", "The flower market", "The fishing port", "The tech startup", "The cycling club",
             "The science museum", "The public archive", "The island council", "The mountain hut", "The village shop",
             "The language school", "The pet shelter", "The printing house", "The climbing gym", "The street market"]
TRAIN: list[Template] = [
    ("{org} should switch to a four-day work week.", "People would be rested and just as productive in four days.",
     ("some work can not wait for a fifth day", "longer days make people more tired",
      "customers expect service five days a week")),
    ("{org} should ban mobile phones on its premises.", "Phones distract people and make them less attentive.",
     ("phones are needed in emergencies", "a ban is hard to enforce", "phones are useful tools for work")),
    ("{org} should stop printing anything on paper.", "Paper is wasteful and digital documents are easier to share.",
     ("some people can not use digital documents", "paper records survive power cuts",
      "screens and servers also use energy")),
    ("{org} should make everyone wear a uniform.", "Uniforms look professional and remove pressure about clothes.",
     ("uniforms cost money to buy and replace", "people express themselves through clothes",
      "a uniform does not make work better")),
    ("{org} should move all its meetings online.", "Online meetings save travel time and money.",
     ("face to face meetings build trust", "not everyone has a good internet connection",
      "people get tired of long video calls")),
    ("{org} should double its prices to raise quality.", "More money would pay for better staff and materials.",
     ("higher prices drive customers away", "quality depends on management more than money",
      "poorer people would lose access")),
]
TEST: list[Template] = [
    ("{org} should replace all its staff with robots.", "Robots never get tired and make fewer mistakes.",
     ("robots are expensive to buy and repair", "people lose their jobs", "robots can not handle unexpected problems")),
    ("{org} should close every weekend.", "Staff deserve to rest together with their families at weekends.",
     ("many customers only have time at weekends", "the business loses income", "staff could rest on other days")),
]


def expand(templates: list[Template], orgs: list[str], split: str) -> list[dict[str, Any]]:
    return [{"id": f"persuade-gen-{split}-{t}-{slug(org)}", "template": f"{split}-{t}", "claim": claim.format(org=org),
             "argument": argument, "counterpoints": [{"point": p} for p in points]}
            for t, (claim, argument, points) in enumerate(templates) for org in orgs]


def build() -> dict[str, list[dict[str, Any]]]:
    data = json.loads((DATA_DIR / "persuade.json").read_text())
    authored = {split: [t for t in rows if not t["id"].startswith("persuade-gen-")] for split, rows in data.items()}
    return {"train": authored["train"] + expand(TRAIN, TRAIN_ORGS, "train"),
            "test": authored["test"] + expand(TEST, TEST_ORGS, "test")}


def main() -> None:
    data = build()
    (DATA_DIR / "persuade.json").write_text(render_data_file(data, ("train", "test")))
    print(json.dumps({split: len(rows) for split, rows in data.items()}))


if __name__ == "__main__":
    main()
