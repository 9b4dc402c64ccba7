"""io-6: sequential and random file access mix, with memory-mapped reads and in-place writes.

Each iteration writes one to three files of mixed content (random, text-like, sparse and
repeating 4 KiB pages) sequentially in 1 MiB blocks and makes them durable (fdatasync), then
reads them back sequentially, does random reads of 4 KiB (IOPS and latency) and of 4 KiB-1 MiB,
and finally maps each file, reads random ranges through the mapping and rewrites random pages
in place (msync), then reads those pages back from storage.

Where the filesystem supports O_DIRECT (probed once per run) the file IO bypasses the page
cache; elsewhere it is buffered, and the page cache is dropped before each read phase so that
reads still hit storage. Memory mappings always go through the page cache, which is dropped
before mapping. The sequential phases keep the device busy while the bytes are produced or
checked: a helper thread fills the chunks ahead while this one is written, or checks the chunks
already read while this one is read (the GIL is released on both sides). ``bench/io_vs_fio.py``
times these same phase functions against fio.

Every page carries a header (file id, page number, CRC-32 of its body), so any page read can be
checked against what was written: the sequential read's CRC-32 must equal the writer's, random
and mapped reads must equal the pages the layout regenerates, and pages rewritten through the
mapping must read back from storage. Iterations run in worker processes (the default): they
share nothing, so N workers give N independent streams of IO.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workloads.io import storage
from workloads.io.storage import KIB, MIB
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, timed

PAGE = storage.ALIGNMENT
_MAGIC = 0x36494143  # "CAI6", little-endian
_HEADER = 24  # magic u32, file id u32, page number u64, body CRC-32 u32, body id u32
_BODY = PAGE - _HEADER
_POOL = 64  # distinct page bodies a file is built from
BLOCK = MIB  # size of each sequential read and write
RANDOM_SIZES = (4 * KIB, MIB)  # of the mixed random reads (log-uniform, page-aligned)
_FILE_BYTES = (64 * MIB, 1024 * MIB)  # all of an iteration's files together, at scale 1
_FILES = (1, 3)
_RANDOM_4K = (2000, 20000)  # reads of 4 KiB per iteration, at scale 1
_RANDOM_MIXED = (100, 1000)
_MMAP_READS = (200, 2000)
_MMAP_WRITES = (100, 1000)
_DISK_SHARE = 0.9  # of the iteration's disk budget the files may take
_BATCH_BYTES = 8 * MIB  # random reads land in a buffer this large, checked when it is full
_DEPTH = 3  # chunk buffers of the sequential writes: the helper thread fills two chunks ahead
_READ_RING = 2  # block buffers of the sequential reads: the helper checks one as the next is read
_WORDS = (
    b"GET POST PUT 200 404 500 user order item cache hit miss latency ms request response "
    b"session token disk page block read write sync flush commit queue worker node cluster"
).split()


# -- file content -----------------------------------------------------------------------------
def _text_body(rng: np.random.Generator) -> bytes:
    words = rng.choice(len(_WORDS), size=_BODY // 3)
    text = b" ".join(_WORDS[int(word)] for word in words)
    return (text * 2)[:_BODY]


def make_pool(rng: np.random.Generator) -> np.ndarray:
    """_POOL page bodies of mixed content: random, text-like, sparse and repeating patterns."""
    pool = np.zeros((_POOL, _BODY), dtype=np.uint8)
    for index in range(_POOL):
        kind = index % 4
        if kind == 0:
            pool[index] = rng.integers(0, 256, _BODY, dtype=np.uint8)
        elif kind == 1:
            pool[index] = np.frombuffer(_text_body(rng), dtype=np.uint8)
        elif kind == 2:
            spots = rng.integers(0, _BODY, 32)
            pool[index, spots] = rng.integers(1, 256, 32, dtype=np.uint8)
        else:
            pattern = rng.integers(0, 256, int(rng.integers(2, 64)), dtype=np.uint8)
            pool[index] = np.resize(pattern, _BODY)
    return pool


@dataclass
class Layout:
    """The content of one data file, page by page: regenerable, so any read can be checked."""

    file_id: int
    bodies: np.ndarray  # body id (into pool) of each page; in-place writes change it
    pool: np.ndarray  # (_POOL, _BODY) uint8
    pool_crc: np.ndarray = field(init=False)
    pool_pages: np.ndarray = field(init=False)  # the bodies as whole pages, headers blank

    def __post_init__(self) -> None:
        self.pool_crc = np.array([zlib.crc32(body) for body in self.pool], dtype=np.uint32)
        self.pool_pages = np.zeros((len(self.pool), PAGE), dtype=np.uint8)
        self.pool_pages[:, _HEADER:] = self.pool

    @classmethod
    def random(cls, file_id: int, size: int, rng: np.random.Generator, pool: np.ndarray) -> Layout:
        bodies = rng.integers(0, len(pool), size // PAGE).astype(np.uint32)
        return cls(file_id, bodies, pool)

    @property
    def size(self) -> int:
        return len(self.bodies) * PAGE

    def fill(self, pages: np.ndarray, out: np.ndarray) -> None:
        """Write the expected content of ``pages`` (page numbers) into ``out`` (n x PAGE)."""
        bodies = self.bodies[pages]
        out[:] = self.pool_pages[bodies]  # whole rows: far faster than np.take(out=...)
        self._headers(pages, bodies, out)

    def _headers(self, pages: np.ndarray, bodies: np.ndarray, out: np.ndarray) -> None:
        words = out.view(np.uint32)  # magic, file id, page number (two words), CRC, body id
        words[:, 0] = _MAGIC
        words[:, 1] = self.file_id
        out.view(np.uint64)[:, 1] = pages
        words[:, 4] = self.pool_crc[bodies]
        words[:, 5] = bodies

    def expected(self, pages: np.ndarray) -> np.ndarray:
        out = np.empty((len(pages), PAGE), dtype=np.uint8)
        self.fill(pages, out)
        return out


def _pages_view(buffer: mmap.mmap, length: int) -> np.ndarray:
    return np.frombuffer(buffer, dtype=np.uint8, count=length).reshape(-1, PAGE)


# -- phases (also timed by bench/io_vs_fio.py) ------------------------------------------------
@dataclass
class Phase:
    """What one phase did: bytes and operations issued, time taken, what did not match."""

    bytes: int = 0
    operations: int = 0
    mismatches: int = 0  # pages that differ from the layout, for the random phases
    checksum: int = 0  # CRC-32 of the bytes, for the sequential phases
    latencies_us: list[float] = field(default_factory=list)
    clock: timed = field(default_factory=timed)  # times the phase's IO

    @property
    def seconds(self) -> float:
        return self.clock.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0

    @property
    def iops(self) -> float:
        return self.operations / self.seconds if self.seconds > 0 else 0.0


def _chunk_size(chunk: int, size: int) -> int:
    return max(BLOCK, min(storage.round_down(chunk, BLOCK), storage.round_up(size, BLOCK)))


def write_sequential(path: Path, layout: Layout, *, chunk: int, direct: bool) -> Phase:
    """Write the file in BLOCK-sized writes, then fdatasync; a helper thread generates the
    content of the chunks ahead (and their CRC-32) while this one writes. Buffered, each chunk's
    writeback starts as soon as it is written."""
    chunk = _chunk_size(chunk, layout.size)
    buffers = [storage.aligned_buffer(chunk) for _ in range(_DEPTH)]
    starts = range(0, layout.size, chunk)
    phase, crc = Phase(), [0]

    def produce(start: int, buffer: mmap.mmap) -> int:
        length = min(chunk, layout.size - start)
        layout.fill(np.arange(start // PAGE, (start + length) // PAGE), _pages_view(buffer, length))
        crc[0] = zlib.crc32(memoryview(buffer)[:length], crc[0])  # chunks come in order
        return length

    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = storage.open_file(path, flags, direct=direct)
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="io6-produce") as helper, phase.clock:
            ready = deque(
                helper.submit(produce, start, buffers[number])
                for number, start in enumerate(starts[:_DEPTH])
            )
            for number, start in enumerate(starts):
                length, buffer = ready.popleft().result(), buffers[number % _DEPTH]
                _write_blocks(descriptor, buffer, start, length, phase)
                if not direct:
                    storage.start_writeback(descriptor, start, length)
                if number + _DEPTH < len(starts):  # this buffer is free for a later chunk
                    ready.append(helper.submit(produce, starts[number + _DEPTH], buffer))
            os.fdatasync(descriptor)
        storage.drop_cache(descriptor)
    finally:
        os.close(descriptor)
    phase.checksum = crc[0]
    return phase


def read_sequential(path: Path, layout: Layout, *, direct: bool) -> Phase:
    """Read the file in BLOCK-sized reads into a ring of _READ_RING block buffers; a helper
    thread takes the CRC-32 of each block as soon as it is read (while it is still in the CPU's
    caches) as this one reads on. Few buffers, as fio's one: on virtual machines, O_DIRECT reads
    into a 48 MiB rotation ran at about 0.7x the speed of reads into one reused MiB."""
    ring = [storage.aligned_buffer(BLOCK) for _ in range(_READ_RING)]
    phase, crc = Phase(), [0]

    def check(piece: memoryview) -> None:
        crc[0] = zlib.crc32(piece, crc[0])  # one helper thread: blocks come in order

    descriptor = storage.open_file(path, os.O_RDONLY, direct=direct)
    try:
        if not direct:
            storage.drop_cache(descriptor)  # as fio's invalidate=1
            storage.advise(descriptor, "sequential")
        with ThreadPoolExecutor(1, thread_name_prefix="io6-check") as helper, phase.clock:
            checking: deque[Future[None]] = deque()
            for number, start in enumerate(range(0, layout.size, BLOCK)):
                if len(checking) == _READ_RING:  # the oldest buffer must be checked before reuse
                    checking.popleft().result()
                piece = memoryview(ring[number % _READ_RING])[: min(BLOCK, layout.size - start)]
                phase.bytes += os.preadv(descriptor, [piece], start)
                phase.operations += 1
                checking.append(helper.submit(check, piece))
            for pending in checking:
                pending.result()
        storage.drop_cache(descriptor)
    finally:
        os.close(descriptor)
    phase.checksum = crc[0]
    return phase


def _write_blocks(
    descriptor: int, buffer: mmap.mmap, start: int, length: int, phase: Phase
) -> None:
    """Write ``length`` bytes of ``buffer`` at ``start``, BLOCK bytes per call."""
    view = memoryview(buffer)
    for offset in range(0, length, BLOCK):
        phase.bytes += storage.write_all(
            descriptor, view[offset : min(offset + BLOCK, length)], start + offset
        )
        phase.operations += 1


def random_plan(
    rng: np.random.Generator, size: int, count: int, sizes: tuple[int, int] = (PAGE, PAGE)
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` page-aligned (offset, length) pairs inside a file of ``size`` bytes, lengths
    log-uniform in ``sizes``."""
    low, high = sizes[0] // PAGE, max(sizes[0], min(sizes[1], size)) // PAGE
    pages = np.exp(rng.uniform(np.log(low), np.log(high + 1), count)).astype(np.int64)
    pages = np.clip(pages, low, high)
    starts = (rng.random(count) * (size // PAGE - pages + 1)).astype(np.int64)
    return starts * PAGE, pages * PAGE


def read_random(
    path: Path, layout: Layout, offsets: np.ndarray, lengths: np.ndarray, *, direct: bool
) -> Phase:
    """pread each (offset, length), timing each read; reads fill a batch buffer whose pages are
    checked against the layout, all at once, whenever it is full."""
    phase, one_read = Phase(), timed()
    batch = storage.aligned_buffer(max(_BATCH_BYTES, int(lengths.max(initial=PAGE))))
    view = memoryview(batch)
    latencies = [0.0] * len(offsets)
    descriptor = storage.open_file(path, os.O_RDONLY, direct=direct)
    try:
        if not direct:
            storage.drop_cache(descriptor)
            storage.advise(descriptor, "random")
        used, first = 0, 0
        with phase.clock:
            for number, (offset, length) in enumerate(
                zip(offsets.tolist(), lengths.tolist(), strict=True)
            ):
                if used + length > len(batch):
                    batch_reads = slice(first, number)
                    phase.mismatches += _check_batch(
                        layout, batch, offsets[batch_reads], lengths[batch_reads]
                    )
                    used, first = 0, number
                with one_read:
                    phase.bytes += os.preadv(descriptor, [view[used : used + length]], offset)
                latencies[number] = one_read.last * 1e6
                used += length
            phase.mismatches += _check_batch(layout, batch, offsets[first:], lengths[first:])
        phase.operations = len(offsets)
        storage.drop_cache(descriptor)
    finally:
        os.close(descriptor)
    phase.latencies_us = latencies
    return phase


def _check_batch(layout: Layout, batch: mmap.mmap, offsets: np.ndarray, lengths: np.ndarray) -> int:
    """Pages of the batch (reads stored back to back, in plan order) that differ from the
    layout."""
    used = int(lengths.sum())
    if used == 0:
        return 0
    counts = lengths // PAGE
    pages = np.repeat(offsets // PAGE, counts) + _ramp(counts)
    got = _pages_view(batch, used)
    return int(np.any(got != layout.expected(pages.astype(np.intp)), axis=1).sum())


def _ramp(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., counts[0]-1, 0, 1, ..., counts[1]-1, ..."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


def mmap_mix(
    path: Path, layout: Layout, rng: np.random.Generator, reads: int, writes: int, *, direct: bool
) -> tuple[Phase, Phase]:
    """Through a shared mapping: random reads of 4 KiB-1 MiB (checked against the layout) and
    in-place rewrites of random pages with other bodies, made durable with msync; then the
    rewritten pages are read back from storage (O_DIRECT, or a dropped cache)."""
    read, write = Phase(), Phase()
    offsets, lengths = random_plan(rng, layout.size, reads, RANDOM_SIZES)
    targets = rng.choice(len(layout.bodies), size=min(writes, len(layout.bodies)), replace=False)
    new_bodies = ((layout.bodies[targets] + rng.integers(1, _POOL, len(targets))) % _POOL).astype(
        np.uint32
    )
    descriptor = os.open(path, os.O_RDWR)
    try:
        storage.drop_cache(descriptor)
        mapping = mmap.mmap(descriptor, layout.size)
        try:
            if hasattr(mmap, "MADV_RANDOM"):
                mapping.madvise(mmap.MADV_RANDOM)
            for offset, length in zip(offsets.tolist(), lengths.tolist(), strict=True):
                with read.clock:
                    copied = mapping[offset : offset + length]  # page faults: reads from storage
                got = np.frombuffer(copied, dtype=np.uint8).reshape(-1, PAGE)
                pages = np.arange(offset // PAGE, (offset + length) // PAGE)
                read.mismatches += int(np.any(got != layout.expected(pages), axis=1).sum())
                read.bytes += length
            read.operations = reads
            layout.bodies[targets] = new_bodies
            fresh = layout.expected(targets.astype(np.intp))
            with write.clock:
                for row, page in enumerate(targets.tolist()):
                    mapping[page * PAGE : (page + 1) * PAGE] = fresh[row].tobytes()
                mapping.flush()  # msync(MS_SYNC): the rewritten pages reach storage
            write.operations, write.bytes = len(targets), len(targets) * PAGE
        finally:
            mapping.close()
        storage.drop_cache(descriptor)
    finally:
        os.close(descriptor)
    back = read_random(
        path,
        layout,
        np.sort(targets).astype(np.int64) * PAGE,
        np.full(len(targets), PAGE, dtype=np.int64),
        direct=direct,
    )
    write.mismatches = back.mismatches
    return read, write


# -- the workload -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    file_sizes: list[int]
    chunk: int  # bytes of each buffer of the sequential writes (_DEPTH are held)
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
    chunk = min(iteration.grow(4 * MIB, 64 * MIB), iteration.memory_budget / (4 * _DEPTH))
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
