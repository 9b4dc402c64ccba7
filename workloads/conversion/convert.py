"""A window of a log into a trace: every replayable record a task that keeps where it came from
(``source``), and ``meta.source`` the file, its sha256, the window, the scale factors, the
offered loads and the mapping, so a replay can be traced back to the log."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import workloads
from workloads.conversion.mapping import Mapper, Rule, classify
from workloads.conversion.sizing import Request, Sizer, describe, largest_envelope
from workloads.conversion.window import Scaling, Window, gpu_demand, select, source_load
from workloads.manifest import Manifest, Workload
from workloads.sizes import GIB
from workloads.sources import NodeShape, SourceJob, SourceLog
from workloads.taskspec import Images, command
from workloads.tracefile import (
    LogLoad,
    LogMapping,
    LogNode,
    LogSource,
    LogWindow,
    Origin,
    TraceFile,
    TraceMeta,
    TraceTask,
)

# Run times on the target are clamped to this unless --duration-range says otherwise: at least
# the bounded slowdown's 10 s (a shorter task is mostly its start-up), at most 2 minutes.
DEFAULT_DURATION_RANGE = (10.0, 120.0)
# A matched load within this of the one asked for is a match.
LOAD_TOLERANCE = 0.01


class ConversionError(ValueError):
    """Options the window cannot be converted with (one line)."""


@dataclass
class ConvertOptions:
    first: int = 0
    count: int | None = None
    time_scale: float | None = None
    span: float | None = None
    load: float | None = None
    duration_range: tuple[float, float] | None = None
    node: NodeShape | None = None  # the target's node; default the largest envelope
    nodes: int = 1
    source_node: NodeShape | None = None  # default: what the log says
    rules: list[Rule] = field(default_factory=list)
    map_file: str | None = None
    seed: int = 0
    images: Images = field(default_factory=Images)
    controls: dict[str, str] = field(default_factory=dict)


@dataclass
class Converted:
    trace: TraceFile
    warnings: list[str]


def convert(log: SourceLog, options: ConvertOptions, manifest: Manifest) -> Converted:
    window = select(log, options.first, options.count)
    target = options.node or largest_envelope(manifest)
    source = options.source_node or log.node
    if source is None:
        raise ConversionError(
            f"{log.path.name} does not say how large its nodes are: give --source-node"
        )
    sizer = Sizer(source, target)
    mapper = Mapper(manifest, options.rules)
    chosen = [_choose(job, sizer, mapper) for job in window.jobs]
    requests = [
        sizer.request(job, workload)
        for job, (workload, _, _) in zip(window.jobs, chosen, strict=True)
    ]
    low, high = options.duration_range or DEFAULT_DURATION_RANGE
    scalings = {
        resource: Scaling(
            submits=np.array([job.submit - window.opens for job in window.jobs]),
            runtimes=np.array([job.runtime for job in window.jobs]),
            requests=np.array([getattr(request, resource) for request in requests], float),
            capacity=getattr(target, resource) * options.nodes,
            low=low,
            high=high,
        )
        for resource in ("cpus", "gpus")
    }
    capacity = log.capacity
    source_loads = {
        "cpus": source_load(window, capacity.cpus if capacity else None, lambda job: job.cpus),
        "gpus": source_load(window, capacity.gpus if capacity else None, gpu_demand),
    }
    # The load kept is of GPUs when the replay asks for GPUs, else of CPUs.
    matched = "gpus" if any(request.gpus for request in requests) else "cpus"
    scale, how, warnings = _time_scale(window, options, scalings[matched], source_loads[matched])
    durations = scalings[matched].durations(scale)
    tasks = _tasks(window, chosen, requests, durations, scale, options, log.format)
    source_node = _node(source, log.nodes, "--source-node" if options.source_node else "the log")
    origin = LogSource(
        file=log.path.name,
        sha256=_sha256(log.path),
        format=log.format,
        records=len(log.records),
        header=log.header,
        acknowledge=log.acknowledge,
        window=LogWindow(
            first=window.first,
            count=options.count,
            last=window.last,
            tasks=len(tasks),
            skipped=window.skipped,
            running_when_it_opens=len(window.carried),
        ),
        time_scale=scale,
        time_scale_from=how,
        duration_range=(low, high),
        durations_clamped=_clamped(scalings[matched], scale),
        span_s={"source": window.span, "trace": window.span / scale},
        source_node=source_node,
        target_node=_node(target, options.nodes),
        load=LogLoad(
            matched=matched,
            asked=options.load,
            source=source_loads,
            target={name: s.load(scale) for name, s in scalings.items()},
        ),
        mapping=LogMapping(
            rules=options.map_file or "default",
            by_rule=dict(Counter(rule for _, _, rule in chosen)),
            by_workload=dict(Counter(workload.id for workload, _, _ in chosen)),
        ),
    )
    meta = TraceMeta(
        generator=f"cloudai-workloads {workloads.__version__}",
        seed=options.seed,
        controls=options.controls,
        source=origin,
    )
    return Converted(TraceFile(meta=meta, tasks=tasks), warnings)


def _choose(job: SourceJob, sizer: Sizer, mapper: Mapper) -> tuple[Workload, list[Workload], str]:
    job_class = classify(job, sizer.cpu_share(job), sizer.memory_share(job))
    workload, candidates, rule = mapper.choose(job, job_class)
    fitting = [w for w in candidates if sizer.misfit(w) is None]
    if sizer.misfit(workload) is not None:
        if not fitting:
            raise ConversionError(
                f"--node {describe(sizer.target)}: record {job.index} (job {job.id}, line "
                f"{job.line}) maps to {workload.id} ({rule}), which {sizer.misfit(workload)}"
            )
        workload = Mapper.pick(fitting, job, job_class)
    return workload, candidates, rule


def _time_scale(
    window: Window, options: ConvertOptions, scaling: Scaling, source: float | None
) -> tuple[float, str, list[str]]:
    """F, how it was chosen, and a warning when the load asked for is out of reach."""
    if options.time_scale is not None:
        return options.time_scale, "--time-scale", []
    if window.span <= 0:
        if options.span is not None or options.load is not None:
            raise ConversionError(
                "the window's arrivals span 0 s: --span and --load cannot scale it "
                "(give --time-scale, or a wider window)"
            )
        return 1.0, "the window's arrivals span 0 s", []
    if options.span is not None:
        return window.span / options.span, "--span", []
    asked = options.load if options.load is not None else source
    if asked is None:
        raise ConversionError(
            "the log does not say its cluster's capacity, so its load is unknown: "
            "give --load, --time-scale or --span"
        )
    scale, reached = scaling.scale_for(asked)
    warnings = []
    if abs(reached - asked) > LOAD_TOLERANCE * asked:
        warnings.append(
            f"offered load {asked:.3g} is out of reach with durations in "
            f"{scaling.low:g}:{scaling.high:g} s; the nearest is {reached:.3g} "
            f"(time scale {scale:.4g})"
        )
    return scale, "--load" if options.load is not None else "the source's load", warnings


def _clamped(scaling: Scaling, scale: float) -> dict[str, int]:
    scaled = scaling.runtimes / scale
    return {
        "raised_to_min": int((scaled < scaling.low).sum()),
        "cut_to_max": int((scaled > scaling.high).sum()),
    }


def _node(node: NodeShape, count: int | None, given_by: str | None = None) -> LogNode:
    memory = None if node.memory is None else round(node.memory / GIB, 3)
    shape = {"cpus": node.cpus, "memory_gib": memory, "gpus": node.gpus, "nodes": count}
    # "from" only where it was said, so a target node's record has no such key
    return LogNode(**shape, **({"given_by": given_by} if given_by else {}))


def _seconds(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _tasks(
    window: Window,
    chosen: list[tuple[Workload, list[Workload], str]],
    requests: list[Request],
    durations: np.ndarray,
    scale: float,
    options: ConvertOptions,
    log_format: str,
) -> list[TraceTask]:
    seeds = np.random.default_rng([options.seed, 0x50C]).integers(0, 2**32, len(window.jobs))
    tasks = []
    for number, (job, (workload, _, _), request) in enumerate(
        zip(window.jobs, chosen, requests, strict=True)
    ):
        duration = max(round(float(durations[number]), 1), 0.1)
        flags = {"duration": _seconds(duration), "seed": str(int(seeds[number]))}
        if request.cpus < workload.envelope.cpus and "workers" not in options.controls:
            flags["workers"] = str(math.ceil(request.cpus - 1e-9))  # as a CPU quota would
        tasks.append(
            TraceTask(
                submit_time=round((job.submit - window.opens) / scale, 3),
                task_id=number,
                task_name=workload.id,
                category=workload.category,
                task_type=workload.task_type,
                image=options.images.of(workload),
                command=command(workload, flags | options.controls),
                cpu_request=request.cpus,
                memory_request_gib=round(request.memory / GIB, 3),
                disk_request_gib=round(workload.envelope.disk / GIB, 3),
                gpu_request=request.gpus,
                duration_seconds=duration,
                seed=int(seeds[number]),
                user=job.user,
                queue=job.queue,
                gpu_share=job.gpu_share if request.gpus else None,
                source=_origin(job, log_format, scale),
            )
        )
    return tasks


def _origin(job: SourceJob, log_format: str, scale: float) -> Origin:
    return Origin(
        format=log_format,
        id=job.id,
        line=job.line,
        user=job.user,
        group=job.group,
        queue=job.queue,
        application=job.application,
        submit=job.submit,
        wait=job.wait,
        runtime=job.runtime,
        processors=job.cpus,
        memory_gib=None if job.memory is None else round(job.memory / GIB, 4),
        gpus=job.gpus,
        gpu_share=job.gpu_share,
        status=job.status,
        time_scale=scale,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
