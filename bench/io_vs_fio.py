#!/usr/bin/env python3
"""io-6's file IO against fio, side by side in one run, on the same filesystem.

    python bench/io_vs_fio.py [--dir PATH] [--size 1g] [--mode direct|buffered|both]
                              [--random-reads 20000] [--chunk 16m] [--repeat 3] [--settle 2]

For each mode it times io-6's own phase functions (workloads/io/access.py: sequential write in
1 MiB blocks then fdatasync, sequential read in 1 MiB blocks, random 4 KiB reads, each verifying
what it reads) and fio with the same file size, block sizes, direct or buffered IO, one IO at
a time (psync, iodepth 1) and the same cache handling (fio's end_fsync, invalidate and random
fadvise hint), in a temporary folder under --dir (default: here), removed at the end. Both
write new, unallocated files (fio's fallocate=none); both read the file io-6 wrote.

Each phase runs on both sides, one after the other, each followed by a sync and a pause
(--settle) so that none pays for the writeback of the one before; rounds (--repeat) alternate
which side goes first. It prints each side's median MB/s or IOPS and, as io-6's ratio to fio,
the median of the rounds' own ratios (with their range): the target is 0.8 or more. On a shared
machine or a cloud disk the figures are noisy.

fio comes from the distribution: apt-get install -y fio (Debian, Ubuntu) or dnf install fio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workloads.io import access, storage  # noqa: E402
from workloads.runtime import latency  # noqa: E402
from workloads.runtime.filesystems import mount_of  # noqa: E402
from workloads.sizes import format_size, parse_size  # noqa: E402

TARGET = 0.8


@dataclass
class Figure:
    phase: str
    unit: str
    ours: float
    fio: float
    ours_p99_us: float | None = None
    fio_p99_us: float | None = None
    round_ratios: tuple[float, ...] = ()  # of a summary: each round's own ratio

    @property
    def ratio(self) -> float:
        if self.round_ratios:
            return statistics.median(self.round_ratios)
        return self.ours / self.fio if self.fio else float("nan")


def fio(folder: Path, name: str, size: int, direct: bool, **options: str | int) -> dict:
    """Run one fio job on ``folder/name`` and return its JSON report's job."""
    command = [
        "fio",
        f"--name={name}",
        f"--filename={folder / name}",
        f"--size={size}",
        f"--direct={int(direct)}",
        "--ioengine=psync",
        "--iodepth=1",
        "--numjobs=1",
        "--invalidate=1",
        "--fallocate=none",  # io-6 writes new files without preallocating them
        "--output-format=json",
        *(f"--{key}={value}" for key, value in options.items()),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout[completed.stdout.index("{") :])["jobs"][0]


def _fio_p99(side: dict) -> float | None:
    percentiles = side.get("clat_ns", {}).get("percentile", {})
    value = percentiles.get("99.000000")
    return value / 1e3 if value is not None else None


def p99(microseconds: list[float]) -> float | None:
    """The p99 of every latency, from the runtime's sketch (as io-6 reports it, within 1 %)."""
    sketch = latency.new_sketch()
    for value in microseconds:
        sketch.add(value)
    return latency.percentiles(sketch).get("p99")


Measure = Callable[[], tuple[float, float | None]]  # (MB/s or IOPS, p99 latency in µs)


def settle(seconds: float) -> None:
    """Let writeback finish between phases, so no phase pays for the one before."""
    os.sync()
    time.sleep(seconds)


def compare(
    folder: Path, size: int, direct: bool, reads: int, chunk: int, fio_first: bool, rest: float
) -> list[Figure]:
    """One round of the three phases, each run by io-6 and by fio (fio first when asked)."""
    rng = np.random.default_rng(1)
    layout = access.Layout.random(0, size, rng, access.make_pool(rng))
    ours_path, block = folder / "io6.bin", access.BLOCK
    offsets, lengths = access.random_plan(rng, size, reads)
    written: list[int] = []

    def our_write() -> tuple[float, None]:
        phase = access.write_sequential(ours_path, layout, chunk=chunk, direct=direct)
        written.append(phase.checksum)
        return phase.mb_per_s, None

    def our_read() -> tuple[float, None]:
        phase = access.read_sequential(ours_path, layout, direct=direct)
        if [phase.checksum] != written:
            raise SystemExit("io-6's sequential read did not verify: its figures mean nothing")
        return phase.mb_per_s, None

    def our_random() -> tuple[float, float | None]:
        phase = access.read_random(ours_path, layout, offsets, lengths, direct=direct)
        if phase.mismatches:
            raise SystemExit("io-6's random reads did not verify: its figures mean nothing")
        return phase.iops, p99(phase.latencies_us)

    def fio_write() -> tuple[float, None]:
        job = fio(folder, "fio.bin", size, direct, rw="write", bs=block, end_fsync=1)
        (folder / "fio.bin").unlink()
        return job["write"]["bw_bytes"] / 1e6, None

    # fio reads io-6's file: the same blocks of the same file, wherever the filesystem put them
    def fio_read() -> tuple[float, None]:
        job = fio(folder, ours_path.name, size, direct, rw="read", bs=block)
        return job["read"]["bw_bytes"] / 1e6, None

    def fio_random() -> tuple[float, float | None]:
        job = fio(
            folder,
            ours_path.name,
            size,
            direct,
            rw="randread",
            bs=access.PAGE,
            io_size=reads * access.PAGE,
            norandommap=1,
            randrepeat=0,
        )
        return job["read"]["iops"], _fio_p99(job["read"])

    phases: list[tuple[str, str, Measure, Measure]] = [
        ("sequential write, 1 MiB", "MB/s", our_write, fio_write),
        ("sequential read, 1 MiB", "MB/s", our_read, fio_read),
        ("random read, 4 KiB", "IOPS", our_random, fio_random),
    ]
    figures = []
    for name, unit, ours, theirs in phases:
        if ours is our_read:
            untimed_read(ours_path)
            settle(rest)
        measured = {}
        for side in (theirs, ours) if fio_first else (ours, theirs):
            measured[side] = side()
            settle(rest)
        (our_value, our_p99), (fio_value, fio_p99) = measured[ours], measured[theirs]
        figures.append(Figure(name, unit, our_value, fio_value, our_p99, fio_p99))
    return figures


