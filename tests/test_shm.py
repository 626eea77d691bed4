"""/dev/shm bookkeeping (rltrain/engines/shm.py): what a dead engine left is swept, a live one's never is."""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rltrain.engines import shm
from rltrain.engines.shm import ShmLedger, engine_entries, start_time, sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_shm(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "shm"
    folder.mkdir()
    return folder, tmp_path / "owners"


def _manifest(owners: Path, name: str, processes: list[tuple[int, int]], names: list[str]) -> Path:
    owners.mkdir(exist_ok=True)
    path = owners / f"{name}.json"
    path.write_text(json.dumps({"processes": processes, "names": names}))
    return path


def test_sweep_removes_only_entries_of_dead_owners(fake_shm: tuple[Path, Path]) -> None:
    folder, owners = fake_shm
    for name in ("psm_dead", "sem.mp-dead", "psm_live", "psm_nobody", "weights.safetensors"):
        (folder / name).write_bytes(b"x")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_start = start_time(dead.pid)
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _manifest(owners, "dead", [[dead.pid, dead_start or 1]], ["psm_dead", "sem.mp-dead", "weights.safetensors"])
        live_manifest = _manifest(owners, "live", [[live.pid, start_time(live.pid)]], ["psm_live"])
        # a reused pid is not the owner: same pid as a living process, another start time
        _manifest(owners, "reused", [[live.pid, (start_time(live.pid) or 0) + 1]], [])
        removed = sweep(folder, owners)
    finally:
        live.kill()
        live.wait()
    assert removed == ["psm_dead", "sem.mp-dead"]  # a manifest never deletes what is not an engine entry
    assert sorted(p.name for p in folder.iterdir()) == ["psm_live", "psm_nobody", "weights.safetensors"]
    assert [p.name for p in owners.iterdir()] == [live_manifest.name]


def test_engine_entries_match_by_inode(fake_shm: tuple[Path, Path]) -> None:
    """A semaphore is mapped under glibc's temporary name: the entry is found by inode, whatever the mapping's name."""
    folder, _ = fake_shm
    if not Path("/dev/shm").is_dir():
        pytest.skip("needs /dev/shm")
    real = Path("/dev/shm") / f"sem.tmp-rltrain-test-{os.getpid()}"
    real.write_bytes(b"\0" * 4096)
    try:
        with real.open("r+b") as f, mmap.mmap(f.fileno(), 4096):
            linked = Path("/dev/shm") / f"sem.mp-rltrain-test-{os.getpid()}"
            os.link(real, linked)
            real.unlink()  # as sem_open does: the mapping now shows "(deleted)"
            try:
                assert f"sem.mp-rltrain-test-{os.getpid()}" in engine_entries([os.getpid()])
                assert engine_entries([os.getpid()], folder) == []
            finally:
                linked.unlink()
    finally:
        real.unlink(missing_ok=True)


def test_ledger_release_unlinks_and_drops_manifest(fake_shm: tuple[Path, Path]) -> None:
    folder, owners = fake_shm
    (folder / "psm_mine").write_bytes(b"x")
    ledger = ShmLedger(shm=folder, owners=owners)
    ledger.before_start()
    ledger.after_start()  # nothing mapped here: records this process as owner, no names
    ledger.names.add("psm_mine")
    ledger._write()
    assert json.loads(ledger.manifest.read_text())["names"] == ["psm_mine"]
    assert sweep(folder, owners) == []  # its owner (this process) is alive
    assert ledger.release() == ["psm_mine"]
    assert not owners.exists() and list(folder.iterdir()) == []


POOL = """
import concurrent.futures as cf, json, multiprocessing as mp, os, sys
from rltrain.engines.shm import ShmLedger
if __name__ == "__main__":
    ledger = ShmLedger()
    ledger.before_start()
    pool = cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))  # as the reward accountant's
    cf.wait([pool.submit(os.getpid)])
    print(json.dumps(ledger.after_start()), flush=True)
    os.killpg(0, 9)  # as Ray kills an actor: the process, its pool and its resource tracker, no clean-up
"""


def test_a_killed_process_pool_s_semaphores_are_swept(tmp_path: Path) -> None:
    """The leak without vLLM: a spawn-context pool's 5 semaphores outlive SIGKILL; the next sweep removes them."""
    if not Path("/dev/shm").is_dir():
        pytest.skip("needs /dev/shm")
    owners = tmp_path / "owners"
    out = subprocess.run([sys.executable, "-c", POOL], env={**os.environ, shm.OWNERS_ENV: str(owners)},
                         capture_output=True, text=True, timeout=60, start_new_session=True, cwd=ROOT)
    assert out.returncode == -9, out.stderr
    names = json.loads(out.stdout)
    try:
        assert len(names) == 5 and all(n.startswith("sem.mp-") for n in names)
        assert all((Path("/dev/shm") / n).exists() for n in names)  # leaked
        (manifest,) = owners.glob("*.json")
        pids = [pid for pid, _ in json.loads(manifest.read_text())["processes"]]
        deadline = time.monotonic() + 30
        while any(start_time(pid) is not None for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)  # SIGKILL is delivered, not awaited: the pool's processes may take a moment to go
        assert sorted(sweep(owners=owners)) == names
        assert not any((Path("/dev/shm") / n).exists() for n in names) and not owners.exists()
    finally:  # a failing test must not leave the machine's /dev/shm fuller
        for name in names:
            (Path("/dev/shm") / name).unlink(missing_ok=True)


@pytest.mark.ray
@pytest.mark.vllm
def test_kill_and_restart_cycles_leave_nothing(tiny_model: Path) -> None:
    """Issue 13 part 4: 3 cycles (the issue's count) of a real vLLM engine in a Ray actor, SIGKILLed; /dev/shm before vs after."""
    pytest.importorskip("vllm")
    out = subprocess.run([sys.executable, "scripts/shm_cycles.py", "--cycles", "3", "--model", str(tiny_model)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout[: out.stdout.rindex("}") + 1])
    cycles = report["cycles"]
    assert all(c["entries"] for c in cycles), "the engine's entries were not found; the test proves nothing"
    # each start swept the previous killed engine's entries: only the last one's are left after each kill
    for c in cycles:
        assert c["left_after_kill"] == c["entries"]
    assert report["swept_at_end"] == cycles[-1]["entries"]
    assert report["delta"] == []


def test_owners_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(shm.OWNERS_ENV, str(tmp_path))
    assert ShmLedger().owners == tmp_path
