"""Turtle Soup stories at UserRL scale (issue 17): seeded variations of story families, written for rltrain.

Each family is one lateral-thinking story shape (its `template`) with slots: the person's name and one or two
family-specific details (an object, a place, a number) that appear in the surface, the bottom, the criteria and the
facts alike. Facts are written in the grammar of `rltrain.envs.questions`, with "they" for the person, so that a
question about "he" or "she" reduces to the same proposition. Families are split whole: the test split's families
never appear in training (held out by template), as the authored stories are held out by story.

`python -m rltrain.envs.taskgen.turtle` writes the authored stories and these into `rltrain/envs/data/turtle.json`.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

NAMES = ("Sam", "Alex", "Robin", "Jordan", "Kim", "Morgan", "Chris", "Taylor", "Jamie", "Casey", "Lee", "Avery",
         "Noor", "Ravi", "Elena", "Tomas", "Aiko", "Felix", "Priya", "Lucas", "Grace", "Omar", "Mira", "Jonah")


@dataclass(frozen=True)
class Family:
    """One story shape. Texts are format strings over `name` and the family's `slots`.

    criteria: (statement, weight, facts covering it); weights sum to 1; each criterion's first fact (a true one),
        stated as a sentence, is part of the reference solution.
    true, false: further propositions the table decides (false ones are the tempting wrong explanations).
    """

    template: str
    title: str
    surface: str
    bottom: str
    criteria: tuple[tuple[str, float, tuple[str, ...]], ...]
    true: tuple[str, ...]
    false: tuple[str, ...]
    slots: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Slot name -> values. Linked slots are joined with "+" in name and value ("bed+wake": "seven+eight")."""


