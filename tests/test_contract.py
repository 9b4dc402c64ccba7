"""The runtime contract, end to end: duration, seeds, signals, failures, folders, isolation."""

from __future__ import annotations

import errno
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import (
    FIXTURES,
    ROOT,
    TINY,
    assert_nothing_outlived_the_run,
    assert_valid,
    descendants,
    documents,
    only_document,
    run_cli,
    stop_when_ready,
    terminate_with_sigterm,
    uncontrolled_environment,
    wait_for,
)

pytestmark = pytest.mark.contract

LAUNCHERS = ROOT / "workloads" / "launchers"


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = uncontrolled_environment()
    return subprocess.Popen(
        [sys.executable, "-m", "workloads", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**environment, **(env or {})},
    )


# -- duration, iterations
def test_duration_bounds_the_whole_process(results: Path) -> None:
    completed = run_cli("run", "cpu-1", "--duration", "2", "--results-dir", str(results))
    assert completed.returncode == 0, completed.stderr
    document = only_document(results)  # the run's own clock, from its process start
    assert document["wall_seconds"] >= 2.0  # how soon after: tests/test_timing.py
    assert document["stop_reason"] == "duration"


def test_first_limit_reached_wins(results: Path) -> None:
    completed = run_cli(
        "run",
        "cpu-1",
        *TINY,
        "--iterations",
        "1000000",
        "--duration",
        "1.5",
        "--results-dir",
        str(results),
    )
    assert completed.returncode == 0, completed.stderr
    assert only_document(results)["stop_reason"] == "duration"


# -- seeds
def _digest_and_sizes(results: Path, *args: str) -> tuple[str, list[float]]:
    folder = results / "-".join(args)
    completed = run_cli(
        "run", "cpu-1", *TINY, "--iterations", "12", "--results-dir", str(folder), *args
    )
    assert completed.returncode == 0, completed.stderr
    document = only_document(folder)
    return document["verification"]["digest"], document["metrics"]["problem_sizes"]


def test_same_seed_same_digest_and_sizes_whatever_the_workers(results: Path) -> None:
    first = _digest_and_sizes(results, "--seed", "5", "--workers", "2")
    again = _digest_and_sizes(results, "--seed", "5", "--workers", "1")
    other = _digest_and_sizes(results, "--seed", "6", "--workers", "2")
    assert first == again
    assert first[0] != other[0]
    assert first[1] != other[1]


def test_seed_from_the_environment_is_recorded(results: Path) -> None:
    completed = run_cli(
        "run",
        "cpu-1",
        *TINY,
        "--iterations",
        "2",
        env={"CLOUDAI_SEED": "123", "CLOUDAI_RESULTS_DIR": str(results)},
    )
    assert completed.returncode == 0, completed.stderr
    document = only_document(results)
    assert document["seed"] == 123
    assert document["params"]["sources"]["seed"] == "env"


# -- resources
@pytest.mark.timing
def test_two_workers_keep_more_than_one_core_busy(results: Path) -> None:
    completed = run_cli(
        "run", "cpu-1", "--workers", "2", "--duration", "3", "--results-dir", str(results)
    )
    assert completed.returncode == 0, completed.stderr
    document = only_document(results)
    assert document["resources"]["average_cores"] > 1.5
    assert document["load"]["workers"] == 2


def test_timeseries_holds_per_interval_rates(results: Path) -> None:
    completed = run_cli(
        "run",
        "cpu-1",
        "--iterations",  # not a duration, which a busy host may spend starting up
        "30",
        "--duration",
        "60",
        "--sample-interval",
        "0.25",
        "--workers",
        "2",
        "--results-dir",
        str(results),
    )
    assert completed.returncode == 0, completed.stderr
    samples = only_document(results)["timeseries"]["samples"]
    times = [sample["t"] for sample in samples]
    # Never faster than asked (but the last, partial interval).
    assert len(samples) >= 3
    assert all(b - a >= 0.24 for a, b in itertools.pairwise(times[:-1]))
    cores = [sample["cpu_cores"] for sample in samples]
    assert max(cores) <= 2.6  # a rate per interval: cumulative CPU seconds would keep growing
    # The samples add up to the run's CPU time (its own measure, whatever else the host ran).
    cpu_seconds = only_document(results)["resources"]["cpu_seconds"]
    assert _cpu_in_samples(samples) == pytest.approx(cpu_seconds, rel=0.25)


def _cpu_in_samples(samples: list[dict]) -> float:
    """CPU seconds the series stands for: each sample's rate over the interval ending at it,
    the first one's beginning at the run's start (as `analyze` reads it)."""
    spans = [b - a for a, b in itertools.pairwise([0.0, *(sample["t"] for sample in samples)])]
    return sum(sample["cpu_cores"] * span for sample, span in zip(samples, spans, strict=True))


