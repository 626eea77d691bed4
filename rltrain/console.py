"""What a run prints: by default the driver's lines and one progress bar; every actor's own output goes to
`runs/<name>/logs/<role>.log`; `--verbose` prints everything, as before.

How the parts are routed:
- **Driver** (`setup_driver`, from the CLI): Python logging to the console through `tqdm.write`, so a log line
  never breaks the progress bar. In the default mode only `rltrain.*` loggers print INFO; libraries print
  WARNING and above. `attach_run_log` adds `logs/driver.log` with everything, INFO of every library included.
- **Actors** (`init_role_output`, called by `actors.common.init_role`): the driver passes the log folder and the
  mode to every worker through the job's runtime environment (`ray_init_options`). In the default mode an actor
  points its file descriptors 1 and 2 at `logs/<role>.log`. That catches what logging cannot: vLLM's EngineCore
  and worker processes, which inherit the descriptors, DeepSpeed's prints, C++ warnings. Ray's log streaming to
  the driver (`log_to_driver`) is off then, so nothing reaches the console twice. With `--verbose` the actor
  keeps its descriptors, Ray streams them, and its Python logging also goes to `<role>.log`.
- A restarted actor appends to its role's log; each start writes a header line with the pid.

On a multi-node cluster each node writes its actors' logs under the same path on its own disk; put
`trainer.output_dir` on a shared filesystem to see them all in one place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

LOG_DIR_ENV = "RLTRAIN_LOG_DIR"
"""The run's logs folder (absolute), set for every actor through the job's runtime environment."""
VERBOSE_ENV = "RLTRAIN_VERBOSE"
"""1 with --verbose: actors keep printing to Ray's streams, and the driver's console shows every library's INFO."""
T = TypeVar("T")
FORMAT = "%(asctime)s {role} %(levelname)s %(name)s: %(message)s"

QUIET_LIBRARIES = ("transformers", "vllm", "deepspeed", "ray", "torch", "urllib3", "filelock", "datasets", "httpx")
"""Libraries whose INFO lines the default console leaves to logs/driver.log."""


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


class _TqdmHandler(logging.StreamHandler):
    """Console lines printed above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - as logging.StreamHandler does
            self.handleError(record)


class _DriverFilter(logging.Filter):
    """Default console: rltrain's own INFO lines, and WARNING or worse from anyone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".")[0] in ("rltrain", "__main__")


def setup_driver(verbose: bool = False) -> None:
    """Configure the driver process's console (the CLI calls it once, before anything logs)."""
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    handler = _TqdmHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT.format(role="driver")))
    if not verbose:
        handler.addFilter(_DriverFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _TqdmHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if not verbose:
        # transformers' INFO lines (and its advisory warnings) say nothing a run's reader acts on; vLLM keeps its own
        # log format, whose "(EngineCore pid=N)" prefix tells the engine's processes apart in the role logs
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "warning")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # its fork warning fires once per process otherwise


def attach_run_log(run_dir: Path) -> Path:
    """Also write every driver log record (every library's INFO included) to `<run_dir>/logs/driver.log`."""
    path = logs_dir(run_dir) / "driver.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "rltrain_run_log", None) not in (None, path)]:
        # one run at a time per process: a later run (tests, notebooks) must not write into an earlier run's log
        root.removeHandler(old)
        old.close()
    if not any(getattr(h, "rltrain_run_log", None) == path for h in root.handlers):
        handler = logging.FileHandler(path)
        handler.rltrain_run_log = path  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT.format(role="driver")))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    return path


def logs_dir(run_dir: Path) -> Path:
    return Path(run_dir).resolve() / "logs"


def ray_init_options(run_dir: Path) -> dict[str, Any]:
    """Keyword arguments for `ray.init` of a run writing to `run_dir`: the actors' log folder and mode, and whether
    Ray streams the actors' output to this console."""
    verbose = is_verbose()
    return {
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.WARNING,  # "Started a local Ray instance" etc.
        "runtime_env": {"env_vars": {LOG_DIR_ENV: str(logs_dir(run_dir)), VERBOSE_ENV: "1" if verbose else "0"}},
    }