TRAIN_FAMILIES = (
    Family("bald-in-the-rain", "Dry in the Rain",
           "{name} walks home through heavy rain with no umbrella and no hat. Their clothes are soaked, yet not a "
           "single hair on their head gets wet on the way from the {place}. How?",
           "{name} walked bareheaded, but they are bald: they have no hair to get wet.",
           (("The person has no hair: they are bald.", 1.0, ("they are bald", "they have no hair")),),
           ("their clothes got wet", "they walked in the rain"),
           ("they wore a hat", "they had an umbrella", "they wore a hood", "it stopped raining", "they ran home",
            "they wore a wig"),
           {"place": ("station", "office", "market", "library", "gym", "harbour")}),
    Family("ring-in-the-coffee", "The Dry {thing}",
           "{name} drops a {thing} into a cup full of coffee and pulls it out at once, completely dry. How?",
           "The coffee was ground coffee, a dry powder: there was no liquid in the cup.",
           (("The coffee was dry: ground coffee, not a drink.", 0.6, ("the coffee was ground coffee", "the coffee was dry")),
            ("There was no liquid in the cup.", 0.4, ("there was no liquid in the cup", "the cup had no liquid"))),
           ("the cup was full of coffee powder",),
           ("the {thing} was waterproof", "the coffee was frozen", "the cup was empty", "it was a magic trick",
            "the coffee was cold", "they dried the {thing}"),
           {"thing": ("ring", "coin", "key", "earring", "button", "marble")}),
    Family("icicle-dagger", "The Vanishing Dagger",
           "{name} is found stabbed in a {room} locked from the inside. There is a puddle of water on the floor and "
           "no weapon anywhere. What was the weapon?",
           "The weapon was an icicle. The icicle melted, and the puddle came from the weapon.",
           (("The weapon was made of ice: an icicle.", 0.5, ("the weapon was an icicle", "the weapon was made of ice")),
            ("The weapon melted away.", 0.3, ("the weapon melted", "the icicle melted")),
            ("The puddle is what is left of the weapon.", 0.2, ("the puddle came from the weapon",
                                                                 "the puddle was the melted icicle"))),
           ("it was murder", "the water came from the icicle"),
           ("the weapon was a knife", "it was suicide", "the killer took the weapon", "the door was unlocked",
            "the water came from a vase", "they drowned"),
           {"room": ("study", "cellar", "attic", "greenhouse", "office", "cabin")}),
    Family("bearded-shaver", "The Bearded Shaver",
           "{name} shaves more than {count} times a day, yet still has a full beard. How?",
           "{name} works in a barber shop. They are a barber, and all day they shave customers, never themselves.",
           (("They are a barber.", 0.6, ("they are a barber", "they work as a barber")),
            ("They shave other people, not themselves.", 0.4, ("they shave other people", "they shave customers"))),
           ("they shave all day",),
           ("their razor is broken", "their beard grows very fast", "they shave their head", "they are lying",
            "the beard is fake", "they shave their own face"),
           {"count": ("ten", "twenty", "thirty", "forty")}),
    Family("three-wins-each", "Three Wins Each",
           "{name} and a friend play {game} five times. Each of them wins three games, and no game is a draw. How?",
           "They did not play each other: each played against other opponents.",
           (("They never played against each other.", 0.6, ("they played against other people",
                                                              "they played each other")),
            ("Each had their own opponents.", 0.4, ("each had other opponents", "they had different opponents"))),
           ("they played other opponents",),
           ("they played each other", "a game was a draw", "they cheated", "they played more than five games",
            "they played on one team", "the score was wrong"),
           {"game": ("chess", "checkers", "tennis", "backgammon", "table tennis", "badminton")}),
    Family("silent-call", "The Silent Call",
           "{name} lies awake in a {place} at night, makes a phone call, says nothing, hangs up and falls asleep at "
           "once. Why?",
           "The neighbour next door was snoring loudly. The call woke the neighbour, the snoring stopped, and {name} "
           "could sleep.",
           (("Someone nearby was snoring.", 0.5, ("the neighbour was snoring", "someone was snoring")),
            ("The call woke the snorer.", 0.3, ("the call woke the neighbour", "the phone woke the neighbour")),
            ("The snoring stopped.", 0.2, ("the snoring stopped",))),
           ("they called the neighbour", "the noise kept them awake"),
           ("they called the police", "they called a friend", "the call was a prank", "they were afraid of the dark",
            "they took a sleeping pill", "the neighbour was having a party"),
           {"place": ("hotel", "apartment", "hostel", "boarding house", "dormitory")}),
    Family("quiet-parrot", "The Quiet {bird}",
           "{name} buys a {bird} that the shop promises will repeat every word it hears. Weeks later it has not said "
           "a single word, and the shop did not lie. How?",
           "The {bird} is deaf: it would repeat every word it hears, but it hears none.",
           (("The bird is deaf.", 0.7, ("the {bird} is deaf", "the bird is deaf")),
            ("It can not hear any words to repeat.", 0.3, ("it hears no words", "the bird can hear"))),
           ("the shop told the truth",),
           ("the shop lied", "the bird can hear", "the bird is dead", "the bird is shy", "the bird is a toy", "the bird is sick",
            "the bird was sold without a voice"),
           {"bird": ("parrot", "mynah", "cockatoo", "budgie", "macaw", "lorikeet")}),
    Family("braille-reader", "Reading in the Dark",
           "{name} sits in a completely dark {place} during a power cut and reads a whole {book}, page by page. How?",
           "They are blind, and the {book} is in braille: {name} reads it with the fingers.",
           (("The reader is blind.", 0.5, ("they are blind", "the reader is blind")),
            ("The book is in braille.", 0.5, ("the {book} is in braille", "the book is in braille"))),
           ("they read with their fingers",),
           ("they used a torch", "the book glows in the dark", "they memorised the book", "they have night vision",
            "they used a candle", "the power came back"),
           {"place": ("cellar", "cabin", "kitchen", "train carriage", "waiting room"),
            "book": ("novel", "cookbook", "diary", "prayer book", "textbook")}),
    Family("home-run", "The Masked Man",
           "{name} leaves home, turns left three times and heads back, where a man in a mask is waiting. Who is he?",
           "{name} is playing baseball: running the bases after a hit, home is home plate, and the masked man is the "
           "catcher.",
           (("It is a baseball game.", 0.4, ("they are playing baseball", "it is a baseball game")),
            ("Home is home plate.", 0.3, ("home is home plate",)),
            ("The masked man is the catcher.", 0.3, ("the masked man is the catcher", "the man is the catcher"))),
           ("they ran the bases",),
           ("the masked man is a robber", "the masked man is a burglar", "they were driving a car",
            "it is halloween", "the masked man is a doctor", "they were lost"),
           {}),
    Family("spare-tyre", "The Flat Tyre",
           "{name} drives {distance} kilometres to the coast with a completely flat tyre and the car is fine. How?",
           "The flat tyre was the spare, lying in the boot the whole way.",
           (("The flat tyre was the spare.", 0.6, ("the flat tyre was the spare", "the spare tyre was flat")),
            ("It was not on a wheel: it lay in the boot.", 0.4, ("the spare was in the boot", "the flat tyre was in the boot"))),
           ("the four wheels were fine",),
           ("they drove on the flat tyre", "the tyre was repaired", "someone towed the car", "the car has no tyres",
            "they drove very slowly", "the tyre was inflated on the way"),
           {"distance": ("two hundred", "three hundred", "five hundred", "eighty", "one hundred")}),
)

