"""cpu-1: matrix operations and linear algebra.

Each iteration is one operation (matrix product, symmetric eigendecomposition, determinant by LU,
SVD, QR) on a float64 matrix whose size grows over a cycle of iterations. Workers are processes
with single-threaded BLAS, so N workers keep N cores busy. Products use integer-valued matrices,
which float64 multiplies exactly whatever the summation order: a block of rows is recomputed
independently and must match to the last bit, and the product's checksum feeds the digest.
Decompositions must reconstruct their input. FLOP counts are the nominal ones of Golub & Van Loan.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, seconds_counter, timed

# Size range at scale 1 (n of an n x n matrix), chosen so one operation takes well under a
# second on one core, and the number of n x n float64 matrices each operation holds at once.
_SIZES = {
    "matmul": (256, 2048),
    "eigh": (128, 768),
    "det": (256, 1536),
    "svd": (128, 640),
    "qr": (256, 1280),
}
_MATRICES = {"matmul": 4, "eigh": 4, "det": 4, "svd": 5, "qr": 4}
_FLOPS: dict[str, Callable[[int], float]] = {
    "matmul": lambda n: 2.0 * n**3,
    "eigh": lambda n: 9.0 * n**3,
    "det": lambda n: 2.0 / 3.0 * n**3,
    "svd": lambda n: 21.0 * n**3,
    "qr": lambda n: 8.0 / 3.0 * n**3,
}
_OPERATIONS = tuple(_SIZES)
# Reconstruction tolerance, relative to the matrix's largest entry, per unit of n.
_TOLERANCE = 1e-12


def _size(iteration: Iteration, operation: str) -> int:
    low, high = (bound * iteration.scale ** (1 / 3) for bound in _SIZES[operation])
    fits = (iteration.memory_budget / (8 * _MATRICES[operation])) ** 0.5
    high = max(8.0, min(high, fits))
    return int(iteration.grow(min(low, high), high))


def _matmul(rng: np.random.Generator, n: int, result: IterationResult) -> None:
    a = rng.integers(-4, 5, size=(n, n)).astype(np.float64)
    b = rng.integers(-4, 5, size=(n, n)).astype(np.float64)
    product = a @ b
    rows = rng.choice(n, size=min(4, n), replace=False)
    # einsum without optimize does not call BLAS: an independent float64 recomputation.
    reference = np.einsum("ij,jk->ik", a[rows], b)
    residual = float(np.max(np.abs(product[rows] - reference)))
    result.check(
        "product block equals an independent float64 recomputation",
        residual == 0.0,
        f"max residual {residual:g}",
    )
    result.fingerprint_with(float(product.sum()), product[rows].tobytes())


def _eigh(rng: np.random.Generator, n: int, result: IterationResult) -> None:
    x = rng.standard_normal((n, n))
    a = (x + x.T) / 2
    values, vectors = np.linalg.eigh(a)
    residual = float(np.max(np.abs(a @ vectors - vectors * values)) / np.max(np.abs(a)))
    result.check(
        "eigenpairs satisfy A v = w v", residual < _TOLERANCE * n, f"residual {residual:.2e}"
    )


def _det(rng: np.random.Generator, n: int, result: IterationResult) -> None:
    # A = L U with a unit lower-triangular L: det(A) is the product of U's diagonal.
    lower = np.tril(rng.uniform(-1, 1, (n, n)) / n, -1) + np.eye(n)
    diagonal = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    upper = np.triu(rng.uniform(-1, 1, (n, n)) / n, 1) + np.diag(diagonal)
    sign, log_det = np.linalg.slogdet(lower @ upper)
    expected_sign, expected = (
        float(np.prod(np.sign(diagonal))),
        float(np.sum(np.log(np.abs(diagonal)))),
    )
    error = abs(log_det - expected)
    result.check(
        "determinant equals the product of the known factors",
        sign == expected_sign and error < 1e-9 * n,
        f"log|det| error {error:.2e}",
    )


def _svd(rng: np.random.Generator, n: int, result: IterationResult) -> None:
    a = rng.standard_normal((n, n))
    u, s, vt = np.linalg.svd(a)
    residual = float(np.max(np.abs((u * s) @ vt - a)) / np.max(np.abs(a)))
    ordered = bool(np.all(np.diff(s) <= 0))
    result.check(
        "SVD reconstructs the matrix",
        residual < _TOLERANCE * n and ordered,
        f"residual {residual:.2e}",
    )


def _qr(rng: np.random.Generator, n: int, result: IterationResult) -> None:
    a = rng.standard_normal((n, n))
    q, r = np.linalg.qr(a)
    residual = float(np.max(np.abs(q @ r - a)) / np.max(np.abs(a)))
    orthogonality = float(np.max(np.abs(q.T @ q - np.eye(n))))
    result.check(
        "QR reconstructs the matrix with orthogonal Q",
        residual < _TOLERANCE * n and orthogonality < _TOLERANCE * n,
        f"residual {residual:.2e}, orthogonality {orthogonality:.2e}",
    )


_RUN = {"matmul": _matmul, "eigh": _eigh, "det": _det, "svd": _svd, "qr": _qr}


def one_iteration(iteration: Iteration) -> IterationResult:
    operation = iteration.rotate(_OPERATIONS)
    n = _size(iteration, operation)
    result = IterationResult(size=n)
    result.fingerprint_with(operation, n)
    with timed(result, operation):
        _RUN[operation](iteration.rng, n, result)
    result.add(f"flops_{operation}", _FLOPS[operation](n))
    result.add("flops", _FLOPS[operation](n))
    return result


def run(ctx: Context) -> None:
    totals = ctx.run_iterations(
        one_iteration, rates={"linalg_gflops": Rate("flops", (), "GFLOP/s", 1e9)}
    )
    per_operation = {
        f"{operation}_gflops": Rate(f"flops_{operation}", [operation], "GFLOP/s", 1e9)
        for operation in _OPERATIONS
        if totals.work.get(seconds_counter(operation), 0.0) > 0
    }
    ctx.report_rates(totals, per_operation)
    ctx.note("flop_counts", "nominal (Golub & Van Loan), float64")
