"""The IO workloads io-2 ... io-7: tiny runs, second runs, real small filesystems (within the
budget, then full), stops; and the helpers they share (percentiles, the O_DIRECT probe)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import (
    ROOT,
    TINY,
    assert_valid,
    documents,
    main_inline,
    only_document,
    run_cli,
    uncontrolled_environment,
    wait_for,
)
from workloads.io import access, database, network, storage
from workloads.manifest import get_manifest
from workloads.runtime import latency
from workloads.runtime.filesystems import mount_of
from workloads.runtime.iterations import IterationResult
from workloads.runtime.record import Totals

pytestmark = pytest.mark.contract

# The catalogue's IO workloads; what every workload promises is tested in test_catalogue.py.
IO_WORKLOADS = [workload.id for workload in get_manifest() if workload.category == "io"]
LATENCY = re.compile(r"(?P<operation>.+)_latency_p50$")
BYTE_METRICS = ("issued_read_mb", "issued_write_mb", "kernel_read_mb", "kernel_write_mb")
SCRATCH_PREFIX = ".cloudai-work-"


def _run(workload: str, results: Path, *extra: str) -> tuple[int, str]:
    flags = ["--iterations", "3", "--duration", "30", "--seed", "7"]
    completed = run_cli("run", workload, *TINY, *flags, "--results-dir", str(results), *extra)
    return completed.returncode, completed.stderr


def _run_inline(monkeypatch: pytest.MonkeyPatch, workload: str, results: Path) -> int:
    flags = ["--iterations", "3", "--duration", "30", "--seed", "7", "--memory", "256m"]
    return main_inline(monkeypatch, "run", workload, *TINY, *flags, "--results-dir", str(results))


# -- tiny runs --------------------------------------------------------------------------------
@pytest.mark.parametrize("workload", IO_WORKLOADS)
def test_tiny_runs_twice_into_one_folder(
    workload: str, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run_inline(monkeypatch, workload, results) == 0
    document = only_document(results)
    metrics = document["metrics"]
    assert all(name in metrics["secondary"] for name in BYTE_METRICS)
    timed = [m["operation"] for m in map(LATENCY.match, metrics["secondary"]) if m]
    for operation in timed:  # a workload that times single operations reports every percentile
        for key in ("p50", "p90", "p99", "p999"):
            latency = metrics["secondary"][f"{operation}_latency_{key}"]
            assert latency["unit"] == "us" and latency["value"] > 0
    assert metrics["secondary"]["issued_write_mb"]["value"] > 0
    assert len(set(metrics["problem_sizes"])) > 1, "problem sizes should vary"
    storage_facts = document["details"]["storage"]
    assert storage_facts["filesystem"] == document["scratch"]["filesystem"]
    assert isinstance(storage_facts["direct_io"]["supported"], bool)
    assert [path.name for path in results.iterdir()] == [f"{workload}_{document['run_id']}.json"]

    assert _run_inline(monkeypatch, workload, results) == 0  # the same seed, the same folder
    first, second = documents(results)
    assert second["verification"]["passed"]
    assert first["verification"]["digest"] == second["verification"]["digest"]
    assert sorted(path.suffix for path in results.iterdir()) == [".json", ".json"]


# -- small real filesystems -------------------------------------------------------------------
@contextlib.contextmanager
def _tmpfs(folder: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _start(workload: str, results: Path, work: Path, *extra: str) -> subprocess.Popen[str]:
    environment = uncontrolled_environment()
    command = [sys.executable, "-m", "workloads", "run", workload, "--seed", "7"]
    command += ["--results-dir", str(results), "--work-dir", str(work), *extra]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _watch_usage(mount: Path, process: subprocess.Popen[str], peak: list[int]) -> None:
    while process.poll() is None:
        peak[0] = max(peak[0], shutil.disk_usage(mount).used)
        time.sleep(0.001)


@pytest.mark.parametrize("workload", IO_WORKLOADS)
def test_scratch_stays_within_the_disk_budget(workload: str, results: Path, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "small", "8m") as mount:
        baseline, peak = shutil.disk_usage(mount).used, [0]
        # at this scale the disk budget, not the scale, bounds the problem sizes
        process = _start(workload, results, mount, "--scale", "0.3", "--iterations", "3")
        watcher = threading.Thread(target=_watch_usage, args=(mount, process, peak))
        watcher.start()
        _, stderr = process.communicate(timeout=60)
        watcher.join()
        assert process.returncode == 0, stderr
        document = only_document(results)
        assert document["verification"]["passed"]
        budget = document["params"]["disk_budget"]
        assert budget <= 4 << 20  # half the free space of the 8 MiB filesystem
        assert document["scratch"]["filesystem"] == "tmpfs"
        # the owner file, the folders and the O_DIRECT probe take a few pages more
        assert peak[0] - baseline <= budget + (64 << 10), f"peak {peak[0] - baseline} B"
        assert list(mount.iterdir()) == []


def _fill(mount: Path, process: subprocess.Popen[str]) -> None:
    """Once the workload is at work, take every free byte of the filesystem, and keep taking
    what it frees, as a neighbour filling a shared disk would."""
    while process.poll() is None and not any(mount.glob(f"{SCRATCH_PREFIX}*/worker-*/*")):
        time.sleep(0.002)
    with (mount / "filler").open("ab", buffering=0) as filler:
        while process.poll() is None:
            for size in (64 << 10, 4 << 10):
                with contextlib.suppress(OSError):
                    while filler.write(b"\xff" * size):
                        pass
            time.sleep(0.002)


@pytest.mark.parametrize("workload", IO_WORKLOADS)
def test_a_full_disk_ends_the_run_cleanly(workload: str, results: Path, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "tiny", "2m") as mount:
        process = _start(workload, results, mount, *TINY, "--duration", "20")
        filler = threading.Thread(target=_fill, args=(mount, process))
        filler.start()
        stdout, stderr = process.communicate(timeout=60)
        filler.join()
        assert process.returncode == 1, stderr
        assert stderr.count("\n") == 1 and "disk full" in stderr, stderr
        assert "Traceback" not in stdout + stderr
        document = only_document(results)
        assert_valid(document)
        assert (document["status"], document["stop_reason"]) == ("failed", "disk-full")
        assert [path.name for path in mount.iterdir()] == ["filler"], "scratch data was left"
        assert [path.name for path in results.iterdir()] == [
            f"{workload}_{document['run_id']}.json"
        ]


# -- stopping ---------------------------------------------------------------------------------
@pytest.mark.parametrize("workload", IO_WORKLOADS)
def test_sigterm_removes_the_scratch_and_leaves_a_partial_document(
    workload: str, results: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    process = _start(workload, results, work, "--scale", "0.2", "--duration", "60")
    scratch = f"{SCRATCH_PREFIX}*/worker-*/*"
    wait_for(lambda: any(work.glob(scratch)), timeout=60, what="a worker's scratch files")
    process.send_signal(signal.SIGTERM)  # mid-iteration: a worker's files are on the disk
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    document = only_document(results)
    assert_valid(document)
    assert (document["status"], document["stop_reason"]) == ("terminated", "signal")
    assert document["error"] is None, document["error"]  # stopped, not cut off by the watchdog
    assert list(work.iterdir()) == [], "scratch data was left behind"
    assert len(list(results.iterdir())) == 1


# -- shared helpers ---------------------------------------------------------------------------
def test_latency_percentiles_come_from_a_bounded_mergeable_sketch() -> None:
    rng = np.random.default_rng(1)
    values = rng.lognormal(4, 1, 200_000)
    merged = latency.new_sketch()
    for part in np.array_split(values, 50):  # as iterations' sketches reach the recorder
        result = IterationResult()
        result.record_latencies("read", part)
        merged.merge(result.latencies["read"])
    found = latency.percentiles(merged)
    assert list(found) == ["p50", "p90", "p99", "p999"]
    exact = np.percentile(values, [50, 90, 99, 99.9])
    # 4096 of each iteration's 4000 are kept; every quantile within the sketch's 1 % (and
    # the sampling's own error at the far tail)
    assert found["p50"] == pytest.approx(exact[0], rel=0.02)
    assert found["p99"] == pytest.approx(exact[2], rel=0.03)
    assert len(merged._store.bins) <= latency.BIN_LIMIT  # constant size, however many values
    assert latency.percentiles(latency.new_sketch()) == {}
    assert latency.percentiles(None) == {}


def test_evenly_keeps_a_bounded_spread_of_samples() -> None:
    values = [float(number) for number in range(10_000)]
    kept = latency.evenly(values, 100)
    assert 50 <= len(kept) <= 100
    assert kept[0] == 0.0 and kept[-1] > 9000
    assert latency.evenly(values[:10], 100) == values[:10]


@pytest.mark.parametrize("chunk", [0, 4096])
def test_write_durably_writes_every_byte_and_counts_them(tmp_path: Path, chunk: int) -> None:
    data, result = os.urandom(10_000), IterationResult()
    counters = ("file_bytes_written", "bytes_written")
    storage.write_durably(tmp_path / "data", data, result, chunk=chunk, byte_counters=counters)
    storage.write_durably(tmp_path / "empty", b"", result)
    assert (tmp_path / "data").read_bytes() == data
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "empty").read_bytes() == b""
    assert result.work["file_bytes_written"] == result.work["bytes_written"] == len(data)
    assert result.work["write_seconds"] > 0


def test_a_durable_file_is_closed_after_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), storage.durable_file(tmp_path / "data") as descriptor:
        raise RuntimeError("boom")
    with pytest.raises(OSError):
        os.fstat(descriptor)


class _StorageContext:
    """What run_on_storage asks of a Context; run_iterations records its call and may fail."""

    def __init__(self, folder: Path, fail: bool = False) -> None:
        self.folder, self.fail = folder, fail
        self.details: dict[str, Any] = {}
        self.runs: list[tuple[Any, bool, bool]] = []

    def scratch_dir(self) -> Path:
        return self.folder

    def note(self, key: str, value: object) -> None:
        self.details[key] = value

    def run_iterations(self, fn: object, *, processes: bool, scratch: bool, rates: Any) -> Totals:
        self.runs.append((fn, processes, scratch))
        if self.fail:
            raise MemoryError("out of memory")
        return Totals(iterations=1, workers=1, busy_seconds=1.0)


def _iteration(iteration: object, direct: bool = False) -> IterationResult:
    return IterationResult()


def test_run_on_storage_records_the_mode_then_the_notes_and_passes_the_choice(
    tmp_path: Path,
) -> None:
    ctx, finished = _StorageContext(tmp_path), []
    done = storage.run_on_storage(
        ctx,  # type: ignore[arg-type]
        _iteration,
        wants_direct=True,
        notes={"transport": "x"},
        finish=lambda: finished.append(1),
    )
    assert list(ctx.details) == ["storage", "transport"]
    [(fn, processes, scratch)] = ctx.runs
    direct = ctx.details["storage"]["io_mode"] == "O_DIRECT"
    assert fn.keywords == {"direct": direct}
    assert (processes, scratch, finished) == (True, True, [1])
    assert done.totals.iterations == 1


def test_run_on_storage_finishes_when_the_tasks_fail(tmp_path: Path) -> None:
    ctx, finished = _StorageContext(tmp_path, fail=True), []
    with pytest.raises(MemoryError):
        storage.run_on_storage(
            ctx,  # type: ignore[arg-type]
            _iteration,
            buffered="mode",
            processes=False,
            finish=lambda: finished.append(1),
        )
    assert ctx.details["storage"]["io_mode"] == "mode"
    assert ctx.runs == [(_iteration, False, True)] and finished == [1]


def test_direct_io_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    found = storage.probe_direct_io(tmp_path)
    assert isinstance(found.supported, bool) and found.reason
    assert list(tmp_path.iterdir()) == []


def test_direct_io_probe_falls_back_when_open_refuses_o_direct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refuse_direct(path: object, flags: int, *args: object) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refuse_direct)
    found = storage.probe_direct_io(tmp_path)
    assert not found.supported
    assert "Invalid argument" in found.reason


def test_direct_io_probe_reports_a_full_disk_rather_than_falling_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OSError) as raised:
        storage.probe_direct_io(tmp_path)
    assert raised.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_direct_io_probe_on_a_filesystem_without_o_direct(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a ramfs needs root")
    folder = tmp_path / "ramfs"
    folder.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(folder)], check=True)
    try:
        found = storage.probe_direct_io(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
    assert not found.supported  # ramfs has no direct IO: the workloads go buffered
    assert "O_DIRECT" in found.reason


def test_kernel_bytes_count_what_reached_storage(tmp_path: Path) -> None:
    counter = storage.KernelBytes().start()
    descriptor = os.open(tmp_path / "data", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        storage.write_all(descriptor, os.urandom(4 << 20))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    counter.stop()
    assert counter.write_calls >= 4 << 20
    mount = mount_of(tmp_path)
    if mount is not None and mount.fstype not in ("tmpfs", "ramfs"):
        assert counter.written >= 4 << 20  # tmpfs has no storage to count


def test_sqlite_full_is_a_full_disk(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "small.sqlite")
    connection.execute("PRAGMA max_page_count = 8")  # SQLITE_FULL once the file holds 8 pages
    connection.execute("CREATE TABLE t (x BLOB)")
    with pytest.raises(sqlite3.Error) as raised:
        connection.executemany("INSERT INTO t VALUES (?)", [(b"x" * 4000,)] * 64)
    connection.close()
    full = database.full_disk(raised.value, tmp_path / "small.sqlite")
    assert full is not None and full.errno == errno.ENOSPC
    assert database.full_disk(sqlite3.OperationalError("no such table: t"), tmp_path) is None


# -- io-6's phases and io-4's parser catch damage ---------------------------------------------
@pytest.mark.parametrize("direct", [False, True])
def test_access_phases_verify_and_catch_a_damaged_page(tmp_path: Path, direct: bool) -> None:
    if direct and not storage.probe_direct_io(tmp_path).supported:
        pytest.skip("this filesystem has no O_DIRECT")
    rng = np.random.default_rng(3)
    layout = access.Layout.random(1, 64 * access.PAGE, rng, access.make_pool(rng))
    path = tmp_path / "data.bin"
    written = access.write_sequential(path, layout, chunk=access.BLOCK, direct=direct)
    read = access.read_sequential(path, layout, direct=direct)
    assert (read.checksum, read.bytes) == (written.checksum, layout.size)
    offsets, lengths = access.random_plan(rng, layout.size, 50, access.RANDOM_SIZES)
    assert access.read_random(path, layout, offsets, lengths, direct=direct).mismatches == 0
    mapped, rewritten = access.mmap_mix(path, layout, rng, 10, 8, direct=direct)
    assert (mapped.mismatches, rewritten.mismatches, rewritten.operations) == (0, 0, 8)

    with path.open("r+b") as handle:  # damage page 5's body
        handle.seek(5 * access.PAGE + 100)
        handle.write(b"\x00\x01\x02\x03")
    damaged = access.read_sequential(path, layout, direct=direct)
    assert damaged.checksum != read.checksum
    every_page = np.arange(64, dtype=np.int64) * access.PAGE
    pages = np.full(64, access.PAGE, dtype=np.int64)
    assert access.read_random(path, layout, every_page, pages, direct=direct).mismatches == 1


def _packets(count: int) -> tuple[bytes, network.Stream]:
    rng, sent, parts = np.random.default_rng(5), network.Stream(), []
    noise = rng.bytes(4096)
    for sequence in range(count):
        payload = noise[: int(rng.integers(64, 1500)) - network.HEADER.size]
        crc = zlib.crc32(payload)
        parts.append(
            network.HEADER.pack(network.MAGIC, network.VERSION, 0, sequence, len(payload), crc, 0)
            + payload
        )
        sent.digest = network._chain(sent.digest, sequence, crc)
        sent.packets += 1
    return b"".join(parts), sent


def _parse(data: bytes, piece_sizes: np.ndarray) -> network.Stream:
    stream = network.Stream()
    parser, offset = network.Parser(stream), 0
    for size in piece_sizes.tolist():
        parser.feed(data[offset : offset + size])
        offset += size
    parser.feed(data[offset:])
    parser.finish()
    return stream


def test_packet_parser_reassembles_and_catches_damage() -> None:
    data, sent = _packets(200)
    pieces = np.random.default_rng(1).integers(1, 3000, 300)
    whole = _parse(data, pieces)
    assert (whole.packets, whole.bad, whole.digest, whole.bytes) == (
        200,
        0,
        sent.digest,
        len(data),
    )
    flipped = bytearray(data)
    flipped[network.HEADER.size + 10] ^= 0xFF  # the first packet's payload
    assert _parse(bytes(flipped), pieces).bad == 1
    assert _parse(data[:-7], pieces).bad == 1  # the stream ends inside a packet
