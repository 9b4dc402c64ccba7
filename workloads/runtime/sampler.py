"""Samples the resources of the whole process tree from a background thread.

Each sample holds per-interval rates (cores busy, bytes read/written per second), not cumulative
counters. The totals for the document come from the kernel once the workers are reaped: os.times()
and /proc/self/io include waited-for children.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import psutil


class Probe(Protocol):
    """Extra per-sample readings, e.g. a GPU's utilisation; returns keys of the sample."""

    def read(self) -> dict[str, float | None]: ...


@dataclass
class _Counters:
    cpu_seconds: float
    read_bytes: int
    write_bytes: int
    rss_bytes: int


def _descendants(process: psutil.Process) -> list[psutil.Process]:
    # psutil flags an object whose identity check once failed (it can under QEMU user-mode
    # emulation) and refuses it from then on; a sample without children beats no sample.
    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


def _tree_counters() -> _Counters:
    """CPU seconds, bytes and RSS of this process and its descendants (a fresh Process object
    each time, so no stale identity is carried from one sample to the next)."""
    process = psutil.Process()
    times = process.cpu_times()
    cpu = times.user + times.system + times.children_user + times.children_system
    read, written = _io(process)
    rss = process.memory_info().rss
    for child in _descendants(process):
        with contextlib.suppress(psutil.Error):
            child_times = child.cpu_times()
            cpu += child_times.user + child_times.system
            rss += child.memory_info().rss
            child_read, child_written = _io(child)
            read += child_read
            written += child_written
    return _Counters(cpu, read, written, rss)


def _io(process: psutil.Process) -> tuple[int, int]:
    try:
        counters = process.io_counters()
    except (psutil.Error, AttributeError, NotImplementedError):
        return 0, 0
    return counters.read_bytes, counters.write_bytes


@dataclass
class ResourceSampler:
    interval: float
    origin: float  # time.monotonic() of the run's start
    target: Callable[[float], float]  # load-shape target fraction at t
    iterations: Callable[[], int]
    probes: list[Probe] = field(default_factory=list)
    # The run began with this process: at the origin every counter was zero, so the first
    # sample covers the start-up too, as the totals do and as readers of the series assume.
    from_process_start: bool = False
    on_sample: Callable[[dict[str, float | None]], None] | None = None
    samples: list[dict[str, float | None]] = field(default_factory=list)
    peak_rss_bytes: int = 0
    peaks: dict[str, float] = field(default_factory=dict)
    # Running totals of the process tree since the start, for counters that never go down.
    cumulative: dict[str, float] = field(
        default_factory=lambda: {"cpu_seconds": 0.0, "read_bytes": 0.0, "write_bytes": 0.0}
    )

    def __post_init__(self) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cloudai-sampler", daemon=True)
        self._lock = threading.Lock()
        if self.from_process_start:
            self._last = (self.origin, _Counters(0.0, 0, 0, 0), 0)
        else:
            self._last = (time.monotonic(), _tree_counters(), self.iterations())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and take a last sample covering the final partial interval."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        if time.monotonic() - self._last[0] >= min(0.1, self.interval):
            with contextlib.suppress(psutil.Error, OSError):  # never worth losing the document
                self.sample()

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            with contextlib.suppress(psutil.Error, OSError):
                self.sample()

    def sample(self) -> dict[str, float | None]:
        with self._lock:
            now, counters, done = time.monotonic(), _tree_counters(), self.iterations()
            before, previous, done_before = self._last
            self._last = (now, counters, done)
            span = max(now - before, 1e-6)
            for key in self.cumulative:  # a reaped child's counters may leave the tree: clamp
                self.cumulative[key] += max(0, getattr(counters, key) - getattr(previous, key))
            sample: dict[str, float | None] = {
                "t": round(now - self.origin, 3),
                "cpu_cores": round(max(0.0, counters.cpu_seconds - previous.cpu_seconds) / span, 3),
                "rss_bytes": counters.rss_bytes,
                "read_bytes_per_s": round(max(0, counters.read_bytes - previous.read_bytes) / span),
                "write_bytes_per_s": round(
                    max(0, counters.write_bytes - previous.write_bytes) / span
                ),
                "iterations_per_s": round((done - done_before) / span, 3),
                "target_intensity_pct": round(100 * self.target(now - self.origin), 1),
                "gpu_util_pct": None,
                "gpu_memory_bytes": None,
                "gpu_power_w": None,
            }
            for probe in self.probes:
                with contextlib.suppress(Exception):
                    sample.update(probe.read())
            self.peak_rss_bytes = max(self.peak_rss_bytes, counters.rss_bytes)
            for key in ("gpu_memory_bytes", "gpu_util_pct"):
                value = sample.get(key)
                if value is not None:
                    self.peaks[key] = max(self.peaks.get(key, 0.0), float(value))
            self.samples.append(sample)
        if self.on_sample is not None:
            self.on_sample(sample)
        return sample


def process_tree_totals(since: dict[str, float] | None = None) -> dict[str, float]:
    """CPU seconds, peak RSS and bytes of the process and its reaped children, counted from
    ``since`` (an earlier return value) when given."""
    times = os.times()
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    read, written = _io(psutil.Process())
    totals = {
        "cpu_seconds": times.user + times.system + times.children_user + times.children_system,
        "max_rss_bytes": max(own.ru_maxrss, children.ru_maxrss) * 1024,  # KiB on Linux
        "read_bytes": read,
        "write_bytes": written,
    }
    for key in ("cpu_seconds", "read_bytes", "write_bytes") if since else ():
        totals[key] -= since[key]  # type: ignore[index]
    return totals
