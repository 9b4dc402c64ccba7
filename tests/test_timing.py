"""How fast the runtime keeps its promises: a run ends within 2 s of a stop, within half a
second of its duration, and the supervisor kills what ignores a stop soon after the grace.

The gate asserts the behaviour (a document, its status, its exit); these assert the speed,
which a busy host upsets, so they run in the timing tier (reported by CI, not a gate).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, descendants, only_document, run_cli, wait_for
from workloads.supervisor import GRACE

pytestmark = [pytest.mark.contract, pytest.mark.timing]


def _stop_seconds(process: subprocess.Popen[bytes]) -> float:
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    return time.monotonic() - signalled


@pytest.mark.parametrize("workload", ["cpu-1", "io-1", "gpu-1"])
def test_a_run_ends_within_two_seconds_of_a_sigterm(workload: str, results: Path) -> None:
    if workload.startswith("gpu"):
        pytest.importorskip("torch")
    process = subprocess.Popen(
        [sys.executable, "-m", "workloads", "run", workload, "--duration", "60", "--scale", "0.2",
         "--results-dir", str(results)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    assert _stop_seconds(process) < 2.0
    assert process.returncode == 128 + signal.SIGTERM
    assert only_document(results)["wall_seconds"] < 5


def test_a_run_ends_within_half_a_second_of_its_duration(results: Path) -> None:
    completed = run_cli("run", "cpu-1", "--duration", "2", "--results-dir", str(results))
    assert completed.returncode == 0, completed.stderr
    assert 2.0 <= only_document(results)["wall_seconds"] < 2.5


def test_the_watchdog_ends_a_stubborn_step_within_two_seconds(
    results: Path, fixture_manifest: dict[str, str]
) -> None:
    environment = {**os.environ, **fixture_manifest}
    process = subprocess.Popen(
        [sys.executable, "-m", "workloads", "run", "cpu-4", "--duration", "60",
         "--results-dir", str(results)],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    started = Path(fixture_manifest["TMPDIR"]) / "stubborn-step-started"
    wait_for(started.exists, timeout=20, what="the stubborn step to begin")
    assert _stop_seconds(process) < 2.0
    assert process.returncode == 143


def _supervise(command: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "workloads.supervisor", "/bin/sh", "-c", command],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_the_supervisor_relays_a_stop_within_three_seconds(results: Path) -> None:
    process = _supervise(
        f'"{sys.executable}" -m workloads run cpu-1 --duration 60 --results-dir "{results}"'
    )
    descendants(process.pid, workers=2)
    assert _stop_seconds(process) < 3
    assert process.returncode == 128 + signal.SIGTERM


def test_the_supervisor_kills_what_ignores_a_stop_soon_after_the_grace() -> None:
    process = _supervise("trap '' TERM; sleep 60")
    time.sleep(0.5)
    assert GRACE <= _stop_seconds(process) < GRACE + 3.5