def test_the_first_sample_covers_the_start_up(results: Path) -> None:
    """A run counts from its process's start, and so do its totals: the first sample stands for
    the interval from that start. A busy host, where the start-up is mostly a wait for a core,
    found the series outgrowing the totals when it began at the sampler's creation instead."""
    start_up = (  # 2 s of the start-up waiting, as on a busy host, before the CLI is imported
        "import sys, time\n"
        "time.sleep(2.0)\n"
        "from workloads.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    arguments = ["run", "cpu-1", "--scale", "0.1", "--intensity", "5", "--iterations", "2"]
    completed = subprocess.run(
        [sys.executable, "-c", start_up, *arguments, "--workers", "1", "--duration", "60",
         "--sample-interval", "0.25", "--results-dir", str(results)],
        capture_output=True, text=True, check=False, timeout=120, cwd=ROOT,
        env=uncontrolled_environment(),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    document = only_document(results)
    samples, cpu_seconds = document["timeseries"]["samples"], document["resources"]["cpu_seconds"]
    assert samples[0]["t"] >= 2.0  # the start-up is the run's
    assert _cpu_in_samples(samples) == pytest.approx(cpu_seconds, rel=0.25)


def test_intensity_is_a_duty_cycle(results: Path) -> None:
    # Bound by iterations, not by a duration: on a busy host a 4 s run may finish no unit, or
    # too few for a duty cycle to show. One worker: the cycle is per worker, and two would add
    # the idle of the one that found no unit left to claim.
    completed = run_cli(
        "run",
        "cpu-1",
        "--scale",
        "0.1",
        "--intensity",
        "50",
        "--iterations",
        "6",
        "--workers",
        "1",
        "--results-dir",
        str(results),
    )
    assert completed.returncode == 0, completed.stderr
    load = only_document(results)["load"]
    assert load["target_mean_pct"] == 50
    assert 35 <= load["achieved_busy_pct"] <= 65


# -- signals
@pytest.mark.parametrize("workload", ["cpu-1", "io-1", "gpu-1"])
def test_sigterm_leaves_a_partial_document(workload: str, results: Path) -> None:
    if workload.startswith("gpu"):
        pytest.importorskip("torch")
    process = _start(
        "run", workload, "--duration", "60", "--scale", "0.2", "--results-dir", str(results)
    )
    time.sleep(1.0)
    workers, helpers = descendants(process.pid)
    terminate_with_sigterm(process, results)
    assert len(list(results.iterdir())) == 1, "scratch data was left behind"
    assert_nothing_outlived_the_run(workers, helpers)


def test_sigint_is_handled_like_sigterm(results: Path) -> None:
    process = _start("run", "cpu-1", "--duration", "60", "--results-dir", str(results))
    descendants(process.pid, workers=2)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=10)
    assert process.returncode == 128 + signal.SIGINT
    assert only_document(results)["signal"] == "SIGINT"


def test_a_workload_that_ignores_stop_is_cut_off_by_the_watchdog(
    results: Path, fixture_manifest: dict[str, str]
) -> None:
    process = _start(
        "run", "cpu-4", "--duration", "60", "--results-dir", str(results), env=fixture_manifest
    )
    started = Path(fixture_manifest["TMPDIR"]) / "stubborn-step-started"
    wait_for(started.exists, timeout=20, what="the stubborn step to begin")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert process.returncode == 143
    document = only_document(results)
    assert_valid(document)
    assert document["status"] == "terminated"
    assert document["error"]["type"] == "StopTimeout"


# -- failures
@pytest.mark.parametrize(
    ("workload", "stop_reason", "fragment"),
    [
        ("cpu-2", "error", "boom in the main process"),
        ("cpu-3", "error", "ZeroDivisionError: boom in a worker"),
        ("cpu-5", "verification", "verification failed: two plus two is five"),
        ("io-1", "error", "io-1 is not available in this build"),
    ],
)
def test_failures_leave_a_failed_document_and_exit_1(
    workload: str,
    stop_reason: str,
    fragment: str,
    results: Path,
    fixture_manifest: dict[str, str],
) -> None:
    limits = ["--duration", "5", "--iterations", "3"]
    completed = run_cli(
        "run", workload, *limits, "--results-dir", str(results), env=fixture_manifest
    )
    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1, completed.stderr
    assert fragment in completed.stderr
    document = only_document(results)
    assert_valid(document)
    assert (document["status"], document["stop_reason"]) == ("failed", stop_reason)
    assert fragment in document["error"]["message"]


def test_a_new_workload_is_a_module_and_a_manifest_entry(
    results: Path, fixture_manifest: dict[str, str]
) -> None:
    completed = run_cli(  # bound by iterations: its catalogue's 1-2 s a busy host may spend
        "run",
        "cpu-1",
        "--iterations",
        "6",
        "--duration",
        "60",
        "--results-dir",
        str(results),
        env=fixture_manifest,
    )
    assert completed.returncode == 0, completed.stderr
    document = only_document(results)
    assert document["verification"]["passed"]
    assert document["metrics"]["primary"]["unit"] == "numbers/s"


def test_an_unwritable_document_is_printed_instead(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], results: Path
) -> None:
    from workloads import cli
    from workloads.runtime import runner

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner, "write_document", disk_full)
    monkeypatch.setenv("CLOUDAI_MANIFEST", str(FIXTURES / "workloads.yaml"))
    monkeypatch.syspath_prepend(str(FIXTURES))
    code = cli.main(
        ["run", "cpu-5", "--iterations", "1", "--duration", "30", "--results-dir", str(results)]
    )
    assert code == 1
    captured = capsys.readouterr()
    assert "disk full; the document follows on stdout" in captured.err
    document = json.loads(captured.out.strip().splitlines()[-1])
    assert document["workload"]["id"] == "cpu-5"


