"""The catalogue drives the tests: every workload the manifest names runs tiny, in this process,
and keeps the contract its entry declares. A new entry is tested here with no test edited.

CLOUDAI_MANIFEST (and PYTHONPATH for the modules) points this file at another catalogue.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from tests.conftest import TINY, assert_valid, run_inline
from workloads.manifest import Workload, get_manifest, load_manifest

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


def _entry(workload_id: str, module: str, envelope: str, task_type: str, extra: str) -> str:
    category, number = workload_id.split("-")
    return f"""\
  - id: {workload_id}
    category: {category}
    number: {number}
    title: A new {category} workload, added as a contributor adds one
    description: Its module and this entry are the only files written by hand.
    module: {module}
    envelope: {{{envelope}}}
    duration: {{min: 60, max: 120}}
    task_type: {task_type}
    platforms: [linux/amd64]
{extra}"""


def _new_workloads() -> dict[str, tuple[str, str, str]]:
    """One new entry in each category, numbered after the checkout's last: its id, and (its
    module's source in tests/fixtures, where that goes in a checkout, its manifest entry)."""
    manifest = load_manifest(ROOT / "workloads.yaml")
    shapes = {  # fixture module, envelope, task type, primary metric and checks
        "io": ("new_io.py", "cpus: 1, memory: 512m, disk: 1g, gpus: 0, gpu_memory: 0", "mixed",
               "{name: write_mb_s, unit: MB/s}", "blocks read back equal the blocks written"),
        "cpu": ("behaviours.py", "cpus: 2, memory: 512m, disk: 0, gpus: 0, gpu_memory: 0",
                "cpu-heavy", "{name: numbers_per_s, unit: numbers/s}", "sum equals n(n-1)/2"),
        "gpu": ("new_gpu.py", "cpus: 4, memory: 8g, disk: 0, gpus: 1, gpu_memory: 8g",
                "gpu-training", "{name: samples_per_s, unit: samples/s}",
                "training loss decreased"),
    }  # fmt: skip
    found = {}
    for category, (source, envelope, task_type, primary, check) in shapes.items():
        number = 1 + max(w.number for w in manifest if w.category == category)
        workload_id, module = f"{category}-{number}", f"added_{category}_{number}"
        extra = f"    primary_metric: {primary}\n    checks: [{check!r}]\n"
        entry = _entry(workload_id, f"workloads.{category}.{module}", envelope, task_type, extra)
        found[workload_id] = (source, f"workloads/{category}/{module}.py", entry)
    return found


NEW_WORKLOADS = _new_workloads()


def _checkout_with_new_workloads(folder: Path) -> Path:
    """A copy of this checkout (its files as they are now) with one new workload per category:
    a module and a manifest entry each, then ``python generate.py``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    manifest = folder / "workloads.yaml"
    entries = "".join(entry for _, _, entry in NEW_WORKLOADS.values())
    manifest.write_text(manifest.read_text().rstrip() + "\n" + entries)
    for source, target, _ in NEW_WORKLOADS.values():
        shutil.copy2(FIXTURES / source, folder / target)
    generated = subprocess.run(
        [sys.executable, "generate.py"], cwd=folder, capture_output=True, text=True, check=False
    )
    assert generated.returncode == 0, generated.stderr
    git = ["git", "-c", "user.name=contributor", "-c", "user.email=contributor@example.org"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "three workloads"]):
        subprocess.run([*git, *command], cwd=folder, capture_output=True, check=True)
    (folder / ".venv").symlink_to(Path(sys.prefix))  # the README's venv, as in a checkout
    return folder  # a checkout, as the contributor's is: tests may ask git what it holds


def test_a_new_entry_is_generated_from_the_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "workloads.yaml"
    entries = "".join(entry for _, _, entry in NEW_WORKLOADS.values())
    manifest.write_text((ROOT / "workloads.yaml").read_text().rstrip() + "\n" + entries)
    sys.path.insert(0, str(ROOT))
    try:
        import generate
    finally:
        sys.path.remove(str(ROOT))
    extended = load_manifest(manifest)
    outputs = {output.path: output.text for output in generate.render(extended)}
    assert f"{len(extended.ids)} containerized synthetic workloads" in outputs[ROOT / "README.md"]
    for workload_id in NEW_WORKLOADS:
        category, number = workload_id.split("-")
        assert ROOT / "workloads" / "launchers" / f"{category}_process_{number}.py" in outputs
        assert ROOT / "images" / workload_id / "Dockerfile" in outputs
        assert f'target "{workload_id}"' in outputs[ROOT / "docker-bake.hcl"]
        assert f"  {workload_id}:" in outputs[ROOT / "compose.yaml"]
        assert f"| `{workload_id}` |" in outputs[ROOT / "README.md"]


@pytest.mark.system  # the whole gate again, about as long as the gate itself
@pytest.mark.timeout(1800)
def test_three_new_workloads_pass_the_whole_gate_with_no_test_edited(tmp_path: Path) -> None:
    """io-8, cpu-8 and gpu-7, each a module and a manifest entry: the README's test command
    (unit and contract tiers, every test) passes on that catalogue, and tests them."""
    checkout = _checkout_with_new_workloads(tmp_path / "checkout")
    report = tmp_path / "gate.xml"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
        cwd=checkout, capture_output=True, text=True, check=False, timeout=1800,
        env={**os.environ, "CLOUDAI_MANIFEST": str(checkout / "workloads.yaml"),
             "PYTHONPATH": str(checkout)},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-6000:]
    cases = ElementTree.parse(report).getroot().iter("testcase")
    tested = " ".join(case.get("name", "") for case in cases if not case.findall("skipped"))
    for workload_id in NEW_WORKLOADS:  # not only collected: run
        assert f"[{workload_id}]" in tested or f"-{workload_id}]" in tested, workload_id
