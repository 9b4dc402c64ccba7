"""cpu-2: prime number generation and factorization.

Iterations rotate over three operations, each on a size that grows over a cycle of iterations:

- sieve: a segmented sieve of Eratosthenes up to N, with prime-gap statistics. Its prime counts
  at every power of ten up to N must equal the known pi(10^k), its count up to N must equal an
  independent count by the Lucy-Hedgehog method, and its record (maximal) gaps must equal the
  known table of maximal prime gaps.
- primality: deterministic Miller-Rabin on every odd number of a window above 10^9; the primes
  it finds must equal those a segmented sieve finds in the same window.
- factorization: semiprimes p*q and random integers, by trial division and Pollard-Brent rho;
  the factors must be prime and multiply back to the number (and be p and q for a semiprime).

The inner loops are numpy (sieves) and pure Python big-integer arithmetic (Miller-Rabin, rho):
that arithmetic is the named work. Workers are processes, so N workers keep N cores busy.
"""

from __future__ import annotations

from collections.abc import Callable
from math import gcd, isqrt, log, prod

import numpy as np

from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, timed

# Sizes at scale 1, chosen so one iteration takes well under half a second on one core.
_SIEVE_LIMIT = (1_000_000, 100_000_000)  # N, the sieve's upper bound
_WINDOW_LENGTH = (4_000, 100_000)  # integers tested by Miller-Rabin per iteration
_WINDOW_START = (1e9, 1e12)  # the window's start is drawn log-uniformly from this range
_FACTOR_BITS = (32, 72)  # bit length of the numbers factored, largest at scale 1
# Numbers factored per iteration: rho takes about 2^(bits/4) steps for a balanced semiprime,
# so fewer numbers as they grow keeps an iteration's time level.
_FACTOR_STEPS = 1 << 20
_NUMBERS_FACTORED = (2, 16)
# Bytes of sieve flags per segment: fits a core's cache, so marking stays fast.
_SEGMENT_BYTES = 1 << 20
_CHECK_EVERY = 2048  # Miller-Rabin tests (or rho steps) between stop checks
_OPERATIONS = ("sieve", "primality", "factorization")

# pi(10^k), the number of primes up to 10^k (OEIS A006880).
KNOWN_PRIME_COUNTS = {
    10: 4,
    100: 25,
    1_000: 168,
    10_000: 1_229,
    100_000: 9_592,
    1_000_000: 78_498,
    10_000_000: 664_579,
    100_000_000: 5_761_455,
    1_000_000_000: 50_847_534,
}
# Maximal prime gaps: (gap, the prime that starts it), each gap larger than every gap before
# it (OEIS A005250 and A002386).
KNOWN_MAXIMAL_GAPS = (
    (1, 2),
    (2, 3),
    (4, 7),
    (6, 23),
    (8, 89),
    (14, 113),
    (18, 523),
    (20, 887),
    (22, 1_129),
    (34, 1_327),
    (36, 9_551),
    (44, 15_683),
    (52, 19_609),
    (72, 31_397),
    (86, 155_921),
    (96, 360_653),
    (112, 370_261),
    (114, 492_113),
    (118, 1_349_533),
    (132, 1_357_201),
    (148, 2_010_733),
    (154, 4_652_353),
    (180, 17_051_707),
    (210, 20_831_323),
    (220, 47_326_693),
    (222, 122_164_747),
    (234, 189_695_659),
    (248, 191_912_783),
    (250, 387_096_133),
    (282, 436_273_009),
)
# Miller-Rabin with these bases is deterministic below 3.3 * 10^24 (Sorenson and Webster).
_WITNESSES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
_SMALL_PRIMES = tuple(p for p in range(2, 1000) if all(p % d for d in range(2, isqrt(p) + 1)))


# -- sieves ------------------------------------------------------------------------------------
def primes_up_to(limit: int) -> np.ndarray:
    """All primes <= limit, by a plain sieve of Eratosthenes (for base primes)."""
    if limit < 2:
        return np.zeros(0, dtype=np.int64)
    flags = np.ones(limit + 1, dtype=bool)
    flags[:2] = False
    for p in range(2, isqrt(limit) + 1):
        if flags[p]:
            flags[p * p :: p] = False
    return np.flatnonzero(flags).astype(np.int64)


