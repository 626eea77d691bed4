"""The rules customer (spec §6.4): truthful, reveals each fact when asked directly, at most 10 turns, ###STOP###."""

import asyncio
import re

from rltrain.envs.crm.customer import STOP, customer_request, rules_customer
from rltrain.envs.crm.tasks import SINGLE_TURN, sample_tasks

from ..conftest import RulesUser
from .helpers import start, task_of

_VALUE = re.compile(r"(CAS-\d+|ORD-\d+|[\w.+-]+@[\w.-]+\.[a-z]+|\+1-555-\d{4}|\d+ percent)")


def reply(task: dict, agent_says: str) -> str:
    transcript = [{"role": "user", "content": task["prompt"]}, {"role": "assistant", "content": agent_says}]
    return rules_customer(customer_request(task, transcript))


def test_reveals_each_fact_when_asked_directly() -> None:
    for task in sample_tasks("test", 60, 1):
        for fact in task["facts"].values():
            text = reply(task, f"Could you tell me the {fact['ask'][0]}?")
            assert fact["value"] in text and STOP not in text, (task["id"], text)


def test_never_contradicts_the_task_facts() -> None:
    questions = ["What is your case number?", "Which order is it?", "What is your email?", "What's your new phone?",
                 "Why?", "How much discount?", "What is your account id?", "Is it ORD-0001?", "Hello?",
                 "What is your case number and the order number?"]
    for task in sample_tasks("train", 60, 2):
        values = {f["value"] for f in task["facts"].values()} | {f"{f['value']} percent" for f in task["facts"].values()}
        for question in questions:
            for stated in _VALUE.findall(reply(task, question)):
                assert stated in values, (task["id"], question, stated)


def test_stop_when_the_agent_asks_nothing_and_the_turn_cap(rules_user: RulesUser) -> None:
    task = task_of("close_case")
    assert reply(task, "All done, your case is closed.").endswith(STOP)
    assert STOP not in reply(task, "What is the weather like?")
    env = start(task, user=rules_user, max_user_turns=3)
    results = [asyncio.run(env.respond("Anything else?")) for _ in range(3)]
    assert [r.terminated for r in results] == [False, False, True] and env.user_turns == 3


def test_single_turn_tasks_never_call_the_customer() -> None:
    task = task_of("sales_amount")
    assert task["type"] in SINGLE_TURN
    env = start(task, user=None)  # no user bound: a call would raise
    assert asyncio.run(env.respond("0")).terminated