# -- folders, launchers
def test_two_runs_into_one_folder_leave_two_documents(results: Path) -> None:
    for _ in range(2):
        completed = run_cli(
            "run", "io-1", *TINY, "--iterations", "2", "--seed", "1", "--results-dir", str(results)
        )
        assert completed.returncode == 0, completed.stderr
    found = documents(results)
    assert len(found) == 2
    assert found[0]["run_id"] != found[1]["run_id"]
    assert [path.name for path in results.iterdir() if not path.name.endswith(".json")] == []


def test_launcher_runs_its_variant_like_the_real_worker(results: Path) -> None:
    command = (
        f'"{sys.executable}" cpu_process_1.py --scale 0.02 --iterations 3 --results-dir "{results}"'
    )
    completed = subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=LAUNCHERS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert only_document(results)["workload"]["id"] == "cpu-1"


# -- torch stays out of io and cpu workloads
def test_io_and_cpu_workloads_never_import_torch(results: Path) -> None:
    tripwire = {"PYTHONPATH": str(FIXTURES / "torch_tripwire")}
    for workload in ("cpu-1", "io-1"):
        completed = run_cli(
            "run", workload, *TINY, "--iterations", "2", "--results-dir", str(results), env=tripwire
        )
        assert completed.returncode == 0, completed.stderr
    imported = subprocess.run(
        [sys.executable, "-c", "import workloads, workloads.cli, workloads.runtime.runner"],
        env={**os.environ, **tripwire},
        check=False,
    )
    assert imported.returncode == 0


def test_gpu_workload_without_torch_fails_clearly(results: Path) -> None:
    completed = run_cli(
        "run",
        "gpu-1",
        "--iterations",
        "2",
        "--results-dir",
        str(results),
        env={"PYTHONPATH": str(FIXTURES / "no_torch")},
    )
    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1
    assert "needs the Python module 'torch'" in completed.stderr
    document = only_document(results)
    assert document["status"] == "failed"


def test_cuda_requested_without_cuda_fails_clearly(results: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    completed = run_cli(
        "run", "gpu-1", "--device", "cuda", "--iterations", "2", "--results-dir", str(results)
    )
    assert completed.returncode == 1
    assert "--device cuda was requested" in completed.stderr
    assert only_document(results)["status"] == "failed"


@pytest.mark.parametrize("command", [["-m", "workloads", "run", "cpu-1"], ["cpu_process_1.py"]])
def test_a_stop_during_start_up_still_leaves_a_document(command: list[str], results: Path) -> None:
    # Schedulers cancel tasks right after starting them: the stop comes before the imports end.
    process = stop_when_ready(
        [sys.executable, *command, "--duration", "60", "--results-dir", str(results)],
        cwd=LAUNCHERS if command[0].endswith(".py") else ROOT,
    )
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    document = only_document(results)
    assert_valid(document)
    assert (document["status"], document["signal"]) == ("terminated", "SIGTERM")


def test_a_stop_before_list_ends_it_as_the_signal_would() -> None:
    process = stop_when_ready([sys.executable, "-m", "workloads", "list"], cwd=ROOT)
    assert process.wait(timeout=60) == -signal.SIGTERM  # held, then delivered: no listing
