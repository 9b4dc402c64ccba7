"""io-1: file writing and reading with dynamic memory growth.

Each iteration writes a set of files of random data while keeping every buffer in memory (the
set grows file by file, then is dropped: memory rises and falls), makes each file durable
(fsync) and drops it from the page cache, so the reads that follow hit the storage. It then
reads the files back sequentially and checks their digests, and finally does random seeks with
reads of 1 KiB-1 MiB, each compared byte for byte with the buffer still held in memory.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from workloads.io import storage
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, timed

KIB, MIB = 1 << 10, 1 << 20
_CHUNK = MIB
_FILE_SIZE = (256 * KIB, 16 * MIB)  # at scale 1
_FILE_COUNT = (4, 24)
_RANDOM_READS_PER_FILE = 16
_RANDOM_READ = (KIB, MIB)
# Share of the memory budget the held buffers may take (the rest is reading and hashing room).
_MEMORY_SHARE = 0.6
_LATENCY = "random_read"


def _plan(iteration: Iteration) -> tuple[int, int]:
    """(file count, file size): both grow over the cycle, within the memory and disk budgets."""
    count = int(iteration.grow(*_FILE_COUNT))
    size = iteration.grow(_FILE_SIZE[0] * iteration.scale, _FILE_SIZE[1] * iteration.scale)
    room = min(iteration.memory_budget * _MEMORY_SHARE, iteration.disk_budget or float("inf"))
    size = min(size, room / count)
    return count, max(4 * KIB, int(size) // (4 * KIB) * (4 * KIB))


def _read_digest(path: Path, result: IterationResult) -> bytes:
    digest = hashlib.sha256()
    with timed(result, "read"), path.open("rb", buffering=0) as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            result.add("bytes_read", len(chunk))
        storage.drop_cache(handle.fileno())  # so the random reads that follow hit the storage too
    return digest.digest()


def _random_reads(
    iteration: Iteration, paths: list[Path], buffers: list[memoryview], result: IterationResult
) -> bool:
    rng, reads, matched = iteration.rng, _RANDOM_READS_PER_FILE * len(paths), True
    descriptors = [os.open(path, os.O_RDONLY) for path in paths]
    try:
        for _ in range(reads):
            which = int(rng.integers(len(paths)))
            size = min(int(np.exp(rng.uniform(*np.log(_RANDOM_READ)))), len(buffers[which]))
            offset = int(rng.integers(len(buffers[which]) - size + 1))
            with timed(result, "random", latency=_LATENCY):
                chunk = os.pread(descriptors[which], size, offset)
            matched &= chunk == buffers[which][offset : offset + size]
            result.add("random_bytes", size)
            result.fingerprint_with(which, offset, size)
    finally:
        for descriptor in descriptors:
            os.close(descriptor)
    result.add("random_reads", reads)
    return matched


def one_iteration(iteration: Iteration) -> IterationResult:
    count, size = _plan(iteration)
    result = IterationResult(size=count * size)
    buffers: list[memoryview] = []  # the growing in-memory set
    written: list[bytes] = []
    with iteration.folder() as folder:
        paths = [folder / f"data-{number:03d}.bin" for number in range(count)]
        for path in paths:
            iteration.checkpoint()
            data = memoryview(iteration.rng.bit_generator.random_raw(size // 8)).cast("B")
            buffers.append(data)
            written.append(hashlib.sha256(data).digest())
            storage.write_durably(path, data, result, chunk=_CHUNK)
        read_back = []
        for path in paths:
            iteration.checkpoint()
            read_back.append(_read_digest(path, result))
        result.check(
            "re-read files match the digests written",
            read_back == written,
            f"{sum(a != b for a, b in zip(read_back, written, strict=True))} of {count} differ",
        )
        iteration.checkpoint()
        matched = _random_reads(iteration, paths, buffers, result)
        result.check("random reads match the bytes held in memory", matched)
        result.fingerprint_with(*written)
    return result


def run(ctx: Context) -> None:
    # Buffered by design (the data comes from unaligned in-memory buffers): fsync, then the
    # page cache is dropped so that reads hit storage.
    rates = {
        "write_mb_s": Rate("bytes_written", ["write"], "MB/s", 1e6),
        "read_mb_s": Rate("bytes_read", ["read"], "MB/s", 1e6),
        "random_read_iops": Rate("random_reads", ["random"], "IOPS"),
        "random_read_mb_s": Rate("random_bytes", ["random"], "MB/s", 1e6),
    }
    storage_run = storage.run_on_storage(ctx, one_iteration, rates=rates)
    ctx.report_latencies(storage_run.totals, _LATENCY)
    storage_run.report_bytes(ctx, issued_read=("bytes_read", "random_bytes"))
