"""Alibaba's production GPU cluster trace of 2023 ("openb", cluster-trace-gpu-v2023): the pod
list, a CSV of ``name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec, qos, pod_phase,
creation_time, deletion_time, scheduled_time`` (times in seconds from the trace's start), and
the node list beside it (``openb_node_list*.csv``: ``sn, cpu_milli, memory_mib, gpu, model``).

A pod is submitted at its creation, starts when scheduled and ends at its deletion; its QoS
class (LS, BE, Burstable, Guaranteed) is its queue, its phase its status; ``gpu_milli`` below
1000 is a share of each GPU. A pod never scheduled is skipped. A cluster node is the node list's
most common node; without a node list beside the pods, the cluster is unknown.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from workloads.sizes import MIB
from workloads.sources import NodeShape, SourceError, SourceJob, SourceLog

NAME = "openb"
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "creation_time")
NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu")
NODE_LISTS = "openb_node_list*.csv"


def _header(head: str) -> list[str]:
    first = head.split("\n", 1)[0].strip().lstrip("\ufeff")
    return [name.strip() for name in first.split(",")]


def looks_like(head: str) -> bool:
    """The pod list's header (or the node list's, which ``read`` then names)."""
    columns = set(_header(head))
    return set(POD_COLUMNS) <= columns or set(NODE_COLUMNS) <= columns


def _pod(index: int, number: int, row: dict[str, str]) -> SourceJob:
    created, scheduled = float(row["creation_time"]), row.get("scheduled_time", "").strip()
    deleted = float(row["deletion_time"]) if row.get("deletion_time", "").strip() else None
    gpus, milli = int(row["num_gpu"] or 0), float(row["gpu_milli"] or 0)
    skip, start = None, None
    if not scheduled:
        skip = "never scheduled"
    else:
        start = float(scheduled)
        if deleted is None or deleted < start:
            skip = "no run time"
    return SourceJob(
        index=index,
        line=number,
        id=row["name"],
        submit=created,
        wait=start - created if start is not None else None,
        runtime=(deleted - start) if start is not None and deleted is not None else 0.0,
        cpus=float(row["cpu_milli"]) / 1000,
        memory=float(row["memory_mib"]) * MIB,
        gpus=gpus,
        gpu_share=milli / 1000 if gpus and 0 < milli < 1000 else None,
        queue=row.get("qos") or None,
        status=row.get("pod_phase") or None,
        skip=skip,
    )


def read(path: Path, lines: Iterable[str]) -> SourceLog:
    reader = csv.DictReader(lines)
    columns = [name.strip() for name in reader.fieldnames or []]
    if set(NODE_COLUMNS) <= set(columns):
        raise SourceError(f"{path}: an openb node list, not the pod list: give the pod list")
    missing = [name for name in POD_COLUMNS if name not in columns]
    if missing:
        raise SourceError(f"{path}:1: not an openb pod list (no {', '.join(missing)})")
    records: list[SourceJob] = []
    for row in reader:
        try:
            records.append(_pod(len(records), reader.line_num, row))
        except (ValueError, TypeError, KeyError):
            raise SourceError(
                f"{path}:{reader.line_num}: not an openb pod record: {','.join(row.values())!r}"
            ) from None
    nodes = _nodes(path)
    cluster: dict = {}
    if nodes:
        shape, _ = Counter(nodes).most_common(1)[0]
        cluster = {
            "node": shape,
            "nodes": len(nodes),
            "capacity": NodeShape(
                cpus=sum(node.cpus for node in nodes),
                memory=sum(node.memory or 0 for node in nodes),
                gpus=sum(node.gpus for node in nodes),
            ),
        }
    return SourceLog(format=NAME, path=path, records=records, **cluster)


def _nodes(path: Path) -> list[NodeShape]:
    """The nodes of every node list beside the pod list."""
    nodes = []
    for listing in sorted(path.parent.glob(NODE_LISTS)):
        try:
            with listing.open(encoding="utf-8", newline="") as handle:
                for number, row in enumerate(csv.DictReader(handle), start=2):
                    nodes.append(_node(listing, number, row))
        except OSError as err:
            raise SourceError(f"{listing}: cannot read it: {err.strerror}") from None
    return nodes


def _node(listing: Path, number: int, row: dict[str, str]) -> NodeShape:
    try:
        return NodeShape(
            cpus=float(row["cpu_milli"]) / 1000,
            memory=float(row["memory_mib"]) * MIB,
            gpus=int(row["gpu"]),
        )
    except (ValueError, TypeError, KeyError):
        raise SourceError(f"{listing}:{number}: not an openb node record") from None
