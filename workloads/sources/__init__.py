"""Readers of public cluster logs, one small module per format, each turning its file into the
same records: ``SourceJob`` (one job or pod, in the log's own units: seconds, CPUs, bytes) and
``SourceLog`` (the records in file order, and the cluster they ran on).

A format module offers ``NAME``, ``looks_like(head) -> bool`` (its content, not its file name,
decides) and ``read(path, lines) -> SourceLog``; add one to ``FORMATS`` and ``trace --from``
reads it. A record that cannot be read is a one-line ``SourceError`` naming its line.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

_HEAD_BYTES = 1 << 16


class SourceError(ValueError):
    """A log that cannot be read: unknown format, unreadable file, malformed record (one line)."""


@dataclass(slots=True)
class SourceJob:
    """One record of a log. ``skip`` names why it cannot be replayed (it never ran)."""

    index: int  # its place among the log's records, from 0, in file order
    line: int
    id: str
    submit: float  # seconds since the log's start
    wait: float | None  # start - submit; None: the log does not say
    runtime: float
    cpus: float  # processors (cores) it held
    memory: float | None = None  # bytes, the whole job; None: unknown
    gpus: int = 0
    gpu_share: float | None = None  # of each GPU, below 1 when it shared one
    user: str | None = None
    group: str | None = None
    queue: str | None = None  # queue, partition or QoS class
    application: str | None = None
    status: str | None = None
    cpu_fraction: float | None = None  # CPU time used over runtime, per processor
    skip: str | None = None


@dataclass(frozen=True)
class NodeShape:
    """A node's resources: CPUs, memory in bytes (None: the log does not say), GPUs."""

    cpus: float
    memory: float | None = None
    gpus: int = 0


@dataclass
class SourceLog:
    format: str
    path: Path
    records: list[SourceJob]
    node: NodeShape | None = None  # one node of the cluster, for jobs' relative sizes
    nodes: int | None = None  # how many
    capacity: NodeShape | None = None  # the whole cluster
    header: dict[str, str] = field(default_factory=dict)  # what the log says of itself
    acknowledge: str | None = None  # whom the log asks to be acknowledged


def formats() -> dict[str, ModuleType]:
    from workloads.sources import openb, swf

    return {module.NAME: module for module in (swf, openb)}


def _open_text(path: Path):
    with path.open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return path.open(encoding="utf-8", errors="replace", newline="")


def _unreadable(path: Path, err: Exception) -> SourceError:
    return SourceError(f"{path}: cannot read it: {getattr(err, 'strerror', None) or err}")


def _lines(path: Path) -> Iterator[str]:
    try:
        with _open_text(path) as handle:
            yield from handle
    except (OSError, EOFError) as err:
        raise _unreadable(path, err) from None


def detect(path: Path) -> str:
    """The format of a log, from its first lines."""
    try:
        with _open_text(path) as handle:
            head = handle.read(_HEAD_BYTES)
    except (OSError, EOFError) as err:
        raise _unreadable(path, err) from None
    for name, module in formats().items():
        if module.looks_like(head):
            return name
    known = " or ".join(formats())
    raise SourceError(
        f"{path}: unknown trace format (not {known} by its content); give --source-format"
    )


def read_log(path: Path, format: str | None = None) -> SourceLog:
    """Every record of the log at ``path``, in its format (detected when not given)."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    name = format or detect(path)
    module = formats().get(name)
    if module is None:
        raise SourceError(f"unknown source format {name!r}; known: {', '.join(formats())}")
    return module.read(path, _lines(path))
