"""A starved run is not a failed run: every workload, with 0, 1 and 2 iterations done, completes
(exit 0), fails nothing for lack of work, and says how much work it did. With no iteration at
all it says so plainly: its rates are null, not zero, and nothing was there to judge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY, assert_valid, run_inline
from workloads.gpu.checks import MIN_STEPS_TO_JUDGE
from workloads.manifest import get_manifest

pytestmark = pytest.mark.contract

MANIFEST = get_manifest()


def _metrics(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document["metrics"]
    return [found["primary"], *found["secondary"].values()]


def _is_rate(metric: dict[str, Any]) -> bool:
    return "/s" in metric["unit"] or metric["unit"] == "IOPS"


@pytest.mark.parametrize("done", [0, 1, 2])
@pytest.mark.parametrize("workload", MANIFEST.ids)
def test_a_run_with_little_work_completes_and_says_how_much(
    workload: str, done: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [workload, *TINY, "--iterations", str(done), "--duration", "120", "--workers", "1"]
    # An explicit budget: in this process the test runner's own memory (torch) would count.
    small = ["--device", "cpu", "--memory", "256m"]
    code, document = run_inline(monkeypatch, tmp_path / "r", *args, *small)
    assert_valid(document)
    verification = document["verification"]
    assert (code, document["status"], document["stop_reason"]) == (0, "completed", "iterations")
    assert document["metrics"]["iterations"] == verification["iterations"] == done
    assert all(check["passed"] for check in verification["checks"]), verification
    assert verification["passed"] is not False
    for entry in verification["inconclusive"]:
        assert entry["reason"].endswith(f"at least {MIN_STEPS_TO_JUDGE} needed"), entry
    if done == 0:
        assert verification["passed"] is None  # nothing was there to judge
        assert verification["checks"] == []
        assert document["metrics"]["primary"]["value"] is None
        assert all(metric["value"] is None for metric in _metrics(document) if _is_rate(metric))
        assert document["load"]["achieved_busy_pct"] is None
    else:
        assert document["metrics"]["primary"]["value"] > 0
        assert verification["checks"] or verification["inconclusive"]
