"""The CPU workloads cpu-2 ... cpu-7: end to end (verified, valid, parallel, seeded, stoppable)
and their verification helpers, which must reject wrong results."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import (
    FIXTURES,
    ROOT,
    TINY,
    assert_nothing_outlived_the_run,
    descendants,
    only_document,
    run_cli,
    run_inline,
    terminate_with_sigterm,
    uncontrolled_environment,
)
from workloads.cpu import compression, hashing, montecarlo, primes, recursion, sorting
from workloads.manifest import get_manifest
from workloads.runtime.iterations import Iteration, IterationResult

pytestmark = pytest.mark.contract

# The catalogue's CPU workloads; what every workload promises is tested in test_catalogue.py.
CPU_IDS = [workload.id for workload in get_manifest() if workload.category == "cpu"]
ITERATIONS = 24  # covers every operation of each workload (cpu-7 has the most: eleven codecs)


def _tiny_run(
    monkeypatch: pytest.MonkeyPatch, workload: str, folder: Path, *args: str
) -> dict[str, Any]:
    flags = ["--iterations", str(ITERATIONS), "--duration", "30", "--memory", "256m"]
    code, document = run_inline(monkeypatch, folder, workload, *TINY, *flags, *args)
    assert code == 0, document["error"]
    return document


# -- end to end --------------------------------------------------------------------------------
@pytest.mark.parametrize("workload", CPU_IDS)
def test_the_digest_depends_on_the_seed_not_on_the_workers(
    workload: str, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Iterations spread over processes: two workers or one do the same work for a seed."""
    two = _tiny_run(monkeypatch, workload, results / "a", "--seed", "11", "--workers", "2")
    one = _tiny_run(monkeypatch, workload, results / "b", "--seed", "11", "--workers", "1")
    other = _tiny_run(monkeypatch, workload, results / "c", "--seed", "12", "--workers", "2")
    assert (two["load"]["workers"], one["load"]["workers"]) == (2, 1)
    assert one["verification"]["digest"] == two["verification"]["digest"]
    assert one["metrics"]["problem_sizes"] == two["metrics"]["problem_sizes"]
    assert len(set(two["metrics"]["problem_sizes"])) > 1, "sizes should vary over the run"
    assert other["verification"]["digest"] != two["verification"]["digest"]
    assert other["metrics"]["problem_sizes"] != two["metrics"]["problem_sizes"]
    assert other["verification"]["passed"]


