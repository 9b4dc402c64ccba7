"""The Context: everything a workload's ``run(ctx)`` function may use, and nothing else.

A workload runs its iterations through ``ctx.run_iterations`` (which honours the duration, iteration
limit, stop signals, workers and load shape), then reports metrics and end-of-run checks. The
runner builds the Context once the memory budget is known, over the run's ``RunState``: what the
two share (the clock, the stop flag, the iterations recorded, what the workload reported, the
probes sampled, the scratch folder), which the runner reads to write the document.
"""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workloads.runtime import scratch as scratch_folders
from workloads.runtime.filesystems import mount_of
from workloads.runtime.iterations import Check, IterationFunction
from workloads.runtime.latency import percentiles
from workloads.runtime.loadshape import LoadShape
from workloads.runtime.pool import Plan, run_inline, run_processes
from workloads.runtime.rates import Rate
from workloads.runtime.record import Recorder, Totals
from workloads.sizes import format_size

if TYPE_CHECKING:  # worker processes import this module: keep their start-up light
    from workloads.manifest import Workload
    from workloads.runtime.params import RunParams
    from workloads.runtime.sampler import Probe

# By default scratch data takes at most this fraction of the free space where it lives, and
# an explicit --disk at most the second.
DISK_FREE_FRACTION = 0.5
DISK_FREE_FRACTION_EXPLICIT = 0.9


@dataclass(frozen=True)
class Metric:
    value: float | None  # None: nothing was measured (no iteration, or the phase never ran)
    unit: str


