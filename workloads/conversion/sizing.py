"""A job's requests on the target: the same share of a node as it had of a source node.

A job that took a whole source node takes a whole target node, smaller jobs proportionally less,
resource by resource (CPUs, memory, GPUs), each between a floor and the mapped workload's
envelope (and the target node). The floors: 0.25 CPU, and a quarter of the envelope's memory but
at least 256 MiB. A log that does not say a node's memory (SWF) is taken to have
the target's memory per CPU; a job whose memory the log does not say asks its CPU share of it.
A GPU workload asks at least one whole GPU: the engines give whole GPUs (a share is kept as
information, ``gpu_share``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workloads.manifest import Manifest, Workload
from workloads.sizes import GIB, MIB, format_size, parse_size
from workloads.sources import NodeShape, SourceJob

# Below these a workload starts too slowly (0.25 CPU: its imports take about 2 s) or has no
# room for its data beside the interpreter (256 MiB: about 100 MiB left for data; a GPU
# workload's torch needs more, hence a quarter of the envelope).
CPU_FLOOR = 0.25
MEMORY_FLOOR = 256 * MIB
MEMORY_FLOOR_SHARE = 0.25


def memory_floor(workload: Workload) -> int:
    return max(MEMORY_FLOOR, int(workload.envelope.memory * MEMORY_FLOOR_SHARE))


class SizingError(ValueError):
    """A node shape that cannot be read, or that cannot hold a workload (one line)."""


def parse_node(text: str) -> NodeShape:
    """``CPUS:MEMORY[:GPUS]``, e.g. ``2:4g`` or ``8:64g:1``."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        cpus, memory = float(parts[0]), parse_size(parts[1])
        gpus = int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        raise SizingError(f"{text!r} is not CPUS:MEMORY[:GPUS] (e.g. 2:4g, 8:64g:1)") from None
    if not (math.isfinite(cpus) and cpus > 0 and memory > 0 and gpus >= 0):
        raise SizingError(f"{text!r}: CPUs and memory must be positive, GPUs 0 or more")
    return NodeShape(cpus=cpus, memory=float(memory), gpus=gpus)


def largest_envelope(manifest: Manifest) -> NodeShape:
    """The default target node: the largest envelope of the catalogue, resource by resource."""
    return NodeShape(
        cpus=max(w.envelope.cpus for w in manifest),
        memory=float(max(w.envelope.memory for w in manifest)),
        gpus=max(w.envelope.gpus for w in manifest),
    )


def describe(node: NodeShape) -> str:
    return f"{node.cpus:g}:{(node.memory or 0) / GIB:g}g:{node.gpus}"


@dataclass(frozen=True)
class Request:
    cpus: float
    memory: int  # bytes
    gpus: int


class Sizer:
    def __init__(self, source: NodeShape, target: NodeShape) -> None:
        assert target.memory is not None
        self.target = target
        memory = source.memory or source.cpus * target.memory / target.cpus
        self.source = NodeShape(cpus=source.cpus, memory=memory, gpus=source.gpus)

    def cpu_share(self, job: SourceJob) -> float:
        return job.cpus / self.source.cpus

    def memory_share(self, job: SourceJob) -> float:
        if job.memory is None:
            return self.cpu_share(job)
        return job.memory / (self.source.memory or 1.0)

    def request(self, job: SourceJob, workload: Workload) -> Request:
        target, envelope = self.target, workload.envelope
        cpus = self.cpu_share(job) * target.cpus
        memory = self.memory_share(job) * (target.memory or 0)
        gpus = 0
        if envelope.gpus:
            share = job.gpus / self.source.gpus if self.source.gpus else 1.0
            gpus = max(1, min(math.ceil(share * target.gpus - 1e-9), envelope.gpus, target.gpus))
        cpu_cap = min(envelope.cpus, target.cpus)
        memory_cap = min(envelope.memory, target.memory or 0)
        return Request(
            cpus=round(min(max(cpus, CPU_FLOOR), cpu_cap), 2),
            memory=int(min(max(memory, memory_floor(workload)), memory_cap)) // MIB * MIB,
            gpus=gpus,
        )

    def misfit(self, workload: Workload) -> str | None:
        """Why no node of the target's shape can run the workload, or None when one can."""
        target = self.target
        if workload.envelope.gpus and not target.gpus:
            return "needs a GPU"
        if target.cpus < CPU_FLOOR:
            return f"needs at least {CPU_FLOOR:g} CPU"
        if (target.memory or 0) < memory_floor(workload):
            return f"needs at least {format_size(memory_floor(workload))} of memory"
        return None
