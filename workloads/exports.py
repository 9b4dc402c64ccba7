"""The catalogue as Kubernetes Jobs, and as the master/worker system's task specs (what a task
is for any scheduler, workloads/taskspec.py): from the manifest alone, the image, its launcher
and the declared envelope."""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from typing import Any

from workloads.manifest import Workload
from workloads.runtime.choices import METRICS_PATH
from workloads.sizes import GIB
from workloads.taskspec import (  # noqa: F401 (exports' names of old)
    DEFAULT_K_VALUE,
    DEFAULT_NAMESPACE,
    DEFAULT_REGISTRY,
    DEFAULT_USER,
    K_VALUE_RANGE,
    Images,
    MasterTask,
    command,
    task_spec,
)

RESULTS_MOUNT = "/results"
# Kubernetes ends a Job that runs past its duration (the explicit one, else the longest default
# one) times DEADLINE_MARGIN, plus DEADLINE_SLACK seconds for scheduling, the image's pull and
# start-up (activeDeadlineSeconds counts from the Job's start, not the container's).
DEADLINE_MARGIN = 1.5
DEADLINE_SLACK = 120
# The ephemeral-storage limit is the envelope's disk (the request) plus this share, for the
# container's log and the document beside the scratch data.
EPHEMERAL_HEADROOM = 0.25


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
