"""Cold-start demonstrations we can ship: scripted players on our own gyms' TRAIN tasks (docs/data.md "Cold start").

Every demonstration is really played: the scripted player's calls go to the environment (the gym's rules-backend
user answers the judged gyms, as in CI), and its observations and rewards are the environment's. Only episodes
that succeed are kept. The player acts through the `interact_with_env` tool (UserRL's protocol, spec §1.3),
rendered in the canonical tool format by the SFT sample builder; the tool replies echo "Reward: x" as the RL
configs do (`env.echo_reward`), so the demonstrations look like the episodes RL later plays.

Held-out separation: demonstrations come from the TRAIN split only. Word problems' train and test splits use
different templates (rltrain/envs/word_problems.py); FunctionGym's differ in their coefficients, and
`function_gym_demos(holdout_shapes=("max",))` also leaves a whole rule shape out of the demonstrations; the judged
gyms' train and test tasks are different entities, stories, claims and requests.

Players (they read the task's structured facts, as a demonstrator with the answer key would):
- function_gym: queries f at two points, asks for the test case, answers f(test);
- word_problems: a worked rationale per train template, ending "The answer is N.";
- telepathy: asks about the category and two attributes, then names the entity;
- turtle: asks yes/no questions from the evaluation statements, then tells the hidden story;
- persuade: argues each counterpoint against the user's claim, one per message;
- intention: asks each missing detail's inquiry, most important first;
- multitool: helper H2's scripted solver (`rltrain.envs.multitool.solve_messages`);
- router: each routing action equally often (`router_demos`, issue 14's cold start).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from rltrain.data.schema import messages_to_row
from rltrain.protocol import TOOL_NAME
from rltrain.types import Task

Move = tuple[str, str, str]
"""(thought, choice, content): one interact_with_env call with the text the assistant writes before it."""


class _RulesUser:
    """The rules backend in-process (`USER_RULES`), as the user service runs it with `users.backend: rules`."""

    async def respond(self, request: Any) -> Any:
        from rltrain.users import USER_RULES, UserReply

        return UserReply(text=USER_RULES.get(request.rule)(request), backend="rules")


def _function_gym(data: dict[str, Any]) -> Iterator[Move]:
    probes = [[1, 1, 1, 1], [2, 1, 3, 1]]
    for p in probes:
        if p != data["test"]:
            yield ("Let me query the hidden function to see how it behaves.", "action", ",".join(map(str, p)))
    yield ("Now I need the inputs of the test case.", "search", "test")
    answer = data["answer"]
    value = int(answer) if float(answer).is_integer() else answer
    yield (f"Following the rule I found, f on the test case is {value}.", "answer", str(value))


def _telepathy(data: dict[str, Any]) -> Iterator[Move]:
    yield ("I will narrow down the category first.", "action", f"Is it a kind of {data['category']}?")
    for attr in data["attributes"][1:3]:
        yield ("Let me check a distinguishing feature.", "action", f"Is it associated with '{attr}'?")
    yield ("The answers point to one entity.", "answer", data["target_entity"])


def _turtle(data: dict[str, Any]) -> Iterator[Move]:
    for criterion in data["evaluation_criteria"][:2]:
        statement = criterion["statement"].rstrip(".")
        yield ("A yes/no question to test a hypothesis.", "action", f"Is it true that {statement[0].lower()}{statement[1:]}?")
    yield ("I can now tell the whole story.", "answer", data["bottom"])


def _persuade(data: dict[str, Any]) -> Iterator[Move]:
    for c in data["counterpoints"]:  # one point per message: the user weighs one argument at a time
        yield ("I will bring up one point the user has not weighed yet.", "action",
               f"Please consider this: {c['point']}. That is why I doubt that {data['claim'][0].lower()}{data['claim'][1:]}")


def _intention(data: dict[str, Any]) -> Iterator[Move]:
    for d in sorted(data["missing_details"], key=lambda d: -d["importance"]):
        yield ("One detail of the request is still unclear; I ask about it.", "action", d["inquiry"])


PLAYERS: dict[str, Callable[[dict[str, Any]], Iterator[Move]]] = {
    "function_gym": _function_gym, "telepathy": _telepathy, "turtle": _turtle, "persuade": _persuade,
    "intention": _intention,
}
"""Scripted players of the interact-protocol gyms, by registered env name."""


async def _play(env: Any, task: Task, player: Callable[[dict[str, Any]], Iterator[Move]], echo_reward: bool
                ) -> tuple[list[dict[str, Any]], float]:
    """One episode of `player` against `env`; (chat messages with `tool_calls`, summed turn reward)."""
    env.bind_user(_RulesUser(), f"{task.task_id}#0")
    messages, _ = env.reset(task)
    messages = [dict(m) for m in messages]
    total = 0.0
    for k, (thought, choice, content) in enumerate(player(task.data)):
        call_id = f"call_{k}_0"
        messages.append({"role": "assistant", "content": thought, "tool_calls": [
            {"id": call_id, "function": {"name": TOOL_NAME, "arguments": {"choice": choice, "content": content}}}]})
        result = await env.astep(f"[{choice}] {content}")
        total += float(result.reward)
        text = result.observation or ("Correct." if result.reward > 0 else "The episode has ended.")
        if echo_reward:
            text = f"{text}\nReward: {round(float(result.reward), 4):g}"
        messages.append({"role": "tool", "content": text, "tool_call_id": call_id, "name": TOOL_NAME})
        if result.terminated or result.truncated or result.observation is None:
            break
    return messages, total


def gym_demos(env_name: str, count: int, seed: int = 0, echo_reward: bool = True, min_reward: float = 1e-9,
              env_kwargs: dict[str, Any] | None = None, keep: Callable[[Task], bool] | None = None
              ) -> tuple[list[dict[str, Any]], Counter]:
    """Unified rows of successful scripted episodes on `count` TRAIN tasks of an interact-protocol gym, and counts
    (played, kept, dropped_low_reward)."""
    import rltrain.envs  # noqa: F401  (registers the environments)
    from rltrain.envs.base import make_env

    env = make_env(env_name, env_kwargs or {})
    tools = [t.schema()["function"] for t in env.tools()]
    rows, counts = [], Counter()
    for task in env.tasks("train", count, seed):
        if keep is not None and not keep(task):
            continue
        messages, reward = asyncio.run(_play(env, task, PLAYERS[env_name], echo_reward))
        counts["played"] += 1
        if reward < min_reward:
            counts["dropped_low_reward"] += 1
            continue
        rows.append({**messages_to_row(messages, tools, f"demo/{env_name}/{task.task_id}"), "env": env_name,
                     "task_id": task.task_id, "reward": reward})
        counts["kept"] += 1
    return rows, counts


def function_gym_demos(count: int, seed: int = 0, holdout_shapes: tuple[str, ...] = ("max",)) -> tuple[list[dict[str, Any]], Counter]:
    """FunctionGym demonstrations on train tasks whose rule shape is not held out (see the module docstring)."""
    return gym_demos("function_gym", count, seed, env_kwargs={"max_steps": 6},
                     keep=lambda t: t.data["shape"] not in holdout_shapes)


_RATIONALES: dict[int, Callable[[int, int, int], tuple[str, int]]] = {
    # keyed by the train template's index in rltrain/envs/word_problems.py (`train-t<i>-a-b-c` task ids):
    # (worked rationale, the value it arrives at), checked against the gold answer before use
    0: lambda a, b, c: (f"Tom starts with {a} apples. After buying {b} more he has {a} + {b} = {a + b}. "
                        f"After giving away {c} he has {a + b} - {c} = {a + b - c}.", a + b - c),
    1: lambda a, b, c: (f"The {b} boxes hold {b} * {c} = {b * c} books. With the {a} books already there, the shelf "
                        f"holds {a} + {b * c} = {a + b * c} books.", a + b * c),
    2: lambda a, b, c: (f"There are {a} * {b} = {a * b} chairs in all. Without the {c} broken ones, "
                        f"{a * b} - {c} = {a * b - c} chairs can be used.", a * b - c),
    3: lambda a, b, c: (f"Mia saves {a} * {b} = {a * b} dollars. After spending {c} she has {a * b} - {c} = "
                        f"{a * b - c} dollars left.", a * b - c),
}
_WP_ID = re.compile(r"^train-t(\d+)-(\d+)-(\d+)-(\d+)$")


def _worked_answer(task: Task, counts: Counter) -> str | None:
    """The worked rationale of a TRAIN word problem ending "The answer is N.", or None (counted) when there is none
    or it would not arrive at the gold answer."""
    from rltrain.envs.word_problems import ANSWER_TEMPLATE

    m = _WP_ID.match(task.task_id)
    if m is None or int(m.group(1)) not in _RATIONALES:
        counts["dropped_no_rationale"] += 1
        return None
    a, b, c = (int(m.group(i)) for i in (2, 3, 4))
    rationale, value = _RATIONALES[int(m.group(1))](a, b, c)
    if value != task.data["answer"]:
        counts["dropped_wrong_rationale"] += 1  # the env's templates changed: never teach a wrong sum
        return None
    return f"{rationale} {ANSWER_TEMPLATE.format(answer=task.data['answer'])}"


def word_problem_demos(count: int, seed: int = 0) -> tuple[list[dict[str, Any]], Counter]:
    """Worked rationales for TRAIN word problems, each ending "The answer is N."; checked against the gold answer."""
    from rltrain.envs.word_problems import WordProblemsEnv

    env = WordProblemsEnv()
    rows, counts = [], Counter()
    for task in env.tasks("train", count, seed):
        counts["played"] += 1
        answer = _worked_answer(task, counts)
        if answer is None:
            continue
        messages, _ = env.reset(task)
        messages = [*messages, {"role": "assistant", "content": answer}]
        rows.append({**messages_to_row(messages, [], f"demo/word_problems/{task.task_id}"), "env": "word_problems",
                     "task_id": task.task_id, "reward": 1.0})
        counts["kept"] += 1
    return rows, counts


def multitool_demos(count: int, seed: int = 0) -> tuple[list[dict[str, Any]], Counter]:
    """Helper H2's scripted solver on TRAIN tasks of the multi-tool env; successful episodes only."""
    from rltrain.envs.multitool import MultiToolEnv, solve_messages

    env = MultiToolEnv()
    tools = [t.schema()["function"] for t in env.tools()]
    rows, counts = [], Counter()
    for task in env.tasks("train", count, seed):
        messages, reward = solve_messages(env, task)
        counts["played"] += 1
        if reward <= 0:
            counts["dropped_low_reward"] += 1
            continue
        rows.append({**messages_to_row(messages, tools, f"demo/multitool/{task.task_id}"), "env": "multitool",
                     "task_id": task.task_id, "reward": reward})
        counts["kept"] += 1
    return rows, counts


