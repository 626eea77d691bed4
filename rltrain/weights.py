"""Weight sync between learner rank 0 and the rollout workers, on one node or several: both ends in one module.

`WeightOutbox` is rank 0's end (export), `WeightInbox` a rollout worker's (import). Rank 0 writes each version as `model.safetensors` into a folder on its own node (shared memory where there is
some). A worker on that node loads the file in place. On a cluster of several nodes rank 0 also puts the file's
bytes into Ray's object store, and a worker on another node pulls them (Ray moves them node to node, once per
node) and writes them into a folder of its own for its engine to load, deleted right after: no shared file system
is needed, and nothing is left in shared memory if the worker is killed later.
Same node means same Ray node id: two nodes on one machine still count as two.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from safetensors.torch import save, save_file

logger = logging.getLogger(__name__)

FILE = "model.safetensors"


def local_root(prefix: str) -> Path:
    """A fresh folder in this node's shared memory (/dev/shm), or its temp dir where there is none."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=shm if shm.is_dir() else None))


@dataclass(frozen=True)
class WeightPayload:
    """One exported weight version: what `RolloutGroup.load_weights` hands every worker (small; no tensors)."""

    version: int
    folder: str
    """The folder holding `model.safetensors` on the exporting node."""
    node_id: str
    """Ray node id of the exporting node (learner rank 0)."""
    blob: Any = None
    """ObjectRef of the file's bytes in Ray's object store, for workers on other nodes; None on a one-node cluster."""
    nbytes: int = 0
    export_s: float = 0.0
    """Seconds rank 0 took to gather, write and (when shared) put the weights."""


class WeightOutbox:
    """Learner rank 0's side of the sync: each version as `v<version>/model.safetensors` in a folder of this node's
    shared memory. Only the latest export is kept (a restarted worker re-syncs from it)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._root: Path | None = None
        self._last: Path | None = None

    def publish(self, state: dict[str, Any], version: int, share: bool, t0: float) -> WeightPayload:
        """Write `state` (name -> tensor) as version `version`; with `share` also put the file's bytes into Ray's
        object store, for workers on other nodes. `t0`: when the export began (perf_counter), for `export_s`."""
        if self._root is None:
            self._root = local_root(self.prefix)
        folder = self._root / f"v{version}"
        folder.mkdir(exist_ok=True)
        tmp = folder / f"{FILE}.tmp"
        blob = None
        if share:
            data = save(state, metadata={"format": "pt"})
            tmp.write_bytes(data)
            blob = ray.put(data)
        else:
            save_file(state, str(tmp), metadata={"format": "pt"})
        nbytes = tmp.stat().st_size
        tmp.rename(folder / FILE)  # readers never see a half-written file
        if self._last not in (None, folder):
            shutil.rmtree(self._last, ignore_errors=True)
        self._last = folder
        return WeightPayload(version, str(folder), ray.get_runtime_context().get_node_id(), blob, nbytes,
                             time.perf_counter() - t0)

    def close(self) -> None:
        """Delete every exported version (shared memory is not freed with the process)."""
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = self._last = None


class WeightInbox:
    """A rollout worker's side of the sync: the folder its engine loads a payload from."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.pulled = 0
        """Payloads pulled through the object store so far (tests and logs tell the paths apart by it)."""

    @asynccontextmanager
    async def receive(self, payload: WeightPayload | str) -> AsyncIterator[str]:
        """The folder to load `payload` from while the block runs: the exporter's own folder on this node, else a
        copy pulled from the object store into this node's shared memory, deleted after the block (the engine holds
        the weights then, and a re-sync pulls again). A plain string is a folder readable here."""
        if isinstance(payload, str) or payload.node_id == self.node_id:
            yield payload if isinstance(payload, str) else payload.folder
            return
        if payload.blob is None:
            raise RuntimeError(f"weights v{payload.version} were exported on node {payload.node_id[:8]} without an "
                               f"object-store copy, but this worker runs on node {self.node_id[:8]}: the node joined "
                               f"the cluster after the export; the next weight sync reaches it")
        t0 = time.perf_counter()
        data = await payload.blob  # an async actor awaits refs instead of blocking its event loop in ray.get
        folder = local_root("rltrain-recv-")
        try:
            await asyncio.to_thread(_write, folder / FILE, data)
            self.pulled += 1
            logger.info("weights v%d: pulled %.1f MB from node %s through the object store into %s in %.2fs",
                        payload.version, len(data) / 1e6, payload.node_id[:8], folder, time.perf_counter() - t0)
            del data
            yield str(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.rename(path)
