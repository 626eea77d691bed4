"""Ray Jobs API round trip on a private head node: submit, stream logs, status, stop, clear errors.

The head is a `ray start --head --block` process in its own process group, on free ports and a short temp dir
under /tmp (AF_UNIX socket paths must stay under 107 bytes); the test kills that group at the end and never
runs `ray stop`, which would kill every Ray cluster on the machine.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rltrain import jobs
from tests.integration.ray_nodes import free_port, kill_group, start_node, wait_for_dashboard

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    """A private Ray head with the dashboard on 127.0.0.1; yields its Jobs API address."""
    temp = tempfile.mkdtemp(prefix="rlj-", dir="/tmp")
    dash, log = free_port(), Path(temp) / "head.log"
    proc = start_node(temp, log, head_port=free_port(), head=True, num_cpus=4, dashboard_port=dash)
    address = f"http://127.0.0.1:{dash}"
    try:
        try:
            wait_for_dashboard(address, [proc], [log], timeout_s=90)
        except RuntimeError as err:
            pytest.fail(str(err))
        yield address
    finally:
        kill_group(proc)
        shutil.rmtree(temp, ignore_errors=True)


def test_hello_job_streams_logs_and_succeeds(head: str) -> None:
    out = io.StringIO()
    result = jobs.submit_entrypoint(f"{sys.executable} -c \"print('hello from job')\"", head, out=out, timeout_s=120)
    assert result.status == "SUCCEEDED"
    assert "hello from job" in out.getvalue()
    assert jobs.status(result.job_id, head)["status"] == "SUCCEEDED"
    logs = io.StringIO()
    assert jobs.logs(result.job_id, head, out=logs) == "SUCCEEDED"
    assert "hello from job" in logs.getvalue()


def test_stop_a_long_job(head: str) -> None:
    result = jobs.submit_entrypoint(f"{sys.executable} -c \"import time; print('started', flush=True); time.sleep(600)\"",
                                    head, wait=False, out=io.StringIO())
    assert result.status in ("PENDING", "RUNNING")
    assert jobs.stop(result.job_id, head) == "STOPPED"
    assert jobs.status(result.job_id, head)["status"] == "STOPPED"


def test_unknown_job_and_unreachable_cluster_say_what_to_do(head: str) -> None:
    with pytest.raises(jobs.JobsError, match="no job 'raysubmit_nope'.*Recent jobs"):
        jobs.status("raysubmit_nope", head)
    with pytest.raises(jobs.JobsError, match="no job"):
        jobs.stop("raysubmit_nope", head)
    with pytest.raises(jobs.JobsError, match="cannot reach the Ray dashboard.*port-forward.*8265"):
        jobs.status("raysubmit_x", f"http://127.0.0.1:{free_port()}")


def test_cli_commands_return_exit_codes(head: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="rltrain")
    jobs.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["status", "raysubmit_nope", "--address", head])
    assert args.func(args) == 2
    assert "no job 'raysubmit_nope'" in capsys.readouterr().err
    # a config error fails before anything is uploaded
    args = parser.parse_args(["submit", "launch/configs/tiny.yaml", "learner.micro_batch_size=3", "--address", head])
    assert args.func(args) == 2
    assert "try learner.micro_batch_size" in capsys.readouterr().err


# Submitting `rltrain train` itself, with the repository uploaded as working_dir: the two-node job in
# tests/integration/test_multinode.py.
