"""The progress watchdog: a phase that makes no progress within its bound ends the run, with every role's stacks.

Every remote call the driver waits on carries a bound from `watchdog.*` (`rltrain/config/watchdog.py`), and a
wait restarts its clock whenever one of the phase's calls comes back (progress). When a bound runs out the groups
raise `CallTimedOut` naming the roles that did not answer; the driver hands it to `Watchdog.stalled`, which writes

    <run>/stall/<role>.txt   the Python stacks of each role's process and its subprocesses (the vLLM engine core),
                             taken with py-spy; where ptrace is denied, the stacks the process itself writes on
                             SIGUSR1 (faulthandler, `enable_stack_signal`)
    <run>/stall/roles.json   phase, stalled roles, and every role's node, pid and what the driver last asked of it

and returns `RunStalled`, which stops the run with exit code 3 and the line
`rltrain: run stalled in <phase> on <role>: no progress for Ns (stacks in runs/<name>/stall/)`.

`rltrain stacks RUN` writes the same files on demand, from the `roles.json` the driver keeps in the run folder.

Every role also keeps a `Heartbeat` (its own phase and the time of its last progress: an episode played, a
micro-batch stepped, a trajectory scored, a user reply sent), which the actor answers on a thread of its own
(`actors.common.Role.heartbeat`), so that it answers while the role's work blocks. When a bound runs out the
watchdog asks every role for it and writes it into `roles.json`; the log then tells a role that is alive but stuck
("in update for 31s, last progress 31s ago", "idle": the call never started) from one that does not answer.
The bounds nest: an env step (`env.step_timeout_s`) < the rollout phase; one verifier call (`reward.timeout_s`)
< the reward phase; one collective (`learner.collective_timeout_s`) < the update phase.

No Ray import: the stack dumping runs in whichever process is on the node (the driver locally, a Ray task on
other nodes: `rltrain.cluster.dump_stacks`).
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import inspect
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from rltrain.errors import CallTimedOut, ConfigError, RunStalled
from rltrain.guard import run_guarded

logger = logging.getLogger("rltrain.driver")

F = TypeVar("F", bound=Callable[..., Any])
ROLES_FILE = "roles.json"
STALL_DIR = "stall"
PY_SPY_TIMEOUT_S = 30.0
SIGNAL_DIR = Path(tempfile.gettempdir()) / "rltrain-stacks"
"""Where a process that enabled `enable_stack_signal` writes its stacks on SIGUSR1 (`<pid>.txt`)."""


@dataclass(frozen=True)
class Target:
    """One role's process, as the driver located it."""

    role: str
    node_id: str
    pid: int


class Heartbeat:
    """One role's phase and progress, read by its heartbeat thread while the role works (plain attribute reads and
    writes, which the GIL keeps whole). Phases may overlap (an async worker plays several rollouts at once): the one
    reported is the latest entered that is still running, else "idle"."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._running: Counter[str] = Counter()
        self._order: list[str] = []
        self.entered = self.progressed = time.time()
        self.progress_count = 0

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """The role works in `name` for the block's duration."""
        self._running[name] += 1
        self._order = [p for p in self._order if p != name] + [name]
        self.entered = time.time()
        try:
            yield
        finally:
            self._running[name] -= 1
            if not self._running[name]:
                self._order = [p for p in self._order if p != name]
                self.entered = time.time()

    def progress(self, n: int = 1) -> None:
        """`n` units of work done (episodes, micro-batches, trajectories, replies)."""
        self.progress_count += n
        self.progressed = time.time()

    def report(self) -> dict[str, Any]:
        now = time.time()
        return {"role": self.role, "pid": os.getpid(), "phase": self._order[-1] if self._order else "idle",
                "in_phase_s": round(now - self.entered, 1), "progress": self.progress_count,
                "since_progress_s": round(now - self.progressed, 1)}


def in_phase(name: str) -> Callable[[F], F]:
    """Decorate a role's method (sync or async) to run in phase `name` of the role's `beat`."""
    def wrap(method: F) -> F:
        if inspect.iscoroutinefunction(method):
            @functools.wraps(method)
            async def run_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                with self.beat.phase(name):
                    return await method(self, *args, **kwargs)
            return cast(F, run_async)

        @functools.wraps(method)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            with self.beat.phase(name):
                return method(self, *args, **kwargs)
        return cast(F, run)
    return wrap


