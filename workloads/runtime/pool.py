"""Runs an iteration function over iterations, inline or across worker processes.

Both executors share one loop: claim the next iteration, stop when the run must, time the iteration,
record it, then let the duty cycle sleep. Processes are spawned (never forked: the parent has
threads), each with single-threaded BLAS, so N workers keep exactly N cores busy.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from workloads.runtime.iterations import Interrupted, Iteration, IterationFunction, IterationRecord
from workloads.runtime.loadshape import DutyCycle, LoadShape
from workloads.runtime.record import Recorder

# After the deadline, workers get this long to finish their unit before they are terminated
# (unfinished units are discarded, so waiting longer would only make --duration less exact).
DEADLINE_GRACE = 0.05
# After a stop signal the whole run must end within 2 s; workers get this long.
SIGNAL_GRACE = 0.8
_BLAS_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


class WorkerError(RuntimeError):
    """A worker process raised: its exception's type, errno, message and traceback."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(f"{info['type']}: {info['message']}")
        self.info = info


def _describe(error: BaseException) -> dict[str, Any]:
    return {
        "type": type(error).__name__,
        "errno": getattr(error, "errno", None),
        "message": str(error),
        "traceback": traceback.format_exc(),
    }


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs to run iterations; picklable."""

    fn: IterationFunction
    seed: int
    scale: float
    memory_budget: int  # for the whole run, shared among workers
    workers: int
    iterations: int | None
    first_index: int
    deadline: float  # time.monotonic()
    origin: float  # time.monotonic() at the start of the run
    shape: LoadShape
    scratch: Path | None = None  # the run's scratch folder; each worker gets a subfolder
    disk_budget: int = 0  # for the whole run, shared among workers

    def iteration(self, index: int, worker: int, stop: object) -> Iteration:
        scratch = None
        if self.scratch is not None:
            scratch = self.scratch / f"worker-{worker}"
            scratch.mkdir(exist_ok=True)
        return Iteration(
            index=index,
            seed=self.seed,
            scale=self.scale,
            memory_budget=self.memory_budget // self.workers,
            worker=worker,
            workers=self.workers,
            stop=stop,  # type: ignore[arg-type]
            deadline=self.deadline,
            scratch=scratch,
            disk_budget=self.disk_budget // self.workers,
        )

    def exhausted(self, index: int) -> bool:
        return self.iterations is not None and index >= self.iterations


def _work_loop(
    plan: Plan,
    worker: int,
    claim: Callable[[], int],
    stop: threading.Event,
    record: Callable[[IterationRecord], None],
) -> None:
    cycle = DutyCycle(plan.shape, plan.origin, stop.wait)
    while True:
        index = claim()
        iteration = plan.iteration(index, worker, stop)
        if plan.exhausted(index) or iteration.stopping():
            return
        started, clock = time.monotonic(), time.perf_counter()
        try:
            result = plan.fn(iteration)
        except Interrupted:
            return
        seconds = time.perf_counter() - clock
        record(
            IterationRecord(
                index=index, worker=worker, started=started, seconds=seconds, result=result
            )
        )
        cycle.after_iteration(seconds)


def run_inline(plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
    """Run iterations one after another in this thread (GPU work, or state kept between
    iterations)."""
    counter = iter(range(plan.first_index, 1 << 62))
    _work_loop(plan, 0, lambda: next(counter), stop, recorder.add)
    recorder.work_ended(_work_end(plan))


def run_processes(plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
    """Run iterations across ``plan.workers`` spawned processes until the run must stop."""
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", plan.first_index)
    worker_stop = context.Event()
    processes, connections = [], []
    with _single_threaded_libraries():
        for worker in range(plan.workers):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker_main,
                args=(plan, worker, counter, worker_stop, sender, os.getpid()),
                name=f"cloudai-worker-{worker}",
                daemon=True,
            )
            process.start()
            sender.close()
            processes.append(process)
            connections.append(receiver)
    try:
        _collect(plan, recorder, stop, worker_stop, connections)
    finally:
        worker_stop.set()
        _reap(processes)


def _collect(
    plan: Plan,
    recorder: Recorder,
    stop: threading.Event,
    worker_stop: object,
    connections: list[Connection],
) -> None:
    stop_by: float | None = None
    while connections:
        for connection in wait(connections, timeout=0.05):
            try:
                kind, payload = connection.recv()  # type: ignore[union-attr]
            except (EOFError, OSError):
                connections.remove(connection)  # type: ignore[arg-type]
                continue
            if kind == "error":
                raise WorkerError(payload)
            if kind == "ended":
                recorder.work_ended(payload)
                continue
            recorder.add(payload)
        now = time.monotonic()
        if stop_by is None and (stop.is_set() or now >= plan.deadline):
            worker_stop.set()  # type: ignore[attr-defined]
            stop_by = now + (SIGNAL_GRACE if stop.is_set() else DEADLINE_GRACE)
        if stop_by is not None and now >= stop_by:
            return


def _reap(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Terminate workers still busy (their unit is discarded) and wait for all of them."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=1.0)
        if process.is_alive():
            process.kill()
            process.join()


def _worker_main(
    plan: Plan,
    worker: int,
    counter: multiprocessing.sharedctypes.Synchronized,  # type: ignore[name-defined]
    stop: threading.Event,
    sender: Connection,
    parent_pid: int,
) -> None:
    # The parent coordinates stops: ignore the terminal's Ctrl-C, and die with the parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)

    def claim() -> int:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        return index

    try:
        _work_loop(plan, worker, claim, stop, lambda done: sender.send(("done", done)))
        sender.send(("ended", _work_end(plan)))
    except BaseException as error:
        with contextlib.suppress(OSError):
            sender.send(("error", _describe(error)))
    finally:
        sender.close()


def _work_end(plan: Plan) -> float:
    """When this worker's loop ended (time.monotonic(), one clock for every process on Linux),
    never past the deadline: a pause cut short there is not the run's idle time."""
    return min(time.monotonic(), plan.deadline)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM this worker when its parent dies, so no worker outlives a run."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


@contextlib.contextmanager
def _single_threaded_libraries() -> Iterator[None]:
    """Spawned workers read these at import: one BLAS/OpenMP thread each."""
    saved = {name: os.environ.get(name) for name in _BLAS_THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(_BLAS_THREAD_VARIABLES, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
