"""Resolving a run's parameters from the controls given, the manifest and the detected limits."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workloads.manifest import Workload
from workloads.runtime.limits import Limits
from workloads.runtime.results import choose_results_dir
from workloads.sizes import format_size

# Headroom left under the memory limit for the page cache, allocator slack and the interpreter's
# own growth: the budget is what the workload's data may take.
MEMORY_HEADROOM = 0.15
# Resident size of one spawned worker before it allocates anything (Python, numpy, the runtime).
WORKER_FOOTPRINT = 48 << 20
MINIMUM_BUDGET = 16 << 20


@dataclass(frozen=True)
class Given:
    """A control's value and where it came from (the options layer makes these)."""

    value: Any
    source: str  # "flag" or "env"


class InsufficientMemory(Exception):
    """The memory limit leaves no room for the workload's data."""


@dataclass(frozen=True)
class RunParams:
    duration: float
    iterations: int | None
    scale: float
    seed: int
    workers: int
    memory: int | None  # requested budget in bytes; the effective one is resolved at run time
    profile: str
    intensity: float
    device: str
    results_dir: Path
    work_dir: Path | None  # where the scratch folder goes; None: inside the results folder
    disk: int | None  # requested disk budget in bytes; the effective one is resolved at run time
    sample_interval: float
    progress: str = "auto"
    metrics_port: int | None = None
    metrics_textfile: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["results_dir"] = str(self.results_dir)
        data["work_dir"] = str(self.work_dir) if self.work_dir else None
        data["metrics_textfile"] = str(self.metrics_textfile) if self.metrics_textfile else None
        return data


def draw_duration(workload: Workload, seed: int) -> float:
    """The default duration: uniform in the manifest's range, from the seed alone."""
    import numpy as np  # here: the options layer imports this module, numpy is slow

    rng = np.random.default_rng([seed, 0xD0])
    return round(float(rng.uniform(workload.duration.min, workload.duration.max)), 1)


def resolve_params(workload: Workload, given: dict[str, Given], limits: Limits) -> RunParams:
    def value(name: str, default: Any) -> Any:
        return given[name].value if name in given else default

    sources = {name: item.source for name, item in given.items()}
    run_seed = value("seed", None)
    if run_seed is None:
        run_seed = secrets.randbelow(2**32)
        sources["seed"] = "random"
    duration = value("duration", None)
    if duration is None:
        duration = draw_duration(workload, run_seed)
        sources["duration"] = "manifest"
    return RunParams(
        duration=duration,
        iterations=value("iterations", None),
        scale=value("scale", 1.0),
        seed=run_seed,
        workers=value("workers", limits.default_workers(workload.envelope.cpus)),
        memory=value("memory", None),
        profile=value("profile", "steady"),
        intensity=value("intensity", 100.0),
        device=value("device", "auto"),
        results_dir=choose_results_dir(value("results_dir", None)),
        work_dir=value("work_dir", None),
        disk=value("disk", None),
        sample_interval=value("sample_interval", 1.0),
        progress=value("progress", "auto"),
        metrics_port=value("metrics_port", None),
        metrics_textfile=value("metrics_textfile", None),
        sources=sources,
    )


def memory_budget(
    workload: Workload,
    params: RunParams,
    limits: Limits,
    resident: int,
    worker_processes: int,
) -> tuple[int, str | None]:
    """Bytes the workload's data may use, and a warning when a request had to be lowered.

    By default the process tree fits under both the envelope and the memory limit (less headroom),
    after the parent's current resident size and each worker's footprint.
    """
    overhead = resident + worker_processes * WORKER_FOOTPRINT
    # An explicit request may exceed the envelope (the default) but never the limit.
    safe = int(limits.memory_ceiling * (1 - MEMORY_HEADROOM)) - overhead
    budget = (
        min(params.memory, safe)
        if params.memory
        else min(safe, workload.envelope.memory - overhead)
    )
    if budget < MINIMUM_BUDGET:
        raise InsufficientMemory(
            f"memory budget {format_size(max(budget, 0))} is below the "
            f"{format_size(MINIMUM_BUDGET)} minimum (memory limit "
            f"{format_size(limits.memory_ceiling)}, runtime {format_size(overhead)}); "
            "raise the limit or --memory, or lower --workers"
        )
    if params.memory and params.memory > safe:
        return budget, (
            f"--memory {format_size(params.memory)} lowered to {format_size(budget)} "
            "to stay inside the memory limit"
        )
    return budget, None
