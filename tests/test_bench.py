"""What the bench scripts compute from documents, where a document may hold no figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu import gpu2_over_reference

pytestmark = pytest.mark.unit

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("[a-z]*.py"))


def _gpu2(value: float | None) -> dict:
    return {"metrics": {"primary": {"name": "matmul_tflops", "value": value, "unit": "TFLOP/s"}}}


def test_gpu2_over_the_reference_is_none_where_gpu2_measured_nothing() -> None:
    # a busy CPU's 3 s dry run may end before gpu-2's first whole product: its rate is null
    assert gpu2_over_reference(_gpu2(None), 0.5) is None
    assert gpu2_over_reference({"metrics": {"primary": None}}, 0.5) is None
    assert gpu2_over_reference(None, 0.5) is None  # not run
    assert gpu2_over_reference(_gpu2(0.4), 0.5) == pytest.approx(0.8)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_bench_script_says_its_help_without_torch(script: str, tmp_path: Path) -> None:
    # torch is an optional extra: a script imports it once it has work for it, not to say --help
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    )
    completed = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.startswith("usage:")
