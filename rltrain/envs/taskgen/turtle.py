"""Turtle Soup ground truth: the facts of each story, per evaluation criterion, plus false alternatives.

Each story gets `facts: {true: [...], false: [...]}` (propositions in the grammar of `rltrain.envs.questions`)
and each criterion `facts` (the propositions that cover it when stated as the table has them: a false one
by its negation); `solution` is a story told in that grammar
(one proposition per sentence), the legitimate answer the stuffing tests compare against. The false
propositions are the tempting wrong explanations: a story that lists candidate explanations asserts some of
them and scores 0. `python -m rltrain.envs.taskgen.turtle` rewrites `rltrain/envs/data/turtle.json` in place:
the 25 authored stories (ids, texts and rubric weights unchanged; the rules-only `keywords` are dropped), then the
seeded variations of the story families in `rltrain.envs.taskgen.turtle_families` (whole families held out for
test).
"""

from __future__ import annotations

import json
from typing import Any

from rltrain.envs.judged import DATA_DIR, render_data_file
from rltrain.envs.questions import Facts
from rltrain.envs.taskgen.turtle_families import family_tasks

C = "the cabin is the cabin of a small airplane that crashed into the mountain"
S = "at baggage claim she took an identical suitcase belonging to someone else"
P = "he hanged himself by standing on a block of ice"
L = "the letter was from a prisoner who knew the police read his mail"
"""Clauses of a bottom that state several criteria at once."""

