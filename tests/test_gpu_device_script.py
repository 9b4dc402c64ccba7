"""bench/gpu_device.sh, the GPU workloads' run on a lent device machine, dry-run on the CPU.

The script runs under an interpreter that holds only what the device image is known to have
(torch and what it needs, numpy, psutil, pyyaml, pillow, nvidia-ml-py and pip: links into this
environment), so the wheels that ``bench/gpu_device.sh --prepare`` fetched must supply the rest
(pydantic, prometheus_client, ddsketch, pytest and its plugins, jsonschema, hatchling), as they
must there. What is left to chance on the device is the device.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT, assert_valid

pytestmark = pytest.mark.system

SCRIPT = ROOT / "bench" / "gpu_device.sh"
WHEELS = ROOT / ".device" / "wheels"
# What the device's python3 has of the project's needs (KINDS.md of the device tool).
DEVICE_HAS = ("torch", "numpy", "psutil", "pyyaml", "pillow", "nvidia-ml-py", "pip")
GPU_IDS = [f"gpu-{number}" for number in range(1, 7)]
# What the run tool brings back from $OUT: 8 files, two folders down, plain names.
RETURNED_FILES, RETURNED_NAME = 8, re.compile(r"^[A-Za-z0-9._-]+$")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _with_needs(roots: tuple[str, ...]) -> dict[str, metadata.Distribution]:
    """The distributions of this environment among ``roots``, and all they need."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(roots)
    while pending:
        name = _normal(pending.pop())
        if name in found:
            continue
        try:
            found[name] = distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


def device_like_python(folder: Path) -> Path:
    """A virtual environment whose site-packages links to DEVICE_HAS (and their needs) in
    this one, and to nothing else; its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([python, "-c", query], text=True).strip())
    here = Path(sysconfig.get_paths()["purelib"])
    for distribution in _with_needs(DEVICE_HAS).values():
        tops = {Path(str(file)).parts[0] for file in distribution.files or []}
        for top in tops - {".."}:
            if (here / top).exists() and not (site / top).exists():
                (site / top).symlink_to(here / top)
    return python


def test_the_device_script_dry_runs_on_the_cpu_from_the_carried_wheels(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    if not any(WHEELS.glob("*.whl")):
        pytest.skip("no wheels in .device/wheels: run bench/gpu_device.sh --prepare first")
    if not any(WHEELS.glob(f"pydantic_core-*-{tag}-*.whl")):
        pytest.skip(f"the wheels in .device/wheels were prepared without this Python ({tag})")
    python = device_like_python(tmp_path / "device")
    lacking = subprocess.run([python, "-c", "import pydantic"], capture_output=True, check=False)
    assert lacking.returncode != 0, "the device-like interpreter must lack pydantic"

    out = tmp_path / "out"
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLOUDAI_", "PYTHON", "PIP_", "VIRTUAL_ENV")) and key != "OUT"
    }
    environment.update(PYTHON=str(python), TMPDIR=str(tmp_path))
    completed = subprocess.run(
        ["bash", str(SCRIPT), "--device", "cpu", "--duration", "3", "--out", str(out)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,  # a hang guard: 32 s idle, 153 s under four busy loops and a suite
        check=False,
    )
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log[-4000:]
    # The carried wheels supplied what the interpreter lacks, the project was installed apart
    # and imported whole with this torch.
    assert re.search(r"installing from .*pydantic==.*pytest==", log), log[-4000:]
    assert "imported workloads" in log and "import failed" not in log, log[-4000:]

    returned = [path for path in out.rglob("*") if path.is_file()]
    assert len(returned) <= RETURNED_FILES, returned
    for path in returned:
        parts = path.relative_to(out).parts
        assert len(parts) <= 3 and all(RETURNED_NAME.match(part) for part in parts), path

    tests = (out / "pytest.txt").read_text()
    assert "tests/test_gpu_workloads.py" in tests, tests[-2000:]
    assert re.search(r"\d+ skipped", tests) and "deselected" in tests, tests[-2000:]

    assert sorted(path.name for path in (out / "documents").iterdir()) == [
        f"{workload}.json" for workload in GPU_IDS
    ]
    for workload in GPU_IDS:
        document = json.loads((out / "documents" / f"{workload}.json").read_text())
        assert_valid(document)
        assert document["workload"]["id"] == workload
        assert document["environment"]["device"]["used"] == "cpu"

    table = json.loads((out / "bench.json").read_text())
    versions = table["versions"]
    assert {"python", "torch", "cuda", "cudnn", "driver", "device", "device_name"} <= set(versions)
    assert versions["torch"] and versions["device"] == "cpu"
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert table["params"]["duration_s"] == 3
    assert sorted(table["workloads"]) == GPU_IDS
    for workload, row in table["workloads"].items():
        assert row["document"] and row["returncode"] == 0, (workload, row)
        assert row["device_used"] == "cpu", (workload, row)
        # A rate, or none where a busy host spent the 3 s starting up: never a failed run.
        assert row["primary"]["value"] is None or row["primary"]["value"] > 0, (workload, row)
    assert table["reference"]["float32"]["tflops"] > 0
    if table["workloads"]["gpu-2"]["primary"]["value"] is not None:
        assert table["gpu2_over_reference"]["ratio"] > 0
    assert table["targets"] == []  # judged on CUDA only
