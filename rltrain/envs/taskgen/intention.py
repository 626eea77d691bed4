"""Intention tasks at UserRL scale: the authored requests plus seeded ones from request templates.

A template is a vague request with a slot ("Help me choose a {thing}.") and its hidden details, each with an
importance, an authored question (`inquiry`, the grammar the rules user decides) and a description drawn from
seeded choices; each (template, thing) gives a few tasks that differ in their hidden details. Train and test use different templates, so no test request shares a template with training.
`python -m rltrain.envs.taskgen.intention` rewrites `rltrain/envs/data/intention.json`, keeping the authored
tasks (ids unchanged) and replacing the generated ones.
"""

from __future__ import annotations

import json
import random
from typing import Any

from rltrain.envs.judged import DATA_DIR, render_data_file
from rltrain.envs.taskgen.telepathy import slug

# (request, category, things, details); a detail is (importance, inquiry, description template, choices)
Template = tuple[str, str, list[str], list[tuple[int, str, str, list[str]]]]
BUDGET = (3, "What is your budget?", "The budget is about {} dollars", ["50", "100", "200", "500", "1000", "2000"])
WHEN = (3, "When do you need it?", "It is needed {}", ["by next Friday", "within two days", "before the end of the month",
                                                      "in about three weeks", "this weekend"])
TRAIN: list[Template] = [
    ("Help me choose a {}.", "shopping", ["laptop", "bicycle", "camera", "sofa", "phone", "backpack", "watch",
                                        "tent", "guitar", "coffee machine", "desk", "printer", "jacket", "mattress"],
     [BUDGET, (2, "What will you mainly use it for?", "It is mainly for {}", ["work", "travel", "a hobby", "a gift",
                                                                            "everyday use", "a small business"]),
      (1, "Do you have a brand you prefer?", "They have {}", ["no brand preference", "a preference for a local brand",
                                                             "a preference for well-known brands"])]),
    ("I need to organise a {}.", "events", ["birthday party", "team dinner", "wedding reception", "school reunion",
                                           "charity run", "book club meeting", "picnic", "farewell party",
                                           "baby shower", "board game night", "workshop", "conference"],
     [(3, "How many people are coming?", "About {} people are coming", ["8", "15", "30", "60", "120"]),
      WHEN, BUDGET, (1, "Do any guests have dietary needs?", "{}", ["Two guests are vegetarian", "Nobody has dietary needs",
                                                                  "One guest has a nut allergy"])]),
    ("Can you help me learn {}?", "learning", ["Spanish", "the piano", "programming", "photography", "chess",
                                             "drawing", "statistics", "swimming", "cooking", "public speaking",
                                             "Japanese", "woodworking"],
     [(3, "How much time can you spend each week?", "They can spend {} each week", ["two hours", "five hours",
                                                                                    "ten hours", "one hour"]),
      (2, "What is your current level?", "They are {}", ["a complete beginner", "a beginner with some basics",
                                                        "at an intermediate level"]),
      (2, "What is your goal?", "The goal is {}", ["to pass an exam", "to enjoy it as a hobby", "to use it at work",
                                                  "to teach their children"]),
      (1, "Do you prefer classes or self-study?", "They prefer {}", ["classes", "self-study", "a mix of both"])]),
    ("Help me write a {}.", "writing", ["cover letter", "wedding speech", "product description", "blog post",
                                       "complaint letter", "birthday poem", "short story", "newsletter",
                                       "thank-you note", "project proposal"],
     [(3, "Who is the audience?", "The audience is {}", ["a hiring manager", "close family", "customers",
                                                         "colleagues", "the general public"]),
      (2, "How long should it be?", "It should be {}", ["under one page", "about 300 words", "two pages",
                                                        "a few sentences"]),
      (1, "What tone do you want?", "The tone should be {}", ["formal", "warm and personal", "funny", "neutral"])]),
    ("I want to improve my {}.", "health", ["sleep", "diet", "posture", "running", "flexibility", "energy levels",
                                           "focus", "strength", "stress levels", "hydration"],
     [(3, "Do you have any health conditions?", "They have {}", ["no health conditions", "a bad knee",
                                                                 "high blood pressure", "back pain"]),
      (2, "How much time do you have each day?", "They have {} each day", ["15 minutes", "30 minutes", "an hour"]),
      (1, "What have you tried so far?", "They have tried {}", ["nothing yet", "an app", "a personal trainer"])]),
    ("Plan a weekend trip to {} for me.", "travel", ["the mountains", "the coast", "a big city", "the countryside",
                                                    "a lake", "a national park", "an island", "a wine region"],
     [BUDGET, (3, "How many people are travelling?", "{} are travelling", ["Two adults", "A family of four",
                                                                            "Three friends", "One person"]),
      (2, "How will you get there?", "They will travel {}", ["by car", "by train", "by bus", "by plane"]),
      (1, "What kind of accommodation do you prefer?", "They prefer {}", ["a hotel", "a campsite", "a cabin",
                                                                          "a bed and breakfast"])]),
]
TEST: list[Template] = [
    ("Help me redecorate my {}.", "home", ["living room", "kitchen", "bedroom", "bathroom", "office", "garden",
                                          "hallway", "balcony", "attic", "nursery", "dining room", "garage",
                                          "study", "basement", "porch"],
     [BUDGET, (2, "What style do you like?", "They like a {} style", ["modern", "rustic", "minimalist", "colourful"]),
      (2, "Do you rent or own the place?", "They {} the place", ["rent", "own"]),
      (1, "Do you have pets or children?", "They have {}", ["a dog", "two small children", "no pets or children"])]),
    ("I want to start a {}.", "projects", ["podcast", "vegetable garden", "small online shop", "running club",
                                          "YouTube channel", "newsletter", "bakery", "dog walking business",
                                          "community choir", "repair cafe", "reading group", "tutoring service",
                                          "photography blog", "food truck", "craft stall"],
     [(3, "How much money can you invest?", "They can invest about {} dollars", ["100", "1000", "5000", "20000"]),
      (3, "How much time can you give it each week?", "They can give it {} a week", ["three hours", "ten hours",
                                                                                     "twenty hours"]),
      (2, "Have you done anything like this before?", "They have {}", ["no experience", "helped a friend with one",
                                                                       "done it before"]),
      (1, "Who is it for?", "It is for {}", ["their neighbourhood", "people online", "their friends"])]),
]


