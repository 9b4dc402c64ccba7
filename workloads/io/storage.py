"""What the IO workloads share: direct IO, durable writes, byte counts, the run on storage.

- ``probe_direct_io`` tries O_DIRECT in a folder (an aligned write and read back) and says
  whether the filesystem supports it; workloads fall back to buffered IO, made to hit storage
  with ``drop_cache``, where it does not.
- ``choose_io_mode`` probes and records the filesystem and the IO mode in the document.
- ``aligned_buffer`` gives page-aligned memory (an anonymous mapping) that O_DIRECT needs.
- ``write_all`` and ``drop_cache``: durable writes and cold reads;
  ``durable_file`` and ``write_durably``: a new file written, fsync'ed and dropped from the
  page cache.
- ``KernelBytes`` and ``report_bytes``: the bytes the kernel counted for the process tree (what
  reached storage) next to the bytes the workload issued.
- ``run_on_storage``: an IO workload's iterations run on the scratch storage, its IO mode recorded
  and the kernel's bytes counted; ``StorageRun.report_bytes`` then reports them.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from workloads.runtime.filesystems import mount_of
from workloads.runtime.iterations import IterationFunction, IterationResult
from workloads.runtime.rates import Rate, timed

if TYPE_CHECKING:
    from workloads.runtime.context import Context
    from workloads.runtime.record import Totals

KIB, MIB = 1 << 10, 1 << 20
# O_DIRECT needs offsets, sizes and buffers aligned to the device's logical block (512 B or
# 4 KiB): 4 KiB satisfies both.
ALIGNMENT = 4 * KIB
_PROBE_NAME = ".direct-io-probe"
# The IO mode of the workloads that write buffered, fsync, then drop the files from the cache.
BUFFERED_FSYNC = "buffered, fsync, cache dropped"


# -- direct IO --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DirectIO:
    supported: bool
    reason: str  # why not, or how it was verified

    def to_dict(self) -> dict[str, Any]:
        return {"supported": self.supported, "reason": self.reason}


def aligned_buffer(size: int) -> mmap.mmap:
    """Zeroed memory of ``size`` bytes (rounded up to ALIGNMENT) starting on a page boundary."""
    return mmap.mmap(-1, max(ALIGNMENT, round_up(size)))


def round_up(size: int, unit: int = ALIGNMENT) -> int:
    return -(-size // unit) * unit


def round_down(size: int, unit: int = ALIGNMENT) -> int:
    return size // unit * unit


def probe_direct_io(folder: Path) -> DirectIO:
    """Whether O_DIRECT works in ``folder``: open, write an aligned block, read it back.

    A full disk is not a missing feature: ENOSPC propagates (the run ends as disk-full).
    """
    flag = getattr(os, "O_DIRECT", None)
    if flag is None:
        return DirectIO(False, "O_DIRECT is not available on this platform")
    path = folder / _PROBE_NAME
    written = aligned_buffer(ALIGNMENT)
    written[:] = os.urandom(ALIGNMENT)
    read = aligned_buffer(ALIGNMENT)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | flag, 0o600)
    except OSError as error:
        return _unsupported(error, "open")
    try:
        os.pwrite(descriptor, written, 0)
        os.preadv(descriptor, [read], 0)
    except OSError as error:
        return _unsupported(error, "aligned write and read")
    finally:
        os.close(descriptor)
        path.unlink(missing_ok=True)
    if read[:] != written[:]:
        return DirectIO(False, "an aligned O_DIRECT write did not read back")
    return DirectIO(True, f"an aligned {ALIGNMENT} B write read back with O_DIRECT")


def _unsupported(error: OSError, step: str) -> DirectIO:
    if error.errno == errno.ENOSPC:
        raise error
    return DirectIO(False, f"O_DIRECT {step} failed: {error.strerror or error}")


def open_file(path: Path, flags: int, *, direct: bool = False) -> int:
    """os.open with O_DIRECT added when ``direct``; new files are private (0o600)."""
    if direct:
        flags |= os.O_DIRECT
    return os.open(path, flags, 0o600)


def choose_io_mode(ctx: Context, *, wants_direct: bool, buffered: str) -> bool:
    """Probe O_DIRECT in the run's scratch folder and record, under ``details.storage``, the
    filesystem type, the probe's finding and the IO mode used: O_DIRECT when the workload wants
    it and the filesystem supports it, else ``buffered`` (a description). Returns whether to use
    O_DIRECT."""
    folder = ctx.scratch_dir()
    direct = probe_direct_io(folder)
    use = wants_direct and direct.supported
    mount = mount_of(folder)
    ctx.note(
        "storage",
        {
            "filesystem": mount.fstype if mount else None,
            "direct_io": direct.to_dict(),
            "io_mode": "O_DIRECT" if use else buffered,
        },
    )
    return use


# -- durable writes and cold reads ------------------------------------------------------------
def write_all(descriptor: int, data: bytes | memoryview | mmap.mmap, offset: int = -1) -> int:
    """Write every byte (at ``offset`` with pwrite, else at the file position); returns the
    count. Short writes are rare on files but legal."""
    view, done = memoryview(data).cast("B"), 0
    while done < len(view):
        chunk = view[done:]
        wrote = os.write(descriptor, chunk) if offset < 0 else os.pwrite(descriptor, chunk, offset)
        if offset >= 0:
            offset += wrote
        done += wrote
    return done


@contextlib.contextmanager
def durable_file(path: Path) -> Iterator[int]:
    """A new private file open for writing (its descriptor). When the block ends without an
    error the file is fsync'ed and dropped from the page cache, so reads that follow hit
    storage; it is closed either way."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        yield descriptor
        os.fsync(descriptor)
        drop_cache(descriptor)
    finally:
        os.close(descriptor)


