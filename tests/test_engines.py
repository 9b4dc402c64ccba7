"""The engine contract, held to every registered engine: the example third-party engine of
examples/local-engine (installed here as a user would install one) in the contract tier, the
real ones (docker, swarm...) in the system tier. What each engine does beyond the contract
(queueing, placement, several nodes) is tested in its own module.

The contract: a replay ends with every task's events in order, on the engine's clock and
carrying the replay's id; one document per task; nothing of the replay left on the engine; and
a stop (SIGTERM to the replay) honoured within the grace, every running task leaving a partial
document and ending as a KILL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, run_cli, wait_for
from tests.engine import NAMESPACE, REGISTRY, STOP_GRACE_S, leftovers
from tests.slurm import slurm_cluster, slurm_leftovers, slurm_node  # noqa: F401  (fixtures)
from workloads.replay import plugins
from workloads.runfolder import TERMINAL, read_events, read_replay, read_trace, task_folder

pytestmark = pytest.mark.contract

EXAMPLE = ROOT / "examples" / "local-engine"
ORDER = ("SUBMIT", "SCHEDULE", "START")


@dataclass(frozen=True)
class Setup:
    """How to replay on an engine in the tests: what it needs first, what it leaves."""

    fixtures: tuple[str, ...]  # pytest fixtures that make it ready (images, a swarm)
    leftovers: Callable[[Path], list[str]]  # what of the replay into that folder remains
    system: bool = True  # a real engine: the system tier


def _local_leftovers(run: Path) -> list[str]:
    """Processes still writing into the run folder."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if str(run.resolve()) in process.environ().get("CLOUDAI_RESULTS_DIR", ""):
                found.append(f"pid {process.pid}")
    return found


SETUPS = {
    "local": Setup((), _local_leftovers, system=False),
    "docker": Setup(("pushed_images",), lambda run: leftovers()),
    "swarm": Setup(("pushed_images", "one_node_swarm"), lambda run: leftovers()),
    # A one-node cluster of scripts/slurm-up; what is left: the replay's jobs in squeue, its
    # containers in podman, their cgroups.
    "slurm": Setup(("pushed_images", "slurm_node"), slurm_leftovers),
}


@pytest.fixture(scope="session")
def example_engine(tmp_path_factory: pytest.TempPathFactory) -> str:
    """examples/local-engine, pip-installed into a folder of its own: its entry point makes
    ``--engine local`` known to every replay started with that folder on PYTHONPATH."""
    source, target = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("site")
    shutil.copytree(EXAMPLE, source, dirs_exist_ok=True)  # a build leaves files in its source
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--target", str(target), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(target)


def _engines() -> list[object]:
    names = sorted({*plugins.installed(), "local"})
    params = []
    for name in names:
        setup = SETUPS.get(name)
        marks = [pytest.mark.docker] if setup is None or setup.system else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_engines())
def engine(request: pytest.FixtureRequest, example_engine: str) -> Iterator[tuple[str, Setup]]:
    name = request.param
    setup = SETUPS.get(name)
    assert setup is not None, f"engine {name!r} is installed but has no Setup in {__file__}"
    for fixture in setup.fixtures:
        request.getfixturevalue(fixture)
    yield name, setup


def _environment(example_engine: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([example_engine, str(ROOT)])}


def _trace(folder: Path, duration: str, tasks: int) -> Path:
    path = folder / "trace.json"
    completed = run_cli(
        "trace", "--tasks", str(tasks), "--mix", "cpu-1=1,io-3=1", "--rate", "2",
        "--duration-range", duration, "--scale", "0.05", "--seed", "5",
        "--registry", REGISTRY, "--namespace", NAMESPACE, "--output", str(path),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return path


def _assert_events_keep_the_contract(run: Path) -> None:
    record = read_replay(run)
    events = read_events(run)  # every line a whole, typed event
    assert {event.replay_id for event in events} == {record.replay_id}
    submitted = {event.task_id for event in events}
    assert submitted <= {task.task_id for task in read_trace(run)}
    for task_id in submitted:  # a stop may come before the last tasks' submissions
        own = sorted((e for e in events if e.task_id == task_id), key=lambda e: e.time)
        kinds = [event.event for event in own]
        assert kinds[0] == "SUBMIT", kinds
        assert [kind for kind in kinds if kind in ORDER] == [k for k in ORDER if k in kinds]
        assert sum(kind in TERMINAL for kind in kinds) == 1 and kinds[-1] in TERMINAL, kinds


def test_an_engine_replays_a_trace_to_the_contract(
    engine: tuple[str, Setup], example_engine: str, tmp_path: Path
) -> None:
    name, setup = engine
    run = tmp_path / "run"
    completed = run_cli(
        "replay", str(_trace(tmp_path, "3:4", tasks=3)), "--engine", name,
        "--output", str(run), env=_environment(example_engine), timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    record = read_replay(run)
    assert (record.engine.name, record.outcome) == (name, "completed")
    _assert_events_keep_the_contract(run)
    events = read_events(run)
    assert {event.clock for event in events} == {"engine"}  # nothing ended by the replay
    for task in read_trace(run):
        (document,) = task_folder(run, task.task_id).glob("*.json")
        assert '"status": "completed"' in document.read_text()
    assert setup.leftovers(run) == []


def test_an_engine_honours_a_stop_within_the_grace(
    engine: tuple[str, Setup], example_engine: str, tmp_path: Path
) -> None:
    name, setup = engine
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "workloads", "replay", str(_trace(tmp_path, "120:120", tasks=2)),
         "--engine", name, "--output", str(run), "--grace", str(STOP_GRACE_S)],
        cwd=ROOT, env={**os.environ, **_environment(example_engine)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    events = run / "events.jsonl"
    wait_for(lambda: events.exists() and '"START"' in events.read_text(), 120, "a task to start")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert (read_replay(run).outcome, read_replay(run).signal) == ("interrupted", "SIGTERM")
    _assert_events_keep_the_contract(run)
    started = {event.task_id for event in read_events(run) if event.event == "START"}
    for task_id in started:  # stopped within the grace: each wrote its partial document
        (document,) = task_folder(run, task_id).glob("*.json")
        assert '"status": "terminated"' in document.read_text()
    ends = {event.event for event in read_events(run) if event.event in TERMINAL}
    assert ends == {"KILL"}
    assert setup.leftovers(run) == []
