"""/dev/shm bookkeeping for inference engines: record what an engine creates there, remove it at shutdown, and
sweep what engines that died without shutting down left behind.

vLLM's engine processes create POSIX shared memory (`psm_*`, the message-queue broadcast buffers, about 160 MB
apparent size each) and named semaphores (`sem.mp-*`, multiprocessing locks under the spawn start method). Python's
resource tracker would unlink them when a process dies, but the tracker is a child of the engine's host process,
so Ray, which kills an actor's whole process tree, kills the tracker too, and the entries stay until reboot.
A normal shutdown leaves them as well (seen: 3 entries per engine, killed or not). The reward accountant's
spawn-context process pool leaves 5 semaphores per run the same way (its queues' locks), so `ShmLedger` is for any
role that starts processes, not only engines.

How the names are known, without hooking vLLM: right after the engine starts, every process it started (the
host process's new descendants: EngineCore, its workers) is asked, through `/proc/<pid>/maps`, which /dev/shm
files it has mapped. A `psm_*` buffer is mapped under its own name. A semaphore is mapped under glibc's temporary
name (sem_open creates `sem.XXXXXX`, maps it, links it to `sem.mp-*` and unlinks the temporary name), so it
is matched by inode instead. Only `psm_*` and `sem.mp-*` entries count: the weight files that rollout workers
map from /dev/shm belong to the weight sync, not to the engine.

Each engine writes a manifest, `<owners dir>/<pid>-<id>.json`, holding the names and the engine's processes
(pid plus start time, so a reused pid is not taken for the owner). At shutdown it unlinks its names and its
manifest. At every engine start, manifests whose processes are all dead are swept: their names are unlinked.
Entries of a live engine, in this run or another one, are never touched. The owners folder lives in /dev/shm
itself (`rltrain-owners/`), so it is cleared by the same reboot that clears the entries it names.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

SHM = Path("/dev/shm")
PREFIXES = ("psm_", "sem.mp-")
"""The entries an engine's processes create: multiprocessing shared memory and spawn-context semaphores."""
OWNERS_ENV = "RLTRAIN_SHM_OWNERS"
"""Environment variable naming the owners folder (default /dev/shm/rltrain-owners); tests use their own."""


def owners_dir() -> Path:
    return Path(os.environ.get(OWNERS_ENV, str(SHM / "rltrain-owners")))


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or None when it is gone
    (a zombie, killed but not yet reaped by its parent, is gone: it maps nothing any more)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # fields after the command name, from field 3 (the state) on
    return None if fields[0] in ("Z", "X") else int(fields[19])


def descendants(root: int) -> set[int]:
    """Every living process below `root` in the process tree."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def mapped_shm_inodes(pids: Iterable[int]) -> set[int]:
    """Inodes of /dev/shm files mapped by these processes (names can be glibc's temporaries, so inodes count)."""
    inodes: set[int] = set()
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith(f"{SHM}/"):
                inodes.add(int(parts[4]))
    return inodes


def engine_entries(pids: Iterable[int], shm: Path = SHM) -> list[str]:
    """The `psm_*`/`sem.mp-*` entries in `shm` that these processes have mapped."""
    inodes = mapped_shm_inodes(pids)
    names = []
    for entry in shm.iterdir():
        if entry.name.startswith(PREFIXES):
            with contextlib.suppress(OSError):
                if entry.stat().st_ino in inodes:
                    names.append(entry.name)
    return sorted(names)


def alive(pid: int, started: int) -> bool:
    return start_time(pid) == started


@dataclass
class ShmLedger:
    """The /dev/shm entries of one engine, hosted in this process; see the module docstring."""

    shm: Path = SHM
    owners: Path = field(default_factory=owners_dir)
    names: set[str] = field(default_factory=set)
    processes: dict[int, int] = field(default_factory=dict)
    """pid -> start time of the engine's processes."""
    _before: set[int] = field(default_factory=set)

    @property
    def enabled(self) -> bool:
        """Linux only: the bookkeeping reads /proc; elsewhere it does nothing."""
        return Path("/proc/self/maps").exists() and self.shm.is_dir()

    @property
    def manifest(self) -> Path:
        return self.owners / f"{os.getpid()}-{id(self)}.json"

    def before_start(self) -> list[str]:
        """Call right before the engine starts: sweep dead engines' entries and note the processes already here
        (so that a second engine in this process does not claim the first one's). Returns the names swept."""
        if not self.enabled:
            return []
        self._before = descendants(os.getpid())
        return sweep(self.shm, self.owners)

    def after_start(self) -> list[str]:
        """Call once the engine runs: find and record its entries; returns them."""
        if not self.enabled:
            return []
        pids = (descendants(os.getpid()) - self._before) | {os.getpid()}
        self.processes.update({pid: t for pid in pids if (t := start_time(pid)) is not None})
        self.names.update(engine_entries(pids, self.shm))
        self._write()
        return sorted(self.names)

    def release(self) -> list[str]:
        """Call after the engine shut down: unlink its entries and the manifest; returns the names removed."""
        removed = _unlink(self.shm, self.names)
        self.names.clear()
        self.manifest.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.owners.rmdir()  # only when empty
        return removed

    def _write(self) -> None:
        body = json.dumps({"processes": sorted(self.processes.items()), "names": sorted(self.names)})
        for _ in range(3):  # another process may remove the empty folder between our mkdir and the write
            self.owners.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(PermissionError):
                self.owners.chmod(0o1777)  # shared by every user's engines on the node, like /tmp
            try:
                tmp = self.manifest.with_suffix(".tmp")
                tmp.write_text(body)
                tmp.replace(self.manifest)  # a sweeper never reads half a manifest
                return
            except FileNotFoundError:
                continue
        logger.warning("could not write the /dev/shm manifest %s; this engine's entries will not be swept if it dies",
                       self.manifest)


def _unlink(shm: Path, names: Iterable[str]) -> list[str]:
    removed = []
    for name in sorted(names):
        if not name.startswith(PREFIXES) or "/" in name:
            continue  # a manifest names only engine entries; anything else is not ours to delete
        try:
            (shm / name).unlink()
            removed.append(name)
        except FileNotFoundError:
            pass
        except OSError as err:
            logger.warning("could not remove %s: %s", shm / name, err)
    return removed


def sweep(shm: Path = SHM, owners: Path | None = None) -> list[str]:
    """Unlink the entries of every recorded engine whose processes are all dead; returns the names removed."""
    owners = owners if owners is not None else owners_dir()
    removed: list[str] = []
    if not owners.is_dir():
        return removed
    for manifest in owners.glob("*.json"):
        try:
            record = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue  # being replaced, or another user's unreadable file
        if any(alive(pid, started) for pid, started in record.get("processes", [])):
            continue
        removed += _unlink(shm, record.get("names", []))
        with contextlib.suppress(OSError):
            manifest.unlink()
    with contextlib.suppress(OSError):
        owners.rmdir()  # only when empty; leaves /dev/shm as it was
    if removed:
        logger.info("removed %d /dev/shm entries left by engines that died without shutting down: %s",
                    len(removed), " ".join(removed))
    return removed
