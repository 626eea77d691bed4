"""Unique templates and entities per judged gym and split: `python -m rltrain.envs.taskgen.stats`.

An entity is what a task is about (Telepathy's hidden entity, Turtle's story (its surface), Persuade's claim, Intention's
request text, Travel's scenario); a template is the generator template that produced it (`template` field), or
the task itself when it was authored by hand.
"""

from __future__ import annotations

import json
from typing import Any

from rltrain.envs.judged import load_tasks

ENTITY = {"telepathy": "target_entity", "turtle": "surface", "persuade": "claim", "intention": "task", "travel": "scenario"}


def stats() -> dict[str, dict[str, dict[str, int]]]:
    """{gym: {split: {tasks, entities, templates, shared_entities}}}; shared_entities counts test entities also in train."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for gym, field in ENTITY.items():
        splits = load_tasks(f"{gym}.json")
        entities = {s: {t[field] for t in rows} for s, rows in splits.items()}
        out[gym] = {s: {"tasks": len(rows), "entities": len(entities[s]),
                        "templates": len({_template(t) for t in rows}),
                        "shared_entities": len(entities[s] & entities["train"]) if s == "test" else 0}
                    for s, rows in splits.items()}
    return out


def _template(task: dict[str, Any]) -> str:
    return task.get("template", task["id"])


if __name__ == "__main__":
    print(json.dumps(stats(), indent=1))
