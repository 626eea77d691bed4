"""Console routing (rltrain/console.py): driver filter, role output into files (fd level, children included)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rltrain import console


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, os.environ.get(console.VERBOSE_ENV))
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    if saved[2] is None:
        os.environ.pop(console.VERBOSE_ENV, None)
    else:
        os.environ[console.VERBOSE_ENV] = saved[2]


def test_default_console_shows_rltrain_info_and_everyone_s_warnings(restore_root_logging, capsys, tmp_path) -> None:
    console.setup_driver(verbose=False)
    console.attach_run_log(tmp_path)
    logging.getLogger("rltrain.driver").info("driver line")
    # a library of our own naming: vLLM and DeepSpeed, once imported by an earlier test, attach their own handlers and
    # stop propagating, which would hide these lines from the root logger whatever rltrain does
    logging.getLogger("somelib.engine").info("vllm info line")
    logging.getLogger("otherlib").warning("deepspeed warning")
    err = capsys.readouterr().err
    assert "driver line" in err and "deepspeed warning" in err and "vllm info line" not in err
    assert "vllm info line" in (tmp_path / "logs" / "driver.log").read_text()  # nothing is lost, only moved


def test_verbose_console_shows_every_library(restore_root_logging, capsys) -> None:
    console.setup_driver(verbose=True)
    logging.getLogger("somelib.engine").info("vllm info line")
    assert "vllm info line" in capsys.readouterr().err
    assert console.ray_init_options(Path("runs/x"))["log_to_driver"] is True


def test_ray_init_options_pass_the_log_folder_to_every_worker(restore_root_logging, tmp_path) -> None:
    console.setup_driver(verbose=False)
    options = console.ray_init_options(tmp_path / "run")
    assert options["log_to_driver"] is False
    env = options["runtime_env"]["env_vars"]
    assert env == {console.LOG_DIR_ENV: str((tmp_path / "run" / "logs").resolve()), console.VERBOSE_ENV: "0"}


ROLE = """
import logging, os, subprocess, sys
from rltrain.console import init_role_output
print(init_role_output("rollout-0"))
logging.getLogger("vllm").info("python logging line")
print("print line", flush=True)
os.write(2, b"raw fd 2 line\\n")
subprocess.run([sys.executable, "-c", "print('child process line')"])  # like vLLM's EngineCore
"""


def test_role_output_goes_to_its_file_children_included(tmp_path: Path) -> None:
    env = {**os.environ, console.LOG_DIR_ENV: str(tmp_path), console.VERBOSE_ENV: "0"}
    out = subprocess.run([sys.executable, "-c", ROLE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""  # nothing reaches Ray's stream, so nothing reaches the console
    log = (tmp_path / "rollout-0.log").read_text()
    for line in ("rollout-0 started", "python logging line", "print line", "raw fd 2 line", "child process line"):
        assert line in log


def test_verbose_role_prints_and_logs(tmp_path: Path) -> None:
    env = {**os.environ, console.LOG_DIR_ENV: str(tmp_path), console.VERBOSE_ENV: "1"}
    out = subprocess.run([sys.executable, "-c", ROLE], env=env, capture_output=True, text=True, timeout=60)
    assert "python logging line" in out.stderr and "child process line" in out.stdout
    assert "python logging line" in (tmp_path / "rollout-0.log").read_text()


def test_without_a_log_folder_nothing_changes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != console.LOG_DIR_ENV}
    out = subprocess.run([sys.executable, "-c", ROLE], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("None") and "python logging line" in out.stderr


def test_chunks_cover_every_item_in_order() -> None:
    assert list(console.chunks(list(range(7)), 3, "eval")) == [[0, 1, 2], [3, 4, 5], [6]]


def test_reload_warnings_are_explained_once_and_others_pass(caplog: pytest.LogCaptureFixture) -> None:
    reload_logger = logging.getLogger(console.RELOAD_LOGGER)
    saved = reload_logger.filters[:]
    try:
        console.explain_reload_warnings()
        console.explain_reload_warnings()  # idempotent: one filter
        assert sum(isinstance(f, console.ExplainedOnce) for f in reload_logger.filters) == 1
        with caplog.at_level(logging.WARNING, logger=console.RELOAD_LOGGER):
            for _ in range(3):  # three weight syncs
                for layer in ("RotaryEmbedding", "ParallelLMHead", "LlamaMLP"):
                    reload_logger.warning("%s: Failed to load weights", layer)
        messages = [r.getMessage() for r in caplog.records]
        assert len([m for m in messages if m.startswith("RotaryEmbedding")]) == 1
        assert len([m for m in messages if m.startswith("ParallelLMHead")]) == 1
        assert "re-ties it" in next(m for m in messages if m.startswith("ParallelLMHead"))
        assert messages.count("LlamaMLP: Failed to load weights") == 3  # not expected: every one is shown
    finally:
        reload_logger.filters[:] = saved


def test_format_summary_puts_before_and_after_side_by_side() -> None:
    summary = {"run_dir": "runs/q", "steps": 40, "eval_before/failed": 0.0, "eval_before/mean": 0.49,
               "eval_before/seconds": 7.1, "eval_after/failed": 0.0, "eval_after/mean": 0.83, "eval_after/seconds": 6.0,
               "final_model": "runs/q/final", "final_verify/max_abs_diff": 0.0}
    assert console.format_summary(summary).splitlines() == [
        "held-out mean: 0.49 -> 0.83", "run_dir: runs/q", "steps: 40", "final_model: runs/q/final",
        "final_verify/max_abs_diff: 0"]


def test_a_later_run_in_the_same_process_does_not_write_into_the_earlier_run_s_log(restore_root_logging,
                                                                                     tmp_path) -> None:
    console.setup_driver(verbose=False)
    first, second = tmp_path / "first", tmp_path / "second"
    console.attach_run_log(first)
    logging.getLogger("rltrain.driver").info("line of the first run")
    console.attach_run_log(second)
    console.attach_run_log(second)  # attaching twice writes each line once
    logging.getLogger("rltrain.driver").info("line of the second run")
    first_log = (first / "logs" / "driver.log").read_text()
    second_log = (second / "logs" / "driver.log").read_text()
    assert "line of the first run" in first_log and "second run" not in first_log
    assert second_log.count("line of the second run") == 1 and "first run" not in second_log