def _system_busy_seconds() -> float:
    """CPU seconds all processes have used since boot (for a failure message on a shared host)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


@pytest.mark.timing
@pytest.mark.parametrize("workload", CPU_IDS)
def test_two_workers_keep_more_than_one_core_busy_within_the_envelope(
    workload: str, results: Path
) -> None:
    busy_before = _system_busy_seconds()
    completed = run_cli(
        "run", workload, "--workers", "2", "--duration", "3", "--results-dir", str(results)
    )
    others = _system_busy_seconds() - busy_before
    assert completed.returncode == 0, completed.stderr
    document = only_document(results)
    assert document["verification"]["passed"], document["verification"]
    resources = document["resources"]
    others = (others - resources["cpu_seconds"]) / document["wall_seconds"]
    assert resources["average_cores"] > 1.5, f"other processes used {others:.2f} cores meanwhile"
    assert document["load"]["workers"] == 2
    envelope = document["workload"]["envelope"]["memory"]
    assert document["resources"]["peak_memory_bytes"] < envelope


@pytest.mark.parametrize("workload", CPU_IDS)
def test_sigterm_leaves_a_partial_document(workload: str, results: Path) -> None:
    environment = uncontrolled_environment()
    command = [sys.executable, "-m", "workloads", "run", workload, "--duration", "60"]
    process = subprocess.Popen(
        [*command, "--results-dir", str(results)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers, helpers = descendants(process.pid, workers=2)  # iterating: the workers are up
    terminate_with_sigterm(process, results)
    assert len(workers) == 2
    assert_nothing_outlived_the_run(workers, helpers)


def test_cpu_and_io_workloads_never_import_torch() -> None:
    modules = ", ".join(sorted({w.module for w in get_manifest() if w.category != "gpu"}))
    imported = subprocess.run(
        [sys.executable, "-c", f"import {modules}"],
        env={**os.environ, "PYTHONPATH": str(FIXTURES / "torch_tripwire")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr


# -- in-process helpers --------------------------------------------------------------------------
def _iteration(index: int, seed: int = 1, scale: float = 0.02, budget: int = 64 << 20) -> Iteration:
    return Iteration(
        index=index,
        seed=seed,
        scale=scale,
        memory_budget=budget,
        worker=0,
        workers=1,
        stop=threading.Event(),
        deadline=time.monotonic() + 600,
    )


def _failed(result: IterationResult) -> set[str]:
    return {name for name, check in result.checks.items() if not check.passed}


# -- cpu-2 primes ------------------------------------------------------------------------------
def test_prime_counts_match_the_known_values_and_a_plain_sieve() -> None:
    for n, count in primes.KNOWN_PRIME_COUNTS.items():
        assert primes.prime_count(n) == count
    sieved = primes.primes_up_to(100_000)
    for n in (0, 1, 2, 3, 97, 1_000, 65_537, 99_991):
        assert primes.prime_count(n) == np.searchsorted(sieved, n, "right")


def test_window_sieve_and_miller_rabin_agree_with_trial_division() -> None:
    def by_trial_division(n: int) -> bool:
        return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))

    low = 10**6 - 500
    window = primes.primes_in_window(low, low + 1_000).tolist()
    assert window == [n for n in range(low, low + 1_000) if by_trial_division(n)]
    assert [n for n in range(low, low + 1_000) if primes.is_prime(n)] == window
    # Carmichael numbers and a strong pseudoprime to bases 2, 3, 5 and 7; Mersenne primes.
    assert not any(primes.is_prime(n) for n in (561, 41_041, 3_215_031_751))
    assert primes.is_prime(2**61 - 1) and primes.is_prime(2**89 - 1)


def test_factorize_returns_primes_that_multiply_back() -> None:
    assert primes.factorize(1) == []
    assert primes.factorize(600_851_475_143) == [71, 839, 1471, 6857]
    assert primes.factorize(2**64 + 1) == [274_177, 67_280_421_310_721]
    assert primes.factorize(1_000_003**2 * 12) == [2, 2, 3, 1_000_003, 1_000_003]


def test_gap_records_up_to_a_million_are_the_known_ones() -> None:
    found = primes.primes_up_to(1_000_000)
    records = primes._gap_records(found, 0, 0)
    assert records == [(g, p) for g, p in primes.KNOWN_MAXIMAL_GAPS if p + g <= 1_000_000]


def test_a_wrong_factorization_fails_its_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(primes, "factorize", lambda n, checkpoint: [n + 2])
    assert _failed(primes.one_iteration(_iteration(2))) == {
        "factors are prime and multiply back to the number"
    }


# -- cpu-3 sorting -------------------------------------------------------------------------------
def test_every_sort_orders_every_kind_of_input() -> None:
    rng = np.random.default_rng(5)
    for distribution in sorting.DISTRIBUTIONS:
        for dtype in sorting.DTYPES:
            values = sorting.make_input(rng, 3_000, distribution, dtype)
            expected = np.sort(values, kind="stable")
            for algorithm in sorting.ALGORITHMS:
                if algorithm.on_records:
                    output = values[algorithm.sort((values,))]
                elif algorithm.on_lists:
                    output = np.array(algorithm.sort(values.tolist()), dtype)
                else:
                    output = algorithm.sort(values)
                assert np.array_equal(output, expected), (algorithm.name, distribution, dtype)


def test_sort_checks_reject_disorder_and_lost_elements() -> None:
    values = np.array([3, 1, 2, 2], dtype=np.int64)
    assert sorting.is_sorted(np.sort(values)) and not sorting.is_sorted(values)
    assert sorting.is_permutation_of(np.array([2, 2, 3, 1]), values)
    assert not sorting.is_permutation_of(np.array([1, 2, 3, 3]), values)  # one lost, one twice
    assert not sorting.is_permutation_of(np.array([1, 2, 2]), values)
    assert sorting.is_index_permutation(np.array([2, 0, 1]), 3)
    assert not sorting.is_index_permutation(np.array([2, 0, 0]), 3)
    groups, ordered = np.array([0, 0, 1, 1]), np.array([5, 7, 1, 2])
    assert sorting.is_sorted_by_keys(groups, ordered)
    assert not sorting.is_sorted_by_keys(groups, np.array([7, 5, 1, 2]))


def test_a_broken_sort_fails_its_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    def drops_one(values: np.ndarray) -> np.ndarray:
        output = np.sort(values)
        output[-1] = output[0]
        return output

    algorithms = list(sorting.ALGORITHMS)
    algorithms[0] = sorting.Algorithm("introsort", drops_one, (1 << 16, 1 << 22), 40)
    monkeypatch.setattr(sorting, "ALGORITHMS", tuple(algorithms))
    assert _failed(sorting.one_iteration(_iteration(0))) == {
        "output is in order",
        "output is a permutation of the input",
    }


# -- cpu-4 hashing -------------------------------------------------------------------------------
def test_hmac_by_definition_equals_the_library() -> None:
    for name in hashing.ALGORITHMS:
        assert hashing.known_answers_hold(name)
        for key in (b"k", b"K" * 200):  # a key longer than a block is hashed first
            expected = hmac.digest(key, b"message", name)
            assert hashing.hmac_by_definition(key, b"message", name) == expected


def test_records_normalise_to_one_text_per_identity() -> None:
    assert hashing.normalise("  ADA   Lovelace  <x>  ") == "ada lovelace <x>"
    texts = {hashing.normalise(hashing.record_text(identity)) for identity in range(1_000)}
    assert len(texts) == 1_000


def test_a_wrong_digest_fails_its_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing.hashlib, "md5", lambda data=b"": hashlib.sha1(data))
    assert _failed(hashing.one_iteration(_iteration(0))) == {
        "hash functions reproduce their known-answer vectors"
    }


# -- cpu-5 Monte Carlo -----------------------------------------------------------------------------
def test_error_bounds_accept_noise_and_reject_bias() -> None:
    assert montecarlo.within_bound(1.0 + 5.9e-3, 1.0, 1e-3)
    assert not montecarlo.within_bound(1.0 + 6.1e-3, 1.0, 1e-3)
    mean, deviation = montecarlo.runs_bounds(10_001, 0.5)
    assert (mean, deviation) == (5_000.0, 50.0)  # a fair coin's changes are independent


def test_runs_bounds_match_a_simulation() -> None:
    rng = np.random.default_rng(9)
    flips = rng.random((4_000, 500)) < 0.2
    changes = np.count_nonzero(flips[:, 1:] != flips[:, :-1], axis=1)
    mean, deviation = montecarlo.runs_bounds(500, 0.2)
    assert abs(changes.mean() - mean) < 0.1 * deviation
    assert abs(changes.std() / deviation - 1) < 0.05


class _Biased:
    """A generator whose uniform numbers lean towards 0: x^1.2 for x uniform."""

    def __init__(self) -> None:
        self._rng = np.random.default_rng(1)

    def random(self, size: int) -> np.ndarray:
        return self._rng.random(size) ** 1.2


def test_a_biased_generator_fails_the_pi_check() -> None:
    iteration = _iteration(0, scale=0.2)
    iteration.__dict__["rng"] = _Biased()  # in place of the cached seeded generator
    assert _failed(montecarlo.one_iteration(iteration)) == {"pi estimate within its error bound"}


# -- cpu-6 recursion ---------------------------------------------------------------------------
def test_recursions_equal_their_closed_forms() -> None:
    visits = recursion.Visits(_iteration(0))
    for m in range(4):
        for n in range(5):
            assert recursion.ackermann(m, n, visits) == recursion.ackermann_closed_form(m, n)
    assert recursion.ackermann(3, 3, recursion.Visits(_iteration(0))) == 61
    assert recursion.binomial(30, 12, visits) == math.comb(30, 12)
    assert [recursion.delannoy(n, n, visits) for n in range(5)] == [1, 3, 13, 63, 321]
    assert recursion.delannoy_closed_form(4, 4) == 321
    pegs, moves, legal = recursion.hanoi(5, visits)
    assert (pegs, moves, legal) == ([[], [], [5, 4, 3, 2, 1]], 31, True)


def test_tree_walks_count_every_node() -> None:
    visits = recursion.Visits(_iteration(0))
    root = None
    keys = [5, 3, 8, 1, 4, 9]
    for key in keys:
        root = recursion.insert(root, key, visits)
    walks: tuple[list[int], list[int], list[int]] = ([], [], [])
    recursion.in_order(root, walks[0], visits)
    recursion.pre_order(root, walks[1], visits)
    recursion.post_order(root, walks[2], visits)
    assert walks == ([1, 3, 4, 5, 8, 9], [5, 3, 1, 4, 8, 9], [1, 4, 3, 9, 8, 5])
    assert recursion.height(root) == 3
    assert recursion.count_tree(recursion.perfect_tree(4, visits), visits) == (15, 8, 34)


def test_an_illegal_hanoi_fails_its_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recursion, "hanoi", lambda disks, visits: ([[], [], []], 2**disks, True))
    assert _failed(recursion.one_iteration(_iteration(2))) == {
        "Tower of Hanoi takes 2^n - 1 legal moves and ends in order"
    }


# -- cpu-7 compression ---------------------------------------------------------------------------
def test_data_kinds_are_seeded_and_exactly_sized() -> None:
    for kind, make in compression.KINDS.items():
        first = make(np.random.default_rng(3), 100_003)
        assert len(first) == 100_003, kind
        assert first == make(np.random.default_rng(3), 100_003), kind
    ratios = {
        kind: len(zlib.compress(make(np.random.default_rng(3), 1 << 20))) / (1 << 20)
        for kind, make in compression.KINDS.items()
    }
    assert ratios["random"] > 0.99
    assert ratios["repetitive"] < ratios["text"] < 0.6


def test_encoded_lengths_and_lzma_presets() -> None:
    base64_codec, hex_codec = (c for c in compression.CODECS if c.family == "encode")
    assert [compression.encoded_length(base64_codec, n) for n in (0, 1, 3, 4)] == [0, 4, 4, 8]
    assert compression.encoded_length(hex_codec, 7) == 14
    assert compression.lzma_preset(6, 1 << 30) == 6
    assert compression.lzma_preset(6, 40 << 20) == 2  # preset 2 needs 17 MiB: half of 40
    assert compression.lzma_preset(6, 1 << 20) == 0


def test_every_codec_round_trips_every_kind() -> None:
    kinds = len(compression.KINDS)
    for index in range(len(compression.CODECS) * kinds):
        result = compression.one_iteration(_iteration(index))
        assert not _failed(result), index


def test_a_lossy_codec_fails_its_check(monkeypatch: pytest.MonkeyPatch) -> None:
    decompress = zlib.decompress
    monkeypatch.setattr(compression.zlib, "decompress", lambda data: decompress(data)[1:])
    assert _failed(compression.one_iteration(_iteration(0))) == {
        "round trips give back the original bytes"
    }
