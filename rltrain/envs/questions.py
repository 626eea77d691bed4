"""The constrained grammar the rules users parse: yes/no questions and plain statements about structured facts.

Rules users are test fixtures (issue 17): they answer only from a task's ground truth, a table of propositions
with their truth values (`Facts`), never from keyword overlap. A question or a sentence is reduced to a
canonical proposition key and a negation parity:

- lower case; contractions opened ("isn't" -> "is not", "can't" -> "can not");
- "not" and "never" are counted and removed: an odd count negates ("Is it not an animal?"), an even count does
  not ("Is it not not an animal?");
- auxiliaries (is, was, does, did, has ...), articles, the subject pronoun "it", possessives and a few fillers
  are dropped, and each remaining word is stemmed crudely ("lives", "lived" -> "liv"), so that
  "Is his wife alive?" and "the wife is alive" both become "wife aliv".

A question is decidable only when its key equals the key of a proposition in the table (`Facts.decide`);
anything else is undecidable and the gym answers with its "cannot answer" reply: a compound ("Is it an animal
or a plant?") or a hedge ("maybe") keeps its "or"/"maybe" in the key and so matches no authored proposition
(unless the proposition itself says it: "it is black and white"). A statement (a story, an argument) states a table proposition
when one of its clauses reduces to exactly that key (or, for long propositions, contains it: `Facts.claims`);
a hedged or disjunctive clause states nothing, and a bag of keywords reduces to no key at all.

>>> facts = Facts({"it is an animal": True, "it is alive": True})
>>> facts.decide("Is it alive?"), facts.decide("Is it not an animal?"), facts.decide("Isn't it not an animal?")
(True, False, True)
>>> facts.decide("Is it an animal or a plant?") is None, facts.decide("Is it a living creature?") is None
(True, True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_CONTRACTIONS = ((r"\bcan't\b", "can not"), (r"\bcannot\b", "can not"), (r"\bwon't\b", "will not"),
                 (r"n't\b", " not"), (r"'s\b", ""), (r"'re\b", ""), (r"'d\b", ""), (r"'ll\b", ""))
NEGATIONS = frozenset({"not", "never"})
DROPPED = frozenset({
    "is", "was", "are", "were", "am", "be", "been", "being", "do", "does", "did",
    "the", "a", "an", "it", "its", "his", "her", "their", "he", "she", "they", "him", "them", "this", "that",
    "some", "any", "ever", "really", "actually", "true", "indeed", "also", "very", "just",
})
"""Words that carry no proposition here: be and do, articles, pronouns, possessives, fillers. "have" and "can"
stay ("Does it have a trunk?" is not "Is it a trunk?")."""
COMPOUND = frozenset({"and", "or", "but", "either", "neither", "nor", "whether", "if", "unless", "than"})
"""A question with one of these asks two things (or a comparison the table does not hold): undecidable."""
HEDGES = frozenset({"maybe", "perhaps", "possibly", "probably", "might", "either", "or", "guess", "whether"})
"""A sentence with one of these lists candidates or hedges instead of asserting: it asserts nothing."""
IRREGULAR = {"has": "have", "had": "have", "having": "have", "could": "can", "died": "die", "dies": "die", "dying": "die", "dead": "dead", "ate": "eat", "eaten": "eat",
             "flies": "fly", "flew": "fly", "flying": "fly", "knew": "know", "known": "know", "saw": "see",
             "seen": "see", "made": "make", "killed": "kill", "went": "go", "gone": "go", "took": "take",
             "fed": "feed", "men": "man", "women": "woman", "children": "child", "people": "person",
             "lives": "live", "alive": "alive", "living": "live", "wives": "wife", "bought": "buy",
             "thought": "think", "told": "tell", "fell": "fall", "left": "leave", "found": "find"}


def _stem(word: str) -> str:
    """A crude, consistent stem: the same on both sides is all that matters ("lives", "lived", "live" -> "liv")."""
    word = IRREGULAR.get(word, word)
    for suffix in ("ing", "ies", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix) and not word.endswith("ss"):
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def words(text: str) -> list[str]:
    """Lower-cased words with contractions opened and punctuation dropped (commas kept as ",")."""
    text = text.lower().replace("\u2019", "'")
    for pattern, replacement in _CONTRACTIONS:
        text = re.sub(pattern, replacement, text)
    return re.findall(r"[a-z0-9]+|,", text)


@dataclass(frozen=True)
class Parsed:
    """A question or sentence reduced to its proposition key, its negation parity and its grammar flags."""

    key: str
    negated: bool
    compound: bool
    hedged: bool


def parse(text: str) -> Parsed:
    """Reduce one question or sentence (see the module docstring).

    >>> parse("Isn't the wife alive?")
    Parsed(key='wif aliv', negated=True, compound=False, hedged=False)
    """
    raw = words(text)
    negations = sum(w in NEGATIONS for w in raw)
    compound = any(w in COMPOUND or w == "," for w in raw)
    hedged = any(w in HEDGES for w in raw)
    key = " ".join(_stem(w) for w in raw if w not in NEGATIONS and w not in DROPPED and w != ",")
    return Parsed(key=key, negated=negations % 2 == 1, compound=compound, hedged=hedged)


def key(proposition: str) -> str:
    """The canonical key of a proposition as authored ("it lives in water" -> "liv in water")."""
    parsed = parse(proposition)
    if parsed.negated:
        raise ValueError(f"a fact must be a positive proposition (no 'not'/'never'): {proposition!r}; "
                         "state it positively and give it the value false instead")
    return parsed.key


NO_FACTS: dict[str, list[str]] = {"true": [], "false": []}
"""The facts of a task authored without any: every question is undecidable, every story states nothing."""


_STEMMED_HEDGES = frozenset(_stem(h) for h in HEDGES)


def sentences(text: str) -> list[str]:
    """Split a story or argument into sentences (on . ! ? ; and new lines)."""
    return [s.strip() for s in re.split(r"[.!?;\n]+", text) if s.strip()]


def states(text: str, proposition: str) -> bool:
    """Whether a sentence of `text` states `proposition` (a long one, possibly negative): it contains the
    proposition's words in order, with the same negation parity, and no hedge.

    >>> states("Sadly, bans do not change what children eat overall.", "bans do not change what children eat overall")
    True
    >>> states("Maybe bans do not change what children eat overall.", "bans do not change what children eat overall")
    False
    """
    target = parse(proposition)
    for p in map(parse, sentences(text)):
        padded = f" {p.key} "
        if p.negated != target.negated or f" {target.key} " not in padded:
            continue
        rest = padded.replace(f" {target.key} ", " ", 1).split()  # hedges outside the proposition's own words
        if not any(w in _STEMMED_HEDGES for w in rest):
            return True
    return False


CONNECTIVES = re.compile(r"[,:]|\b(?:and|but|so|because|then|which|when|while|after|before|until|since|although)\b")


def clauses(text: str) -> list[str]:
    """Sentences cut at commas, colons and connectives: the units a story states facts in."""
    return [c.strip() for s in sentences(text) for c in CONNECTIVES.split(s.lower()) if c.strip()]


class Facts:
    """A task's ground truth: propositions (authored in plain words) and their truth values."""

    def __init__(self, table: Mapping[str, bool]) -> None:
        self.table: dict[str, bool] = {}
        self.text: dict[str, str] = {}
        for proposition, value in table.items():
            k = key(proposition)
            if k in self.table and self.table[k] != value:
                raise ValueError(f"facts contradict each other on {proposition!r} (key {k!r})")
            self.table[k], self.text[k] = bool(value), proposition

    @classmethod
    def of(cls, true: Iterable[str] = (), false: Iterable[str] = ()) -> Facts:
        """Facts from a list of true and a list of false propositions."""
        return cls({**{p: True for p in true}, **{p: False for p in false}})

    def decide(self, question: str) -> bool | None:
        """The truth of a yes/no question, or None when it is outside the grammar or not in the table."""
        parsed = parse(question)
        if parsed.key not in self.table:  # a compound or hedged question reduces to no authored key
            return None
        return self.table[parsed.key] != parsed.negated

    def asserted(self, text: str, contains: bool = False) -> dict[str, bool]:
        """{key: asserted truth} for the table propositions that `text` states (see `claims`)."""
        return {k: v for k, v, _ in self.claims(text, contains)}

    def claims(self, text: str, contains: bool = False) -> list[tuple[str, bool, str]]:
        """(key, asserted truth, clause) for each table proposition a clause of `text` states.

        A clause (a sentence cut at , ; : and at connectives such as "and", "but", "because") states the
        proposition whose key it equals; with `contains`, every proposition whose key occurs in it as a run of
        whole words (for long propositions such as a persuasion counterpoint). A negated clause (odd number
        of "not"/"never") states it as false; a hedged clause ("maybe", "or", "perhaps") states nothing, so a
        list of candidates earns nothing.
        """
        out = []
        for clause in (sentences(text) if contains else clauses(text)):
            parsed = parse(clause)
            if parsed.hedged:
                continue
            for k in ([k for k in self.table if f" {k} " in f" {parsed.key} "] if contains else
                      [parsed.key] if parsed.key in self.table else []):
                out.append((k, not parsed.negated, clause))
        return out

    def contradictions(self, text: str, contains: bool = False) -> list[str]:
        """The clauses of `text` that state a proposition against the table (or against another clause)."""
        claims = self.claims(text, contains)
        said: dict[str, set[bool]] = {}
        for k, value, _ in claims:
            said.setdefault(k, set()).add(value)
        return sorted({c for k, value, c in claims if value != self.table[k] or len(said[k]) > 1})

    def questions(self) -> list[tuple[str, bool]]:
        """Generated yes/no questions with their true answers, for property tests: each fact asked plainly,
        negated and doubly negated."""
        out = []
        for k, value in self.table.items():
            base = self.text[k].rstrip(".")
            out += [(f"Is it true that {base}?", value), (f"Is it true that not {base}?", not value),
                    (f"Is it true that not not {base}?", value)]
        return out
