"""The images' entrypoint, exercised on the host: signals reach the workload through sh, the
supervisor waits for every descendant, and the run-as user follows the results folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, assert_valid, catches, descendants, only_document, wait_for
from workloads.supervisor import GRACE, stop_grace, writable_by

pytestmark = pytest.mark.contract


def _supervise(command: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "workloads.supervisor", "/bin/sh", "-c", command],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def _supervising(command: str) -> subprocess.Popen[str]:
    """The supervisor, once it holds its stop signals. Before that no Python program can: a
    busy host took the interpreter over 0.15 s to start, and the stop killed it (-15). In an
    image it is PID 1, which the kernel spares a signal it does not handle."""
    process = _supervise(command)
    wait_for(lambda: catches(process.pid, signal.SIGTERM), 60, "the supervisor's handler")
    return process


def test_exit_status_passes_through() -> None:
    process = _supervise("exit 7")
    assert process.wait(timeout=10) == 7


def test_sigterm_reaches_the_workload_through_sh(results: Path) -> None:
    # Debian's sh dies at once on SIGTERM: the supervisor must still wait for Python's document.
    process = _supervise(
        f'"{sys.executable}" -m workloads run cpu-1 --duration 60 --results-dir "{results}"'
    )
    descendants(process.pid, workers=2)  # the run is iterating
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    document = only_document(results)
    assert_valid(document)
    assert document["status"] == "terminated"


def test_descendants_that_ignore_the_stop_are_killed_after_the_grace() -> None:
    process = _supervise("trap '' TERM; sleep 60")

    def sleeping() -> bool:  # sh has set its trap, then started sleep (the supervisor is ready)
        children = psutil.Process(process.pid).children(recursive=True)
        return any(child.name() == "sleep" for child in children)

    wait_for(sleeping, 60, "sh to trap the stop and sleep")
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGKILL
    assert time.monotonic() - signalled >= GRACE  # not before (how soon after: test_timing.py)


def test_the_stoppers_grace_replaces_the_supervisors_own(tmp_path: Path) -> None:
    # replay --grace 30 gives a task 30 s to write its document: the supervisor's own GRACE must
    # not kill it first (a busy host's start-up once took longer, and the document was lost).
    done = tmp_path / "done"
    process = _supervise(
        f"trap 'sleep {GRACE + 2}; touch {done}; exit 0' TERM; sleep 60 & wait",
        env={**os.environ, "CLOUDAI_STOP_GRACE": "120"},
    )
    children = lambda: psutil.Process(process.pid).children(recursive=True)  # noqa: E731
    wait_for(lambda: any(child.name() == "sleep" for child in children()), 60, "sh to sleep")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0  # it ended on its own, after more than GRACE
    assert done.exists()


def test_a_grace_that_is_not_a_number_is_said_and_the_own_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert stop_grace({"CLOUDAI_STOP_GRACE": "soon"}) == GRACE
    assert stop_grace({"CLOUDAI_STOP_GRACE": "-1"}) == GRACE
    assert len(capsys.readouterr().err.splitlines()) == 2
    assert stop_grace({"CLOUDAI_STOP_GRACE": "30"}) == 30
    assert stop_grace({}) == GRACE


@pytest.mark.parametrize(
    ("mode", "owner", "uid", "writable"),
    [
        (0o755, 10001, 10001, True),  # the user's own folder
        (0o755, 0, 10001, False),  # root's folder, closed to others
        (0o777, 0, 10001, True),  # open to all
        (0o775, 0, 10001, False),  # group-writable, other group
    ],
)
def test_writable_by(tmp_path: Path, mode: int, owner: int, uid: int, writable: bool) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing a folder's owner needs root")
    folder = tmp_path / "output"
    folder.mkdir()
    os.chown(folder, owner, owner)
    folder.chmod(mode)
    assert writable_by(folder, uid, uid) is writable
    assert writable_by(folder / "not-yet" / "deeper", uid, uid) is writable


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.6])
def test_a_stop_before_python_takes_its_signals_is_held_until_it_has(
    results: Path, delay: float
) -> None:
    """A stop that reached the interpreter before capture_early would kill it without a
    document: the supervisor holds it until the workload says it is ready. ``delay`` counts
    from the supervisor's own readiness, so the stop falls in the workload's start-up."""
    launcher = ROOT / "workloads" / "launchers" / "cpu_process_1.py"
    process = _supervising(
        f'"{sys.executable}" "{launcher}" --duration 60 --scale 0.05 --results-dir "{results}"'
    )
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 128 + signal.SIGTERM
    document = only_document(results)
    assert (document["status"], document["signal"]) == ("terminated", "SIGTERM")
