"""cpu-3: sorting algorithms benchmark.

Iterations rotate over seven algorithms, four input distributions (random, nearly sorted,
reversed, few distinct values) and two element types (int64, float64), on sizes that grow over a
cycle of iterations. Compiled sorts (numpy's introsort, its stable sort, a multi-key lexsort of
records, and an LSD radix sort built from stable byte passes) take the large inputs; sorts whose
inner loop runs in the interpreter (Python's timsort, a heapsort on heapq, a bottom-up merge
sort) take smaller ones, so every iteration lasts a similar fraction of a second.

Every output must be in order and a permutation of its input: the order is checked element by
element, the permutation by comparing an order-independent hash of the multiset of values (for
an indirect sort, by checking the indices are each used once). The rate counts the time spent
in the sort itself; generating and checking the input is excluded.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, per_operation_rates, timed


# -- the algorithms ----------------------------------------------------------------------------
def merge_sort(values: list) -> list:
    """Bottom-up merge sort with the merges written out in Python (stable)."""
    source, n, width = list(values), len(values), 1
    while width < n:
        target = []
        for low in range(0, n, 2 * width):
            left, right = source[low : low + width], source[low + width : low + 2 * width]
            i = j = 0
            while i < len(left) and j < len(right):
                if right[j] < left[i]:
                    target.append(right[j])
                    j += 1
                else:
                    target.append(left[i])
                    i += 1
            target += left[i:]
            target += right[j:]
        source, width = target, 2 * width
    return source


def heap_sort(values: list) -> list:
    heap = list(values)
    heapq.heapify(heap)
    return [heapq.heappop(heap) for _ in range(len(heap))]


def radix_sort(values: np.ndarray) -> np.ndarray:
    """LSD radix sort of 64-bit keys: eight stable passes, one per byte, least significant first.

    Keys are mapped to unsigned integers whose order is the values' order (the sign bit flipped
    for integers; for floats, all bits flipped when negative, else the sign bit).
    """
    bits = values.view(np.uint64)
    if values.dtype.kind == "f":
        negative = (bits >> np.uint64(63)).astype(bool)
        keys = np.where(negative, ~bits, bits | np.uint64(1 << 63))
    else:
        keys = bits ^ np.uint64(1 << 63)
    order = np.arange(len(values))
    for shift in range(0, 64, 8):
        digits = (keys[order] >> np.uint64(shift)).astype(np.uint8)
        order = order[np.argsort(digits, kind="stable")]  # a counting sort for one byte
    return values[order]


def _numpy_sort(kind: str) -> Callable[[np.ndarray], np.ndarray]:
    return lambda values: np.sort(values, kind=kind)


@dataclass(frozen=True)
class Algorithm:
    name: str
    sort: Callable  # array -> array; list -> list (``on_lists``); keys -> order (``on_records``)
    sizes: tuple[int, int]  # elements, at scale 1
    bytes_per_element: int  # peak memory while sorting and checking, approximately
    on_lists: bool = False  # sorts Python lists (the interpreter's comparisons), not arrays
    on_records: bool = False  # an indirect sort of (group, value) records by group, then value


ALGORITHMS = (
    Algorithm("introsort", _numpy_sort("quicksort"), (1 << 16, 1 << 22), 40),
    Algorithm("stable", _numpy_sort("stable"), (1 << 16, 1 << 21), 40),
    Algorithm("lexsort", np.lexsort, (1 << 14, 1 << 20), 56, on_records=True),
    Algorithm("radix", radix_sort, (1 << 14, 1 << 20), 64),
    Algorithm("timsort", sorted, (1 << 13, 1 << 19), 80, on_lists=True),
    Algorithm("heapsort", heap_sort, (1 << 12, 1 << 18), 88, on_lists=True),
    Algorithm("mergesort", merge_sort, (1 << 12, 1 << 17), 96, on_lists=True),
)
DISTRIBUTIONS = ("random", "nearly_sorted", "reversed", "few_distinct")
DTYPES = (np.dtype(np.int64), np.dtype(np.float64))
_FEW = 16  # distinct values in a few-distinct input, and groups in a record sort
_SWAPPED = 0.01  # fraction of elements displaced in a nearly sorted input
_SAMPLES = 16  # output elements (evenly spaced) that feed the fingerprint
# Iterations per growth cycle: coprime with the rotation of algorithms, inputs and
# types, so each combination meets every size in turn.
_GROWTH_PERIOD = 9


# -- inputs and checks -------------------------------------------------------------------------
def make_input(rng: np.random.Generator, n: int, distribution: str, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        values = rng.standard_normal(n)
    else:
        values = rng.integers(-(1 << 62), 1 << 62, n, dtype=np.int64)
    if distribution == "few_distinct":
        return rng.choice(values[:_FEW], n)
    if distribution == "reversed":
        return np.sort(values)[::-1].copy()
    if distribution == "nearly_sorted":
        values.sort()
        pairs = max(1, int(n * _SWAPPED / 2))
        first, second = rng.choice(n, 2 * pairs, replace=False).reshape(2, pairs)
        values[first], values[second] = values[second], values[first]
    return values


def multiset_hash(values: np.ndarray) -> int:
    """An order-independent 64-bit hash of a multiset of 64-bit values: the wrapping sum of a
    strong mix (splitmix64's finaliser) of each value's bits."""
    x = values.view(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return int(x.sum(dtype=np.uint64))


def is_sorted(values: np.ndarray) -> bool:
    return bool(np.all(values[:-1] <= values[1:]))


def is_permutation_of(output: np.ndarray, values: np.ndarray) -> bool:
    return len(output) == len(values) and multiset_hash(output) == multiset_hash(values)


def is_index_permutation(order: np.ndarray, n: int) -> bool:
    return len(order) == n and bool(np.all(np.bincount(order, minlength=n) == 1))


def is_sorted_by_keys(primary: np.ndarray, secondary: np.ndarray) -> bool:
    """Records in order by ``primary``, then by ``secondary`` where ``primary`` ties."""
    ties = primary[:-1] == primary[1:]
    return is_sorted(primary) and bool(np.all(~ties | (secondary[:-1] <= secondary[1:])))


def _samples(values: np.ndarray) -> bytes:
    return values[np.linspace(0, len(values) - 1, _SAMPLES).astype(np.int64)].tobytes()


# -- one iteration -----------------------------------------------------------------------------
def _size(iteration: Iteration, algorithm: Algorithm) -> int:
    low, high = (bound * iteration.scale for bound in algorithm.sizes)
    high = min(high, iteration.memory_budget / algorithm.bytes_per_element)
    return max(_FEW, int(iteration.grow(min(low, high), high, period=_GROWTH_PERIOD)))


def _sort_values(algorithm: Algorithm, values: np.ndarray, result: IterationResult) -> bytes:
    if algorithm.on_lists:
        items = values.tolist()
        with timed(result, algorithm.name):
            items = algorithm.sort(items)
        output = np.array(items, dtype=values.dtype)
    else:
        with timed(result, algorithm.name):
            output = algorithm.sort(values)
    result.check("output is in order", is_sorted(output), f"{algorithm.name}, {len(values)}")
    result.check("output is a permutation of the input", is_permutation_of(output, values))
    return _samples(output)


def _sort_records(
    rng: np.random.Generator, algorithm: Algorithm, values: np.ndarray, result: IterationResult
) -> bytes:
    groups = rng.integers(0, _FEW, len(values))
    with timed(result, algorithm.name):
        order = algorithm.sort((values, groups))  # the last key is the primary one
    result.check(
        "indices are a permutation", is_index_permutation(order, len(values)), f"{len(values)}"
    )
    result.check(
        "records are in order by group, then value",
        is_sorted_by_keys(groups[order], values[order]),
    )
    return _samples(values[order])


def one_iteration(iteration: Iteration) -> IterationResult:
    algorithm = iteration.rotate(ALGORITHMS)
    distribution = iteration.rotate(DISTRIBUTIONS, every=len(ALGORITHMS))
    dtype = iteration.rotate(DTYPES, every=len(ALGORITHMS) * len(DISTRIBUTIONS))
    n = _size(iteration, algorithm)
    result = IterationResult(size=n)
    values = make_input(iteration.rng, n, distribution, dtype)
    iteration.checkpoint()
    if algorithm.on_records:
        samples = _sort_records(iteration.rng, algorithm, values, result)
    else:
        samples = _sort_values(algorithm, values, result)
    result.add("elements", n)
    result.add(f"elements_{algorithm.name}", n)
    result.fingerprint_with(algorithm.name, distribution, str(dtype), n, multiset_hash(values))
    result.fingerprint_with(samples)
    return result


def run(ctx: Context) -> None:
    names = [algorithm.name for algorithm in ALGORITHMS]
    rates = {"elements_sorted_per_s": Rate("elements", names, "elements/s")}
    totals = ctx.run_iterations(one_iteration, rates=rates)
    ctx.report_rates(totals, per_operation_rates(totals, "elements", names, "elements/s"))
    ctx.note("rates", "elements per second spent in the sort calls, summed over workers")