@dataclass
class Reported:
    """What the workload said through its Context: the runner reads this record, and the
    document is assembled from it (with what the runtime measured)."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    rates: dict[str, Rate] = field(default_factory=dict)  # declared before the run: live too
    checks: dict[str, Check] = field(default_factory=dict)
    inconclusive: dict[str, str] = field(default_factory=dict)  # name -> why it could not judge
    details: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    gpu_memory_peak_bytes: float | None = None


class RunState:
    """What a run's Context shares with its runner, from the run's start: the clock
    (``origin``, time.monotonic() at the start, and ``deadline``), the stop flag, the load
    shape, the iterations recorded, what the workload reported, the probes the sampler reads,
    and the scratch folder, made when first asked for."""

    def __init__(
        self,
        *,
        workload: Workload,
        params: RunParams,
        origin: float,
        stop: threading.Event,
        run_id: str,
    ) -> None:
        self.workload, self.params, self.run_id = workload, params, run_id
        self.origin, self.deadline, self.stop = origin, origin + params.duration, stop
        self.shape = LoadShape(params.profile, params.intensity, params.duration, params.seed)
        self.recorder = Recorder()
        self.reported = Reported(
            device={"requested": params.device, "used": "cpu", "fallback": None}
        )
        self.probes: list[Probe] = []
        self.iterating = False  # run_iterations has begun: a stop now has work to save
        self._scratch: Path | None = None
        self._disk_budget: int | None = None

    def warn(self, message: str) -> None:
        print(f"{self.workload.id}: warning: {message}", file=sys.stderr, flush=True)

    # -- scratch space ------------------------------------------------------------------------
    def scratch_dir(self) -> Path:
        """A private folder for scratch data, removed at the end of the run (also on a signal).

        It lies in the work folder, by default inside the results folder (so IO lands on the
        storage being tested), hidden and removed before the results document is written.
        """
        if self._scratch is None:
            base = self.params.work_dir or self.params.results_dir
            self._scratch = scratch_folders.create(base, self.run_id)
        return self._scratch

    def disk_budget(self) -> int:
        """Bytes of scratch data the run may keep at once: ``--disk``, else the envelope's disk,
        capped by a fraction of the free space."""
        if self._disk_budget is None:
            free = shutil.disk_usage(self.scratch_dir()).free
            if self.params.disk:
                self._disk_budget = min(self.params.disk, int(free * DISK_FREE_FRACTION_EXPLICIT))
                if self._disk_budget < self.params.disk:
                    self.warn(
                        f"--disk {format_size(self.params.disk)} lowered to "
                        f"{format_size(self._disk_budget)}: not enough free space"
                    )
            else:
                envelope = self.workload.envelope.disk or free
                self._disk_budget = int(min(envelope, free * DISK_FREE_FRACTION))
        return self._disk_budget

    def scratch_summary(self) -> dict[str, Any] | None:
        """Where scratch data went, for the document (None when the run used none)."""
        if self._scratch is None:
            return None
        mount = mount_of(self._scratch)
        return {
            "path": str(self._scratch),
            "filesystem": mount.fstype if mount else None,
            "mount_point": str(mount.point) if mount else None,
            "disk_budget": self._disk_budget,
        }

    def remove_scratch(self) -> None:
        if self._scratch is not None:
            scratch_folders.remove(self._scratch)


class Context:
    """What ``run(ctx)`` is given: the workload's manifest entry, the run's parameters and
    memory budget (bytes its data may take, shared among its workers), running iterations,
    and reporting what they found."""

    def __init__(self, *, state: RunState, memory_budget: int) -> None:
        self.workload, self.params = state.workload, state.params
        self.memory_budget = memory_budget
        self._state = state

    # -- running iterations -------------------------------------------------------------------
    def run_iterations(
        self,
        fn: IterationFunction,
        *,
        processes: bool = True,
        scratch: bool = False,
        rates: Mapping[str, Rate] | None = None,
    ) -> Totals:
        """Run ``fn`` over iterations until the duration, the iteration limit or a stop signal.

        With ``processes`` the iterations are spread over ``params.workers`` spawned processes
        (``fn`` must be a module-level function); otherwise they run in this thread, one after
        another, and ``fn`` may keep state (a model, an open database) between iterations.
        With ``scratch`` each iteration gets a private folder and a share of the disk budget.
        ``rates`` are metrics of the run's counters: reported at the end, and live meanwhile.
        """
        state = self._state
        state.reported.rates.update(rates or {})
        state.iterating = True
        plan = Plan(
            fn=fn,
            seed=self.params.seed,
            scale=self.params.scale,
            memory_budget=self.memory_budget,
            workers=self.params.workers if processes else 1,
            iterations=self.params.iterations,
            first_index=state.recorder.next_index,
            deadline=state.deadline,
            origin=state.origin,
            shape=state.shape,
            scratch=state.scratch_dir() if scratch else None,
            disk_budget=state.disk_budget() if scratch else 0,
        )
        state.recorder.workers = plan.workers
        if processes:
            run_processes(plan, state.recorder, state.stop)
        else:
            run_inline(plan, state.recorder, state.stop)
        totals = state.recorder.totals()
        self.report_rates(totals, rates or {})
        return totals

    def scratch_dir(self) -> Path:
        """The run's scratch folder (``RunState.scratch_dir``); iterations get one each with
        ``run_iterations(fn, scratch=True)`` and ``iteration.folder()``."""
        return self._state.scratch_dir()

    # -- reporting ----------------------------------------------------------------------------
    def metric(self, name: str, value: float | None, unit: str) -> None:
        """Report a metric in physical units; the manifest names the primary one. ``None`` says
        that nothing was measured (no iteration ran), which is not a value of zero."""
        rounded = None if value is None else round(float(value), 6)
        self._state.reported.metrics[name] = Metric(rounded, unit)

    def report_rates(self, totals: Totals, rates: Mapping[str, Rate]) -> None:
        """A metric for each rate, from the run's totals."""
        for name, rate in rates.items():
            self.metric(name, rate.value(totals), rate.unit)

    def report_latencies(self, totals: Totals, name: str) -> None:
        """Metrics ``<name>_latency_p50`` ... ``_p999`` in µs from the run's sketch of ``name``
        (none when nothing was measured)."""
        for key, value in percentiles(totals.latencies.get(name)).items():
            self.metric(f"{name}_latency_{key}", value, "us")

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        """An end-of-run verification check (e.g. "training loss decreased")."""
        self._state.reported.checks[name] = Check(bool(passed), detail)
        return bool(passed)

    def inconclusive(self, name: str, reason: str) -> None:
        """An end-of-run check that needs progress to judge (a loss that falls) and got too
        little of it, e.g. "3 steps; at least 20 needed". It neither passes nor fails the
        run: a starved run is not a failed one."""
        self._state.reported.inconclusive[name] = reason

    def note(self, key: str, value: Any) -> None:
        """Workload-specific facts for the document's ``details`` (JSON-serialisable)."""
        self._state.reported.details[key] = value

    def use_device(
        self, used: str, *, name: str | None = None, fallback: str | None = None
    ) -> None:
        self._state.reported.device.update(used=used, name=name, fallback=fallback)
        if fallback:
            self.warn(fallback)

    def record_gpu_memory_peak(self, peak_bytes: float) -> None:
        """The device memory the allocator held at most (NVML sees the whole device)."""
        self._state.reported.gpu_memory_peak_bytes = peak_bytes

    def add_probe(self, probe: Probe) -> None:
        """Add readings (e.g. GPU utilisation) to every resource sample from now on."""
        self._state.probes.append(probe)

    def warn(self, message: str) -> None:
        self._state.warn(message)
