"""The reward accountant: verifier crashes and time-outs mark trajectories failed, never reward 0."""

from __future__ import annotations

import time

from actors.accountant import RewardAccountant
from rewards import REWARD_FNS
from rltrain.types import Trajectory


@REWARD_FNS.register("test_slow_or_broken")
def _slow_or_broken(sample, **_):
    text = sample.final_answer
    if text == "hang":
        time.sleep(60)
    if text == "crash":
        raise ZeroDivisionError("verifier bug")
    return {"correct": 1.0 if text == "ok" else 0.0}


def traj(answer: str) -> Trajectory:
    return Trajectory(task_id=answer, group_id=0, env="test", prompt_ids=[1],
                      messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}])


def test_scores_in_a_process_pool() -> None:
    accountant = RewardAccountant("arithmetic", {"format_reward": 0.5}, timeout_s=20, num_procs=1)
    scored = accountant.score([Trajectory(task_id="t", group_id=0, env="arithmetic", prompt_ids=[1], task_data={"answer": 4},
                                          messages=[{"role": "assistant", "content": "4"}])])
    assert scored[0].reward == 1.5 and scored[0].reward_terms == {"correct": 1.0, "format": 0.5}


def test_timeout_and_crash_mark_failure(monkeypatch) -> None:
    import actors.accountant as acc

    monkeypatch.setattr(acc, "_score_one", _direct)
    accountant = RewardAccountant("arithmetic", {}, timeout_s=2, num_procs=2)
    accountant.fn_name = "test_slow_or_broken"
    out = accountant.score([traj("ok"), traj("crash"), traj("hang"), traj("no")])
    assert [t.reward for t in out] == [1.0, None, None, 0.0]
    assert "ZeroDivisionError: verifier bug" in out[1].failure
    assert "timed out after 2s" in out[2].failure
    assert accountant.score([traj("ok")])[0].reward == 1.0  # the pool was replaced after the hang


def _direct(fn_name, sample, kwargs):
    # Unpickling this function in a spawned pool process imports this module, which registers the verifier.
    return REWARD_FNS.get(fn_name)(sample, **kwargs)
