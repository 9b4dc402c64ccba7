"""gpu-2: large matrix operations.

Each iteration is one operation from a fixed cycle that is mostly matrix products (bf16 on
CUDA, float32 on the CPU), with batched products, element-wise math, symmetric
eigendecompositions and SVDs (float32) in between. Each operation's size grows over a cycle of
iterations and falls back, within bounds derived from the free device memory and the envelope;
batched products and element-wise math take the largest share, so device memory rises and falls.

A product iteration repeats its product up to a set number of FLOPs and times the repeats alone
(the device synchronised before and after): the primary metric is the exact product FLOPs
(2 n^3 per product) over that time, comparable with a plain matmul loop. Decompositions count
the nominal FLOPs of Golub & Van Loan. Every operation is checked against a float64
recomputation of a block of its result, with a tolerance that follows the precision used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from workloads.gpu.checks import product_tolerance, relative_error, sample_bytes
from workloads.gpu.device import (
    DeviceWork,
    SizeSchedule,
    device_geometry,
    iteration_generator,
    run_on_device,
    synchronize,
    timed_on,
)
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate

# The operations iterations take in turn: products take most of the time.
CYCLE = (
    *("matmul", "matmul", "bmm", "matmul", "matmul", "elementwise", "matmul", "matmul"),
    *("bmm", "matmul", "eigh", "matmul", "matmul", "bmm", "matmul", "svd"),
)
# Share of the usable device memory (or of the host budget) the largest operation may take.
MEMORY_SHARE = 0.6
# Rows and columns of the block of each result that is recomputed in float64.
_BLOCK = 16
# Element-wise math in float32 against float64: a few ulps per function.
_ELEMENTWISE_TOLERANCE = 1e-5
# Eigen and singular-value residuals relative to the matrix's norm, per unit of n (float32).
_DECOMPOSITION_TOLERANCE = 8 * float(torch.finfo(torch.float32).eps)
_NOMINAL_FLOPS: dict[str, Callable[[int], float]] = {
    "eigh": lambda n: 9.0 * n**3,
    "svd": lambda n: 21.0 * n**3,
}


@dataclass(frozen=True)
class Range:
    low: int
    high: int
    multiple: int


@dataclass(frozen=True)
class Plan:
    """Each operation's size range: the matrix side (matmul, eigh, svd), the number of
    matrices (bmm) or the number of elements (elementwise)."""

    ranges: dict[str, Range]
    dtype: torch.dtype  # of the products
    bmm_side: int
    product_flops: float  # FLOPs of the repeated products of one iteration

    def peak_bytes(self, operation: str, size: int) -> float:
        return peak_bytes(operation, size, self.dtype, self.bmm_side)


def peak_bytes(operation: str, size: int, dtype: torch.dtype, bmm_side: int) -> float:
    """Device bytes an operation holds at ``size`` (generous: solver workspaces included)."""
    width = torch.finfo(dtype).bits // 8
    if operation == "matmul":
        return 3.0 * width * size**2
    if operation == "bmm":
        return 3.0 * width * size * bmm_side**2
    if operation == "elementwise":
        return 6.0 * 4 * size  # the float32 input, the output and up to four temporaries
    return 8.0 * 4 * size**2  # eigh, svd: the float32 input, its factors and workspace


def _largest_fitting(operation: str, room: float, dtype: torch.dtype, bmm_side: int) -> float:
    """The size whose peak bytes equal ``room`` (the inverse of ``peak_bytes``)."""
    unit = peak_bytes(operation, 1, dtype, bmm_side)
    if operation in ("bmm", "elementwise"):
        return room / unit
    return math.sqrt(room / unit)


def _round_down(value: float, multiple: int) -> int:
    return max(multiple, int(value) // multiple * multiple)


def _plan(
    room: float,
    scale: float,
    dtype: torch.dtype,
    highs: dict[str, int],
    multiples: dict[str, int],
    bmm_side: int,
    product_flops: float,
) -> Plan:
    work = min(scale, 1.0)
    side = work ** (1 / 3)  # a matrix side grows as the cube root of the work
    bmm_side = _round_down(bmm_side * side, multiples["matmul"])
    ranges = {}
    for operation, high in highs.items():
        multiple = multiples[operation]
        shrunk = high * (work if operation in ("bmm", "elementwise") else side)
        fitting = _largest_fitting(operation, room * MEMORY_SHARE, dtype, bmm_side)
        top = _round_down(min(shrunk, fitting), multiple)
        # Sides span 2x (8x the work), counts 4x: memory and work rise and fall over a cycle.
        low = _round_down(top / (4 if operation in ("bmm", "elementwise") else 2), multiple)
        ranges[operation] = Range(low, top, multiple)
    return Plan(ranges, dtype, bmm_side, product_flops * work)


def cuda_plan(room: float, scale: float) -> Plan:
    """Sizes on a CUDA device with ``room`` usable bytes: bf16 products up to 16384 (tensor
    cores at their best from about 4096), batches of up to 64 products of 4096 x 4096."""
    return _plan(
        room,
        scale,
        torch.bfloat16,
        highs={"matmul": 16384, "bmm": 64, "elementwise": 2**30, "eigh": 2048, "svd": 1024},
        multiples={"matmul": 256, "bmm": 1, "elementwise": 2**20, "eigh": 64, "svd": 64},
        bmm_side=4096,
        product_flops=2e13,
    )


def cpu_plan(budget: float, scale: float) -> Plan:
    """Reduced sizes on the CPU, in float32: an iteration takes a fraction of a second."""
    return _plan(
        budget,
        scale,
        torch.float32,
        highs={"matmul": 512, "bmm": 16, "elementwise": 2**21, "eigh": 256, "svd": 192},
        multiples={"matmul": 16, "bmm": 1, "elementwise": 2**10, "eigh": 16, "svd": 16},
        bmm_side=128,
        product_flops=1e10,
    )


def elementwise_math(x: torch.Tensor) -> torch.Tensor:
    """A chain of element-wise functions, as a feature transform would apply."""
    return torch.sin(x) * torch.exp(-0.5 * x * x) + torch.tanh(x) + torch.sqrt(x.abs() + 1.0)


def _block(rng: np.random.Generator, n: int) -> list[int]:
    return sorted(int(i) for i in rng.choice(n, size=min(_BLOCK, n), replace=False))


class MatrixWork(DeviceWork):
    """The iteration function: one operation per iteration, run inline on the device."""

    def __init__(self, ctx: Context, device: torch.device) -> None:
        super().__init__(ctx, device)
        self.plan = device_geometry(ctx, device, cuda_plan, cpu_plan)
        self.by_operation = {
            name: SizeSchedule(ctx, device, r.low, r.high, multiple=r.multiple, what=f"{name} size")
            for name, r in self.plan.ranges.items()
        }
        self.operations: dict[str, Callable[[Iteration, int, IterationResult], None]] = {
            "matmul": self._matmul,
            "bmm": self._bmm,
            "elementwise": self._elementwise,
            "eigh": self._eigh,
            "svd": self._svd,
        }

    def __call__(self, iteration: Iteration) -> IterationResult:
        operation = iteration.rotate(CYCLE)

        def step(size: int) -> IterationResult:
            result = IterationResult(size=size)
            result.fingerprint_with(operation, size)
            self.operations[operation](iteration, size, result)
            synchronize(self.device)
            return result

        return self.by_operation[operation].run(iteration, step)

    @property
    def schedules(self) -> dict[str, SizeSchedule]:
        return self.by_operation

    def details(self) -> dict[str, object]:
        return {"bmm_side": self.plan.bmm_side}

    def _randn(
        self, generator: torch.Generator, *shape: int, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        dtype = dtype or self.plan.dtype
        return torch.randn(*shape, generator=generator, device=self.device, dtype=dtype)

    def _repeats(self, flops: float) -> int:
        return max(1, min(64, round(self.plan.product_flops / flops)))

    def _record_product(self, result: IterationResult, flops: float) -> None:
        result.add("product_flops", flops)
        result.add("flops", flops)

    def _matmul(self, iteration: Iteration, n: int, result: IterationResult) -> None:
        generator = iteration_generator(iteration, self.device)
        a, b = self._randn(generator, n, n), self._randn(generator, n, n)
        c = torch.empty(n, n, device=self.device, dtype=self.plan.dtype)
        repeats = self._repeats(2.0 * n**3)
        with timed_on(self.device, result, "product"):
            for _ in range(repeats):
                torch.mm(a, b, out=c)
        self._record_product(result, 2.0 * n**3 * repeats)
        result.add("matmuls", repeats)
        self.observed_dtype = str(c.dtype).removeprefix("torch.")
        rows, cols = _block(iteration.rng, n), _block(iteration.rng, n)
        reference = a[rows].double() @ b[:, cols].double()
        self._check_product(result, "matrix product", c[rows][:, cols], reference, n)
        result.fingerprint_with(repeats, sample_bytes(a), sample_bytes(b))

    def _bmm(self, iteration: Iteration, count: int, result: IterationResult) -> None:
        side = self.plan.bmm_side
        generator = iteration_generator(iteration, self.device)
        a = self._randn(generator, count, side, side)
        b = self._randn(generator, count, side, side)
        c = torch.empty(count, side, side, device=self.device, dtype=self.plan.dtype)
        flops = 2.0 * count * side**3
        repeats = self._repeats(flops)
        with timed_on(self.device, result, "product"):
            for _ in range(repeats):
                torch.bmm(a, b, out=c)
        self._record_product(result, flops * repeats)
        result.add("matmuls", count * repeats)
        which = int(iteration.rng.integers(count))
        rows, cols = _block(iteration.rng, side), _block(iteration.rng, side)
        reference = a[which, rows].double() @ b[which][:, cols].double()
        self._check_product(result, "batched product", c[which, rows][:, cols], reference, side)
        result.fingerprint_with(repeats, sample_bytes(a), sample_bytes(b))

    def _check_product(
        self,
        result: IterationResult,
        name: str,
        block: torch.Tensor,
        reference: torch.Tensor,
        terms: int,
    ) -> None:
        error = relative_error(block, reference)
        tolerance = product_tolerance(self.device, self.plan.dtype, terms)
        result.check(
            f"{name} block equals a float64 recomputation",
            error <= tolerance,
            f"relative error {error:.2e}, tolerance {tolerance:.2e}",
        )

    def _elementwise(self, iteration: Iteration, elements: int, result: IterationResult) -> None:
        x = self._randn(iteration_generator(iteration, self.device), elements, dtype=torch.float32)
        with timed_on(self.device, result, "elementwise"):
            output = elementwise_math(x)
        result.add("elements", elements)
        start = int(iteration.rng.integers(max(1, elements - 4096)))
        window = slice(start, start + 4096)
        error = relative_error(output[window], elementwise_math(x[window].double()))
        result.check(
            "element-wise math equals a float64 recomputation",
            error <= _ELEMENTWISE_TOLERANCE,
            f"relative error {error:.2e}, tolerance {_ELEMENTWISE_TOLERANCE:.0e}",
        )
        result.fingerprint_with(sample_bytes(x))

    def _eigh(self, iteration: Iteration, n: int, result: IterationResult) -> None:
        x = self._randn(iteration_generator(iteration, self.device), n, n, dtype=torch.float32)
        a = (x + x.T) / 2
        del x
        with timed_on(self.device, result, "decomposition"):
            values, vectors = torch.linalg.eigh(a)
        rows, cols = _block(iteration.rng, n), _block(iteration.rng, n)
        # (A V)[rows, cols] - V[rows, cols] diag(w[cols]), against the largest |eigenvalue|.
        residual = a[rows].double() @ vectors[:, cols].double()
        residual -= vectors[rows][:, cols].double() * values[cols].double()
        norm = float(values.abs().max())
        self._check_decomposition(result, "eigenpairs satisfy A v = w v", residual, norm, n)
        self._record_decomposition(result, "eigh", n)
        result.fingerprint_with(sample_bytes(a))

    def _svd(self, iteration: Iteration, n: int, result: IterationResult) -> None:
        a = self._randn(iteration_generator(iteration, self.device), n, n, dtype=torch.float32)
        with timed_on(self.device, result, "decomposition"):
            u, s, vh = torch.linalg.svd(a, full_matrices=False)
        rows, cols = _block(iteration.rng, n), _block(iteration.rng, n)
        rebuilt = (u[rows].double() * s.double()) @ vh[:, cols].double()
        residual = rebuilt - a[rows][:, cols].double()
        norm = float(s.max())
        self._check_decomposition(result, "SVD reconstructs A", residual, norm, n)
        self._record_decomposition(result, "svd", n)
        result.fingerprint_with(sample_bytes(a))

    def _check_decomposition(
        self, result: IterationResult, name: str, residual: torch.Tensor, norm: float, n: int
    ) -> None:
        error = float(residual.abs().max()) / max(norm, 1e-30)
        tolerance = _DECOMPOSITION_TOLERANCE * n
        result.check(
            f"{name} (float64 block)",
            error <= tolerance,
            f"residual {error:.2e} of the norm, tolerance {tolerance:.2e}",
        )

    def _record_decomposition(self, result: IterationResult, name: str, n: int) -> None:
        flops = _NOMINAL_FLOPS[name](n)
        result.add("flops", flops)
        result.add("decomposition_flops", flops)
        result.add(f"{name}_count", 1)


RATES = {
    "matrix_product_tflops": Rate("product_flops", ["product"], "TFLOP/s", 1e12),
    "all_operations_tflops": Rate("flops", (), "TFLOP/s", 1e12),
    "decomposition_nominal_tflops": Rate("decomposition_flops", ["decomposition"], "TFLOP/s", 1e12),
    "elementwise_gelements_per_s": Rate("elements", ["elementwise"], "Gelements/s", 1e9),
}


def run(ctx: Context) -> None:
    run_on_device(ctx, MatrixWork, rates=RATES)