def primes_in_window(low: int, high: int, base: np.ndarray | None = None) -> np.ndarray:
    """All primes in [low, high), by marking the multiples of the primes up to sqrt(high)."""
    low = max(low, 2)
    if high <= low:
        return np.zeros(0, dtype=np.int64)
    if base is None:
        base = primes_up_to(isqrt(high - 1))
    flags = np.ones(high - low, dtype=bool)
    base = base[base * base < high]
    first = np.maximum(base * base, (low + base - 1) // base * base) - low
    strided = base <= high - low  # primes with several multiples in the window: a slice each
    for p, start in zip(base[strided].tolist(), first[strided].tolist(), strict=True):
        flags[start::p] = False
    sparse = first[~strided]  # primes with at most one multiple in the window
    flags[sparse[sparse < high - low]] = False
    return np.flatnonzero(flags).astype(np.int64) + low


def prime_count(n: int) -> int:
    """pi(n) by the Lucy-Hedgehog method over the values n // k: O(n^(3/4)), no sieve of n.

    S(v) starts as the count of 2..v and, for each prime p <= sqrt(n), loses the numbers whose
    least prime factor is p: S(v) -= S(v // p) - S(p - 1), for every v >= p^2.
    """
    if n < 2:
        return 0
    root = isqrt(n)
    small = np.arange(-1, root, dtype=np.int64)  # small[v] = S(v) for v <= root
    small[0] = 0
    large = np.zeros(root + 1, dtype=np.int64)  # large[k] = S(n // k) for k <= root
    large[1:] = n // np.arange(1, root + 1, dtype=np.int64) - 1
    for p in range(2, root + 1):
        if small[p] == small[p - 1]:
            continue  # p is not prime
        below = int(small[p - 1])
        square = p * p
        k = np.arange(1, min(root, n // square) + 1, dtype=np.int64)
        kp = k * p
        inner = np.empty_like(kp)
        stored = kp <= root  # S(n // kp) is held in ``large`` when kp <= root, else in ``small``
        inner[stored] = large[kp[stored]]
        inner[~stored] = small[n // kp[~stored]]
        large[1 : len(k) + 1] -= inner - below  # ``inner`` was read before this update
        if square <= root:
            v = np.arange(square, root + 1, dtype=np.int64)
            small[square:] -= small[v // p] - below
    return int(large[1])


# -- primality and factorization ----------------------------------------------------------------
def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin for n < 3.3 * 10^24."""
    if n < 2:
        return False
    for p in _WITNESSES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in _WITNESSES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _pollard_brent(n: int, c: int, checkpoint: Callable[[], None]) -> int:
    """A divisor of the composite n by Brent's variant of Pollard's rho (may return n)."""
    y, r, q, g, x, ys = 2, 1, 1, 1, 2, 2
    batch = 128
    while g == 1:
        x = y
        for _ in range(r):
            y = (y * y + c) % n
        done = 0
        while done < r and g == 1:
            ys = y
            for _ in range(min(batch, r - done)):
                y = (y * y + c) % n
                q = q * abs(x - y) % n
            g = gcd(q, n)
            done += batch
        r *= 2
        if r >= _CHECK_EVERY:
            checkpoint()
    if g == n:  # the batched product overshot: step one at a time from the last save
        g = 1
        while g == 1:
            ys = (ys * ys + c) % n
            g = gcd(abs(x - ys), n)
    return g


def factorize(n: int, checkpoint: Callable[[], None] = lambda: None) -> list[int]:
    """The prime factors of n >= 1, with multiplicity, in increasing order."""
    factors: list[int] = []
    for p in _SMALL_PRIMES:
        while n % p == 0:
            factors.append(p)
            n //= p
    pending = [n] if n > 1 else []
    while pending:
        m = pending.pop()
        if is_prime(m):
            factors.append(m)
            continue
        root = isqrt(m)
        if root * root == m:  # rho finds no factor of a perfect square quickly enough
            pending += [root, root]
            continue
        divisor, c = m, 1
        while divisor in (1, m):
            divisor = _pollard_brent(m, c, checkpoint)
            c += 1
        pending += [divisor, m // divisor]
    return sorted(factors)


def _random_integer(rng: np.random.Generator, bits: int) -> int:
    """A uniform integer of exactly ``bits`` bits (any size: numpy's integers stop at 64)."""
    value = int.from_bytes(rng.bytes((bits + 7) // 8), "little")
    return value % (1 << (bits - 1)) | 1 << (bits - 1)


def _random_prime(rng: np.random.Generator, bits: int) -> int:
    candidate = _random_integer(rng, bits) | 1
    while not is_prime(candidate):
        candidate += 2
    return candidate


# -- the operations ------------------------------------------------------------------------------
def _gap_records(primes: np.ndarray, previous: int, record: int) -> list[tuple[int, int]]:
    """(gap, start) of each gap in ``primes`` (preceded by ``previous``) longer than any before."""
    if previous:
        primes = np.concatenate(([previous], primes))
    if len(primes) < 2:
        return []
    gaps = np.diff(primes)
    longest_before = np.maximum.accumulate(np.concatenate(([record], gaps[:-1])))
    where = np.flatnonzero(gaps > longest_before)
    return [(int(gaps[i]), int(primes[i])) for i in where]


def _sieve(iteration: Iteration, result: IterationResult) -> None:
    limit = int(iteration.grow(*(max(1_000, bound * iteration.scale) for bound in _SIEVE_LIMIT)))
    result.size = limit
    segment = max(1 << 12, min(_SEGMENT_BYTES, iteration.memory_budget // 16))
    base = primes_up_to(isqrt(limit))
    count, previous, twins = 0, 0, 0
    records: list[tuple[int, int]] = []
    counts_at_powers: dict[int, int] = {}
    for low in range(0, limit + 1, segment):
        iteration.checkpoint()
        high = min(low + segment, limit + 1)
        primes = primes_in_window(low, high, base)
        for power in KNOWN_PRIME_COUNTS:
            if low <= power < high:
                counts_at_powers[power] = count + int(np.searchsorted(primes, power, "right"))
        records += _gap_records(primes, previous, records[-1][0] if records else 0)
        joined = np.concatenate(([previous], primes)) if previous else primes
        twins += int(np.count_nonzero(np.diff(joined) == 2))
        count += len(primes)
        previous = int(primes[-1]) if len(primes) else previous
    expected_counts = {p: c for p, c in KNOWN_PRIME_COUNTS.items() if p <= limit}
    result.check(
        "sieve counts equal the known pi(10^k)",
        counts_at_powers == expected_counts,
        f"{len(expected_counts)} powers of ten up to {limit}",
    )
    independent = prime_count(limit)
    result.check(
        "sieve count equals an independent pi(N) (Lucy-Hedgehog)",
        count == independent,
        f"pi({limit}) = {count}, independent {independent}",
    )
    known = [(gap, start) for gap, start in KNOWN_MAXIMAL_GAPS if start + gap <= limit]
    result.check(
        "record prime gaps equal the known maximal gaps",
        records == known,
        f"{len(records)} records up to {limit}, largest {records[-1] if records else None}",
    )
    result.add("primes", count)
    result.add("sieve_primes", count)
    result.add("twin_primes", twins)
    result.fingerprint_with("sieve", limit, count, previous, twins, records)


def _primality(iteration: Iteration, result: IterationResult) -> None:
    rng = iteration.rng
    start = int(np.exp(rng.uniform(log(_WINDOW_START[0]), log(_WINDOW_START[1])))) | 1
    length = int(iteration.grow(*(max(200, bound * iteration.scale) for bound in _WINDOW_LENGTH)))
    result.size = length
    found = []
    for offset, candidate in enumerate(range(start, start + length, 2)):
        if offset % _CHECK_EVERY == 0:
            iteration.checkpoint()
        if is_prime(candidate):
            found.append(candidate)
    sieved = primes_in_window(start, start + length).tolist()
    result.check(
        "Miller-Rabin finds exactly the primes a sieve finds",
        found == sieved,
        f"{len(found)} primes in [{start}, {start + length})",
    )
    result.add("primes", len(found))
    result.add("primality_tests", (length + 1) // 2)
    result.fingerprint_with("primality", start, length, found)


def _factorization(iteration: Iteration, result: IterationResult) -> None:
    rng = iteration.rng
    # Work grows as 2^(bits/4): the scale shifts the largest size by 4 log2(scale) bits.
    high = max(_FACTOR_BITS[0], round(_FACTOR_BITS[1] + 4 * np.log2(iteration.scale)))
    bits = int(iteration.grow(_FACTOR_BITS[0], high))
    result.size = bits
    numbers = int(np.clip(_FACTOR_STEPS >> (bits // 4), *_NUMBERS_FACTORED))
    correct = True
    for number in range(numbers):
        iteration.checkpoint()
        if number % 2 == 0:  # a semiprime: the hard case
            p, q = _random_prime(rng, bits // 2), _random_prime(rng, bits - bits // 2)
            n, expected = p * q, sorted((p, q))
        else:
            n, expected = _random_integer(rng, bits), None
        factors = factorize(n, iteration.checkpoint)
        correct &= prod(factors) == n and all(is_prime(f) for f in factors)
        correct &= expected is None or factors == expected
        result.add("prime_factors", len(factors))
        result.fingerprint_with(n, factors)
    result.check(
        "factors are prime and multiply back to the number",
        correct,
        f"{numbers} numbers of {bits} bits",
    )
    result.add("numbers_factored", numbers)


_RUN = {"sieve": _sieve, "primality": _primality, "factorization": _factorization}


def one_iteration(iteration: Iteration) -> IterationResult:
    operation = iteration.rotate(_OPERATIONS)
    result = IterationResult()
    with timed(result, operation):
        _RUN[operation](iteration, result)
    return result


RATES = {
    "primes_per_s": Rate("primes", ["sieve", "primality"], "primes/s"),
    "sieve_primes_per_s": Rate("sieve_primes", ["sieve"], "primes/s"),
    "primality_tests_per_s": Rate("primality_tests", ["primality"], "tests/s"),
    "numbers_factored_per_s": Rate("numbers_factored", ["factorization"], "numbers/s"),
}


def run(ctx: Context) -> None:
    ctx.run_iterations(one_iteration, rates=RATES)
    ctx.note("primality_test", "deterministic Miller-Rabin, bases 2..37")
