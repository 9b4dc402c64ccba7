"""The catalogue as work for schedulers: task specs for the master/worker system, or Kubernetes
Jobs. Both come from the manifest alone: the image, its launcher and the declared envelope."""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from workloads.manifest import Workload
from workloads.runtime.exporter import METRICS_PATH

GIB = 1 << 30
RESULTS_MOUNT = "/results"
# The master's SLA multiplier: its handler accepts 1.5 to 2.5 and defaults to 2.0.
K_VALUE_RANGE, DEFAULT_K_VALUE = (1.5, 2.5), 2.0
DEFAULT_USER = "cloudai"
# Kubernetes ends a Job that runs past its duration (the explicit one, else the longest default
# one) times DEADLINE_MARGIN, plus DEADLINE_SLACK seconds for scheduling, the image's pull and
# start-up (activeDeadlineSeconds counts from the Job's start, not the container's).
DEADLINE_MARGIN = 1.5
DEADLINE_SLACK = 120
# The ephemeral-storage limit is the envelope's disk (the request) plus this share, for the
# container's log and the document beside the scratch data.
EPHEMERAL_HEADROOM = 0.25
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


def _quantity(size: int) -> str:
    """A Kubernetes binary quantity: 512Mi, 2Gi."""
    for suffix, factor in (("Gi", GIB), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def _mebibytes(size: float) -> int:
    """``size`` rounded up to whole MiB."""
    return math.ceil(size / (1 << 20)) << 20


def _cpu(cores: float) -> str:
    return f"{cores:g}" if float(cores).is_integer() else f"{round(cores * 1000)}m"


def deadline_seconds(workload: Workload, controls: dict[str, str]) -> int:
    """activeDeadlineSeconds: the run's duration, explicit or the longest default, with margin."""
    duration = float(controls["duration"]) if "duration" in controls else workload.duration.max
    return math.ceil(duration * DEADLINE_MARGIN) + DEADLINE_SLACK


def new_export_id() -> str:
    """What makes one export's Job names unique (6 hex digits), and labels them together."""
    return secrets.token_hex(3)


def kubernetes_job(
    workload: Workload,
    images: Images,
    controls: dict[str, str],
    results_claim: str | None,
    export_id: str | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job: requests = limits = the envelope, the controls as CLOUDAI_ variables, and
    a results volume (an emptyDir, or the named PersistentVolumeClaim) at /results. Scratch data
    goes to the results volume: to the pod's ephemeral storage with an emptyDir (requested as
    ``ephemeral-storage``), to the claim with one (then nothing is requested of the node)."""
    export_id = export_id or new_export_id()
    envelope = workload.envelope
    requests = {"cpu": _cpu(envelope.cpus), "memory": _quantity(envelope.memory)}
    limits = dict(requests)
    if envelope.disk and not results_claim:  # scratch lives in /results, an emptyDir
        requests["ephemeral-storage"] = _quantity(envelope.disk)
        limits["ephemeral-storage"] = _quantity(
            _mebibytes(envelope.disk * (1 + EPHEMERAL_HEADROOM))
        )
    if envelope.gpus:
        limits["nvidia.com/gpu"] = str(envelope.gpus)
    env = [{"name": "CLOUDAI_" + name.upper(), "value": value} for name, value in controls.items()]
    env.append({"name": "CLOUDAI_RESULTS_DIR", "value": RESULTS_MOUNT})
    volume: dict[str, Any] = {"name": "results"}
    if results_claim:
        volume["persistentVolumeClaim"] = {"claimName": results_claim}
    else:
        volume["emptyDir"] = {}
    labels = {
        "app.kubernetes.io/name": "cloudai-workloads",
        "app.kubernetes.io/component": workload.id,
        "cloudai.org/category": workload.category,
        "cloudai.org/task-type": workload.task_type,
        "cloudai.org/export": export_id,
    }
    container: dict[str, Any] = {
        "name": "workload",
        "image": images.of(workload),
        "args": ["python", workload.launcher],
        "env": env,
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": [{"name": "results", "mountPath": RESULTS_MOUNT}],
    }
    pod_metadata: dict[str, Any] = {"labels": dict(labels)}
    if "metrics_port" in controls:  # the run serves OpenMetrics: say where, the usual way
        port = int(controls["metrics_port"])
        container["ports"] = [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
        pod_metadata["annotations"] = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": METRICS_PATH,
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"cloudai-{workload.id}-{export_id}", "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline_seconds(workload, controls),
            "template": {
                "metadata": pod_metadata,
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 10,
                    # The image's own unprivileged user; fsGroup makes the volume its own.
                    "securityContext": {
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "runAsNonRoot": True,
                    },
                    "containers": [container],
                    "volumes": [volume],
                },
            },
        },
    }


def task_specs(
    workloads: Iterable[Workload], images: Images, controls: dict[str, str]
) -> list[dict[str, Any]]:
    return [task_spec(workload, images, controls) for workload in workloads]


def kubernetes_jobs(
    workloads: Iterable[Workload],
    images: Images,
    controls: dict[str, str],
    results_claim: str | None = None,
    export_id: str | None = None,
) -> list[dict[str, Any]]:
    """One export's Jobs: their names share an id of their own (``cloudai-io-1-3f9a2c``), so that
    a second export applies beside the first, and the label ``cloudai.org/export`` selects them."""
    export_id = export_id or new_export_id()
    return [kubernetes_job(w, images, controls, results_claim, export_id) for w in workloads]
