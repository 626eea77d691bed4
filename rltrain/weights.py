"""Weight sync between learner rank 0 and the rollout workers, on one node or several.

Rank 0 writes each version as `model.safetensors` into a folder on its own node (shared memory where there is
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
