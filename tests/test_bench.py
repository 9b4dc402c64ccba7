"""What the bench scripts compute from documents, where a document may hold no figure."""

from __future__ import annotations

import pytest

from bench.gpu import gpu2_over_reference

pytestmark = pytest.mark.unit


def _gpu2(value: float | None) -> dict:
    return {"metrics": {"primary": {"name": "matmul_tflops", "value": value, "unit": "TFLOP/s"}}}


def test_gpu2_over_the_reference_is_none_where_gpu2_measured_nothing() -> None:
    # a busy CPU's 3 s dry run may end before gpu-2's first whole product: its rate is null
    assert gpu2_over_reference(_gpu2(None), 0.5) is None
    assert gpu2_over_reference({"metrics": {"primary": None}}, 0.5) is None
    assert gpu2_over_reference(None, 0.5) is None  # not run
    assert gpu2_over_reference(_gpu2(0.4), 0.5) == pytest.approx(0.8)