def write_durably(
    path: Path,
    data: bytes | memoryview,
    result: IterationResult,
    *,
    chunk: int = 0,
    byte_counters: Sequence[str] = ("bytes_written",),
) -> None:
    """Write ``data`` to a new ``durable_file``, in writes of ``chunk`` bytes (0: all at once).
    Adds the seconds taken, fsync included, to ``write_seconds`` and the size to each of
    ``byte_counters``."""
    view = memoryview(data)
    step = chunk or max(len(view), 1)
    with timed(result, "write"), durable_file(path) as descriptor:
        for offset in range(0, len(view), step):
            write_all(descriptor, view[offset : offset + step])
    for counter in byte_counters:
        result.add(counter, len(view))


def drop_cache(descriptor: int) -> None:
    """Drop a file's clean pages from the page cache, so the next reads hit storage."""
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)


def start_writeback(descriptor: int, offset: int, length: int) -> None:
    """Start writing a range's dirty pages back without waiting for them (Linux does so for
    POSIX_FADV_DONTNEED), so that a long buffered write streams to storage as it goes instead of
    piling dirty pages up for the final fsync, and the page cache it holds stays small."""
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(descriptor, offset, length, os.POSIX_FADV_DONTNEED)


def advise(descriptor: int, advice: str) -> None:
    """posix_fadvise by name (``sequential``, ``random``), where the platform has it."""
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(descriptor, 0, 0, getattr(os, f"POSIX_FADV_{advice.upper()}"))


# -- metrics ----------------------------------------------------------------------------------
# -- bytes the kernel counted -----------------------------------------------------------------
def _tree_io() -> tuple[int, int, int, int]:
    """Bytes of this process, its reaped children and live ones: read from and written to
    storage, then passed to read and write calls (any file, pipe or socket)."""
    process, totals = psutil.Process(), [0, 0, 0, 0]
    for member in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error, AttributeError, NotImplementedError):
            counters = member.io_counters()
            totals[0] += counters.read_bytes
            totals[1] += counters.write_bytes
            totals[2] += getattr(counters, "read_chars", 0)
            totals[3] += getattr(counters, "write_chars", 0)
    return totals[0], totals[1], totals[2], totals[3]


class KernelBytes:
    """The kernel's byte counts for the process tree between ``start()`` and ``stop()``
    (workers are reaped by then, so theirs are included): ``read`` and ``written`` reached
    storage; ``read_calls`` and ``write_calls`` passed through read and write system calls."""

    def __init__(self) -> None:
        self.read = self.written = self.read_calls = self.write_calls = 0
        self._start = (0, 0, 0, 0)

    def start(self) -> KernelBytes:
        self._start = _tree_io()
        return self

    def stop(self) -> KernelBytes:
        now = _tree_io()
        self.read, self.written, self.read_calls, self.write_calls = (
            after - before for after, before in zip(now, self._start, strict=True)
        )
        return self


def report_bytes(
    ctx: Context, issued_read: float, issued_written: float, kernel: KernelBytes
) -> None:
    """Issued against counted bytes, in MB. The kernel counts what reached storage: reads served
    by the page cache, and anything on tmpfs, count zero; writes count when pages are dirtied."""
    for name, value in (
        ("issued_read_mb", issued_read),
        ("issued_write_mb", issued_written),
        ("kernel_read_mb", kernel.read),
        ("kernel_write_mb", kernel.written),
    ):
        ctx.metric(name, value / 1e6, "MB")


# -- a run on the scratch storage -------------------------------------------------------------
@dataclass(frozen=True)
class StorageRun:
    totals: Totals
    kernel: KernelBytes  # counted over the tasks

    def report_bytes(self, ctx: Context, *, issued_read: Sequence[str] = ("bytes_read",)) -> None:
        """``report_bytes`` with the bytes the tasks issued: the sum of the ``issued_read``
        counters read, ``bytes_written`` written."""
        work = self.totals.work
        read = sum(work.get(counter, 0.0) for counter in issued_read)
        report_bytes(ctx, read, work.get("bytes_written", 0.0), self.kernel)


def run_on_storage(
    ctx: Context,
    one_iteration: IterationFunction,
    *,
    buffered: str = BUFFERED_FSYNC,
    wants_direct: bool = False,
    processes: bool = True,
    notes: Mapping[str, Any] | None = None,
    finish: Callable[[], None] | None = None,
    rates: Mapping[str, Rate] | None = None,
) -> StorageRun:
    """Run an IO workload's iterations (``one_iteration``) on the scratch storage, in worker
    processes unless ``processes`` is false.

    The IO mode is chosen and recorded first (``choose_io_mode``; with ``wants_direct``,
    ``one_iteration`` is called with ``direct=`` the choice), then ``notes`` beside it. The
    kernel's bytes are counted over the iterations and ``finish``, which closes what they kept
    open (its writes count too). ``rates`` are the workload's rate metrics (``ctx.run_iterations``).
    """
    direct = choose_io_mode(ctx, wants_direct=wants_direct, buffered=buffered)
    for key, value in (notes or {}).items():
        ctx.note(key, value)
    if wants_direct:
        one_iteration = partial(one_iteration, direct=direct)
    kernel = KernelBytes().start()
    try:
        totals = ctx.run_iterations(one_iteration, processes=processes, scratch=True, rates=rates)
    finally:
        if finish is not None:
            finish()
        kernel.stop()
    return StorageRun(totals, kernel)
