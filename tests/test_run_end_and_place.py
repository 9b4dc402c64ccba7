"""Where a run's document goes and what a run leaves when it ends: the results folder is never
inside the package (a launcher run from its own folder), a container whose results folder is not
mounted is told its document goes with it, the textfile of node_exporter says the run is over,
and an image given only flags says what to type."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families as prometheus_text

from tests.conftest import ROOT, TINY, only_document, run_cli, wait_for
from workloads import supervisor
from workloads.runtime import results
from workloads.runtime.exporter import IDLE_WHEN_FINISHED

PACKAGE = ROOT / "workloads"


# -- the results folder: never inside the package ----------------------------------------------
@pytest.mark.unit
def test_a_working_folder_inside_the_package_puts_results_beside_it(tmp_path: Path) -> None:
    nothing = (tmp_path / "results", tmp_path / "output")  # no /results, no /output
    for inside in (PACKAGE / "launchers", PACKAGE, PACKAGE / "runtime"):
        chosen = results.choose_results_dir(None, nothing, lambda path: False, cwd=inside)
        assert chosen == ROOT / "results"
    elsewhere = results.choose_results_dir(None, nothing, lambda path: False, cwd=tmp_path)
    assert elsewhere == tmp_path / "results"


def _copy_of_the_checkout(destination: Path) -> Path:
    """The package, the manifest and the launchers, as a checkout holds them (no venv)."""
    shutil.copytree(
        PACKAGE, destination / "workloads", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy2(ROOT / "workloads.yaml", destination / "workloads.yaml")
    return destination


@pytest.mark.contract
def test_a_launcher_run_from_its_folder_writes_nothing_inside_the_package(tmp_path: Path) -> None:
    """docs/running.md: the launchers work from workloads/launchers/, as the worker runs them."""
    checkout = _copy_of_the_checkout(tmp_path / "checkout")
    launchers = checkout / "workloads" / "launchers"
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(checkout)}
    completed = subprocess.run(
        [sys.executable, "cpu_process_1.py", *TINY, "--iterations", "1", "--progress", "off"],
        cwd=launchers, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert not (launchers / "results").exists()
    assert list((checkout / "workloads").rglob("*_*.json")) == []
    document = only_document(checkout / "results")
    assert document["params"]["results_dir"] == str(checkout / "results")
    assert f"results: {checkout / 'results'}/" in completed.stdout


# -- a container's results folder that is not a mount ------------------------------------------
def _mountinfo(tmp_path: Path, *mounts: tuple[str, str]) -> Path:
    lines = [
        f"{n} 1 0:{n} / {point} rw,relatime - {fstype} {fstype} rw"
        for n, (point, fstype) in enumerate(mounts, start=20)
    ]
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.unit
def test_only_a_container_s_own_layer_is_where_documents_are_lost(tmp_path: Path) -> None:
    table = _mountinfo(tmp_path, ("/", "overlay"), ("/output", "ext4"), ("/tmp", "tmpfs"))
    container = lambda: True  # noqa: E731
    lost = [
        folder
        for folder in ("/results", "/output", "/output/a", "/app/results", "/tmp")
        if results.leaves_with_the_container(Path(folder), container, table)
    ]
    assert lost == ["/results", "/app/results"]
    # Outside a container, or on a host whose root is a disk: no warning.
    assert not results.leaves_with_the_container(Path("/results"), lambda: False, table)
    disk_root = _mountinfo(tmp_path, ("/", "ext4"))
    assert not results.leaves_with_the_container(Path("/results"), container, disk_root)


@pytest.mark.unit
def test_the_warning_is_one_line_that_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results, "leaves_with_the_container", lambda folder: True)
    results.prepare_results_dir(tmp_path / "results")
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith("warning: ")
    assert "go with it" in warning and f'-v "$PWD/results:{tmp_path / "results"}"' in warning
    monkeypatch.setattr(results, "leaves_with_the_container", lambda folder: False)
    results.prepare_results_dir(tmp_path / "results")
    assert capsys.readouterr().err == ""


# -- the textfile at the end of a run ----------------------------------------------------------
def _families(textfile: Path) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in prometheus_text(textfile.read_text())
        for sample in family.samples
    }


@pytest.mark.contract
def test_the_textfile_says_the_run_is_over_with_no_load(tmp_path: Path) -> None:
    textfile = tmp_path / "cloudai.prom"
    completed = run_cli("run", "cpu-5", *TINY, "--iterations", "20", "--workers", "1",
                        "--sample-interval", "0.1", "--metrics-textfile", str(textfile),
                        "--results-dir", str(tmp_path / "results"))  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    metrics = _families(textfile)
    assert metrics["cloudai_run_finished"] == 1
    document = only_document(tmp_path / "results")
    assert metrics["cloudai_run_end_timestamp_seconds"] > 0
    for gauge in IDLE_WHEN_FINISHED:
        assert metrics.get(gauge, 0.0) == 0.0, gauge  # a finished run is not busy
    # What it did stays: the counters as at the last sample.
    assert 0 < metrics["cloudai_iterations_total"] <= document["metrics"]["iterations"]
    assert metrics["cloudai_cpu_seconds_total"] > 0


@pytest.mark.contract
def test_while_it_runs_the_textfile_says_it_is_not_over(tmp_path: Path) -> None:
    textfile = tmp_path / "cloudai.prom"
    process = subprocess.Popen(
        [sys.executable, "-m", "workloads", "run", "cpu-5", *TINY, "--duration", "60",
         "--workers", "1", "--sample-interval", "0.1", "--metrics-textfile", str(textfile),
         "--results-dir", str(tmp_path / "results"), "--progress", "off"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: textfile.exists() and _families(textfile).get("cloudai_achieved_cores"),
            60,
            "a sample with cores in the textfile",
        )
        running = _families(textfile)
        assert running["cloudai_run_finished"] == 0
        assert "cloudai_run_end_timestamp_seconds" not in running
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    stopped = _families(textfile)  # a stopped run is over too
    assert stopped["cloudai_run_finished"] == 1 and stopped["cloudai_target_busy_fraction"] == 0


# -- an image given only flags -----------------------------------------------------------------
@pytest.mark.contract
def test_a_command_of_only_flags_says_what_to_type_and_exits_2() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "workloads.supervisor", "--duration", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    (line,) = completed.stderr.splitlines()
    assert "docker run IMAGE python cpu_process_N.py --duration 5" in line
    assert "docker run -e CLOUDAI_DURATION=5 IMAGE" in line


@pytest.mark.unit
def test_in_a_variant_s_image_the_line_names_its_launcher(tmp_path: Path) -> None:
    """A variant's image holds one workload module, its own: the line names its launcher."""
    package = tmp_path / "workloads"
    (package / "cpu").mkdir(parents=True)
    (package / "cpu" / "sorting.py").write_text("")
    assert supervisor.launcher_here(package) == "cpu_process_3.py"
    (package / "cpu" / "primes.py").write_text("")
    assert supervisor.launcher_here(package) == "cpu_process_N.py"  # a base or a checkout


@pytest.mark.contract
def test_a_command_that_cannot_start_is_127() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "workloads.supervisor", "no-such-command"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == supervisor.EXIT_CANNOT_RUN == 127
    assert completed.stderr.startswith("supervisor: cannot run no-such-command")
