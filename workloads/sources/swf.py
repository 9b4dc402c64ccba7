"""The Standard Workload Format of the Parallel Workloads Archive (``.swf``, ``.swf.gz``): a
header of ``; Key: value`` lines, then one job per line, 18 whitespace-separated numbers, -1 for
unknown (Feitelson's definition, https://www.cs.huji.ac.il/labs/parallel/workload/swf.html).

Kept per job: submit, wait, run time, processors (allocated, else requested), memory (requested
per processor, else used, times processors, KiB), the CPU used (average CPU time per processor
over the run time), status, user, group, application, queue (else partition). Skipped, with
the reason: cancelled before it started (status 5 without a run time), never started (no run
time), no processors. A cluster node is MaxProcs / MaxNodes processors from the header.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from workloads.sources import NodeShape, SourceError, SourceJob, SourceLog

NAME = "swf"
FIELDS = 18
STATUS = {
    0: "failed",
    1: "completed",
    2: "partial",
    3: "completed (last partial)",
    4: "failed (last partial)",
    5: "cancelled",
}
CANCELLED = 5


def looks_like(head: str) -> bool:
    for line in head.splitlines()[:200]:
        text = line.strip()
        if not text:
            continue
        if text.startswith(";"):
            return True
        parts = text.split()
        try:
            [float(part) for part in parts]
        except ValueError:
            return False
        return len(parts) == FIELDS
    return False


def _known(value: float) -> str | None:
    return None if value < 0 else str(int(value))


def _job(index: int, number: int, v: list[float]) -> SourceJob:
    runtime, status = v[3], int(v[10])
    cpus = v[4] if v[4] > 0 else v[7]
    per_processor = v[9] if v[9] > 0 else v[6]
    skip = None
    if status == CANCELLED and runtime <= 0:
        skip = "cancelled before start"
    elif runtime < 0:
        skip = "never started"
    elif cpus <= 0:
        skip = "no processors"
    return SourceJob(
        index=index,
        line=number,
        id=str(int(v[0])),
        submit=v[1],
        wait=v[2] if v[2] >= 0 else None,
        runtime=max(runtime, 0.0),
        cpus=max(cpus, 0.0),
        memory=per_processor * 1024 * cpus if per_processor >= 0 and cpus > 0 else None,
        user=_known(v[11]),
        group=_known(v[12]),
        application=_known(v[13]),
        queue=_known(v[14]) or (f"partition {int(v[15])}" if v[15] >= 0 else None),
        status=STATUS.get(status, str(status)) if status >= 0 else None,
        cpu_fraction=v[5] / runtime if v[5] >= 0 and runtime > 0 else None,
        skip=skip,
    )


def read(path: Path, lines: Iterable[str]) -> SourceLog:
    header: dict[str, str] = {}
    records: list[SourceJob] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith(";"):
            key, colon, value = text.lstrip("; ").partition(":")
            if colon and key and " " not in key.strip() and key.strip() not in header:
                header[key.strip()] = value.strip()
            continue
        parts = text.split()
        try:
            if len(parts) != FIELDS:
                raise ValueError
            values = [float(part) for part in parts]
        except ValueError:
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise SourceError(
                f"{path}:{number}: not an SWF record ({FIELDS} numbers): {shown!r}"
            ) from None
        records.append(_job(len(records), number, values))
    return SourceLog(
        format=NAME,
        path=path,
        records=records,
        **_cluster(header, records),
        header=header,
        acknowledge=header.get("Acknowledge"),
    )


def _number(header: dict[str, str], key: str) -> float | None:
    try:
        value = float(header.get(key, "").split()[0])
    except (ValueError, IndexError):
        return None
    return value if value > 0 else None


def _cluster(header: dict[str, str], records: list[SourceJob]) -> dict:
    """The node and the cluster from the header; without MaxProcs, the largest job's
    processors; without MaxNodes, the cluster counts as one node."""
    processors = _number(header, "MaxProcs") or max((job.cpus for job in records), default=0)
    if not processors:
        return {}
    nodes = _number(header, "MaxNodes") or 1.0
    return {
        "node": NodeShape(cpus=processors / nodes),
        "nodes": int(nodes),
        "capacity": NodeShape(cpus=processors),
    }
