"""SearchGym (UserRL, spec §1.5): answer two-hop questions by searching a local corpus.

UserRL's SearchGym searches the web (Serper) for Bamboogle questions; this one searches a shipped corpus of
invented facts (`rltrain/envs/search_data.py`) with a small BM25 index, so it runs offline and a model cannot
answer from memory. Verbs (spec §1.3):

- `[search] query`: the top `top_k` (5) passages; at most `max_searches` (5) searches, later ones return the
  "you must answer now" message; reward 0;
- `[answer] text`: correct when its normalized text equals the gold answer's (lower case, no punctuation, no
  leading article); otherwise, with `eval_method="llm"`, a judge decides Yes/No (JSON {thought, answer}).
  Reward 1.0 and the episode ends when correct, else 0;
- `[finish]` ends the episode; `max_steps` truncates it.

Rules responder `search.judge`: Yes when the gold answer occurs in the normalized answer as whole words
("It was Fuldil." is right; "Fuldilon" is not). A malformed judge reply counts as a judge error and as a
wrong answer; `UserSimError` propagates (`rltrain.envs.judged`).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from typing import Any

from rltrain.envs.base import ENVIRONMENTS, StepResult
from rltrain.envs.judged import DATA_DIR, JudgedGym, fenced_json, normalize, one_of
from rltrain.users import USER_RULES, UserRequest

JUDGE_SYSTEM = """You judge an answer to a question against the gold answer. Say "Yes" when the answer means the
same as the gold answer (extra words are fine if they do not contradict it), otherwise "No".
Reply with JSON only, wrapped in ```json ... ```: {"thought": "your reasoning", "answer": "Yes" or "No"}"""
JUDGE_USER = "Question: {question}\nGold answer: {gold}\nAnswer to judge: {answer}"

_STOPWORDS = frozenset("a an and are as at by for from in is it of on or the to was what which who whose with where "
                       "when that this does did do".split())


def tokenize(text: str) -> list[str]:
    """Lower-cased words without stopwords.

    >>> tokenize("Who founded the Stirzen Works?")
    ['founded', 'stirzen', 'works']
    """
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS]


class BM25:
    """Okapi BM25 over a fixed list of documents (k1 = 1.5, b = 0.75, the usual defaults).

    >>> BM25(["the red fox", "a blue whale", "red red wine"]).search("red wine", k=2)
    [2, 0]
    """

    def __init__(self, documents: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.terms = [Counter(tokenize(d)) for d in documents]
        self.lengths = [sum(t.values()) for t in self.terms]
        self.mean_length = sum(self.lengths) / max(1, len(self.lengths))
        frequency = Counter(term for t in self.terms for term in t)
        n = len(documents)
        self.idf = {term: math.log(1 + (n - df + 0.5) / (df + 0.5)) for term, df in frequency.items()}

    def score(self, query: list[str], i: int) -> float:
        terms, norm = self.terms[i], self.k1 * (1 - self.b + self.b * self.lengths[i] / self.mean_length)
        return sum(self.idf[q] * terms[q] * (self.k1 + 1) / (terms[q] + norm) for q in query if q in terms)

    def search(self, query: str, k: int) -> list[int]:
        """Indices of the `k` best documents with a positive score, best first (ties: lower index)."""
        words = tokenize(query)
        scored = [(self.score(words, i), i) for i in range(len(self.terms))]
        return [i for s, i in sorted(scored, key=lambda p: (-p[0], p[1]))[:k] if s > 0]


@functools.cache
def corpus() -> tuple[tuple[dict[str, str], ...], BM25]:
    """The shipped passages and their index (built once per process)."""
    passages = tuple(json.loads((DATA_DIR / "search.json").read_text())["corpus"])
    return passages, BM25([p["text"] for p in passages])


def is_match(answer: str, gold: str) -> bool:
    """The normalized string match of spec §1.5.

    >>> is_match("The Fuldil!", "Fuldil"), is_match("river Fuldil", "Fuldil")
    (True, False)
    """
    return normalize(answer) == normalize(gold)


@USER_RULES.register("search.judge")
def judge_answer(request: UserRequest) -> str:
    """Yes when the gold answer occurs in the answer as whole words."""
    ctx = request.context
    right = f" {normalize(ctx['gold'])} " in f" {normalize(ctx['answer'])} "
    return fenced_json({"thought": "gold answer named" if right else "gold answer absent", "answer": "Yes" if right else "No"})


@ENVIRONMENTS.register("search")
class SearchGym(JudgedGym):
    """Open-domain two-hop QA over a local corpus; search, then answer."""

    name = "search"
    data_file = "search.json"
    goal = ("Answer the question. You cannot know the answer yourself: search the knowledge base, then answer "
            "with the answer alone (a name, place or number).")
    verbs = {"search": "search the knowledge base (returns the 5 best passages)", "answer": "submit your answer"}

    def __init__(self, max_steps: int = 16, max_searches: int = 5, top_k: int = 5, eval_method: str = "llm",
                 step_penalty: float = 0.0, normalize_rewards: bool = False) -> None:
        """Args:
            max_steps: steps before truncation (UserRL's env manager sets multi_turn.max_turns, 16).
            max_searches: searches allowed; later ones are refused (spec §1.5: 5).
            top_k: passages per search (spec §1.5: top 5).
            eval_method: "llm" asks the judge when the normalized match fails; "exact" uses the match alone
                (then no simulated user is needed).
            step_penalty, normalize_rewards: spec §1.4 (SearchGym does not clip: normalize_rewards False).
        """
        super().__init__(max_steps=max_steps, step_penalty=step_penalty, normalize_rewards=normalize_rewards)
        if eval_method not in ("llm", "exact"):
            raise ValueError(f"eval_method must be 'llm' or 'exact', got {eval_method!r}")
        self.max_searches, self.top_k, self.eval_method = max_searches, top_k, eval_method
        self.needs_user = eval_method == "llm"
        self.searches = 0

    def opening(self, data: dict[str, Any]) -> str:
        self.searches = 0
        return f"Question: {data['question']}"

    async def act(self, verb: str, content: str) -> StepResult:
        if verb == "search":
            self.searches += 1
            if self.searches > self.max_searches:
                return StepResult(f"You have used all {self.max_searches} searches. You must answer now.",
                                  info={"searches": self.searches})
            passages, index = corpus()
            hits = index.search(content, self.top_k)
            listing = "\n".join(f"[{n + 1}] {passages[i]['title']}: {passages[i]['text']}" for n, i in enumerate(hits))
            return StepResult(f"Search results for {content!r}:\n{listing or '(no results)'}",
                              info={"searches": self.searches})
        correct = is_match(content, self.data["answer"])
        if not correct and self.eval_method == "llm":
            context = {"question": self.data["question"], "gold": self.data["answer"], "answer": content}
            request = UserRequest(hat="judge", system=JUDGE_SYSTEM, messages=({"role": "user", "content": JUDGE_USER.format(**context)},),
                                  rule="search.judge", context=context)
            correct = await self.ask_json(request, lambda v: one_of(v["answer"], ("Yes", "No"), "answer")) == "Yes"
        if correct:
            return StepResult("Correct!", reward=1.0, terminated=True, info={"correct": True})
        return StepResult("Your answer is incorrect. You may search more or answer again.", info={"correct": False})
