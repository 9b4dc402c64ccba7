"""Shared helpers: run the CLI in a subprocess, read and validate results documents."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest

from workloads.runtime.results import SCHEMA_PATH
from workloads.runtime.signals import READY_FD

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Small enough that every implemented workload finishes an iteration in well under a second.
TINY = ["--scale", "0.02"]


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


# Commands whose contract is the process itself (its start, its signals, its exit) run in a
# child; the others run in this process, which is the same code without an interpreter start.
IN_A_CHILD = ("run", "replay")


def uncontrolled_environment() -> dict[str, str]:
    """This environment without the run's controls (CLOUDAI_* variables), for a child run
    whose controls are its flags alone."""
    return {key: value for key, value in os.environ.items() if not key.startswith("CLOUDAI_")}


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> Completed:
    """Run ``python -m workloads ARGS`` and time it."""
    environment = {**uncontrolled_environment(), **(env or {})}
    started = time.monotonic()
    if args and args[0] not in IN_A_CHILD and "PYTHONPATH" not in (env or {}):
        code, stdout, stderr = _main_here(list(args), environment, cwd or ROOT)
        return Completed(code, stdout, stderr, time.monotonic() - started)
    process = subprocess.run(
        [sys.executable, "-m", "workloads", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )
    return Completed(process.returncode, process.stdout, process.stderr, time.monotonic() - started)


def _main_here(args: list[str], environment: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """``cli.main(args)`` here, with that environment and folder, its output captured."""
    from workloads import cli

    saved_environment, saved_cwd = dict(os.environ), Path.cwd()
    stdout, stderr = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(args)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environment)
    return code, stdout.getvalue(), stderr.getvalue()


def main_inline(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """``python -m workloads ARGS`` in this process: cheaper than a subprocess (torch and
    numpy are imported once)."""
    from workloads import cli

    for key in [key for key in os.environ if key.startswith("CLOUDAI_")]:
        if key != "CLOUDAI_MANIFEST":  # which catalogue, not a control of the run
            monkeypatch.delenv(key)
    return cli.main(list(args))


def run_inline(monkeypatch: pytest.MonkeyPatch, folder: Path, *args: str) -> tuple[int, dict]:
    """``run ARGS`` in this process, into the new ``folder``: its exit status and document."""
    folder.mkdir(parents=True)
    code = main_inline(monkeypatch, "run", *args, "--results-dir", str(folder))
    return code, only_document(folder)


def documents(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def only_document(folder: Path) -> dict[str, Any]:
    found = documents(folder)
    assert len(found) == 1, f"expected one document in {folder}, found {len(found)}"
    return found[0]


def assert_valid(document: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(document), key=lambda error: list(error.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def catches(pid: int, number: int) -> bool:
    """Whether the process has a handler for signal ``number`` (SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (number - 1) & 1)
    return False


def terminate_with_sigterm(process: subprocess.Popen[Any], results: Path) -> dict[str, Any]:
    """SIGTERM ``process`` once it holds the signal (before that, a busy host's slow interpreter
    start would let the stop kill any Python program); it must exit with 128 + SIGTERM and leave
    one valid document of a run terminated by the signal, which is returned. (How fast:
    tests/test_timing.py.)"""
    wait_for(lambda: catches(process.pid, signal.SIGTERM), 60, "the run to hold SIGTERM")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    document = only_document(results)
    assert_valid(document)
    assert (document["status"], document["stop_reason"], document["signal"]) == (
        "terminated",
        "signal",
        "SIGTERM",
    )
    return document


def stop_when_ready(
    command: list[str], cwd: Path, stop: int = signal.SIGTERM
) -> subprocess.Popen[bytes]:
    """Start ``command`` (a program that calls capture_early first) and send it ``stop`` the
    moment it says its stop signals are its own (on the pipe CLOUDAI_READY_FD names, as the
    supervisor reads it): while it is still importing, as a scheduler that cancels a task right
    after starting it would, and at the same point of its start-up however busy the host."""
    reader, writer = os.pipe()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**uncontrolled_environment(), READY_FD: str(writer)},
        pass_fds=(writer,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(writer)
    with os.fdopen(reader, "rb") as ready:
        said = ready.read()  # until the program closes the pipe, right after writing
    process.send_signal(stop)
    assert said == b"ready", f"{command} did not say it was ready"
    return process


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` still running (a zombie or a vanished process has ended)."""

    def running(process: psutil.Process) -> bool:
        with contextlib.suppress(psutil.Error):
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        return False

    return [process for process in processes if running(process)]


def descendants(
    pid: int, workers: int = 0, timeout: float = 60.0
) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """(spawned workers, other descendants) of ``pid`` once ``workers`` workers are up, so a
    stop reaches them. The others are multiprocessing's resource tracker, which exits when it
    reads the end of the run's pipe, a moment after the run. The wait is long: on a busy host
    two workers took more than 5 s to start (the runs that call this last 60 s)."""
    deadline = time.monotonic() + timeout
    while True:
        spawned, others = [], []
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                is_worker = "spawn_main" in " ".join(child.cmdline())
                (spawned if is_worker else others).append(child)
        if len(spawned) >= workers:
            return spawned, others
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {workers} workers of {pid}, saw {len(spawned)}")
        time.sleep(0.05)


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test, naming ``what``, after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {what}")
        time.sleep(0.05)


def assert_nothing_outlived_the_run(
    workers: list[psutil.Process], helpers: list[psutil.Process]
) -> None:
    """Workers end before the run does; helpers within a second after it."""
    assert not alive(workers), "orphaned workers"
    deadline = time.monotonic() + 1.0
    while alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(helpers), "a helper process outlived the run"


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    return folder


@pytest.fixture
def fixture_manifest(tmp_path: Path) -> dict[str, str]:
    """Environment for a catalogue of test workloads (tests/fixtures), as a user would add one."""
    return {
        "CLOUDAI_MANIFEST": str(FIXTURES / "workloads.yaml"),
        "PYTHONPATH": os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")]),
        "TMPDIR": str(tmp_path),
    }


# Building every image for two platforms (arm64 under emulation) falls to the first engine
# test that asks for them: engine tests get far longer than the default timeout.
ENGINE_TEST_TIMEOUT = 1800


TIERS = ("unit", "contract", "system")


@pytest.hookimpl(tryfirst=True)  # before -m selects: the tiers added here count
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need an engine or a GPU are the system tier; every test has a tier."""
    for item in items:
        if item.get_closest_marker("docker") or item.get_closest_marker("gpu"):
            item.add_marker(pytest.mark.system)
        if item.get_closest_marker("docker") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(ENGINE_TEST_TIMEOUT))
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            raise pytest.UsageError(f"{item.nodeid}: mark it unit, contract or system")


# The images built and pushed once per session, and a one-node swarm per module, for every
# module's engine tests.
from tests.engine import one_node_swarm, pushed_images  # noqa: E402, F401
