"""The Slurm the tests replay on: a real cluster of scripts/slurm-up on this machine (it installs
Debian's packages where they are missing), brought up by a fixture and put back afterwards as it
was found, and what a replay into a run folder left on it (tests/test_slurm.py, and the slurm
entry of tests/test_engines.py's conformance suite)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from workloads.replay.engine import REPLAY_LABEL

ROOT = Path(__file__).resolve().parent.parent
UP, DOWN = ROOT / "scripts" / "slurm-up", ROOT / "scripts" / "slurm-down"
CGROUPS = Path("/sys/fs/cgroup")


def run(*command: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(word) for word in command],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=timeout,
    )  # fmt: skip


def _cannot_provision() -> str | None:
    if os.geteuid() != 0:
        return "scripts/slurm-up needs root"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "no Slurm here, and no apt-get for scripts/slurm-up to install Debian's"
    return None


def _nodes_up() -> int:
    if shutil.which("sinfo") is None:
        return 0
    listed = run("sinfo", "-h", "-N", "-o", "%N")
    return len(set(listed.stdout.split())) if listed.returncode == 0 else 0


def up(nodes: int) -> dict[str, str]:
    """scripts/slurm-up NODES (a second call for the same N only checks): what it printed."""
    completed = run(UP, str(nodes), timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return dict(line.split("=", 1) for line in completed.stdout.split())


@contextlib.contextmanager
def provisioned() -> Iterator[Callable[[int], dict[str, str]]]:
    """``up``, for as long as the block runs; afterwards the cluster found before, or none. A
    machine where scripts/slurm-up cannot run skips the test."""
    reason = _cannot_provision()
    if reason:
        pytest.skip(reason)
    before = _nodes_up()
    try:
        yield up
    finally:
        if before:
            up(before)
        else:
            run(DOWN)


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[Callable[[int], dict[str, str]]]:
    """``slurm_cluster(N)``: a cluster of N nodes, for the module's tests."""
    with provisioned() as cluster:
        yield cluster


@pytest.fixture
def slurm_node(slurm_cluster: Callable[[int], dict[str, str]]) -> dict[str, str]:
    """A one-node cluster, as a replay with no --partition uses it."""
    return slurm_cluster(1)


def job_ids(run_folder: Path) -> list[str]:
    """The Slurm jobs a replay submitted, from its SUBMIT events."""
    found = []
    for line in (run_folder / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "SUBMIT" and "detail" in event:
            found.append(event["detail"].removeprefix("Slurm job "))
    return found


def slurm_leftovers(run_folder: Path) -> list[str]:
    """What the replay into ``run_folder`` left: its jobs still in squeue, its containers in
    this machine's podman, its jobs' cgroups, and podman's cgroups of any replay's container."""
    replay_id = json.loads((run_folder / "replay.json").read_text())["replay_id"]
    jobs = subprocess.run(
        ["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    left = [job for job in jobs if f"cloudai-replay-{replay_id.lower()}-" in job]
    if shutil.which("podman"):
        left += subprocess.run(
            ["podman", "ps", "-aq", "--filter", f"label={REPLAY_LABEL}={replay_id}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
    for job_id in job_ids(run_folder):
        left += [str(path) for path in CGROUPS.glob(f"*/slurm_*/uid_*/job_{job_id}")]
    return left + [str(path) for path in CGROUPS.glob("*/cloudai-podman/libpod-*")]