TEST_FAMILIES = (
    Family("melted-snowman", "Things on the Lawn",
           "In spring {name} finds a {garment}, a carrot and two lumps of coal lying in the middle of a {place}. "
           "Nobody put them there that day. How did they get there?",
           "They were parts of a snowman built in winter; the snowman melted and left them behind.",
           (("They belonged to a snowman.", 0.6, ("they were parts of a snowman", "someone built a snowman")),
            ("The snowman melted.", 0.4, ("the snowman melted",))),
           ("it snowed in winter",),
           ("someone dropped them", "an animal brought them", "the wind blew them there", "it was a joke",
            "a child lost them", "someone is hiding them"),
           {"garment": ("scarf", "hat", "pair of gloves", "woolly hat"),
            "place": ("lawn", "garden", "school yard", "park", "field")}),
    Family("leap-day", "Few Birthdays",
           "{name} is {age} years old but has had only {parties} birthday parties on their real birthday. Why?",
           "They were born on February 29, a date that comes only in leap years, once every four years.",
           (("They were born on February 29.", 0.7, ("they were born on february 29", "their birthday is february 29")),
            ("That date only comes in leap years.", 0.3, ("their birthday is on a leap day",
                                                           "february 29 comes every four years"))),
           ("their birthday is rare",),
           ("they were in prison", "they forgot their birthdays", "they were in a coma", "they are lying",
            "they hate parties", "they were born abroad"),
           {"age+parties": ("20+five", "24+six", "28+seven", "32+eight", "36+nine", "40+ten", "44+eleven", "48+twelve")}),
    Family("evening-alarm", "One Hour of Sleep",
           "{name} goes to bed at {bed} in the evening and sets a wind-up alarm clock for {wake} in the morning, yet "
           "sleeps only one hour. Why?",
           "The clock is a twelve hour clock. Set for {wake}, the alarm rang in the evening, an hour after bedtime.",
           (("The alarm rang that evening, an hour later.", 0.6, ("the alarm rang in the evening",
                                                                  "the clock rang one hour later")),
            ("The clock does not know morning from evening.", 0.4, ("the clock is a twelve hour clock",
                                                                     "the clock tells morning from evening"))),
           ("the alarm woke them",),
           ("the clock tells morning from evening", "the clock was broken", "they had insomnia", "someone woke them", "they woke up early by themselves",
            "the clock was fast", "they set the wrong time"),
           {"bed+wake": ("seven+eight", "eight+nine", "nine+ten", "ten+eleven", "six+seven")}),
    Family("three-generations", "Three Fish",
           "{name} says: 'Two fathers and two sons went {activity} today. We brought home exactly three {catch}, "
           "and each of us got one.' How?",
           "There were only three people: one of them is a grandfather, out with his son and his grandson.",
           (("There were only three people.", 0.5, ("there were only three people", "they were three people")),
            ("One of them is a grandfather.", 0.5, ("one of them is a grandfather", "they are three generations"))),
           ("the middle one is both a father and a son",),
           ("they caught four {catch}", "one {catch} was split", "one of them got nothing", "they bought a {catch}",
            "there were four people", "one of them was a daughter"),
           {"activity+catch": ("fishing+fish", "apple picking+apples", "mushroom hunting+mushrooms",
                               "crabbing+crabs", "egg hunting+eggs")}),
)


def _fill(text: str, values: dict[str, str]) -> str:
    return text.format(**values)


def _task(family: Family, values: dict[str, str], index: int) -> dict[str, Any]:
    fill = lambda t: _fill(t, values)  # noqa: E731
    criteria = [{"statement": fill(s), "weight": w, "facts": [fill(f) for f in facts]} for s, w, facts in family.criteria]
    false = [fill(f) for f in family.false]
    # A criterion may list a false proposition: a story covers it by stating its negation ("they played each other").
    true = list(dict.fromkeys([f for c in criteria for f in c["facts"] if f not in false] + [fill(f) for f in family.true]))
    return {"id": f"turtle-{family.template}-{index:02d}", "template": family.template, "title": fill(family.title),
            "surface": fill(family.surface), "bottom": fill(family.bottom), "evaluation_criteria": criteria,
            "facts": {"true": true, "false": false},
            "solution": " ".join(f"{c['facts'][0][0].upper()}{c['facts'][0][1:]}." for c in criteria)}


def _variants(family: Family, count: int, rng: random.Random) -> list[dict[str, str]]:
    """`count` distinct slot fillings (the family's slots and a name), drawn without replacement."""
    keys = ["name", *family.slots]
    pools = [NAMES, *family.slots.values()]
    combos = list(itertools.product(*pools))
    rng.shuffle(combos)
    seen, out = set(), []
    for combo in combos:
        values = {k: v for key, value in zip(keys, combo) for k, v in zip(key.split("+"), value.split("+"))}
        surface = _fill(family.surface, values)
        if surface not in seen:  # a slot the surface does not show would repeat a story
            seen.add(surface)
            out.append(values)
        if len(out) == count:
            break
    return out


def family_tasks(train_per_family: int = 36, test_per_family: int = 24, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """The generated stories: `train_per_family` of each train family, `test_per_family` of each held-out family."""
    rng = random.Random(seed)
    out: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for split, families, count in (("train", TRAIN_FAMILIES, train_per_family), ("test", TEST_FAMILIES, test_per_family)):
        for family in families:
            out[split] += [_task(family, values, i) for i, values in enumerate(_variants(family, count, rng))]
    return out