def untimed_read(path: Path) -> None:
    """Read a freshly written file once, untimed, then drop it from the cache. The first read
    after a write is slow on some storage (here, up to 4x, whoever reads); without this the side
    that happens to read first would pay for it."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        while os.read(descriptor, access.BLOCK):
            pass
        storage.drop_cache(descriptor)
    finally:
        os.close(descriptor)


def medians(runs: list[list[Figure]]) -> list[Figure]:
    """Per phase, the median of each side over the repetitions, and of the rounds' ratios: the
    two sides of a round ran back to back, so a drift of the storage's speed over the run (burst
    credits of a cloud disk) cancels in a round's ratio but not across medians."""

    def median(values: list[float | None]) -> float | None:
        present = [value for value in values if value is not None]
        return statistics.median(present) if present else None

    return [
        Figure(
            same[0].phase,
            same[0].unit,
            statistics.median(figure.ours for figure in same),
            statistics.median(figure.fio for figure in same),
            median([figure.ours_p99_us for figure in same]),
            median([figure.fio_p99_us for figure in same]),
            tuple(figure.ratio for figure in same),
        )
        for same in zip(*runs, strict=True)
    ]


def _spread(ratios: tuple[float, ...]) -> str:
    return f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else ""


def _print(mode: str, figures: list[Figure]) -> None:
    print(f"\n{mode}")
    header = f"{'phase':<26} {'unit':>5} {'io-6':>10} {'fio':>10} {'ratio':>6} {'rounds':>11}"
    print(f"{header}  p99 µs io-6 / fio")
    for figure in figures:
        flag = "" if figure.ratio >= TARGET else f"  below {TARGET}"
        latency = ""
        if figure.ours_p99_us is not None and figure.fio_p99_us is not None:
            latency = f"  {figure.ours_p99_us:.0f} / {figure.fio_p99_us:.0f}"
        print(
            f"{figure.phase:<26} {figure.unit:>5} {figure.ours:>10.1f} {figure.fio:>10.1f} "
            f"{figure.ratio:>6.2f} {_spread(figure.round_ratios):>11}{latency}{flag}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="folder on the filesystem")
    parser.add_argument("--size", type=parse_size, default=parse_size("1g"), help="file size")
    parser.add_argument("--mode", choices=("direct", "buffered", "both"), default="both")
    parser.add_argument("--random-reads", type=int, default=20_000)
    parser.add_argument("--chunk", type=parse_size, default=parse_size("16m"))
    parser.add_argument("--repeat", type=int, default=3, help="medians over this many runs")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after each phase")
    args = parser.parse_args()
    if shutil.which("fio") is None:
        print(
            "fio is not installed: apt-get install -y fio (Debian, Ubuntu) or dnf install fio",
            file=sys.stderr,
        )
        return 2
    size = storage.round_down(args.size, access.BLOCK) or access.BLOCK
    args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".io-vs-fio-", dir=args.dir) as name:
        folder = Path(name)
        mount = mount_of(folder)
        direct = storage.probe_direct_io(folder)
        print(
            f"{folder} on {mount.fstype if mount else '?'}, files of {format_size(size)}, "
            f"{args.random_reads} random reads; O_DIRECT: {direct.reason}"
        )
        modes = ("direct", "buffered") if args.mode == "both" else (args.mode,)
        for mode in modes:
            if mode == "direct" and not direct.supported:
                print("\ndirect: skipped, the filesystem has no O_DIRECT")
                continue
            runs = []
            for number in range(max(1, args.repeat)):
                direct_io, fio_first = mode == "direct", number % 2 == 1
                runs.append(
                    compare(
                        folder,
                        size,
                        direct_io,
                        args.random_reads,
                        args.chunk,
                        fio_first,
                        args.settle,
                    )
                )
                for path in folder.iterdir():
                    path.unlink()
            _print(f"{mode} (median of {len(runs)})", medians(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
