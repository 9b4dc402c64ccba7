"""A workload as a scheduler's task: where its image lives, the command its image runs, and the
master/worker system's task fields. What ``tasks``, ``trace`` and the conversion of real logs
share (edge formats: memory and storage in GiB, as the master's API states them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from workloads.manifest import Workload
from workloads.sizes import GIB

# The master's SLA multiplier: its handler accepts 1.5 to 2.5 and defaults to 2.0.
K_VALUE_RANGE, DEFAULT_K_VALUE = (1.5, 2.5), 2.0
DEFAULT_USER = "cloudai"
# The defaults of docker-bake.hcl and compose.yaml: a registry on this machine (scripts/docker-up
# starts one), never a namespace this project does not own.
DEFAULT_REGISTRY = "localhost:5000"
DEFAULT_NAMESPACE = "cloudai"


@dataclass(frozen=True)
class Images:
    """Where the images live: the same variables as docker-bake.hcl and compose.yaml."""

    registry: str = DEFAULT_REGISTRY
    namespace: str = DEFAULT_NAMESPACE

    def of(self, workload: Workload) -> str:
        return workload.image(self.registry, self.namespace)


def command(workload: Workload, controls: dict[str, str] | None = None) -> str:
    """The shell command the worker runs in the image: ``python cpu_process_3.py [--flag v]``."""
    flags = "".join(
        f" --{name.replace('_', '-')} {value}" for name, value in (controls or {}).items()
    )
    return f"python {workload.launcher}{flags}"


def _gib(size: int) -> float:
    return round(size / GIB, 3)


def task_spec(workload: Workload, images: Images, controls: dict[str, str]) -> dict[str, Any]:
    """The master/worker system's task fields (it assigns the task id and submission time)."""
    envelope = workload.envelope
    return {
        "name": workload.id,
        "image": images.of(workload),
        "command": command(workload, controls),
        "cpu": envelope.cpus,
        "memory_gib": _gib(envelope.memory),
        "storage_gib": _gib(envelope.disk),
        "gpu": envelope.gpus,
        "task_type": workload.task_type,
        "description": workload.title,
    }


@dataclass(frozen=True)
class MasterTask:
    """A request body of the master's ``POST /api/tasks``, with exactly its handler's fields.
    Memory and storage are in GiB: the worker sets the container's memory limit to
    ``memory * 2**30`` bytes and NanoCPUs to ``cpu * 1e9``; ``tag`` becomes the task type its
    scheduler uses (the manifest's task types are that vocabulary)."""

    docker_image: str
    command: str
    cpu_required: float
    memory_required: float
    gpu_required: int
    storage_required: float  # sent even when 0: the handler reads an absent one as 1024
    user_id: str
    tag: str
    k_value: float

    @classmethod
    def of(
        cls,
        workload: Workload,
        images: Images,
        controls: dict[str, str],
        *,
        k_value: float = DEFAULT_K_VALUE,
        user: str = DEFAULT_USER,
    ) -> MasterTask:
        envelope = workload.envelope
        return cls(
            docker_image=images.of(workload),
            command=command(workload, controls),
            cpu_required=envelope.cpus,
            memory_required=_gib(envelope.memory),
            gpu_required=envelope.gpus,
            storage_required=_gib(envelope.disk),
            user_id=user,
            tag=workload.task_type,
            k_value=k_value,
        )

    def body(self) -> dict[str, Any]:
        return asdict(self)
