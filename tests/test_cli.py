"""The command line: list, describe, and clear one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, main_inline, run_cli
from workloads.manifest import get_manifest

pytestmark = pytest.mark.contract

MANIFEST = get_manifest()


def test_list_prints_a_table_of_the_catalogue() -> None:
    completed = run_cli("list")
    assert completed.returncode == 0
    lines = completed.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["ID", "TASK"]
    assert [line.split()[0] for line in lines[1:]] == MANIFEST.ids


def test_list_json_carries_the_manifest_fields() -> None:
    entries = json.loads(run_cli("list", "--json").stdout)
    assert [entry["id"] for entry in entries] == MANIFEST.ids
    assert set(entries[0]) >= {
        "id",
        "category",
        "number",
        "title",
        "description",
        "module",
        "envelope",
        "duration",
        "task_type",
        "platforms",
        "launcher",
    }


def test_describe() -> None:
    completed = run_cli("describe", "cpu-3")
    assert completed.returncode == 0
    assert "Sorting algorithms benchmark" in completed.stdout
    assert "python cpu_process_3.py" in completed.stdout
    assert json.loads(run_cli("describe", "gpu-2", "--json").stdout)["envelope"]["gpus"] == 1


@pytest.mark.parametrize("command", [["run", "cpu-9"], ["describe", "tpu-1"]])
def test_unknown_id_exits_2_and_lists_the_valid_ones(command: list[str]) -> None:
    completed = run_cli(*command)
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert "unknown workload" in completed.stderr
    assert "io-1, io-2" in completed.stderr and "gpu-6" in completed.stderr


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [
        ("--duration", "abc", "'abc' is not a number"),
        ("--duration", "0", "must be greater than 0"),
        ("--iterations", "2.5", "is not a whole number"),
        ("--workers", "0", "must be at least 1"),
        ("--profile", "spiky", "is not one of steady, ramp, wave, bursty"),
        ("--intensity", "150", "must be in (0, 100]"),
        ("--memory", "lots", "invalid size 'lots'"),
        ("--device", "tpu", "is not one of auto, cpu, cuda"),
        ("--sample-interval", "0.001", "at least 0.05"),
        ("--seed", "-3", "between 0 and 2**63-1"),
        ("--iterations", "-1", "must be 0 or more"),
        ("--progress", "fancy", "is not one of auto, bar, lines, off"),
    ],
)
def test_bad_option_value_exits_2_with_one_line(
    tmp_path: Path,
    flag: str,
    value: str,
    fragment: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main_inline(monkeypatch, "run", "cpu-1", flag, value, "--results-dir", str(tmp_path))
    stderr = capsys.readouterr().err
    assert code == 2
    assert stderr.count("\n") == 1, stderr
    assert fragment in stderr
    assert flag in stderr
    assert not list(tmp_path.iterdir())


def test_unknown_flag_exits_2() -> None:
    completed = run_cli("run", "cpu-1", "--colour", "blue")
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert "unrecognized arguments: --colour blue" in completed.stderr


def test_bad_variable_exits_2_naming_it() -> None:
    completed = run_cli("run", "cpu-1", env={"CLOUDAI_INTENSITY": "lots"})
    assert completed.returncode == 2
    assert completed.stderr.strip() == "error: CLOUDAI_INTENSITY: 'lots' is not a number"


def test_unwritable_results_folder_exits_2_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    completed = run_cli("run", "cpu-1", "--results-dir", str(blocker / "results"))
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert "is not writable" in completed.stderr


def test_help_documents_variables_and_exit_codes() -> None:
    completed = run_cli("run", "--help")
    assert completed.returncode == 0
    text = " ".join(completed.stdout.split())
    assert "[CLOUDAI_DURATION]" in text and "[CLOUDAI_RESULTS_DIR]" in text
    assert "128+N stopped by signal N" in text


def test_launchers_are_generated_for_every_workload() -> None:
    launchers = {path.name for path in (ROOT / "workloads" / "launchers").glob("*.py")}
    assert launchers == {workload.launcher for workload in MANIFEST}


def test_generated_files_are_fresh() -> None:
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, str(ROOT / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def test_readme_documents_every_control_and_keeps_its_two_commands() -> None:
    from workloads.options import OPTIONS

    readme = (ROOT / "README.md").read_text()
    for option in OPTIONS:
        assert f"`{option.flag} " in readme, option.flag
        assert f"`{option.variable}`" in readme, option.variable
    ci = (ROOT / ".ci" / "run").read_text()
    # The README's is CI's, with the CPU-only torch's index (CI's machines hold its wheel).
    command = " ".join(readme.split("Pass the tests")[1].split("```sh")[1].split())
    assert command.startswith(
        "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' torch==2.13.0 \\ "
        "--extra-index-url https://download.pytorch.org/whl/cpu && .venv/bin/python -m pytest"
    ), command
    assert ".venv/bin/pip install -q -e '.[dev]' torch==2.13.0" in ci
    assert ".venv/bin/python -m pytest" in ci


@pytest.mark.parametrize(
    "command", [["list", "--json"], ["run", "cpu-1", "--scale", "0.01", "--iterations", "3"]]
)
def test_a_reader_that_goes_away_is_not_an_error(command: list[str], tmp_path: Path) -> None:
    import subprocess
    import sys

    extra = ["--results-dir", str(tmp_path)] if command[0] == "run" else []
    process = subprocess.Popen(
        [sys.executable, "-m", "workloads", *command, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| head` that has read enough
    assert process.wait(timeout=60) == 0
    assert "Traceback" not in process.stderr.read()
    if extra:
        assert len(list(tmp_path.glob("*.json"))) == 1


def test_list_imports_neither_the_exporter_nor_the_pictures_nor_the_engines() -> None:
    """A light command stays light: what other commands need is imported in their main."""
    probe = (
        "import sys, runpy; sys.argv = ['workloads', 'list']\n"
        "try:\n    runpy.run_module('workloads', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = ('prometheus_client', 'matplotlib', 'docker', 'torch')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)), file=sys.stderr)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert completed.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", ["list", "describe", "tasks", "trace"])
def test_json_is_a_format_everywhere_and_json_its_alias(command: str) -> None:
    args = [command, *(["cpu-3"] if command == "describe" else [])]
    if command == "trace":
        args += ["--tasks", "2"]
    by_format = run_cli(*args, "--format", "json")
    assert by_format.returncode == 0, by_format.stderr
    assert run_cli(*args, "--json").stdout == by_format.stdout


def test_a_missing_extra_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "matplotlib.py"
    blocker.write_text("raise ModuleNotFoundError('no', name='matplotlib')\n")
    completed = run_cli(
        "report", str(tmp_path), env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert "install the 'report' extra" in completed.stderr
