"""The catalogue drives the tests: every workload the manifest names runs tiny, in this process,
and keeps the contract its entry declares. A new entry is tested here with no test edited.

CLOUDAI_MANIFEST (and PYTHONPATH for the modules) points this file at another catalogue.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY, assert_valid, run_inline
from workloads.manifest import Workload, get_manifest

pytestmark = pytest.mark.contract

MANIFEST = get_manifest()
# Enough for every declared check to be made (the manifest's promise is for 8 or more).
ITERATIONS = 8


def _run(workload: Workload, folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    args = [workload.id, *TINY, "--iterations", str(ITERATIONS), "--duration", "120"]
    # The device and the budget are fixed: the test runner's own memory must not count.
    args += ["--device", "cpu", "--memory", "256m", "--seed", "11"]
    code, document = run_inline(monkeypatch, folder, *args)
    assert code == 0, document["error"]
    return document


@pytest.mark.parametrize("workload", MANIFEST.workloads, ids=MANIFEST.ids)
def test_every_workload_keeps_its_declared_contract(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if workload.category == "gpu" and importlib.util.find_spec("torch") is None:
        pytest.skip("the GPU workloads need torch (pip install torch)")
    document = _run(workload, tmp_path / "first", monkeypatch)
    assert_valid(document)
    assert (document["status"], document["stop_reason"]) == ("completed", "iterations")
    assert document["metrics"]["iterations"] == ITERATIONS
    primary = document["metrics"]["primary"]
    declared = workload.primary_metric
    assert (primary["name"], primary["unit"]) == (declared.name, declared.unit)
    assert primary["value"] > 0
    verification = document["verification"]
    judged = {check["name"] for check in verification["checks"] if check["passed"]}
    inconclusive = {entry["name"] for entry in verification["inconclusive"]}
    assert set(workload.checks) <= judged | inconclusive, verification
    assert not [check for check in verification["checks"] if not check["passed"]]
    again = _run(workload, tmp_path / "again", monkeypatch)  # the same seed: the same work
    assert again["verification"]["digest"] == verification["digest"]
    assert again["metrics"]["problem_sizes"] == document["metrics"]["problem_sizes"]


FIXTURES = Path(__file__).resolve().parent / "fixtures"
ROOT = FIXTURES.parent.parent
NEW_ENTRY = """\
  - id: cpu-8
    category: cpu
    number: 8
    title: Counts to a number, verified
    description: A 21st workload, added as a user would add one.
    module: behaviours
    envelope: {cpus: 1, memory: 512m, disk: 0, gpus: 0, gpu_memory: 0}
    duration: {min: 1, max: 2}
    task_type: cpu-light
    platforms: [linux/amd64]
    primary_metric: {name: numbers_per_s, unit: numbers/s}
    checks: ["sum equals n(n-1)/2"]
"""


def test_a_new_entry_is_generated_and_tested_with_no_other_change(tmp_path: Path) -> None:
    """A 21st workload: its module (tests/fixtures/behaviours.py) and one manifest entry."""
    import subprocess
    import sys

    manifest = tmp_path / "workloads.yaml"
    manifest.write_text((ROOT / "workloads.yaml").read_text().rstrip() + "\n" + NEW_ENTRY)
    sys.path.insert(0, str(ROOT))
    try:
        import generate
    finally:
        sys.path.remove(str(ROOT))
    from workloads.manifest import load_manifest

    outputs = {output.path: output.text for output in generate.render(load_manifest(manifest))}
    assert ROOT / "workloads" / "launchers" / "cpu_process_8.py" in outputs
    assert ROOT / "images" / "cpu-8" / "Dockerfile" in outputs
    assert 'target "cpu-8"' in outputs[ROOT / "docker-bake.hcl"]
    assert "  cpu-8:" in outputs[ROOT / "compose.yaml"]
    assert "| `cpu-8` |" in outputs[ROOT / "README.md"]
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider",
         "-k", "cpu-8", "-m", "contract"],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env={**__import__("os").environ, "CLOUDAI_MANIFEST": str(manifest),
             "PYTHONPATH": str(FIXTURES)},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-2000:]
    assert "1 passed" in completed.stdout
