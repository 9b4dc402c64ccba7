"""Seeded arrival traces for scheduler experiments: N tasks drawn from a mix of the catalogue,
arriving by a Poisson process or at a fixed rate, each with its own duration and seed.

The fields follow public cluster traces (Google's cluster data, Alibaba's batch_task): a submit
time, a task id and name, the requested resources and how long the task runs.
"""

from __future__ import annotations

import json

import numpy as np

from workloads.manifest import Manifest, Workload
from workloads.runfolder import TraceTask
from workloads.sizes import GIB
from workloads.taskspec import Images, MasterTask, command


class MixError(ValueError):
    """A mix that names no workload, or a weight that is not a positive number."""


def parse_mix(text: str, manifest: Manifest) -> dict[str, float]:
    """``io=1,cpu=2,gpu-3=0.5``: categories spread their weight evenly over their workloads."""
    weights: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, _, weight_text = part.partition("=")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise MixError(f"weight of {name!r} is not a number: {weight_text!r}") from None
        if weight <= 0:
            raise MixError(f"weight of {name!r} must be positive")
        members = [w.id for w in manifest if w.category == name] or (
            [name] if manifest.get(name) else []
        )
        if not members:
            raise MixError(f"{name!r} is neither a category (io, cpu, gpu) nor a workload id")
        for member in members:
            weights[member] = weights.get(member, 0.0) + weight / len(members)
    if not weights:
        raise MixError("the mix is empty")
    return weights


def generate(
    manifest: Manifest,
    *,
    tasks: int,
    mix: dict[str, float],
    arrival: str,
    rate: float,
    seed: int,
    images: Images,
    duration_scale: float = 1.0,
    duration_range: tuple[float, float] | None = None,
    controls: dict[str, str] | None = None,
) -> list[TraceTask]:
    """``tasks`` tasks; ``rate`` is arrivals per second. A task's duration is drawn from its
    workload's range (or ``duration_range``, seconds), times ``duration_scale``; ``controls``
    are passed to every task's command. The same arguments give the same trace."""
    rng = np.random.default_rng([seed, 0x7ACE])
    names = sorted(mix)
    weights = np.array([mix[name] for name in names])
    chosen = rng.choice(len(names), size=tasks, p=weights / weights.sum())
    if arrival == "poisson":
        gaps = rng.exponential(1.0 / rate, size=tasks)
        gaps[0] = 0.0
    else:
        gaps = np.full(tasks, 1.0 / rate)
        gaps[0] = 0.0
    submit_times = np.cumsum(gaps)
    fractions = rng.random(tasks)
    task_seeds = rng.integers(0, 2**32, size=tasks)
    trace = []
    for number, (index, submit, fraction, task_seed) in enumerate(
        zip(chosen, submit_times, fractions, task_seeds, strict=True)
    ):
        workload = manifest.get(names[index])
        assert workload is not None
        low, high = duration_range or (workload.duration.min, workload.duration.max)
        duration = round((low + float(fraction) * (high - low)) * duration_scale, 1)
        trace.append(
            _task(workload, number, float(submit), duration, int(task_seed), images, controls)
        )
    return trace


def _task(
    workload: Workload,
    number: int,
    submit: float,
    duration: float,
    seed: int,
    images: Images,
    controls: dict[str, str] | None,
) -> TraceTask:
    envelope = workload.envelope
    flags = {"duration": f"{duration:g}", "seed": str(seed), **(controls or {})}
    return TraceTask(
        submit_time=round(submit, 3),
        task_id=number,
        task_name=workload.id,
        category=workload.category,
        task_type=workload.task_type,
        image=images.of(workload),
        command=command(workload, flags),
        cpu_request=envelope.cpus,
        memory_request_gib=round(envelope.memory / GIB, 3),
        disk_request_gib=round(envelope.disk / GIB, 3),
        gpu_request=envelope.gpus,
        duration_seconds=duration,
        seed=seed,
    )


def to_cloudai(trace: list[TraceTask], *, k_value: float, user: str) -> str:
    """JSON Lines: per task, its submit time and the master's ``POST /api/tasks`` body (the
    handler ignores the extra ``submit_time``)."""
    lines = []
    for task in trace:
        body = MasterTask(
            docker_image=task.image,
            command=task.command,
            cpu_required=task.cpu_request,
            memory_required=task.memory_request_gib,
            gpu_required=task.gpu_request,
            storage_required=task.disk_request_gib,
            user_id=task.user or user,
            tag=task.task_type,
            k_value=k_value,
        ).body()
        lines.append(json.dumps({"submit_time": task.submit_time, **body}))
    return "".join(line + "\n" for line in lines)