def describe_beat(beat: dict[str, Any] | None) -> str:
    """One role's heartbeat in words, for the stall report."""
    if beat is None:
        return "not answering its heartbeat (its process is gone, or stuck without releasing the GIL)"
    return (f"alive, {beat['phase']} for {beat['in_phase_s']:.0f}s, last progress {beat['since_progress_s']:.0f}s ago "
            f"({beat['progress']} units in all)")


def enable_stack_signal() -> None:
    """Write this process's stacks (all threads) to `SIGNAL_DIR/<pid>.txt` on SIGUSR1: the fallback of
    `dump_process` where py-spy may not attach (ptrace denied). Called by each role when it starts."""
    SIGNAL_DIR.mkdir(parents=True, exist_ok=True)
    for stale in SIGNAL_DIR.glob("*.txt"):  # files of processes that are gone (killed roles never clean up)
        if stale.stem.isdigit() and not _alive(int(stale.stem)):
            stale.unlink(missing_ok=True)
    # the file stays open for the process's life: faulthandler writes from its signal handler, without Python
    stream = (SIGNAL_DIR / f"{os.getpid()}.txt").open("w")
    faulthandler.register(signal.SIGUSR1, file=stream, all_threads=True, chain=False)


def py_spy() -> str | None:
    """The py-spy binary (it ships with ray[default]) next to this Python, else on PATH."""
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.is_file() else shutil.which("py-spy")


def dump_process(pid: int, subprocesses: bool = True) -> str:
    """The Python stacks of process `pid` (and its subprocesses: a rollout worker's vLLM engine core): py-spy, else
    the SIGUSR1 fallback."""
    tool = py_spy()
    why = "py-spy is not installed (pip install py-spy, or ray[default])"
    if tool is not None:
        try:
            command = [tool, "dump", "--pid", str(pid), *(["--subprocesses"] if subprocesses else [])]
            done = subprocess.run(command, capture_output=True, text=True, timeout=PY_SPY_TIMEOUT_S)
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout
            why = f"py-spy failed: {(done.stderr.strip().splitlines() or ['no output'])[0]}"
        except subprocess.TimeoutExpired:
            why = f"py-spy did not finish within {PY_SPY_TIMEOUT_S:g}s"
    return f"({why}; faulthandler fallback)\n" + _signal_dump(pid)


def _signal_dump(pid: int) -> str:
    path = SIGNAL_DIR / f"{pid}.txt"
    if not path.is_file():
        return f"no stacks: process {pid} did not enable the SIGUSR1 dump (rltrain.watchdog.enable_stack_signal)\n"
    size = path.stat().st_size
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError as err:
        return f"no stacks: cannot signal process {pid} ({err})\n"
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and path.stat().st_size == size:
        time.sleep(0.1)
    time.sleep(0.2)  # let the handler finish writing every thread
    with path.open() as f:
        f.seek(size)
        return f.read() or f"no stacks: process {pid} did not answer SIGUSR1 within 5s\n"


def dump_local(targets: Sequence[Target]) -> dict[str, str]:
    """role -> stacks, for targets on this machine."""
    return {t.role: f"# {t.role}: pid {t.pid} on node {t.node_id[:8]}\n" + dump_process(t.pid) for t in targets}


