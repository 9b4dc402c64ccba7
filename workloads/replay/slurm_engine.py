"""The ``slurm`` engine: each task a Slurm batch job asking for exactly its requests (CPUs per
task, memory, GPUs as the generic resource ``gpu``), named and commented after the replay and
the task. Slurm's scheduler queues and places it; its cgroup plugins enforce its cores (cpuset)
and memory, and the workload runs inside those cgroups, so the limits its document reports are
Slurm's.

What each job runs, its image with podman in the job's cgroups (``container``, the default) or
the installed package (``process``), is workloads/replay/slurm_jobs.py; how Slurm's record is
read, workloads/replay/slurm_records.py. The record is polled every ``POLL_SECONDS``. Slurm's
times are whole seconds: they are the events' ``time`` (``EngineInfo.time_resolution_s``), with
the replay's own sub-second observation beside them in ``observed``.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workloads.replay.engine import (
    REPLAY_LABEL,
    RESEND_STOP_S,
    Emit,
    EngineInfo,
    EngineOption,
    EnginePlugin,
    EngineSettings,
    ReplayInputError,
    ReplayTask,
    check_capacity,
    first_line,
)
from workloads.replay.slurm_jobs import (
    asks,
    container_script,
    have_image,
    process_script,
    sbatch_options,
)
from workloads.replay.slurm_records import (
    NO_NODE,
    JobRecord,
    archived,
    call,
    choose_partition,
    complaint,
    ending,
    list_jobs,
    read_config,
    usable_nodes,
    with_exit,
)
from workloads.runfolder import Event

MODES = ("container", "process")
POLL_SECONDS = 0.1  # squeue 10 times a second: a start seen within 0.1 s
TIME_RESOLUTION_S = 1.0  # Slurm's submit, start and end times are whole seconds
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel")


# -- the engine --------------------------------------------------------------------------------
@dataclass
class _Job:
    task_id: int
    job_id: str
    accepted: float  # when sbatch returned: the replay's clock
    seen: set[str] = field(default_factory=set)  # the events recorded
    reason: str = ""  # the last pending reason recorded
    stopping: bool = False  # the replay stops it: its end is a KILL
    vanished_at: float | None = None  # first poll that no longer listed it

    @property
    def ended(self) -> bool:
        return bool(self.seen & {"FINISH", "FAIL", "KILL", "EVICT", "LOST"})


class SlurmEngine:
    """Each task a batch job of the controller that the Slurm clients here talk to."""

    def __init__(
        self,
        replay_id: str,
        grace: float,
        *,
        partition: str | None = None,
        sbatch_args: Sequence[str] = (),
        mode: str = "container",
        python: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ReplayInputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        self.replay_id, self.grace, self.mode = replay_id, grace, mode
        self.sbatch_args = list(sbatch_args)
        self.python = python or sys.executable
        self.config = read_config()
        self.partition = choose_partition(partition)
        self._nodes = usable_nodes(self.partition)
        if not self._nodes:
            raise ReplayInputError(f"partition {self.partition} has no node that is up")
        self._user = str(os.getuid())
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}  # Slurm's job id -> the replay's record of it
        self._scripts: dict[int, str] = {}

    # -- describe and check --------------------------------------------------------------------
    def describe(self) -> EngineInfo:
        version = self.config.get("SLURM_VERSION", "unknown")
        client = call(["sbatch", "--version"]).stdout.split()
        return EngineInfo(
            name="slurm",
            version=version,
            api_version=client[-1] if client else "unknown",
            nodes=list(self._nodes),
            time_resolution_s=TIME_RESOLUTION_S,
        )

    def check(self, tasks: list[ReplayTask]) -> None:
        for task in tasks:
            self._scripts[task.task_id] = self._script(task)
        check_capacity(tasks, self._nodes)
        shapes: dict[tuple[int, int, int], ReplayTask] = {}
        for task in tasks:
            shapes.setdefault(asks(task), task)
        for (cpus, memory, gpus), task in sorted(shapes.items()):
            test = call(["sbatch", "--test-only", *self._options(task), "--wrap", "true"])
            if test.returncode:
                raise ReplayInputError(
                    f"task {task.task_id}: Slurm refuses its request ({cpus} CPUs, {memory} MiB, "
                    f"{gpus} GPUs) in partition {self.partition}: {complaint(test)}"
                )
        if self.mode == "container":
            for image in sorted({task.image for task in tasks}):
                have_image(image)

    def _script(self, task: ReplayTask) -> str:
        if self.mode == "process":
            return process_script(task, self.replay_id, self.python)
        return container_script(task, self.replay_id, self.grace)

    def _options(self, task: ReplayTask) -> list[str]:
        return sbatch_options(task, self.partition, self.sbatch_args)

    # -- submit ----------------------------------------------------------------------------------
    def comment(self, task_id: int) -> str:
        return f"cloudai-replay {self.replay_id} task {task_id}"

    def submit(self, task: ReplayTask) -> None:
        script = self._scripts.get(task.task_id) or self._script(task)
        command = [
            "sbatch",
            "--parsable",
            f"--job-name={task.name}",
            f"--comment={self.comment(task.task_id)}",
            f"--output={task.output}/slurm-%j.log",
            f"--chdir={task.output}",
            "--no-requeue",
            *self._options(task),
        ]
        completed = call(command, stdin=script)
        if completed.returncode:
            raise RuntimeError(f"sbatch: {complaint(completed)}")
        job_id = completed.stdout.strip().split(";")[0]
        with self._lock:
            self._jobs[job_id] = _Job(task.task_id, job_id, time.time())

    # -- watch -----------------------------------------------------------------------------------
    def _squeue(self) -> dict[str, JobRecord]:
        return list_jobs(self._user)

    def watch(self, emit: Emit, done: threading.Event) -> None:
        while not done.is_set():
            try:
                self._poll(emit)
            except (RuntimeError, OSError, subprocess.SubprocessError) as err:
                print(f"replay: warning: polling Slurm: {first_line(err)}", flush=True)
            done.wait(POLL_SECONDS)

    def _poll(self, emit: Emit) -> None:
        listed = self._squeue()
        now = time.time()
        with self._lock:
            jobs = [job for job in self._jobs.values() if not job.ended]
        for job in jobs:
            record = listed.get(job.job_id)
            if record is None:
                record = self._forgotten(job, now)
                if record is None:
                    continue
            elif record.ended:
                record = with_exit(record, self.config)
            self._follow(emit, job, record, now)

    def _forgotten(self, job: _Job, now: float) -> JobRecord | None:
        """A job squeue no longer lists: the controller has purged it (MinJobAge). Its end from
        the accounting or the job-completion log; LOST when neither keeps it."""
        found = archived(job.job_id, self.config)
        if found is not None:
            return found
        if job.vanished_at is None:
            job.vanished_at = now
        if now - job.vanished_at < 10 * POLL_SECONDS:  # a listing that raced the submission
            return None
        return JobRecord(job_id=job.job_id, state="LOST", end=now)

    def _follow(self, emit: Emit, job: _Job, record: JobRecord, now: float) -> None:
        task_id = job.task_id
        if record.submit is not None:
            self._record(emit, job, "SUBMIT", record.submit, job.accepted,
                         detail=f"Slurm job {job.job_id}")  # fmt: skip
        waiting = record.state == "PENDING" and record.reason not in ("", "None")
        if waiting and record.reason != job.reason:
            job.reason = record.reason
            moment = record.evaluated or record.submit or now
            emit(Event(time=moment, task_id=task_id, event="QUEUE", observed=now,
                       detail=record.reason))  # fmt: skip
        if record.ran:
            assert record.start is not None
            self._record(emit, job, "SCHEDULE", record.start, now, node=record.nodes)
            self._record(emit, job, "START", record.start, now)
        if record.state == "LOST":
            self._record(
                emit, job, "LOST", now, None, clock="replay",
                detail=f"Slurm forgot job {job.job_id} and keeps no record of its end",
            )  # fmt: skip
        elif record.ended:
            kind, detail = ending(record, job.stopping)
            nodes = record.nodes if record.nodes not in NO_NODE else None
            code = record.exit_code if record.ran else None  # a job that never ran has none
            self._record(emit, job, kind, record.end or now, now, node=nodes, exit_code=code,
                         detail=detail)  # fmt: skip

    def _record(
        self, emit: Emit, job: _Job, kind: str, moment: float, observed: float | None, **extra: Any
    ) -> None:
        """Emit ``kind`` once per job (an ending once in all)."""
        with self._lock:
            if kind in job.seen or job.ended:
                return
            job.seen.add(kind)
        fields = {key: value for key, value in extra.items() if value is not None}
        emit(Event(time=moment, task_id=job.task_id, event=kind, observed=observed, **fields))

    # -- stop and cleanup ------------------------------------------------------------------------
    def stop(self) -> None:
        """Pending jobs are cancelled (they never start); running ones get SIGTERM in their
        first process (the job script, become podman or the workload; podman passes it to the
        container's), again every RESEND_STOP_S, and SIGKILL after the grace. Their ends are
        KILLs."""
        with self._lock:
            jobs = [job for job in self._jobs.values() if not job.ended]
            for job in jobs:
                job.stopping = True
        self._end_jobs([job.job_id for job in jobs])

    def _end_jobs(self, job_ids: list[str]) -> None:
        deadline = time.monotonic() + self.grace
        last_term = -math.inf
        while job_ids:
            listed = self._squeue()
            alive = [i for i in job_ids if i in listed and not listed[i].ended]
            pending = [i for i in alive if listed[i].state == "PENDING"]
            running = [i for i in alive if listed[i].state == "RUNNING"]
            if not alive:
                return
            if pending:
                self._scancel("--state=PENDING", *pending)
            if time.monotonic() >= deadline:
                if running:
                    self._scancel("--batch", "--signal=KILL", *running)
                self._scancel(*alive)
                self._wait_until_gone(alive)
                return
            if running and time.monotonic() - last_term >= RESEND_STOP_S:
                last_term = time.monotonic()
                self._scancel("--batch", "--signal=TERM", *running)
            time.sleep(0.2)

    @staticmethod
    def _scancel(*arguments: str) -> None:
        # scancel retries a job "that cannot be altered now" for seconds: the next round resends.
        with contextlib.suppress(subprocess.TimeoutExpired):
            call(["scancel", *arguments], timeout=2 * RESEND_STOP_S)

    def _wait_until_gone(self, job_ids: list[str], margin: float = 60.0) -> None:
        """Until none of ``job_ids`` is pending, running or completing (its processes are
        gone); Slurm's KillWait bounds the wait after a cancel."""
        deadline = time.monotonic() + margin
        while time.monotonic() < deadline:
            listed = self._squeue()
            if not [i for i in job_ids if i in listed and not listed[i].ended]:
                return
            time.sleep(0.2)

    def cleanup(self) -> None:
        """Every job of this replay ends (found by its comment too, should the replay have lost
        its id), and this machine keeps none of its containers."""
        listed = self._squeue()
        prefix = f"cloudai-replay {self.replay_id} task "
        with self._lock:
            known = set(self._jobs)
        mine = known | {i for i, record in listed.items() if record.comment.startswith(prefix)}
        alive = sorted(i for i in mine if i in listed and not listed[i].ended)
        if alive:
            self._end_jobs(alive)
        if self.mode == "container" and shutil.which("podman"):
            left = call(["podman", "ps", "--all", "--quiet", "--filter",
                          f"label={REPLAY_LABEL}={self.replay_id}"])  # fmt: skip
            if left.stdout.split():
                call(["podman", "rm", "--force", "--time", "0", *left.stdout.split()])


# -- connecting ----------------------------------------------------------------------------------
def connect(replay_id: str, grace: float, options: Mapping[str, object]) -> SlurmEngine:
    """The engine of the Slurm controller the clients on PATH talk to; ReplayInputError (one
    line) when a client is missing or no controller answers. ``options``, by the names of
    PLUGIN's options (as ``replay`` passes them): ``partition``, ``sbatch_arg`` (a list, each
    item split as a shell would), ``mode`` (container or process), ``python`` (process mode's
    interpreter on the nodes)."""
    missing = [name for name in CLIENTS if shutil.which(name) is None]
    if missing:
        raise ReplayInputError(
            f"{missing[0]} is not on PATH: the Slurm clients are needed (Debian: slurm-client; "
            "scripts/slurm-up installs a cluster on this machine)"
        )
    try:
        ping = call(["scontrol", "ping"], timeout=20)
        answer = ping.stdout.strip() or complaint(ping)
    except subprocess.TimeoutExpired:
        ping, answer = None, "scontrol ping got no answer in 20 s"
    if ping is None or ping.returncode or "UP" not in answer:
        raise ReplayInputError(f"no Slurm controller answers ({first_line(Exception(answer))})")
    arguments: list[str] = []
    given = options.get("sbatch_arg") or []
    for item in [given] if isinstance(given, str) else list(given):  # type: ignore[call-overload]
        arguments += shlex.split(str(item))
    partition = options.get("partition")
    python = options.get("python")
    return SlurmEngine(
        replay_id,
        grace,
        partition=str(partition) if partition else None,
        sbatch_args=arguments,
        mode=str(options.get("mode") or "container"),
        python=str(python) if python else None,
    )


def _connect(settings: EngineSettings) -> SlurmEngine:
    return connect(settings.replay_id, settings.grace, settings.options)


PLUGIN = EnginePlugin(
    name="slurm",
    summary="every task a Slurm batch job: Slurm queues it, places it and enforces its limits",
    connect=_connect,
    options=(
        EngineOption("--partition", "the partition (default: Slurm's default)", "NAME"),
        EngineOption(
            "--sbatch-arg",
            "an extra sbatch argument (account, QoS, reservation...), passed to every job; "
            "repeat it, or give several in one",
            "ARG",
            repeat=True,
        ),
        EngineOption(
            "--mode",
            "container: the task's image with podman, in the job's cgroups (default); process: "
            "the installed package run directly in the job",
            "MODE",
            default="container",
        ),
        EngineOption(
            "--python",
            "process mode: the Python on the nodes that has the package (default: this one)",
            "PATH",
        ),
    ),
)
