"""The seeded generator of TravelGym's scenarios (spec §2.1), built when the tasks are first loaded.

UserBench's scenarios are LLM-authored and not redistributable here, so ours are built from a hand-written
catalog of preferences. Every preference constrains one field of an aspect's options, so "correct" is
decidable by construction:

- correct options satisfy all of the aspect's hidden preferences; the best is the cheapest of them
  (spec §2.1: "best = cheapest correct");
- wrong options are near misses: each violates exactly one preference, and many are cheaper than the best;
- noise options have random field values and violate at least one preference.

Option ids are the aspect's initial plus a number (`^[ACFHR]\\d+$`), numbered in random order so that the id
says nothing about the category. Shapes follow UserBench's `wanted_num` (one digit per aspect, the digit is
that aspect's number of preferences); 60 scenarios per shape, and 10 of each 60 are in the test split (80 of 480,
16.7%; UserRL splits every difficulty file 85/15, spec §2.4, and has 360-570 training tasks per gym).

The set is not shipped as a file (it would be 7 MB of JSON): `generate` is registered as the `travel.json` task
source (`rltrain.envs.judged.TASK_SOURCES`) and runs once per process (about 1.3 s), deterministically. To look at
it: `.venv/bin/python -m rltrain.envs.travel_data OUT.json`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rltrain.envs.judged import TASK_SOURCES, render_data_file

SHAPES = ("22", "33", "44", "233", "333", "334", "444", "2222")
PER_SHAPE = 60
TEST_PER_SHAPE = 10
ASPECTS = ("flight", "hotel", "apartment", "rental_car", "restaurant")
ASPECT_INITIAL = {"flight": "F", "hotel": "H", "apartment": "A", "rental_car": "C", "restaurant": "R"}
ASPECT_WORDS = {  # how people name each aspect; the rules judges look for these (whole-word prefixes)
    "flight": ("flight", "fly", "plane", "airfare"),
    "hotel": ("hotel",),
    "apartment": ("apartment", "flat", "holiday rental", "vacation rental"),
    "rental_car": ("rental car", "car rental", "rent a car", "car", "vehicle"),
    "restaurant": ("restaurant", "dinner", "dining"),
}
OPTION_SCHEMAS = {  # spec §2.1, shown to the agent with the options after a correct search
    "flight": "Each flight option has: id, path, time (departure-arrival), company, flight_number, cost (USD), "
              "amenities, service.",
    "hotel": "Each hotel option has: id, name, room, cost (USD per night), rating (0-10), amenities, service.",
    "apartment": "Each apartment option has: id, name, room (bedrooms B, bathrooms B), capacity, cost (USD per night), "
                 "rating (0-10), amenities, service.",
    "rental_car": "Each rental car option has: id, brand, model, categories, seats, cost (USD per day), insurance, service.",
    "restaurant": "Each restaurant option has: id, name, cuisine, expectation (price level), rating (0-5), reviews, tags.",
}


@dataclass(frozen=True)
class Preference:
    """One hidden preference of the catalog and the option field it constrains.

    A scalar field is satisfied by any of `good` and violated by any of `bad`. A list field (`item` set) is
    satisfied when the option's list holds `item`.
    """

    subcategory: str
    keywords: tuple[str, ...]
    """Words that make a question "about" this preference for the rules judge."""
    text: str
    implicit: str
    """How the user reveals it indirectly (UserBench's implicit_elicitation_statement)."""
    field: str
    good: tuple[Any, ...] = ()
    bad: tuple[Any, ...] = ()
    item: str = ""


CATALOG: dict[str, tuple[Preference, ...]] = {
    "flight": (
        Preference("stops", ("direct", "nonstop", "layover", "stop", "connection"), "I want a direct flight with no layovers.",
                   "Changing planes halfway always wears me out; I would rather get there in one go.", "path",
                   good=("{origin} -> {destination} (direct)",),
                   bad=("{origin} -> Reykjavik -> {destination}", "{origin} -> Frankfurt -> {destination}")),
        Preference("departure_time", ("departure time", "morning", "afternoon", "evening", "what time", "depart"),
                   "I prefer a morning departure, before noon.",
                   "I am an early riser and like having the rest of the day once I land.", "time",
                   good=("07:10-10:55", "08:30-12:15", "09:45-13:20"), bad=("13:20-17:05", "17:40-21:25", "21:15-00:59")),
        Preference("wifi", ("wifi", "wi fi", "internet", "online"), "I need Wi-Fi on board.",
                   "I will have to answer work emails while we are in the air.", "amenities", item="Wi-Fi"),
        Preference("baggage", ("bag", "luggage", "suitcase"), "A checked bag must be included in the fare.",
                   "I never manage to travel light; my big suitcase comes everywhere with me.", "service",
                   item="free checked bag"),
        Preference("airline", ("airline", "carrier"), "I avoid the low-cost carriers BudgetJet and Nimbus Express.",
                   "Last time a budget airline lost my booking, so I stick to full-service companies.", "company",
                   good=("SkyLark Air", "Aurora Airways", "Meridian"), bad=("BudgetJet", "Nimbus Express")),
        Preference("meal", ("meal", "snack", "catering"), "I want a hot meal served on board.",
                   "Airport food never agrees with me, so I would rather eat once I am seated.", "service",
                   item="hot meal"),
    ),
    "hotel": (
        Preference("rating", ("rating", "rated", "review", "stars", "quality"), "The hotel should be rated 8.5 or higher.",
                   "I read the guest reviews closely; anything mediocre makes me anxious.", "rating",
                   good=(8.6, 9.1, 9.4), bad=(6.4, 7.2, 7.9)),
        Preference("breakfast", ("breakfast",), "Breakfast must be included.",
                   "I cannot function in the morning before a proper meal downstairs.", "service", item="breakfast included"),
        Preference("gym", ("gym", "fitness", "workout", "exercise"), "The hotel needs a fitness center.",
                   "I keep up my training routine even when I am away from home.", "amenities", item="fitness center"),
        Preference("bed", ("bed", "room type", "king"), "I need a room with a king-size bed.",
                   "I sleep badly in narrow beds; I like to stretch out.", "room",
                   good=("king room", "king suite"), bad=("twin room", "double room")),
        Preference("pool", ("pool", "swim"), "I want a hotel with a swimming pool.",
                   "A few laps in the evening is how I unwind after a long day.", "amenities", item="pool"),
        Preference("parking", ("parking", "park"), "Free parking is a must.",
                   "I will be driving around the region, so I need somewhere to leave the car.", "service",
                   item="free parking"),
    ),
    "apartment": (
        Preference("bedrooms", ("bedroom", "how many rooms", "rooms"), "The apartment needs at least two bedrooms.",
                   "My sister is joining me and we both value a door we can close.", "room",
                   good=("2B1B", "2B2B", "3B2B"), bad=("1B1B", "Studio")),
        Preference("kitchen", ("kitchen", "cook"), "I need a full kitchen.",
                   "I love shopping at local markets and making my own dinners.", "amenities", item="full kitchen"),
        Preference("laundry", ("laundry", "washer", "washing"), "A washing machine is essential.",
                   "I pack light and plan to do a load of clothes halfway through.", "amenities", item="washing machine"),
        Preference("pets", ("pet", "dog", "cat"), "Pets must be allowed.",
                   "My dog Biscuit goes everywhere with me.", "service", item="pets allowed"),
        Preference("checkin", ("check in", "checkin", "arrival", "key"), "I need self check-in.",
                   "I arrive late at night and do not want to wait around for a host.", "service", item="self check-in"),
        Preference("balcony", ("balcony", "terrace", "outdoor space"), "I want a balcony.",
                   "Morning coffee in the fresh air is my favourite ritual.", "amenities", item="balcony"),
    ),
    "rental_car": (
        Preference("seats", ("seat", "passenger", "capacity", "size"), "The car needs at least seven seats.",
                   "The whole family is coming along, including the grandparents.", "seats",
                   good=(7, 8), bad=(4, 5)),
        Preference("fuel", ("electric", "fuel", "gas", "petrol", "diesel", "engine"), "I want an electric car.",
                   "I try to keep my carbon footprint small, even on holiday.", "categories",
                   good=("electric SUV", "electric sedan"), bad=("gasoline SUV", "diesel sedan", "gasoline compact")),
        Preference("insurance", ("insurance", "coverage", "insured"), "I want full insurance coverage.",
                   "I get nervous driving abroad, so I want to be covered for anything.", "insurance",
                   good=("full coverage",), bad=("basic liability", "none")),
        Preference("transmission", ("automatic", "manual", "transmission", "gear"), "The car must be automatic.",
                   "I never learned to drive with a clutch.", "service", item="automatic transmission"),
        Preference("mileage", ("mileage", "miles", "distance", "kilometer"), "I need unlimited mileage.",
                   "We plan long road trips along the coast.", "service", item="unlimited mileage"),
    ),
    "restaurant": (
        Preference("cuisine", ("cuisine", "food", "dish"), "I would like Japanese or Thai food.",
                   "I have been craving fresh, light Asian flavours lately.", "cuisine",
                   good=("Japanese", "Thai"), bad=("Italian", "Steakhouse", "French")),
        Preference("vegetarian", ("vegetarian", "vegan", "meat", "diet"), "The restaurant needs vegetarian options.",
                   "I stopped eating meat a few years ago.", "tags", item="vegetarian options"),
        Preference("quiet", ("atmosphere", "quiet", "noise", "ambience", "ambiance", "vibe"), "I want a quiet atmosphere.",
                   "It is a business dinner; we need to hear each other talk.", "tags", item="quiet atmosphere"),
        Preference("rating", ("rating", "rated", "review", "stars"), "The restaurant should be rated 4.5 or higher.",
                   "I only want to go somewhere people really rave about.", "rating",
                   good=(4.6, 4.8), bad=(3.6, 3.9, 4.2)),
        Preference("outdoor", ("outdoor", "outside", "patio"), "I want outdoor seating.",
                   "If the weather is nice I would hate to be stuck indoors.", "tags", item="outdoor seating"),
        Preference("price", ("price level", "expensive", "pricey", "price range"), "Not too expensive: a mid-range place.",
                   "Splurging on a fancy dinner is just not my thing.", "expectation",
                   good=("$$",), bad=("$$$$",)),
    ),
}

# Fields that no preference constrains, per aspect: (field, values).
_FILLER: dict[str, tuple[tuple[str, tuple[Any, ...]], ...]] = {
    "flight": (("flight_number", ("SL 204", "AU 518", "ME 77", "BJ 903", "NX 341", "SL 662", "AU 129")),),
    "hotel": (("name", ("Harbor View Hotel", "Grand Meridian", "The Linden", "Park & Stone", "Hotel Solace",
                        "Cobalt House", "The Wren", "Atrium Plaza")),),
    "apartment": (("name", ("Sunny Loft", "Old Town Flat", "Canal House", "Garden Studio", "Riverside Home",
                            "Blue Door Apartment", "Courtyard Suite")), ("capacity", (2, 4, 6))),
    "rental_car": (("brand", ("Volta", "Kestrel", "Nordmark", "Sakura Motors")),
                   ("model", ("Trail 7", "City S", "Wave", "Ranger X", "Breeze"))),
    "restaurant": (("name", ("Hana", "Lotus Garden", "Trattoria Sole", "Ember Grill", "Le Petit Coin", "Saffron Leaf",
                             "Koi Pond", "Basil & Lime")), ("reviews", (120, 340, 860, 1500))),
}
_LIST_FILLER = {"amenities": ("power outlets", "air conditioning", "TV", "phone charger"),
                "service": ("24h support", "flexible cancellation", "loyalty points", "multilingual staff"),
                "tags": ("family friendly", "reservations", "late opening", "live music")}
_COST_RANGE = {"flight": (180, 900), "hotel": (90, 420), "apartment": (70, 330), "rental_car": (35, 140),
               "restaurant": (25, 120)}
_CITIES = ("Lisbon", "Oslo", "Kyoto", "Denver", "Cape Town", "Montreal", "Seville", "Hanoi", "Melbourne", "Prague",
           "Boston", "Vancouver", "Istanbul", "Lima", "Edinburgh", "Singapore")
_PURPOSES = ("a conference", "a family holiday", "a wedding", "a week of hiking", "a food tour", "a business trip",
             "a reunion with old friends", "a photography trip")
_TRAVELERS = ("Maya", "Daniel", "Priya", "Tomas", "Aiko", "Felix", "Noor", "Lucas", "Grace", "Omar", "Elena", "Jonah")
_ASPECT_PHRASE = {"flight": "a flight", "hotel": "a hotel", "apartment": "an apartment", "rental_car": "a rental car",
                  "restaurant": "a dinner reservation"}
_COUNTS = {"correct": (2, 4), "wrong": (11, 13), "noise": (6, 7)}  # more than the 10/5 shown: truncation matters


def _arguments(aspect: str, trip: dict[str, str]) -> dict[str, str]:
    """Ground-truth search arguments of an aspect (spec §2.1 `arguments`); all appear in the user's request."""
    if aspect == "flight":
        return {"origin": trip["origin"], "destination": trip["destination"], "date": trip["start"]}
    if aspect in ("hotel", "apartment"):
        return {"city": trip["destination"], "check_in": trip["start"], "check_out": trip["end"]}
    if aspect == "rental_car":
        return {"pickup_city": trip["destination"], "pickup_date": trip["start"], "return_date": trip["end"]}
    return {"city": trip["destination"], "date": trip["start"]}


def _value(rng: random.Random, pref: Preference, satisfy: bool, trip: dict[str, str]) -> Any:
    value = rng.choice(pref.good if satisfy else pref.bad)
    return value.format(**trip) if isinstance(value, str) else value


def _option(rng: random.Random, aspect: str, prefs: list[Preference], satisfied: list[bool],
            trip: dict[str, str]) -> dict[str, Any]:
    """One option whose preference fields follow `satisfied`; every other field is random."""
    option: dict[str, Any] = {}
    lists: dict[str, set[str]] = {}
    by_field = {p.field: p for p in prefs}
    for other in CATALOG[aspect]:  # unconstrained catalog fields still get plausible values
        if other.item:
            lists.setdefault(other.field, set())
            if other not in prefs and rng.random() < 0.5:
                lists[other.field].add(other.item)
        elif other.field not in by_field:
            option[other.field] = _value(rng, other, rng.random() < 0.5, trip)
    for pref, ok in zip(prefs, satisfied):
        if pref.item:
            if ok:
                lists[pref.field].add(pref.item)
        else:
            option[pref.field] = _value(rng, pref, ok, trip)
    for field, values in _FILLER[aspect]:
        option[field] = rng.choice(values)
    for field, items in lists.items():
        option[field] = sorted(items | set(rng.sample(_LIST_FILLER[field], 2)))
    return option  # cost and id are drawn per aspect, so that they are distinct


def _aspect_record(rng: random.Random, aspect: str, wanted: int, trip: dict[str, str]) -> dict[str, Any]:
    prefs = rng.sample(CATALOG[aspect], wanted)
    n = {kind: rng.randint(*bounds) for kind, bounds in _COUNTS.items()}
    options: dict[str, list[dict[str, Any]]] = {"correct": [], "wrong": [], "noise": []}
    for _ in range(n["correct"]):
        options["correct"].append(_option(rng, aspect, prefs, [True] * wanted, trip))
    for i in range(n["wrong"]):
        miss = i % wanted  # each preference is the one violated by some near miss
        options["wrong"].append(_option(rng, aspect, prefs, [j != miss for j in range(wanted)], trip))
    for _ in range(n["noise"]):
        satisfied = [rng.random() < 0.5 for _ in range(wanted)]
        satisfied[rng.randrange(wanted)] = False
        options["noise"].append(_option(rng, aspect, prefs, satisfied, trip))
    costs = rng.sample(range(*_COST_RANGE[aspect]), sum(n.values()))  # distinct costs: the best is unique
    ids = rng.sample(range(1, 100), sum(n.values()))
    flat = [o for kind in ("correct", "wrong", "noise") for o in options[kind]]
    for option, cost, number in zip(flat, costs, ids):
        option["cost"] = cost
        option["id"] = f"{ASPECT_INITIAL[aspect]}{number}"
    # Near misses cheaper than the best make "cheapest" alone a losing strategy.
    best = min(options["correct"], key=lambda o: o["cost"])
    for wrong in options["wrong"][: max(1, len(options["wrong"]) // 2)]:
        if wrong["cost"] > best["cost"]:
            wrong["cost"], best["cost"] = best["cost"], wrong["cost"]
            best = min(options["correct"], key=lambda o: o["cost"])
    for kind in options:  # id first, for readability
        options[kind] = [{"id": o["id"], **{k: v for k, v in sorted(o.items()) if k != "id"}} for o in options[kind]]
    return {"preferences": [[aspect, p.subcategory, p.text, p.implicit] for p in prefs],
            "arguments": _arguments(aspect, trip), "options": options,
            "correct_ids": [o["id"] for o in options["correct"]], "best_id": best["id"]}


def _scenario(rng: random.Random, shape: str, index: int) -> dict[str, Any]:
    origin, destination = rng.sample(_CITIES, 2)
    day = rng.randint(3, 20)
    month = rng.choice(("03", "05", "06", "09", "10"))
    trip = {"origin": origin, "destination": destination, "start": f"2025-{month}-{day:02d}",
            "end": f"2025-{month}-{day + rng.randint(3, 7):02d}"}
    dimensions = rng.sample(ASPECTS, len(shape))
    traveler, purpose = rng.choice(_TRAVELERS), rng.choice(_PURPOSES)
    needs = ", ".join(_ASPECT_PHRASE[a] for a in dimensions[:-1]) + f" and {_ASPECT_PHRASE[dimensions[-1]]}"
    record: dict[str, Any] = {
        "id": f"travel{shape}-{index:02d}",
        "scenario": f"{traveler} travels from {origin} to {destination} for {purpose}, from {trip['start']} to "
                    f"{trip['end']}, and needs {needs}.",
        "initial_description": f"Hi! I am going from {origin} to {destination} for {purpose}, from {trip['start']} to "
                               f"{trip['end']}. Could you help me book {needs}"
                               + (f" (dinner in {destination} on {trip['start']})" if "restaurant" in dimensions else "")
                               + "?",
        "dimensions": list(dimensions),
        "wanted_num": shape,
    }
    for aspect, digit in zip(dimensions, shape):
        record[aspect] = _aspect_record(rng, aspect, int(digit), trip)
    return record


@TASK_SOURCES.register("travel.json")
def generate(seed: int = 42) -> dict[str, list[dict[str, Any]]]:
    """All scenarios, split per shape: `TEST_PER_SHAPE` of every `PER_SHAPE` go to test (chosen by the seed)."""
    rng = random.Random(seed)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for shape in SHAPES:
        scenarios = [_scenario(rng, shape, i) for i in range(PER_SHAPE)]
        test = set(rng.sample(range(PER_SHAPE), TEST_PER_SHAPE))
        for i, scenario in enumerate(scenarios):
            splits["test" if i in test else "train"].append(scenario)
    return splits


def render(splits: dict[str, list[dict[str, Any]]]) -> str:
    """The file text (one scenario per line keeps diffs readable)."""
    return render_data_file(splits, ("train", "test"))

if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m rltrain.envs.travel_data OUT.json  (writes the generated scenarios, to look at)")
    Path(sys.argv[1]).write_text(render(generate()))
    print(f"wrote {sys.argv[1]}")