# id -> (facts covering each criterion in order, other true facts, false facts)
FACTS: dict[str, tuple[list[list[str]], list[str], list[str]]] = {
    "turtle-albatross-soup": (
        [["he was shipwrecked", "he was stranded on an island"], ["his wife died"],
         ["he ate his wife", "he was fed human flesh"], ["he tasted real albatross soup", "he realized the truth"]],
        ["the man is dead", "he killed himself", "his wife was shipwrecked with him"],
        ["the wife is alive", "the soup was poisoned", "he was poisoned", "he was murdered", "the man is alive",
         "he had eaten albatross before", "the waiter killed him", "he was allergic to the soup"]),
    "turtle-the-elevator": (
        [["the man is short", "he is short"], ["he is unable to reach the button for the 10th floor", "he can reach the button for the 10th floor"], ["he uses his umbrella to press the button"]],
        ["he carries an umbrella on rainy days", "he can reach the button for the 7th floor"],
        ["the man is tall", "the elevator is broken", "he likes exercise", "he walks for his health",
         "he is afraid of elevators", "he lives on the 7th floor", "he can reach the button for the 10th floor"]),
    "turtle-the-monopoly-car": (
        [["it is a board game"], ["the game is Monopoly", "the car is his token", "he is playing the board game monopoly"], ["he is unable to pay the rent", "he can pay the rent"]],
        ["he landed on a hotel"],
        ["the car is real", "the hotel is real", "his car broke down", "he lost his job", "he is a real driver", "he can pay the rent"]),
    "turtle-the-desert-match": (
        [["he was in a hot air balloon"], ["the balloon was sinking", "they threw out everything"],
         ["they drew matches", "he drew the short match", "he jumped"]],
        ["he jumped from the balloon", "he died from the fall", "they threw out their clothes"],
        ["he died of thirst", "he was murdered", "he walked into the desert", "he was in a car",
         "he died of heat", "he was alone in the balloon"]),
    "turtle-the-package-in-the-field": (
        [["he jumped from a plane"], ["the package is a parachute"], ["the parachute failed to open"]],
        ["he died from the fall"],
        ["the package is a bomb", "he was murdered", "he was shot", "the package was delivered by post",
         "he walked into the field"]),
    "turtle-dinner-after-the-shooting": (
        [["she took a picture of him", "she is a photographer"], ["she developed the picture in water"],
         ["she hung the photo to dry"]],
        ["the husband is alive", "the shooting was with a camera"],
        ["she shot him with a gun", "the husband is dead", "the husband died", "she drowned him", "she hanged him"]),
    "turtle-the-lighthouse": (
        [["he was a lighthouse keeper"], ["a ship crashed on the rocks", "the ship crashed because the light was off"],
         ["he felt guilty"]],
        ["he turned off the lighthouse lamp", "he killed himself"],
        ["he was murdered", "he poisoned people", "he caused a fire", "the light was a lamp in his house",
         "there was a plane crash"]),
    "turtle-the-cabin-in-the-snow": (
        [["the cabin is part of an airplane", "the cabin is the cabin of a small airplane", C],
         ["the airplane crashed into the mountain", C]],
        ["the pilot died", "the dead people are the pilot and the passenger"],
        ["the cabin is a house", "they froze to death", "they were murdered", "they were poisoned",
         "there was an avalanche", "they died of carbon monoxide"]),
    "turtle-the-surgeons-son": (
        [["the surgeon is a woman"], ["the surgeon is the boy's mother"]],
        ["the father died in the crash"],
        ["the surgeon is the father", "the surgeon is a man", "the boy is adopted", "the surgeon is a ghost",
         "the surgeon is his stepfather"]),
    "turtle-the-blind-mans-dog": (
        [["the man is blind"], ["the dog is a guide dog"], ["his old guide dog had died in the park"]],
        ["the clean up found his old dog"],
        ["the man can see", "he killed his old dog", "the new dog died", "he was arrested", "he lost his job"]),
    "turtle-the-heavy-suitcase": (
        [["she took the wrong suitcase", S], ["the suitcase looked identical to hers", S], ["the suitcase belonged to a stranger", S]],
        ["her own bag was lost"],
        ["it is her own suitcase", "the suitcase had a bomb in it", "security found something", "she packed it herself"]),
    "turtle-the-puddle": (
        [["he hanged himself", P], ["he stood on a block of ice", P], ["the ice melted into the puddle", "the ice melted"]],
        ["he killed himself", "the puddle is melted ice"],
        ["he was murdered", "he drowned", "he stood on a chair", "someone removed the chair", "he was poisoned"]),
    "turtle-the-painting": (
        [["the painting is a forgery", "the painting is a fake"], ["the family sold the painting to the museum"],
         ["the sale would be reversed"]],
        ["the apprentice made the fake"],
        ["the painting is real", "the painting was stolen", "the painting was destroyed", "the painter is alive",
         "the museum burned down"]),
    "turtle-the-empty-car": (
        [["the car was driven onto the ice"], ["falling snow covered the tracks", "snow covered the tracks"],
         ["the driver walked back to shore", "the driver walked back"]],
        ["snow was falling"],
        ["the car was dropped by a helicopter", "the car fell from the sky", "the driver drowned",
         "the car was pushed by a crane"]),
    "turtle-the-twins": (
        [["they were born in a multiple birth"], ["they are triplets", "they are two of a set of triplets"]],
        ["they have the same mother"],
        ["they are twins", "they are adopted", "they have different mothers", "they were born in different years"]),
    "turtle-the-late-commuter": (
        [["her clock was slow", "her kitchen clock was a minute slow"], ["she reset the clock today", "she fixed the clock"],
         ["the later train crashed"]],
        ["she caught the earlier train"],
        ["her clock was fast", "she overslept", "the earlier train crashed", "her train was cancelled",
         "she missed the train today"]),
    "turtle-the-broken-window": (
        [["the house was filling with gas", "the neighbour's house was filling with gas"],
         ["the neighbour was unconscious", "the neighbour had fainted", "he had fainted"],
         ["the broken window saved his life"]],
        ["the broken window let the gas out", "the noise woke him"],
        ["there was a fire", "the neighbour hated the window", "the neighbour wanted a new window",
         "the boy was a burglar", "the neighbour was dead"]),
    "turtle-the-last-letter": (
        [["the letter was from a prisoner", L], ["the police read the mail", "the police dug up the garden", L],
         ["he could plant his potatoes", "the digging let him plant his garden"]],
        ["the prisoner wrote about buried treasure"],
        ["he found treasure", "the treasure was real", "the letter was from his wife", "he buried a body",
         "he was looking for money"]),
    "turtle-the-tall-building": (
        [["he jumped from a ground floor window", "he jumped out of a window on the ground floor"],
         ["the fall was very short", "he fell less than a metre"]],
        [],
        ["he jumped from the top floor", "he landed on a trampoline", "he used a parachute", "he landed in water",
         "he is a superhero"]),
    "turtle-the-red-light": (
        [["the driver was out of his truck", "the truck driver was walking", "he was driving"], ["he was walking on foot"]],
        ["he was walking"],
        ["he was driving", "the police officer was asleep", "the lights were broken", "the police officer was his friend",
         "the police officer was bribed"]),
    "turtle-the-glass-of-water": (
        [["the man had hiccups"], ["the bartender scared him on purpose", "the bartender scared him"],
         ["the fright cured the hiccups"]],
        ["the man wanted water to cure his hiccups"],
        ["the bartender wanted to rob him", "the man was a robber", "the man was thirsty", "the gun was fired",
         "the bartender hated him"]),
    "turtle-romeo-and-juliet": (
        [["they are fish", "they are goldfish"], ["their bowl broke", "the bowl fell"],
         ["the wind knocked the bowl over", "the wind blew the curtain"]],
        ["they died without water"],
        ["they are people", "they were murdered", "they poisoned themselves", "someone broke in",
         "they drowned"]),
    "turtle-the-silent-concert": (
        [["the audience was deaf"], ["they applauded by waving their hands"]],
        ["they used sign language"],
        ["the audience was asleep", "the concert was bad", "the audience left", "the hall was empty",
         "the pianist is deaf"]),
    "turtle-the-bitten-apple": (
        [["the dead man had no teeth"], ["his dentures were in a glass by the bed"],
         ["someone else bit the apple"]],
        ["he wore dentures", "it was murder"],
        ["the apple was poisoned", "he bit the apple", "he killed himself", "the door was open", "he choked on the apple"]),
    "turtle-the-sleepy-guard": (
        [["he was a night watchman"], ["he dreamed during his shift"], ["he was asleep on duty", "he was sleeping on duty", "the watchman had been sleeping on duty"]],
        ["the plane crashed"],
        ["the watchman caused the crash", "the boss hated psychics", "the watchman lied about the dream",
         "the watchman was awake all night"]),
}