def expand(templates: list[Template], split: str, seed: int, variants: int) -> list[dict[str, Any]]:
    """`variants` tasks per (template, thing), each with its own hidden details drawn with `random.Random`."""
    rng, tasks = random.Random(f"intention-{split}-{seed}"), []
    for t, (request, category, things, details) in enumerate(templates):
        for thing, v in ((thing, v) for thing in things for v in range(variants)):
            task = request.format(thing)
            tasks.append({"id": f"intention-gen-{split}-{t}-{slug(thing)}-{v}", "task": task, "category": category,
                          "template": f"{split}-{t}",
                          "missing_details": [{"description": description.format(rng.choice(choices)),
                                               "importance": importance, "inquiry": inquiry}
                                              for importance, inquiry, description, choices in details]})
    return tasks


def build(seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    data = json.loads((DATA_DIR / "intention.json").read_text())
    authored = {split: [t for t in rows if not t["id"].startswith("intention-gen-")] for split, rows in data.items()}
    return {"train": authored["train"] + expand(TRAIN, "train", seed, variants=3),
            "test": authored["test"] + expand(TEST, "test", seed, variants=2)}


def main() -> None:
    data = build()
    (DATA_DIR / "intention.json").write_text(render_data_file(data, ("train", "test")))
    print(json.dumps({split: len(rows) for split, rows in data.items()}))


if __name__ == "__main__":
    main()
