"""Shared helpers: run the CLI in a subprocess, read and validate results documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "workloads" / "schema" / "result.schema.json").read_text())
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


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> Completed:
    """Run ``python -m workloads ARGS`` and time it."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("CLOUDAI_")
    }
    environment.update(env or {})
    started = time.monotonic()
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


def documents(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def only_document(folder: Path) -> dict[str, Any]:
    found = documents(folder)
    assert len(found) == 1, f"expected one document in {folder}, found {len(found)}"
    return found[0]


def assert_valid(document: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(document), key=lambda error: list(error.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


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