def solution(criteria_facts: list[list[str]]) -> str:
    """A story in the grammar: each criterion's first fact as a sentence."""
    return " ".join(f"{facts[0][0].upper()}{facts[0][1:]}." for facts in criteria_facts)  # first facts are true


def enrich(task: dict[str, Any]) -> dict[str, Any]:
    """The task with `facts`, per-criterion `facts` and `solution`; checked consistent by `Facts`."""
    criteria_facts, extra, false = FACTS[task["id"]]
    if len(criteria_facts) != len(task["evaluation_criteria"]):
        raise ValueError(f"{task['id']}: {len(criteria_facts)} fact lists for {len(task['evaluation_criteria'])} criteria")
    # A criterion fact may be a false proposition: stating its negation ("he can not reach ...") covers it.
    true = list(dict.fromkeys([f for facts in criteria_facts for f in facts if f not in false] + extra))
    Facts.of(true, false)  # raises on a contradiction
    criteria = [{"statement": c["statement"], "weight": c["weight"], "facts": facts}
                for c, facts in zip(task["evaluation_criteria"], criteria_facts)]
    return {**{k: v for k, v in task.items() if k not in ("evaluation_criteria", "facts", "solution")},
            "evaluation_criteria": criteria, "facts": {"true": true, "false": false},
            "solution": solution(criteria_facts)}


def build(authored: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The task file's splits: the authored stories (generated ones, which carry a `template`, are rebuilt) enriched,
    then the family variations."""
    families = family_tasks()
    return {split: [enrich(t) for t in rows if "template" not in t] + families[split] for split, rows in authored.items()}


def main() -> None:
    path = DATA_DIR / "turtle.json"
    data = build(json.loads(path.read_text()))
    path.write_text(render_data_file(data, ("train", "test")))
    print(json.dumps({split: len(rows) for split, rows in data.items()}))


if __name__ == "__main__":
    main()
