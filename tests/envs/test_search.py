"""SearchGym's rules (spec §1.5, §7.1 R8), played by scripted agents over the shipped local corpus."""

from __future__ import annotations

import json

import pytest

from rltrain.envs import make_env
from rltrain.envs.search import corpus, is_match
from rltrain.envs.search_data import DATA_FILE, generate, render
from rltrain.users import UserSimError
from tests.envs.conftest import RulesUser, papers_rule


def _task(env, index: int = 0):
    return env.tasks("test", 8, seed=0)[index]


@pytest.fixture
def search(start_gym):
    def start(user=None, index: int = 0, **kwargs):
        env = make_env("search", dict(kwargs))
        return start_gym("search", RulesUser() if user is None else user, _task(env, index), **kwargs)
    return start


def test_search_returns_top_5_and_stops_after_5_searches(search) -> None:
    """§1.5: top-5 passages per search, at most 5 searches (the 6th and later must answer), reward 0."""
    env = search()
    question = env.data["question"]
    first = env.step(f"[search] {question}")
    assert first.reward == 0.0 and first.observation.count("\n[") == 5 and "\n[5] " in first.observation
    for _ in range(4):
        assert "[1] " in env.step("[search] city river").observation
    for _ in range(2):
        refused = env.step(f"[search] {question}")
        assert (refused.reward, refused.terminated) == (0.0, False) and "must answer now" in refused.observation


def test_answers_normalized_match_and_judge(search, scripted_user) -> None:
    """§1.5: a normalized string match is correct (1.0, ends); otherwise the judge decides when eval_method=llm."""
    user = RulesUser()
    env = search(user)
    gold = env.data["answer"]
    wrong = env.step("[answer] Nobody")
    assert (wrong.reward, wrong.terminated) == (0.0, False) and len(user.requests) == 1  # the judge said No
    right = env.step(f"[answer]  The {gold.upper()}! ")
    assert (right.reward, right.terminated) == (1.0, True) and len(user.requests) == 1  # matched, no judge call
    judged = search(RulesUser()).step(f"[answer] I believe it is {gold}.")
    assert (judged.reward, judged.terminated) == (1.0, True)  # the rules judge finds the gold answer
    exact = search(None, eval_method="exact")
    assert not exact.needs_user and exact.step(f"[answer] I believe it is {gold}.").reward == 0.0
    broken = papers_rule(search(scripted_user("no verdict here"))).step("[answer] Nobody")
    assert broken.reward == 0.0 and "search.judge" in broken.info["judge_error"]
    assert search(scripted_user('{"answer": "Yes"}')).step("[answer] Nobody").reward == 1.0


def test_is_match_normalisation() -> None:
    assert is_match("  the fuldil.", "Fuldil") and is_match("1987", "1987")
    assert not is_match("Fuldil river", "Fuldil") and not is_match("198", "1987")


def test_user_service_failure_propagates(search, failing_user) -> None:
    with pytest.raises(UserSimError):
        search(failing_user).step("[answer] Nobody")


def test_finish_truncation_and_offered_verbs(search) -> None:
    env = search(max_steps=2)
    hint = env.step("[action] hello")
    assert hint.reward == 0.0 and "[search], [answer]" in hint.observation and not hint.truncated
    assert env.step("[search] anything").truncated
    assert search().step("[finish]").terminated


def test_shipped_corpus_and_questions() -> None:
    """The data file is the generator's output: >= 24 questions, a disjoint >= 15% test split, and every
    question takes two searches: the subject's name finds its passage, which names a bridge entity whose
    passage (found by searching its name) holds the answer; the subject's own passage does not."""
    data = generate()
    assert DATA_FILE.read_text() == render(data), "regenerate: python -m rltrain.envs.search_data"
    train, test = ({q["id"] for q in data[k]} for k in ("train", "test"))
    assert len(train) + len(test) >= 24 and len(test) / (len(train) + len(test)) >= 0.15 and not train & test
    passages, index = corpus()
    assert len(passages) >= 200 and json.loads(DATA_FILE.read_text())["corpus"] == list(passages)
    for q in data["train"] + data["test"]:
        name = next(p["title"] for p in passages if p["title"] in q["question"])
        subject = next(passages[i] for i in index.search(name, 5) if passages[i]["title"] == name)
        assert q["answer"] not in subject["text"], q
        bridge = next(p for p in passages if p["title"] in subject["text"] and p is not subject and q["answer"] in p["text"])
        assert any(q["answer"] in passages[i]["text"] for i in index.search(bridge["title"], 5)), q
