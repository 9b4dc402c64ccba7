"""Scratch folders: where they go, what a killed run leaves and who removes it, disk budgets."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import TINY, assert_valid, only_document, run_cli
from workloads.runtime import scratch
from workloads.runtime.filesystems import mount_of, mounts

pytestmark = pytest.mark.contract


def _leftover(base: Path, name: str, owner: dict[str, object], age: float = 0) -> Path:
    folder = base / f"{scratch.PREFIX}{name}"
    folder.mkdir()
    (folder / scratch.OWNER).write_text(json.dumps(owner))
    if age:
        os.utime(folder, (time.time() - age, time.time() - age))
    return folder


def test_a_new_run_removes_what_dead_runs_left(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = _leftover(tmp_path, "dead", {"host": host, "pid": 2**22 + 7, "started": 1.0})
    alive = _leftover(
        tmp_path,
        "alive",
        {"host": host, "pid": os.getpid(), "started": scratch._started(os.getpid())},
    )
    reused = _leftover(tmp_path, "reused", {"host": host, "pid": os.getpid(), "started": 1.0})
    foreign_old = _leftover(
        tmp_path,
        "old",
        {"host": "elsewhere", "pid": 1, "started": 1.0},
        age=2 * scratch.FOREIGN_AGE,
    )
    foreign_new = _leftover(tmp_path, "new", {"host": "elsewhere", "pid": 1, "started": 1.0})
    unrelated = tmp_path / "keep-me"
    unrelated.mkdir()

    created = scratch.create(tmp_path, "run-1")

    assert not dead.exists() and not reused.exists() and not foreign_old.exists()
    assert alive.exists() and foreign_new.exists() and unrelated.exists()
    assert created.name == f"{scratch.PREFIX}run-1" and created.is_dir()


def test_mounts_carry_filesystem_types(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 8:1 /srv/out /output rw,relatime shared:1 - xfs /dev/sdb1 rw\n"
        "41 22 0:5 / /with\\040space rw - tmpfs tmpfs rw\n"
    )
    found = {str(mount.point): mount.fstype for mount in mounts(mountinfo)}
    assert found == {"/": "ext4", "/output": "xfs", "/with space": "tmpfs"}
    assert mount_of(Path("/output/deep/file"), mountinfo).fstype == "xfs"
    assert mount_of(Path("/srv"), mountinfo).fstype == "ext4"


def test_work_dir_holds_the_scratch_and_is_left_clean(tmp_path: Path, results: Path) -> None:
    work = tmp_path / "work"
    completed = run_cli(
        "run",
        "io-1",
        *TINY,
        "--iterations",
        "3",
        "--results-dir",
        str(results),
        "--work-dir",
        str(work),
        "--disk",
        "8m",
    )
    assert completed.returncode == 0, completed.stderr
    document = only_document(results)
    assert document["scratch"]["path"].startswith(str(work))
    assert document["scratch"]["filesystem"]
    assert document["params"]["disk_budget"] == 8 << 20
    assert max(document["metrics"]["problem_sizes"]) <= 8 << 20
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("workload", "stop_reason", "fragment"),
    [("io-2", "disk-full", "disk full"), ("cpu-6", "out-of-memory", "MemoryError")],
)
def test_resource_exhaustion_in_a_worker_ends_cleanly(
    workload: str,
    stop_reason: str,
    fragment: str,
    results: Path,
    fixture_manifest: dict[str, str],
) -> None:
    completed = run_cli(
        "run", workload, "--duration", "10", "--results-dir", str(results), env=fixture_manifest
    )
    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1, completed.stderr
    assert fragment in completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout
    document = only_document(results)
    assert_valid(document)
    assert (document["status"], document["stop_reason"]) == ("failed", stop_reason)
    assert document["metrics"]["iterations"] >= 1  # work done before the failure is kept
    assert [path.name for path in results.iterdir()] == [f"{workload}_{document['run_id']}.json"]
