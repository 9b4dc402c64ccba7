"""io-6's phases on one file, each a function of its own that ``bench/io_vs_fio.py`` also times
against fio: a sequential write (fdatasync), a sequential read, random reads, and a mix through
a memory mapping. Each returns a ``Phase``: the bytes and operations it issued, the time its IO
took, and the pages that did not read back as the file's ``Layout`` says they should.

With ``direct``, file IO bypasses the page cache (O_DIRECT); without, the page cache is dropped
before reads so that they hit storage, and a long write streams its pages to storage as it goes.
The sequential phases keep the device busy while the bytes are produced or checked: a helper
thread fills the chunks ahead while this one is written, or checks the chunks already read while
this one is read (the GIL is released on both sides).
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
from workloads.io.pages import PAGE, POOL, Layout, mismatched_pages, pages_view, random_plan
from workloads.io.storage import KIB, MIB
from workloads.runtime.rates import timed

BLOCK = MIB  # size of each sequential read and write
RANDOM_SIZES = (4 * KIB, MIB)  # of the mixed random reads (log-uniform, page-aligned)
_BATCH_BYTES = 8 * MIB  # random reads land in a buffer this large, checked when it is full
DEPTH = 3  # chunk buffers of the sequential writes: the helper thread fills two chunks ahead
_READ_RING = 2  # block buffers of the sequential reads: the helper checks one as the next is read


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
    buffers = [storage.aligned_buffer(chunk) for _ in range(DEPTH)]
    starts = range(0, layout.size, chunk)
    phase, crc = Phase(), [0]

    def produce(start: int, buffer: mmap.mmap) -> int:
        length = min(chunk, layout.size - start)
        layout.fill(np.arange(start // PAGE, (start + length) // PAGE), pages_view(buffer, length))
        crc[0] = zlib.crc32(memoryview(buffer)[:length], crc[0])  # chunks come in order
        return length

    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = storage.open_file(path, flags, direct=direct)
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="io6-produce") as helper, phase.clock:
            ready = deque(
                helper.submit(produce, start, buffers[number])
                for number, start in enumerate(starts[:DEPTH])
            )
            for number, start in enumerate(starts):
                length, buffer = ready.popleft().result(), buffers[number % DEPTH]
                _write_blocks(descriptor, buffer, start, length, phase)
                if not direct:
                    storage.start_writeback(descriptor, start, length)
                if number + DEPTH < len(starts):  # this buffer is free for a later chunk
                    ready.append(helper.submit(produce, starts[number + DEPTH], buffer))
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
                    phase.mismatches += mismatched_pages(
                        layout, batch, offsets[batch_reads], lengths[batch_reads]
                    )
                    used, first = 0, number
                with one_read:
                    phase.bytes += os.preadv(descriptor, [view[used : used + length]], offset)
                latencies[number] = one_read.last * 1e6
                used += length
            phase.mismatches += mismatched_pages(layout, batch, offsets[first:], lengths[first:])
        phase.operations = len(offsets)
        storage.drop_cache(descriptor)
    finally:
        os.close(descriptor)
    phase.latencies_us = latencies
    return phase


def mmap_mix(
    path: Path, layout: Layout, rng: np.random.Generator, reads: int, writes: int, *, direct: bool
) -> tuple[Phase, Phase]:
    """Through a shared mapping: random reads of 4 KiB-1 MiB (checked against the layout) and
    in-place rewrites of random pages with other bodies, made durable with msync; then the
    rewritten pages are read back from storage (O_DIRECT, or a dropped cache)."""
    read, write = Phase(), Phase()
    offsets, lengths = random_plan(rng, layout.size, reads, RANDOM_SIZES)
    targets = rng.choice(len(layout.bodies), size=min(writes, len(layout.bodies)), replace=False)
    new_bodies = ((layout.bodies[targets] + rng.integers(1, POOL, len(targets))) % POOL).astype(
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
