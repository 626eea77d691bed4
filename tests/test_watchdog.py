"""The progress watchdog's parts without Ray: stack dumps (py-spy and the SIGUSR1 fallback), the stall report, the
exit codes, and bounds that must nest (issue 13, part 3). The stalls themselves: tests/integration/test_watchdog.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rltrain import watchdog
from rltrain.config import ConfigError, load_config
from rltrain.errors import CallTimedOut, Preempted, RoleFailed, RunStalled
from rltrain.guard import run_guarded
from rltrain.preflight import check_bounds

PARKED = textwrap.dedent("""
    import sys, time
    from rltrain.watchdog import enable_stack_signal

    enable_stack_signal()

    def parked_in_a_long_wait():
        print("ready", flush=True)
        time.sleep(120)

    parked_in_a_long_wait()
""")


@pytest.fixture
def parked() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", PARKED], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.kill()
    proc.wait()


def test_py_spy_dumps_a_stuck_process(parked: subprocess.Popen) -> None:
    assert watchdog.py_spy() is not None, "py-spy ships with ray[default]"
    stacks = watchdog.dump_process(parked.pid)
    assert "parked_in_a_long_wait" in stacks and "Thread" in stacks, stacks


def test_faulthandler_fallback_where_py_spy_cannot_attach(parked: subprocess.Popen, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchdog, "py_spy", lambda: None)  # as where ptrace is denied
    stacks = watchdog.dump_process(parked.pid)
    assert "faulthandler fallback" in stacks and "parked_in_a_long_wait" in stacks, stacks


def test_a_stall_writes_every_roles_stacks_and_names_phase_and_role(tmp_path: Path) -> None:
    dumped: list[list[str]] = []

    def dump(targets: list[watchdog.Target]) -> dict[str, str]:
        dumped.append([t.role for t in targets])
        return {t.role: f"Thread {t.pid}: stuck in {t.role}\n" for t in targets}

    dog = watchdog.Watchdog(tmp_path / "run", dump)
    dog.track([watchdog.Target("accountant", "n" * 56, 11), watchdog.Target("learner-0", "n" * 56, 12),
               watchdog.Target("learner-1", "n" * 56, 13)])
    assert json.loads((tmp_path / "run" / "roles.json").read_text())["roles"][2]["pid"] == 13  # for `rltrain stacks`
    dog.enter("update", ["learner"])
    stalled = dog.stalled(CallTimedOut("learner update", 30.0, ["learner-1"]))
    assert isinstance(stalled, RunStalled) and dumped == [["accountant", "learner-0", "learner-1"]]
    stall = tmp_path / "run" / "stall"
    assert str(stalled) == f"run stalled in update on learner-1: no progress for 30s (stacks in {stall}/)"
    assert (stall / "learner-1.txt").read_text() == "Thread 13: stuck in learner-1\n"
    info = json.loads((stall / "roles.json").read_text())
    assert info["stalled"] == ["learner-1"] and {r["role"]: r["phase"] for r in info["roles"]} == {
        "accountant": "idle", "learner-0": "update", "learner-1": "update"}


def test_a_stall_reports_what_each_roles_heartbeat_says(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    beat = watchdog.Heartbeat("learner-1")
    with beat.phase("update"):
        beat.progress(3)
        said = beat.report()

    dog = watchdog.Watchdog(tmp_path / "run", lambda targets: {})
    dog.track([watchdog.Target("learner-0", "n" * 56, 12), watchdog.Target("learner-1", "n" * 56, 13)],
              probe=lambda: {"learner-0": None, "learner-1": said})
    with caplog.at_level("ERROR", logger="rltrain.driver"):
        dog.stalled(CallTimedOut("learner update", 30.0, ["learner-1", "learner-0"]))
    roles = {r["role"]: r for r in json.loads((tmp_path / "run" / "stall" / "roles.json").read_text())["roles"]}
    assert roles["learner-1"]["heartbeat"] == said and roles["learner-0"]["heartbeat"] == "not answering"
    line = caplog.records[-1].getMessage()
    assert "learner-1: alive, update for 0s, last progress 0s ago (3 units in all)" in line, line
    assert "learner-0: not answering its heartbeat" in line, line

    def broken_probe() -> dict:
        raise RuntimeError("ray is gone")

    dog.track(dog.targets, probe=broken_probe)  # a failed probe must not hide the stall
    assert isinstance(dog.stalled(CallTimedOut("learner update", 30.0, ["learner-1"])), RunStalled)


def test_heartbeat_phases_overlap_and_progress_is_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(watchdog.time, "time", lambda: now[0])
    beat = watchdog.Heartbeat("rollout-0")
    assert beat.report()["phase"] == "idle"
    with beat.phase("rollout"):
        now[0] += 5
        beat.progress()
        with beat.phase("sync"):  # an async worker loads weights while a rollout still runs
            now[0] += 2
            assert beat.report() | {"pid": 0} == {"role": "rollout-0", "pid": 0, "phase": "sync", "in_phase_s": 2.0,
                                                 "progress": 1, "since_progress_s": 2.0}
        assert beat.report()["phase"] == "rollout"
        with beat.phase("rollout"):  # a second rollout call at once: the phase lasts until both end
            pass
        assert beat.report()["phase"] == "rollout"
    now[0] += 4
    assert (beat.report()["phase"], beat.report()["in_phase_s"], beat.report()["since_progress_s"]) == ("idle", 4.0, 6.0)


def test_in_phase_wraps_sync_and_async_methods() -> None:
    import asyncio

    class Role:
        def __init__(self) -> None:
            self.beat = watchdog.Heartbeat("r")

        @watchdog.in_phase("update")
        def update(self, x: int) -> str:
            return f"{self.beat.report()['phase']} {x}"

        @watchdog.in_phase("rollout")
        async def rollout(self, x: int) -> str:
            await asyncio.sleep(0)
            return f"{self.beat.report()['phase']} {x}"

    role = Role()
    assert role.update(1) == "update 1" and asyncio.run(role.rollout(2)) == "rollout 2"
    assert role.beat.report()["phase"] == "idle" and role.update.__name__ == "update"


def test_stacks_of_a_run_that_is_not_running(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="roles.json does not exist"):
        watchdog.stacks_now(tmp_path)


@pytest.mark.parametrize(("error", "code", "line"), [
    (RunStalled("rollout", "rollout-0", 8.0, "runs/x/stall"),
     3, "rltrain: run stalled in rollout on rollout-0: no progress for 8s (stacks in runs/x/stall/)\n"),
    (CallTimedOut("learner update", 5.0, ["learner-1"]), 1, "rltrain: run stopped: learner update did not finish"),
    (RoleFailed("rollout worker died"), 1, "rltrain: run stopped: rollout worker died\n"),
    (ConfigError("env.name='x' is not registered"), 2, "rltrain: config error: env.name='x' is not registered\n"),
    (Preempted("stopped by SIGTERM after step 2"), 143, "rltrain: stopped by SIGTERM after step 2\n"),
])
def test_exit_codes(error: Exception, code: int, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    def job() -> None:
        raise error

    assert run_guarded(job, "run") == (code, None)
    assert capsys.readouterr().err.startswith(line)


@pytest.mark.parametrize(("overrides", "needle"), [
    (["reward.timeout_s=60", "watchdog.reward_s=60"], "watchdog.reward_s=60 must exceed reward.timeout_s=60"),
    (["learner.collective_timeout_s=100", "watchdog.update_s=50"], "watchdog.update_s=50 must exceed learner.collective"),
    (["watchdog.rollout_s=0"], "watchdog.rollout_s=0 must be > 0"),
])
def test_bounds_nest_in_the_config(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        load_config(None, overrides)


def test_the_rollout_bound_exceeds_an_env_step() -> None:
    cfg = load_config(None, ["env.step_timeout_s=20", "watchdog.rollout_s=10"])
    with pytest.raises(ConfigError, match=r"watchdog.rollout_s=10 must exceed one environment step's bound of 20s"):
        check_bounds(cfg, needs_users=False)
    check_bounds(load_config(None, ["env.step_timeout_s=20", "watchdog.rollout_s=21"]), needs_users=False)
    # with a user, the default step bound covers two user calls at their worst case: the default rollout bound nests
    check_bounds(load_config(None, []), needs_users=True)

