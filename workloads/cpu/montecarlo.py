"""cpu-5: Monte Carlo simulations.

Iterations rotate over four simulations, each drawing a number of samples that grows over a
cycle of iterations, in fixed-size chunks (so memory stays small and a stop is seen between
chunks):

- pi: points uniform in the unit square; 4 x the share inside the quarter circle estimates pi.
- walk: simple random walks of +-1 steps; the mean end position estimates 0, the mean squared
  end position estimates the number of steps.
- integral: the mean of f(U), U uniform on [0, 1], estimates the integral of f, for functions
  whose integral is known in closed form.
- coins: flips of a biased coin; the share of heads estimates its bias, and the number of runs
  (changes between heads and tails) follows from it.

Every estimate must lie within 6 standard errors of the exact value: a false failure has a
probability of about 2e-9 per check, while a broken generator or a miscount fails at once.
Counts are integers, so the fingerprint is exact; estimates enter it rounded to 1e-6.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, per_operation_rates, timed

# Samples per iteration at scale 1, the largest chosen so an iteration takes about 0.2 s.
_SAMPLES = {
    "pi": (1_000_000, 30_000_000),
    "walk": (3_000_000, 100_000_000),
    "integral": (1_000_000, 20_000_000),
    "coins": (3_000_000, 100_000_000),
}
_OPERATIONS = tuple(_SAMPLES)
_CHUNK = 1 << 18  # samples drawn at once: a few MiB of temporaries
_CHUNK_BYTES = 40  # bytes of temporaries per sample in a chunk, at most
_WALKERS = (1_000, 4_000)
Z_BOUND = 6.0  # standard errors an estimate may stray from the exact value
# Iterations per growth cycle: coprime with the four simulations and six integrands,
# so each combination meets every size in turn.
_GROWTH_PERIOD = 7


@dataclass(frozen=True)
class Integrand:
    name: str
    f: Callable[[np.ndarray], np.ndarray]
    exact: float  # its integral over [0, 1]


INTEGRANDS = (
    Integrand("x^3", lambda x: x * x * x, 0.25),
    Integrand("sin(pi x)", lambda x: np.sin(np.pi * x), 2 / math.pi),
    Integrand("exp(x)", np.exp, math.e - 1),
    Integrand("4/(1+x^2)", lambda x: 4 / (1 + x * x), math.pi),
    Integrand("sqrt(1-x^2)", lambda x: np.sqrt(1 - x * x), math.pi / 4),
    Integrand("1/(1+x)", lambda x: 1 / (1 + x), math.log(2)),
)


def within_bound(estimate: float, exact: float, standard_error: float) -> bool:
    return abs(estimate - exact) <= Z_BOUND * standard_error


def runs_bounds(flips: int, p: float) -> tuple[float, float]:
    """Mean and standard deviation of the number of changes in ``flips`` Bernoulli(p) draws.

    Each adjacent pair differs with probability q = 2p(1-p); neighbouring pairs are correlated
    (both differ with probability p(1-p)), which adds a covariance term to the variance.
    """
    pairs = flips - 1
    q = 2 * p * (1 - p)
    covariance = p * (1 - p) - q * q
    variance = pairs * q * (1 - q) + 2 * max(pairs - 1, 0) * covariance
    return pairs * q, math.sqrt(max(variance, 0.0))


def _chunks(total: int, chunk: int) -> Iterator[int]:
    for start in range(0, total, chunk):
        yield min(chunk, total - start)


def _chunk_size(iteration: Iteration) -> int:
    return max(1 << 10, min(_CHUNK, iteration.memory_budget // _CHUNK_BYTES))


# -- the simulations -----------------------------------------------------------------------------
def _pi(iteration: Iteration, n: int, result: IterationResult) -> None:
    rng, inside = iteration.rng, 0
    for size in _chunks(n, _chunk_size(iteration)):
        iteration.checkpoint()
        x, y = rng.random(size), rng.random(size)
        inside += int(np.count_nonzero(x * x + y * y <= 1.0))
    estimate = 4 * inside / n
    p = math.pi / 4
    error = 4 * math.sqrt(p * (1 - p) / n)
    result.check(
        "pi estimate within its error bound",
        within_bound(estimate, math.pi, error),
        f"{estimate:.6f} from {n} points, bound {Z_BOUND * error:.2g}",
    )
    result.add("pi_inside", inside)
    result.add("pi_points", n)
    result.fingerprint_with("pi", n, inside)


def _walk(iteration: Iteration, n: int, result: IterationResult) -> None:
    rng = iteration.rng
    walkers = int(rng.integers(*_WALKERS))
    steps = max(1, n // walkers)
    position = np.zeros(walkers, dtype=np.int64)
    for size in _chunks(steps, max(1, _chunk_size(iteration) // walkers)):
        iteration.checkpoint()
        heads = rng.integers(0, 2, size=(walkers, size), dtype=np.int8)
        position += 2 * heads.sum(axis=1, dtype=np.int64) - size
    mean = float(position.mean())
    squared = float(np.mean(position.astype(np.float64) ** 2))
    mean_ok = within_bound(mean, 0.0, math.sqrt(steps / walkers))
    # The end position X has E[X^2] = steps and Var[X^2] = 2 steps^2 - 2 steps.
    spread_ok = within_bound(squared, steps, math.sqrt((2 * steps**2 - 2 * steps) / walkers))
    result.check(
        "random walk mean and mean square displacement within their error bounds",
        mean_ok and spread_ok,
        f"{walkers} walkers x {steps} steps: mean {mean:.3f}, mean square {squared:.1f}",
    )
    result.add("walk_steps", walkers * steps)
    result.fingerprint_with("walk", walkers, steps, position.tobytes())
    result.size = walkers * steps


def _integral(iteration: Iteration, n: int, result: IterationResult) -> None:
    rng = iteration.rng
    integrand = iteration.rotate(INTEGRANDS, every=len(_OPERATIONS))
    total = squares = 0.0
    for size in _chunks(n, _chunk_size(iteration)):
        iteration.checkpoint()
        values = integrand.f(rng.random(size))
        total += float(values.sum())
        squares += float(np.dot(values, values))
    estimate = total / n
    deviation = math.sqrt(max(squares / n - estimate * estimate, 0.0))
    result.check(
        "integral estimates within their error bounds",
        within_bound(estimate, integrand.exact, deviation / math.sqrt(n)),
        f"{integrand.name}: {estimate:.6f}, exact {integrand.exact:.6f}",
    )
    result.fingerprint_with("integral", integrand.name, n, round(estimate, 6))


def _coins(iteration: Iteration, n: int, result: IterationResult) -> None:
    rng = iteration.rng
    bias = float(rng.uniform(0.05, 0.95))
    heads = changes = 0
    last: bool | None = None
    for size in _chunks(n, _chunk_size(iteration)):
        iteration.checkpoint()
        flips = rng.random(size) < bias
        heads += int(np.count_nonzero(flips))
        changes += int(np.count_nonzero(flips[1:] != flips[:-1]))
        changes += last is not None and last != bool(flips[0])
        last = bool(flips[-1])
    share_ok = within_bound(heads / n, bias, math.sqrt(bias * (1 - bias) / n))
    expected, deviation = runs_bounds(n, bias)
    result.check(
        "coin-flip share of heads and number of runs within their error bounds",
        share_ok and within_bound(changes, expected, deviation),
        f"bias {bias:.3f}: {heads} heads, {changes} changes in {n} flips",
    )
    result.fingerprint_with("coins", n, heads, changes)


_RUN = {"pi": _pi, "walk": _walk, "integral": _integral, "coins": _coins}


def one_iteration(iteration: Iteration) -> IterationResult:
    operation = iteration.rotate(_OPERATIONS)
    low, high = (max(1_000, bound * iteration.scale) for bound in _SAMPLES[operation])
    n = int(iteration.grow(low, high, period=_GROWTH_PERIOD))
    result = IterationResult(size=n)
    with timed(result, operation):
        _RUN[operation](iteration, n, result)
    samples = int(result.size or n)
    result.add("samples", samples)
    result.add(f"samples_{operation}", samples)
    return result


def run(ctx: Context) -> None:
    rates = {"samples_per_s": Rate("samples", _OPERATIONS, "samples/s")}
    totals = ctx.run_iterations(one_iteration, rates=rates)
    ctx.report_rates(totals, per_operation_rates(totals, "samples", _OPERATIONS, "samples/s"))
    points = int(totals.work.get("pi_points", 0))
    if points:
        estimate = 4 * totals.work["pi_inside"] / points
        error = 4 * math.sqrt(math.pi / 4 * (1 - math.pi / 4) / points)
        ctx.note("pi_estimate", {"value": estimate, "points": points, "standard_error": error})
        ctx.check(
            "pi estimate of the whole run within its error bound",
            within_bound(estimate, math.pi, error),
            f"{estimate:.8f} from {points} points",
        )