def init_role_output(role: str) -> Path | None:
    """In an actor: send its output to `<logs>/<role>.log` (see the module docstring); returns that path, or None
    where the driver gave no log folder (tests that build actors directly, `doctor`)."""
    folder = os.environ.get(LOG_DIR_ENV)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    path = None
    if folder:
        path = Path(folder) / f"{role.replace('/', '_')}.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if is_verbose():
                handlers.append(logging.FileHandler(path))
            else:
                _redirect_fds(path)
                os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
            with path.open("a") as f:
                f.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} {role} started (pid {os.getpid()}) ====\n")
        except OSError as err:  # an unwritable folder must not stop the role: it prints as before
            path = None
            print(f"rltrain: cannot write {folder}/{role}.log ({err}); this role prints to Ray's worker log", file=sys.stderr)
    logging.basicConfig(level=logging.INFO, format=FORMAT.format(role=role), handlers=handlers, force=True)
    return path


def _redirect_fds(path: Path) -> None:
    """Point file descriptors 1 and 2 (and Python's streams) at `path`, for this process and every child it starts."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def progress(total: int, desc: str, unit: str, initial: int = 0) -> tqdm:
    """The run's one progress bar (train steps, eval episodes); plain lines where the console is not a terminal."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0)


def chunks(items: Sequence[T], size: int, desc: str, unit: str = "episode") -> Iterator[list[T]]:
    """`items` in consecutive chunks of `size`, with a progress bar that advances by each finished chunk.

    For work sent as one call (an evaluation's episodes): chunks of (workers x episodes in flight per worker) keep
    every worker as busy as one big call would, and the bar moves as chunks finish."""
    size = max(1, size)
    with progress(len(items), desc, unit) as bar:
        for start in range(0, len(items), size):
            chunk = list(items[start : start + size])
            yield chunk
            bar.update(len(chunk))


# ---------------------------------------------------------------------------------------------------------------
# Known warnings, explained once

RELOAD_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"
EXPECTED_RELOAD_MISSES = {
    "RotaryEmbedding": "it has no weights in a checkpoint (its cos/sin table is computed, and kept)",
    "ParallelLMHead": "a tied LM head is not in the checkpoint (the embeddings are); rltrain re-ties it to the new "
                      "embeddings and rebuilds its kernel after each reload (rltrain/engines/vllm_worker.py)",
}


class ExplainedOnce(logging.Filter):
    """vLLM warns "<Layer>: Failed to load weights" on every weight sync for layers that by design receive nothing.
    The first such warning per layer is replaced by why it is harmless; the repeats are dropped. Any other layer's
    warning passes unchanged: that one would be a real problem."""

    def __init__(self, expected: dict[str, str]) -> None:
        super().__init__()
        self.expected, self.explained = expected, set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "%s: Failed to load weights" or not record.args:
            return True
        layer = str(record.args[0] if isinstance(record.args, tuple) else record.args)
        if layer not in self.expected:
            return True
        if layer in self.explained:
            return False
        self.explained.add(layer)
        record.msg, record.args = ("%s: 'Failed to load weights' on weight sync is expected and shown once: %s",
                                   (layer, self.expected[layer]))
        return True


def explain_reload_warnings() -> None:
    """Install `ExplainedOnce` on vLLM's reload logger, in the process that reloads weights (the engine's worker)."""
    reload_logger = logging.getLogger(RELOAD_LOGGER)
    if not any(isinstance(f, ExplainedOnce) for f in reload_logger.filters):
        reload_logger.addFilter(ExplainedOnce(EXPECTED_RELOAD_MISSES))


# ---------------------------------------------------------------------------------------------------------------
# The end of a run


def format_summary(summary: dict[str, Any]) -> str:
    """A run's summary for the console in a few lines: held-out metrics before -> after side by side, then the
    rest; the whole summary is in `<run>/summary.json`."""
    lines, done = [], set()
    for key, value in summary.items():
        if key.startswith("eval_before/") and isinstance(value, (int, float)):
            name = key.removeprefix("eval_before/")
            after = summary.get(f"eval_after/{name}")
            if name in ("failed", "std", "seconds") or after is None:
                continue  # the file has them; the console keeps what tells whether training helped
            lines.append(f"held-out {name}: {value:.4g} -> {after:.4g}")
            done |= {key, f"eval_after/{name}"}
    for key, value in summary.items():
        if key in done or key.startswith(("eval_before/", "eval_after/")):
            continue
        lines.append(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    return "\n".join(lines)