def write_stacks(out_dir: Path, stacks: dict[str, str], info: dict[str, Any]) -> Path:
    """`<out_dir>/<role>.txt` per role and `roles.json`; returns `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for role, text in stacks.items():
        (out_dir / f"{role}.txt").write_text(text)
    (out_dir / ROLES_FILE).write_text(json.dumps(info, indent=2))
    return out_dir


class Watchdog:
    """The driver's: which phase each role is in, and the stall report when a bounded wait runs out."""

    def __init__(self, run_dir: Path, dump: Callable[[Sequence[Target]], dict[str, str]], enabled: bool = True) -> None:
        """`dump`: role -> stacks for the given targets, wherever they run (`rltrain.cluster.dump_stacks`)."""
        self.run_dir, self.dump, self.enabled = run_dir, dump, enabled
        self.targets: list[Target] = []
        self.phases: dict[str, str] = {}
        self.phase = "start"
        self.probe: Callable[[], dict[str, dict[str, Any] | None]] = dict

    def track(self, targets: Sequence[Target], probe: Callable[[], dict[str, dict[str, Any] | None]] | None = None) -> None:
        """Record the roles' processes (after they start) in `<run>/roles.json`, for `rltrain stacks RUN`. `probe`:
        role -> its heartbeat (`Heartbeat.report`), None for a role that did not answer; asked when a bound runs out."""
        self.targets = list(targets)
        self.probe = probe or self.probe
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / ROLES_FILE).write_text(json.dumps(self._info(), indent=2))

    def enter(self, phase: str, roles: Sequence[str] = ()) -> None:
        """The driver now waits on `roles` (a prefix such as `rollout` names them all) in `phase`."""
        self.phase = phase
        for target in self.targets:
            if not roles or any(target.role.startswith(r) for r in roles):
                self.phases[target.role] = phase

    def stalled(self, err: CallTimedOut) -> RunStalled:
        """Write the stacks of every role into `<run>/stall/` and return the error that stops the run."""
        out = self.run_dir / STALL_DIR
        roles = err.pending or ["(unknown role)"]
        try:
            beats = self.probe()
        except Exception as probe_err:  # the heartbeats explain the stall; their failure must not hide it
            logger.warning("could not ask the roles for their heartbeats: %s: %s", type(probe_err).__name__, probe_err)
            beats = {}
        if self.enabled:
            try:
                info = self._info(beats)
                write_stacks(out, self.dump(self.targets), {**info, "stalled": roles, "what": err.what, "seconds": err.seconds})
            except Exception as dump_err:  # a failed dump must not hide the stall itself
                logger.warning("could not write the stacks of the stalled run: %s: %s", type(dump_err).__name__, dump_err)
        said = "; ".join(f"{role}: {describe_beat(beats[role])}" for role in roles if role in beats)
        logger.error("%s%s; every role's stacks are in %s", err, f" ({said})" if said else "", out)
        return RunStalled(self.phase, ", ".join(roles), err.seconds, str(out))

    def _info(self, beats: dict[str, dict[str, Any] | None] | None = None) -> dict[str, Any]:
        """`phase`: what the driver last asked of the role; `heartbeat` (when asked): what the role says it does."""
        def role(t: Target) -> dict[str, Any]:
            entry = {**asdict(t), "phase": self.phases.get(t.role, "idle")}
            if beats is not None and t.role in beats:
                entry["heartbeat"] = beats[t.role] or "not answering"
            return entry
        return {"phase": self.phase, "pid": os.getpid(), "roles": [role(t) for t in self.targets]}


def stacks_now(run: Path) -> Path:
    """`rltrain stacks RUN`: dump the stacks of the run's roles on this machine into `<run>/stacks/<time>/`."""
    info_file = run / ROLES_FILE
    if not info_file.is_file():
        raise ConfigError(f"{info_file} does not exist: give the folder of a running run (runs/<name>), which the "
                          f"driver fills once its roles have started")
    info = json.loads(info_file.read_text())
    targets = [Target(r["role"], r["node_id"], r["pid"]) for r in info["roles"]]
    alive = [t for t in targets if _alive(t.pid)]
    out = run / "stacks" / time.strftime("%Y%m%d-%H%M%S")
    stacks = dump_local(alive)
    stacks.update({t.role: f"# {t.role}: pid {t.pid} is not running on this machine\n" for t in targets if t not in alive})
    driver = int(info.get("pid", 0))
    if driver and _alive(driver):
        stacks["driver"] = f"# driver: pid {driver}\n" + dump_process(driver, subprocesses=False)
    return write_stacks(out, stacks, info)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stacks_cmd(args: argparse.Namespace) -> int:
    code, out = run_guarded(lambda: stacks_now(Path(args.run)), "stacks")
    if out is not None:
        for path in sorted(out.glob("*.txt")):
            print(path.read_text())
        print(f"rltrain stacks: written to {out}/", file=sys.stderr)
    return code


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `stacks` to the `rltrain` CLI; it sets `func(args) -> exit code`."""
    p = subparsers.add_parser("stacks", help="dump the Python stacks of a running run's roles (py-spy)",
                              description="Print the stacks of every role of a running run on this machine (and its "
                                          "vLLM engine processes) and write them to <run>/stacks/<time>/.")
    p.add_argument("run", help="the run folder, e.g. runs/quickstart")
    p.set_defaults(func=_stacks_cmd)
