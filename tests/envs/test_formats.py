"""The formats env (issue 18): seeded grammar with held-out formats, documented formats, hidden dynamics by level."""

from __future__ import annotations

import asyncio

import pytest

from rewards.toolcall import CallRecord, label_calls
from rltrain.envs import make_env
from rltrain.envs.formats import FormatsEnv, all_formats, solve, split_formats
from rltrain.tools.base import ToolError


def _play(env: FormatsEnv, task, calls, final="DONE"):
    env.reset(task)
    offered = {t.name: t for t in env.tools()}
    observations = []
    for name, args in calls:
        try:
            observations.append(asyncio.run(offered[name].execute(args, env)).observation)
        except ToolError as err:
            observations.append(f"error {err.kind}: {err}")
    return env.step(final), observations


def test_grammar_holds_out_test_formats_and_is_deterministic():
    train, test = split_formats("train"), split_formats("test")
    assert len(all_formats()) == 450 and len(train) == 337 and len(test) == 113
    assert not {f.name for f in train} & {f.name for f in test}
    env = FormatsEnv(level=1)
    assert [t.data for t in env.tasks("test", 5, 3)] == [t.data for t in env.tasks("test", 5, 3)]
    assert {t.data["format"] for t in env.tasks("test", 40, 0)} <= {f.name for f in test}
    assert isinstance(make_env("formats", {"level": 2}), FormatsEnv)
    for unusual in range(4):  # every difficulty has formats in both splits
        tasks = FormatsEnv(unusual=unusual).tasks("test", 10, 0)
        assert {t.data["format"] for t in tasks} <= {f.name for f in test if f.unusual == unusual}
    with pytest.raises(Exception, match="level"):
        make_env("formats", {"level": 5})


@pytest.mark.parametrize(("level", "unusual"), [(0, 0), (0, 3), (1, 2), (2, 1), (2, 3)])
def test_the_solver_that_knows_formats_and_dynamics_succeeds(level, unusual):
    env = FormatsEnv(level=level, unusual=unusual)
    for task in env.tasks("test", 20, 1):
        result, obs = _play(env, task, solve(env, task))
        assert result.reward == 1.0, (task.data, obs)


def test_hidden_dynamics_defeat_a_solver_that_ignores_them():
    """Level 1: `add` without `commit` leaves stock unchanged; level 2: `take` n removes n + 1."""
    env = FormatsEnv(level=2)
    task = next(t for t in env.tasks("train", 50, 0) if t.data["target"] < t.data["start"])
    name, args = solve(env, task)[0]
    env.reset(task)
    qty_key = env.fmt.k("qty")
    naive = {**args, qty_key: env.fmt.json_n(task.data["start"] - task.data["target"])}  # the amount a naive agent takes
    result, _ = _play(env, task, [(name, naive)])
    assert result.reward == 0.0 and result.info["stock"] == task.data["target"] - 1
    env1 = FormatsEnv(level=1)
    up = next(t for t in env1.tasks("train", 50, 0) if t.data["target"] > t.data["start"])
    result, _ = _play(env1, up, solve(env1, up)[:1])  # add, no commit
    assert result.reward == 0.0 and result.info["stock"] == up.data["start"]


def test_conventional_arguments_are_format_errors_and_spectool_labels():
    env = FormatsEnv(level=0)
    task = env.tasks("train", 1, 0)[0]
    env.reset(task)
    fmt = env.fmt
    conventional = {"item": task.data["item"], "qty": 3}
    _, obs = _play(env, task, [("add", conventional)])
    assert obs[0].startswith("error bad_format")
    right_keys = {fmt.k("item"): task.data["item"], fmt.k("qty"): "3"}
    _, obs = _play(env, task, [("add", right_keys)])
    assert "bad_format" in obs[0]  # keys right, values in the conventional format
    report = label_calls([CallRecord("add", conventional), CallRecord("add", {fmt.k("item"): "x", fmt.k("qty"): 3})],
                         env.tools())
    assert "IAN" in report.call_labels[0] and report.call_labels[1] == frozenset({"IAT"})


def test_state_text_shows_pending_and_stock():
    env = FormatsEnv(level=1)
    task = next(t for t in env.tasks("train", 50, 0) if t.data["target"] > t.data["start"])
    env.reset(task)
    add = env.tools()[0]
    call = solve(env, task)[0][1]
    asyncio.run(add.execute(call, env))
    assert "pending" in env.state_text()
