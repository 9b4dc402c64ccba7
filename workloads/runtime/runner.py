"""One run of one workload: the lifecycle every workload shares.

Start the sampler, import the workload's module, size the memory budget, call ``run(ctx)``,
then write the results document whatever happened (completed, terminated by a signal, failed),
and return the exit status: 0 completed, 1 failed, 2 usage error, 128+N terminated by signal N.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
from pydantic import ValidationError

from workloads.manifest import Workload
from workloads.runtime.assembly import Outcome, RunRecord, assemble, verification
from workloads.runtime.choices import EXIT_COMPLETED, EXIT_FAILED
from workloads.runtime.context import Context, RunState
from workloads.runtime.document import ErrorPart, LoadPart, RunDocument, VerificationPart
from workloads.runtime.environment import lock_digest
from workloads.runtime.exporter import open_exporter, sample_values
from workloads.runtime.iterations import Interrupted
from workloads.runtime.limits import Limits
from workloads.runtime.params import InsufficientMemory, RunParams, memory_budget
from workloads.runtime.pool import WorkerError
from workloads.runtime.progress import ProgressReporter
from workloads.runtime.record import Totals
from workloads.runtime.results import (
    document_name,
    new_run_id,
    write_document,
)
from workloads.runtime.sampler import ResourceSampler, process_tree_totals
from workloads.runtime.signals import StopOnSignal
from workloads.sizes import format_size

# After a stop signal the document must be on disk within this many seconds, whatever the
# workload is doing (the real worker sends SIGKILL 5 s after SIGTERM).
STOP_DEADLINE = 1.6
# Before its first iteration a workload has no work to save: a stop that finds it still
# importing or setting up (torch takes seconds) ends the run this soon.
SETUP_STOP_DEADLINE = 0.3
# A process younger than this is taken to have started for this run: its start is the run's.
_FRESH_PROCESS = 10.0
_INSTALL_HINTS = {"torch": "install PyTorch, e.g. pip install 'cloudai-workloads[gpu]'"}


class RunFailure(Exception):
    """An expected failure with a one-line message and a stop reason."""

    def __init__(self, message: str, stop_reason: str = "error") -> None:
        super().__init__(message)
        self.stop_reason = stop_reason


def process_age() -> float | None:
    """Seconds since this process started, to 10 ms (psutil's create_time is only to 1 s)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22: starttime
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def run_origin() -> tuple[datetime, float]:
    """The run starts when its process started (so --duration bounds the whole process)."""
    now_wall, now_mono = time.time(), time.monotonic()
    age = process_age()
    if age is not None and 0 <= age < _FRESH_PROCESS:
        return datetime.fromtimestamp(now_wall - age, timezone.utc), now_mono - age
    return datetime.fromtimestamp(now_wall, timezone.utc), now_mono


class Run:
    def __init__(self, workload: Workload, params: RunParams, limits: Limits) -> None:
        self.workload, self.params, self.limits = workload, params, limits
        self.started_at, origin = run_origin()
        # A fresh process's run counts from its start; a long-lived one's from now.
        fresh = origin < time.monotonic() - 1e-3
        self.baseline = None if fresh else process_tree_totals()
        self.run_id = new_run_id(self.started_at)
        self.stop = threading.Event()
        self.signals = StopOnSignal(self.stop)
        self.progress = ProgressReporter(workload.id, params.duration, params.progress)
        self.state = RunState(
            workload=workload, params=params, origin=origin, stop=self.stop, run_id=self.run_id
        )
        self.memory_budget = 0  # until it is sized, after the workload's module is imported
        self.sampler = ResourceSampler(
            interval=params.sample_interval,
            origin=origin,
            target=self.state.shape.target,
            iterations=lambda: self.state.recorder.count,
            probes=self.state.probes,
            from_process_start=self.baseline is None,
            on_sample=self._on_sample,
        )
        # Last: a port that is taken ends the run here, before any work (ExporterError).
        self.exporter = open_exporter(workload, params, limits, self.run_id)
        self._finished = threading.Event()
        self._write_lock = threading.Lock()
        self._written = False

    def _on_sample(self, sample: dict[str, float | None]) -> None:
        self.progress.update(sample, self.state.recorder.count)
        self._publish(sample)

    def _publish(self, sample: dict[str, float | None]) -> None:
        if self.exporter is not None:
            iterations, workers = self.state.recorder.count, self.state.recorder.workers
            values = sample_values(sample, self.sampler.cumulative, iterations, workers)
            self.exporter.publish(values, self._primary_so_far())

    def _close_exporter(self) -> None:
        """The run's last figures, then the end: iterations that ended after the last sample
        (a stop takes none within 0.1 s of the one before) count in what stays published."""
        if self.exporter is not None:
            if self.sampler.samples:
                self._publish(self.sampler.samples[-1])
            self.exporter.close()

    def _primary_so_far(self) -> tuple[str, str, float | None]:
        """The declared primary metric over the iterations so far, when it is a rate."""
        declared = self.workload.primary_metric
        rate = self.state.reported.rates.get(declared.name)
        value = rate.value(self.state.recorder.so_far()) if rate else None
        return declared.name, declared.unit, value

    # -- lifecycle ----------------------------------------------------------------------------
    def execute(self) -> int:
        self.progress.line(self._start_line())
        error: BaseException | None = None
        with self.signals:
            threading.Thread(target=self._watchdog, name="cloudai-watchdog", daemon=True).start()
            self.sampler.start()
            try:
                self._call_workload()
            except Interrupted:
                pass  # a stop reached outside run_iterations: the run ends like any stopped run
            except Exception as err:  # every failure still leaves a document
                error = err
            finally:
                self._finished.set()
                self.sampler.stop()
                self._close_exporter()
                self.state.remove_scratch()
                self.progress.close()
        return self._finish(error)

    def _call_workload(self) -> None:
        try:
            module = importlib.import_module(self.workload.module)
        except ModuleNotFoundError as err:
            raise RunFailure(self._missing_module(err)) from None
        entry = getattr(module, "run", None)
        if not callable(entry):
            raise RunFailure(f"module {self.workload.module} has no run(ctx) function")
        resident = psutil.Process().memory_info().rss
        try:
            budget, warning = memory_budget(
                self.workload, self.params, self.limits, resident, self.params.workers
            )
        except InsufficientMemory as err:
            raise RunFailure(str(err), "insufficient-memory") from None
        self.memory_budget = budget
        if warning:
            self.state.warn(warning)
        entry(Context(state=self.state, memory_budget=budget))

    def _missing_module(self, err: ModuleNotFoundError) -> str:
        missing = err.name or "?"
        if self.workload.module == missing or self.workload.module.startswith(missing + "."):
            return f"{self.workload.id} is not available in this build (no module {missing})"
        hint = _INSTALL_HINTS.get(
            missing.split(".")[0], f"install the package providing {missing!r}"
        )
        return f"{self.workload.id} needs the Python module {missing!r}, which is missing: {hint}"

    def _watchdog(self) -> None:
        """Write the document and exit if the workload ignores a stop signal for too long."""
        while not self._finished.is_set():
            if self.stop.wait(0.2):
                break
        if self._finished.wait(SETUP_STOP_DEADLINE):
            return
        # Still setting up: nothing to save. Iterating: the iterations stop themselves, in time.
        iterating = self.state.iterating
        if iterating and self._finished.wait(STOP_DEADLINE - SETUP_STOP_DEADLINE):
            return
        with contextlib.suppress(Exception):
            self.progress.close()
            for child in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
            self.sampler.stop()
            self._close_exporter()  # the textfile says the run is over, here too
            self.state.remove_scratch()
            self._finish(None, late=iterating)
        os._exit(128 + (self.signals.received or 15))

    # -- outcome ------------------------------------------------------------------------------
    def _finish(self, error: BaseException | None, late: bool = False) -> int:
        totals = self.state.recorder.totals()
        checks = verification(totals, self.state.reported)
        outcome = self._outcome(error, late, totals, checks)
        record = self._record(outcome, totals, checks)
        try:
            document = assemble(record, self.state.reported)
        except ValidationError as err:  # a bug: say so, and still keep the results
            problem = err.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            print(
                f"{self.workload.id}: error: the document does not match its schema "
                f"({where}: {problem['msg']}); written as it is",
                file=sys.stderr,
                flush=True,
            )
            document = assemble(record, self.state.reported, validate=False)
        data = document.model_dump(mode="json")  # once, for the file and the console
        path = self._write(data)
        self._report(document, data, path)
        if path is None:  # the last line of stdout: nothing is lost
            print(document.model_dump_json(), flush=True)
            return EXIT_FAILED
        if outcome.status == "terminated":
            return 128 + (self.signals.received or 15)
        return EXIT_COMPLETED if outcome.status == "completed" else EXIT_FAILED

    def _outcome(
        self, error: BaseException | None, late: bool, totals: Totals, checks: VerificationPart
    ) -> Outcome:
        if error is not None:
            return Outcome("failed", _stop_reason(error), _describe_error(error))
        if self.signals.received:
            timeout = ErrorPart(
                type="StopTimeout", message="the workload did not stop in time", traceback=""
            )
            return Outcome("terminated", "signal", timeout if late else None)
        if checks.passed is False:
            failed = [check.name for check in checks.checks if not check.passed]
            message = "verification failed: " + (", ".join(failed) or "nothing was verified")
            return Outcome(
                "failed",
                "verification",
                ErrorPart(type="VerificationFailed", message=message, traceback=""),
            )
        unreported = self._unreported_primary()
        if unreported:
            missing = ErrorPart(type="NoPrimaryMetric", message=unreported, traceback="")
            return Outcome("failed", "error", missing)
        limit = self.params.iterations
        reached = limit is not None and totals.iterations >= limit
        return Outcome("completed", "iterations" if reached else "duration")

    def _unreported_primary(self) -> str | None:
        """Every completed run reports the primary metric its manifest entry declares."""
        declared = self.workload.primary_metric
        reported = self.state.reported.metrics.get(declared.name)
        if reported is None:
            return f"the workload reported no {declared.name} (its declared primary metric)"
        if reported.unit != declared.unit:
            return (
                f"{declared.name} is in {reported.unit}, but the manifest declares {declared.unit}"
            )
        return None

    def _record(self, outcome: Outcome, totals: Totals, checks: VerificationPart) -> RunRecord:
        ended = datetime.now(timezone.utc)
        wall = max((ended - self.started_at).total_seconds(), 1e-9)
        tree = process_tree_totals(self.baseline)
        return RunRecord(
            workload=self.workload,
            params=self.params,
            limits=self.limits,
            run_id=self.run_id,
            started_at=self.started_at,
            ended_at=ended,
            outcome=outcome,
            signal=self.signals.name,
            totals=totals,
            verification=checks,
            tree=tree,
            peak_rss_bytes=self.sampler.peak_rss_bytes,
            peak_gpu_memory_bytes=self.sampler.peaks.get("gpu_memory_bytes"),
            samples=self.sampler.samples,
            memory_budget=self.memory_budget,
            scratch=self.state.scratch_summary(),
            load=self._load(totals.busy_seconds, tree["cpu_seconds"], wall),
            lock=lock_digest(),
        )

    def _load(self, busy: float, cpu_seconds: float, wall: float) -> LoadPart:
        window = self.state.recorder.active_window()
        workers = max(self.state.recorder.workers, 1)
        origin = self.state.origin
        start, end = (window[0] - origin, window[1] - origin) if window else (0.0, wall)
        span = max(end - start, 1e-9)
        return LoadPart(
            profile=self.params.profile,
            intensity_pct=self.params.intensity,
            target_mean_pct=round(100 * self.state.shape.mean_target(start, end), 2),
            achieved_busy_pct=round(100 * busy / (span * workers), 2) if window else None,
            achieved_cpu_pct=round(100 * cpu_seconds / (wall * workers), 2),
            workers=workers,
        )

    def _write(self, data: dict[str, Any]) -> Path | None:
        with self._write_lock:
            if self._written:
                return None
            self._written = True
            name = document_name(self.workload.id, self.run_id)
            try:
                return write_document(self.params.results_dir, name, data)
            except OSError as err:
                reason = "disk full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
                print(
                    f"{self.workload.id}: error: cannot write {self.params.results_dir / name}: "
                    f"{reason}; the document follows on stdout",
                    file=sys.stderr,
                    flush=True,
                )
                return None

    # -- console ------------------------------------------------------------------------------
    def _start_line(self) -> str:
        p = self.params
        limit = f"{p.duration:g} s" + (f" or {p.iterations} iterations" if p.iterations else "")
        return (
            f"{self.workload.title}: {limit}, {p.workers} worker(s), scale {p.scale:g}, "
            f"seed {p.seed}, profile {p.profile} {p.intensity:g}%"
        )

    def _report(self, document: RunDocument, data: dict[str, Any], path: Path | None) -> None:
        resources = document.resources
        outcome = f"{document.status} ({document.stop_reason})"
        self.progress.line(
            f"{outcome} in {document.wall_seconds:.2f} s: {document.primary_metric_text()}; "
            f"{document.metrics.iterations} iterations; "
            f"{resources.average_cores:.2f} cores; "
            f"peak {format_size(resources.peak_memory_bytes)}; "
            f"verification {document.verification_text()}"
        )
        if document.error:
            print(
                f"{self.workload.id}: error: {document.error.message}", file=sys.stderr, flush=True
            )
        if path is not None:
            self.progress.line(f"results: {path}")


def _error_kind(error: BaseException) -> tuple[str, int | None]:
    """The exception's type name and errno, also for one raised in a worker process."""
    if isinstance(error, WorkerError):
        return error.info["type"], error.info["errno"]
    return type(error).__name__, getattr(error, "errno", None)


def _stop_reason(error: BaseException) -> str:
    if isinstance(error, RunFailure):
        return error.stop_reason
    name, number = _error_kind(error)
    if isinstance(error, MemoryError) or name == "MemoryError":
        return "out-of-memory"
    if number == errno.ENOSPC:
        return "disk-full"
    return "error"


def _describe_error(error: BaseException) -> ErrorPart:
    if isinstance(error, RunFailure):
        return ErrorPart(type="RunFailure", message=str(error), traceback="")
    name, number = _error_kind(error)
    if isinstance(error, WorkerError):
        message, trace = f"a worker failed: {error}", error.info["traceback"]
    else:
        message = str(error) or name
        trace = "".join(traceback.format_exception(error))
    if number == errno.ENOSPC:
        message = f"disk full: {message}"
    return ErrorPart(type=name, message=message.splitlines()[0], traceback=trace)
