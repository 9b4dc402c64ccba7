"""io-6: sequential and random file access mix, with memory-mapped reads and in-place writes.

Each iteration writes one to three files of mixed content (random, text-like, sparse and
repeating 4 KiB pages) sequentially in 1 MiB blocks and makes them durable (fdatasync), then
reads them back sequentially, does random reads of 4 KiB (IOPS and latency) and of 4 KiB-1 MiB,
and finally maps each file, reads random ranges through the mapping and rewrites random pages
in place (msync), then reads those pages back from storage.

Where the filesystem supports O_DIRECT (probed once per run) the file IO bypasses the page
cache; elsewhere it is buffered, and the page cache is dropped before each read phase so that
reads still hit storage. Memory mappings always go through the page cache, which is dropped
before mapping. The phases are ``workloads/io/phases.py``'s, which ``bench/io_vs_fio.py`` times
against fio.

Every page carries a header (``workloads/io/pages.py``), so any page read can be checked against
what was written: the sequential read's CRC-32 must equal the writer's, random and mapped reads
must equal the pages the layout regenerates, and pages rewritten through the mapping must read
back from storage. Iterations run in worker processes (the default): they share nothing, so N
workers give N independent streams of IO.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.io import storage

# bench/io_vs_fio.py and the tests reach io-6's pages and phases through this module.
from workloads.io.pages import PAGE, Layout, make_pool, random_plan
from workloads.io.phases import (
    BLOCK,
    DEPTH,
    RANDOM_SIZES,
    Phase,
    mmap_mix,
    read_random,
    read_sequential,
    write_sequential,
)
from workloads.io.storage import MIB
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate

_FILE_BYTES = (64 * MIB, 1024 * MIB)  # all of an iteration's files together, at scale 1
_FILES = (1, 3)
_RANDOM_4K = (2000, 20000)  # reads of 4 KiB per iteration, at scale 1
_RANDOM_MIXED = (100, 1000)
_MMAP_READS = (200, 2000)
_MMAP_WRITES = (100, 1000)
_DISK_SHARE = 0.9  # of the iteration's disk budget the files may take


@dataclass(frozen=True)
class _Plan:
    file_sizes: list[int]
    chunk: int  # bytes of each buffer of the sequential writes (DEPTH are held)
    random_4k: int
    random_mixed: int
    mmap_reads: int
    mmap_writes: int


def _scaled(iteration: Iteration, bounds: tuple[int, int]) -> int:
    return max(1, int(iteration.grow(bounds[0] * iteration.scale, bounds[1] * iteration.scale)))


def _plan(iteration: Iteration) -> _Plan:
    files = int(iteration.rng.integers(_FILES[0], _FILES[1] + 1))
    total = iteration.grow(_FILE_BYTES[0] * iteration.scale, _FILE_BYTES[1] * iteration.scale)
    if iteration.disk_budget:
        total = min(total, iteration.disk_budget * _DISK_SHARE)
    size = max(16 * PAGE, storage.round_down(int(total / files), PAGE))
    # The chunk buffers, the batch buffer and the mapped pages read share the memory budget.
    chunk = min(iteration.grow(4 * MIB, 64 * MIB), iteration.memory_budget / (4 * DEPTH))
    mean_mapped_read = (RANDOM_SIZES[1] - RANDOM_SIZES[0]) / np.log(RANDOM_SIZES[1] / PAGE)
    mapped_room = int(iteration.memory_budget / 4 / mean_mapped_read)
    return _Plan(
        file_sizes=[size] * files,
        chunk=max(BLOCK, storage.round_down(int(chunk), BLOCK)),
        random_4k=_scaled(iteration, _RANDOM_4K),
        random_mixed=_scaled(iteration, _RANDOM_MIXED),
        mmap_reads=max(1, min(_scaled(iteration, _MMAP_READS), mapped_room)),
        mmap_writes=_scaled(iteration, _MMAP_WRITES),
    )


def _record(result: IterationResult, name: str, phase: Phase, *, read: bool) -> None:
    result.add(f"{name}_bytes", phase.bytes)
    result.add(f"{name}_operations", phase.operations)
    result.add(f"{name}_seconds", phase.seconds)
    result.add("bytes_read" if read else "bytes_written", phase.bytes)


def _share(total: int, size: int, sizes: list[int]) -> int:
    return max(1, round(total * size / sum(sizes)))


def _file_phases(
    iteration: Iteration,
    plan: _Plan,
    layout: Layout,
    path: Path,
    direct: bool,
    result: IterationResult,
) -> dict[str, int]:
    """All phases on one file; returns the mismatches found per check."""
    rng, sizes = iteration.rng, plan.file_sizes
    written = write_sequential(path, layout, chunk=plan.chunk, direct=direct)
    _record(result, "sequential_write", written, read=False)
    iteration.checkpoint()
    sequential = read_sequential(path, layout, direct=direct)
    _record(result, "sequential_read", sequential, read=True)
    iteration.checkpoint()
    offsets, lengths = random_plan(rng, layout.size, _share(plan.random_4k, layout.size, sizes))
    small = read_random(path, layout, offsets, lengths, direct=direct)
    _record(result, "random_4k", small, read=True)
    result.record_latencies(_LATENCY, small.latencies_us)
    iteration.checkpoint()
    count = _share(plan.random_mixed, layout.size, sizes)
    offsets, lengths = random_plan(rng, layout.size, count, RANDOM_SIZES)
    mixed = read_random(path, layout, offsets, lengths, direct=direct)
    _record(result, "random_mixed", mixed, read=True)
    iteration.checkpoint()
    reads = _share(plan.mmap_reads, layout.size, sizes)
    writes = _share(plan.mmap_writes, layout.size, sizes)
    mapped_read, mapped_write = mmap_mix(path, layout, rng, reads, writes, direct=direct)
    _record(result, "mmap_read", mapped_read, read=True)
    _record(result, "mmap_write", mapped_write, read=False)
    result.add("bytes_read", mapped_write.operations * PAGE)  # the read-back of those pages
    result.fingerprint_with(written.checksum, layout.size, offsets.sum(), lengths.sum())
    return {
        "crc": int(sequential.checksum != written.checksum),
        "small": small.mismatches,
        "mixed": mixed.mismatches,
        "mapped": mapped_read.mismatches,
        "rewritten": mapped_write.mismatches,
    }


_CHECKS = {
    "crc": "sequential read CRC-32 equals the writer's, file by file",
    "small": "random 4 KiB reads equal the pages written",
    "mixed": "random 4 KiB-1 MiB reads equal the pages written",
    "mapped": "memory-mapped reads equal the pages written",
    "rewritten": "pages rewritten through the mapping read back from storage",
}
_LATENCY = "random_read"  # of the 4 KiB random reads


def one_iteration(iteration: Iteration, direct: bool = False) -> IterationResult:
    plan = _plan(iteration)
    result = IterationResult(size=sum(plan.file_sizes))
    pool = make_pool(np.random.default_rng([iteration.seed, iteration.index, 0x9001]))
    mismatches = dict.fromkeys(_CHECKS, 0)
    with iteration.folder() as folder:
        for number, size in enumerate(plan.file_sizes):
            iteration.checkpoint()
            layout = Layout.random(number, size, iteration.rng, pool)
            found = _file_phases(
                iteration, plan, layout, folder / f"data-{number}.bin", direct, result
            )
            mismatches = {key: mismatches[key] + found[key] for key in _CHECKS}
    unit = {"crc": "files"}
    for key, name in _CHECKS.items():
        detail = f"{mismatches[key]} {unit.get(key, 'pages')} differ"
        result.check(name, mismatches[key] == 0, detail)
    return result


def _mb_s(phase: str) -> Rate:
    return Rate(f"{phase}_bytes", [phase], "MB/s", 1e6)


def _iops(phase: str) -> Rate:
    return Rate(f"{phase}_operations", [phase], "IOPS")


RATES = {
    "sequential_read_mb_s": _mb_s("sequential_read"),
    "sequential_write_mb_s": _mb_s("sequential_write"),
    "random_read_iops": _iops("random_4k"),
    "random_mixed_read_mb_s": _mb_s("random_mixed"),
    "random_mixed_read_iops": _iops("random_mixed"),
    "mmap_read_mb_s": _mb_s("mmap_read"),
    "mmap_write_iops": _iops("mmap_write"),
}


def run(ctx: Context) -> None:
    buffered = "buffered, fdatasync, cache dropped before reads"
    storage_run = storage.run_on_storage(
        ctx, one_iteration, wants_direct=True, buffered=buffered, rates=RATES
    )
    ctx.report_latencies(storage_run.totals, _LATENCY)
    storage_run.report_bytes(ctx)