ROUTER_DEMO_SYSTEM = "Solve the problem step by step in plain text, then end with 'The answer is N.'"
SIMPLE_REPLIES = {"What is 1+1?": "1 + 1 = 2."}


def router_demos(count: int, env_kwargs: dict[str, Any], seed: int = 0) -> tuple[list[dict[str, Any]], Counter]:
    """Router cold start (issue 14): on TRAIN word problems, each of the router's actions (answer directly, or call
    one offered model and `select_response` its reply) equally often, drawn per task; simple queries are answered
    directly. These teach the call and select syntax and leave the choice to RL, which has to find under λ which
    action pays. Stand-in, named: a call's tool reply here is the worked rationale, not the pool model's output
    (tool text is never in the loss, so it only shapes the context of the select turn). `env_kwargs`: the RL run's
    `env.kwargs`, so the demonstrations offer the tools, prices and descriptions RL will."""
    import random

    from rltrain.envs.router import RouterEnv

    env = RouterEnv(**env_kwargs)
    rng = random.Random(f"router-demos-{seed}")
    rows, counts = [], Counter()
    for task in env.tasks("train", count, seed):
        counts["played"] += 1
        messages, _ = env.reset(task)
        tools = [t.schema()["function"] for t in env.tools()]
        question = str(task.data["question"])
        if task.data["source"] == "simple":
            messages.append({"role": "assistant", "content": SIMPLE_REPLIES.get(question, "Hello! How can I help you today?")})
            counts["simple"] += 1
        else:
            answer = _worked_answer(task, counts)
            if answer is None:
                continue
            action = rng.choice(["direct", *env.offered])
            counts[action] += 1
            if action == "direct":
                messages.append({"role": "assistant", "content": answer})
            else:
                name = env.pool[action].tool_name
                messages += [
                    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_0_0", "function": {
                        "name": name, "arguments": {"optimized_system_prompt": ROUTER_DEMO_SYSTEM, "temperature": 0}}}]},
                    {"role": "tool", "content": answer, "tool_call_id": "call_0_0", "name": name},
                    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1_0", "function": {
                        "name": "select_response", "arguments": {"model_call_name": name}}}]},
                    {"role": "tool", "content": answer, "tool_call_id": "call_1_0", "name": "select_response"}]
        rows.append({**messages_to_row(messages, tools, f"demo/router/{task.task_id}"), "env": "router",
                     "task_id": task.task_id, "reward": 1.0})
        counts["kept"] += 1
    return rows, counts
