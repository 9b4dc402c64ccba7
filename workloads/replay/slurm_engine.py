"""The ``slurm`` engine: each task a Slurm batch job asking for exactly its requests (CPUs per
task, memory, GPUs as the generic resource ``gpu``), named and commented after the replay and
the task. Slurm's scheduler queues and places it; its cgroup plugins enforce its cores (cpuset)
and memory, and the workload runs inside those cgroups, so the limits its document reports are
Slurm's.

Two ways to run a task in its job (``mode``):

- ``container`` (the default): the task's image, with podman on the node. podman would put the
  container in cgroups of its own, beside the job's, where Slurm neither limits nor tracks it;
  an OCI prestart hook moves the container's first process into the job's own cgroups before
  the command starts, so every process of it is the job's: limited, accounted, signalled and
  killed by Slurm. The host's cgroup tree is mounted read-only, so that the workload finds the
  job's limits above its cgroup. podman pulls a missing image on the node.
- ``process``: the installed package, run directly in the job (``python -m workloads run ID``
  with the task's controls), for sites without a container runtime on their nodes.

The record is Slurm's own, polled every ``POLL_SECONDS``: ``squeue`` for the live view (submit,
start and end times, state, pending reason, node), ``scontrol`` for an ended job's exit code,
and once the controller has forgotten a job (``MinJobAge``), ``sacct`` when accounting is
configured, else the job-completion log when it is a file this machine can read. Slurm's times
are whole seconds: they are the events' ``time`` (``EngineInfo.time_resolution_s``), with the
replay's own sub-second observation beside them in ``observed``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workloads.replay.engine import (
    REPLAY_LABEL,
    RESEND_STOP_S,
    TASK_LABEL,
    Emit,
    EngineInfo,
    EngineOption,
    EnginePlugin,
    EngineSettings,
    Node,
    ReplayInputError,
    ReplayTask,
    check_capacity,
    first_line,
)
from workloads.runfolder import Event

MODES = ("container", "process")
POLL_SECONDS = 0.25
TIME_RESOLUTION_S = 1.0  # Slurm's submit, start and end times are whole seconds
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel")
CALL_TIMEOUT_S = 30.0
MIB = 1 << 20
# Every call reads times as Unix seconds, whatever the user's own format.
_ENVIRONMENT = {"SLURM_TIME_FORMAT": "%s"}
_FIELDS = ("JobID", "State", "Reason", "SubmitTime", "StartTime", "EndTime", "LastSchedEval")
_FIELDS += ("NodeList", "Comment")
_ENDED = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "TIMEOUT", "REVOKED",
}  # fmt: skip
_UNUSABLE_NODE = ("DOWN", "DRAIN", "FAIL", "FUTURE", "INVAL", "NOT_RESPONDING", "POWERED_DOWN")
_NO_NODE = ("", "(null)", "None assigned", "N/A")
# Slurm's exit code of a job its out-of-memory handler saw killed (SIG_OOM, 253, in 0:125).
_SIG_OOM = 125
_SIGKILL = 9


# -- the job script ----------------------------------------------------------------------------
# The OCI hook: the container's first process (the state's "pid") joins every cgroup of the
# process named by the annotation, the job script; everything the container starts afterwards
# is born there. When the job script is gone, so is the job: the hook fails, and the container
# never starts.
_HOOK_SCRIPT = r"""state=$(cat)
pid=$(printf '%s' "$state" | tr ',{' '\n\n' | sed -n 's/^ *"pid": *\([0-9][0-9]*\).*/\1/p')
job=$(printf '%s' "$state" | sed -n 's/.*"org\.cloudai\.job-cgroups": *"\([0-9][0-9]*\)".*/\1/p')
[ -n "$pid" ] && [ -n "$job" ] || { echo "job-cgroups hook: no pid in the state" >&2; exit 1; }
while IFS=: read -r _ controllers path; do
  case $controllers in
    "") root=/sys/fs/cgroup/unified
        [ -f /sys/fs/cgroup/cgroup.controllers ] && root=/sys/fs/cgroup ;;
    *) root=/sys/fs/cgroup/${controllers#name=} ;;
  esac
  [ -d "$root" ] || continue  # a hierarchy not mounted here
  echo "$pid" > "$root$path/cgroup.procs" || exit 1
done < "/proc/$job/cgroup"
"""
HOOK = {
    "version": "1.0.0",
    "hook": {"path": "/bin/sh", "args": ["sh", "-c", _HOOK_SCRIPT]},
    "when": {"annotations": {r"^org\.cloudai\.job-cgroups$": "^[0-9]+$"}},
    "stages": ["prestart"],
}
_HOOK_TEXT = json.dumps(HOOK)
_HOOK_DIGEST = hashlib.sha256(_HOOK_TEXT.encode()).hexdigest()[:12]
# Where podman puts a container's own cgroups (empty once the hook has run) and conmon's.
PODMAN_CGROUP_PARENT = "/cloudai-podman"

# The job's first process stays the script: ``scancel --batch`` signals it, and its trap passes
# a stop on (the replay sends it again every second); SIGKILL ends the job step, all of it.
_SUPERVISE = """child=$!
status=0
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break
done
exit "$status"
"""
_CONTAINER_SCRIPT = (
    """#!/bin/bash
# cloudai-workloads replay {replay_id}, task {task_id}: {image}, with podman, in this job's cgroups
set -u
hooks="${{TMPDIR:-/tmp}}/cloudai-workloads-hooks-{digest}"
if [[ ! -f $hooks/job-cgroups.json ]]; then
  mkdir -p "$hooks" && printf '%s\\n' {hook} > "$hooks/.job-cgroups.$$" \\
    && mv "$hooks/.job-cgroups.$$" "$hooks/job-cgroups.json"
fi
options=()
for dir in /usr/share/containers/oci/hooks.d /etc/containers/oci/hooks.d "$hooks"; do
  [[ -d $dir ]] && options+=(--hooks-dir "$dir")
done
run=()
# runc: crun refuses the cgroup v1 and hybrid layouts.
[[ -f /sys/fs/cgroup/cgroup.controllers ]] || run+=(--runtime runc)
# podman's default limits (nofile 1048576, nproc 4194304) may exceed the job's hard limits.
cap() {{
  local v; v=$(ulimit -H"$1")
  if [[ $v == unlimited ]] || (( v > $2 )); then v=$2; fi
  echo "$v"
}}
nofile=$(cap n 1048576)
nproc=$(cap u "$(cat /proc/sys/kernel/pid_max)")
run+=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
# The job's GPUs: by CDI where the NVIDIA toolkit describes them, else their numbers.
if [[ -n ${{SLURM_JOB_GPUS:-}} ]] && compgen -G '/etc/cdi/nvidia*' >/dev/null; then
  for gpu in ${{SLURM_JOB_GPUS//,/ }}; do run+=(--device "nvidia.com/gpu=$gpu"); done
elif [[ -n ${{CUDA_VISIBLE_DEVICES:-}} ]]; then
  run+=(--env "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES")
fi
# A stop reaches the container's first process once it runs, which ignores it until it has a
# handler (the kernel drops a signal to a PID 1 without one).
stop() {{ podman kill --signal TERM {name} >/dev/null 2>&1; }}
trap stop TERM
podman "${{options[@]}}" run --rm --name {name} \\
  --annotation "org.cloudai.job-cgroups=$$" --label {replay_label} --label {task_label} \\
  --label "org.cloudai.slurm-job=${{SLURM_JOB_ID:-}}" \\
  --cgroup-manager cgroupfs --cgroup-parent {cgroup_parent} --network host "${{run[@]}}" \\
  --volume /sys/fs/cgroup:/sys/fs/cgroup:ro --volume {output}:/output \\
  {image} /bin/sh -c {command} &
"""
    + _SUPERVISE
)

_PROCESS_SCRIPT = (
    """#!/bin/bash
# cloudai-workloads replay {replay_id}, task {task_id}: {workload}, run by the installed package
# The task's controls only: no CLOUDAI_ variable of the submitter's but the catalogue's path.
while read -r name; do
  [[ $name == CLOUDAI_MANIFEST ]] || unset "$name"
done < <(compgen -e | grep '^CLOUDAI_')
export CLOUDAI_PROGRESS=lines
# A stop reaches the workload once it handles SIGTERM (SigCgt): before that, the signal would
# end it without a document.
stop() {{
  local caught
  caught=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$child/status" 2>/dev/null)
  [[ -n $caught ]] && (( 0x$caught >> 14 & 1 )) && kill -TERM "$child"
}}
trap stop TERM
{command} &
"""
    + _SUPERVISE
)


def container_script(task: ReplayTask, replay_id: str) -> str:
    """The batch script that runs ``task``'s image in its job's cgroups."""
    return _CONTAINER_SCRIPT.format(
        replay_id=replay_id,
        task_id=task.task_id,
        image=task.image,
        digest=_HOOK_DIGEST,
        hook=shlex.quote(_HOOK_TEXT),
        name=shlex.quote(task.name),
        replay_label=shlex.quote(f"{REPLAY_LABEL}={replay_id}"),
        task_label=shlex.quote(f"{TASK_LABEL}={task.task_id}"),
        cgroup_parent=PODMAN_CGROUP_PARENT,
        output=shlex.quote(str(task.output)),
        command=shlex.quote(task.command),
    )


def process_command(task: ReplayTask, python: str) -> list[str]:
    """``python cpu_process_3.py --duration 30 ...`` as ``PYTHON -m workloads run cpu-3
    --duration 30 ... --results-dir OUTPUT``; ReplayInputError for a command that is not one of
    the catalogue's launchers."""
    from workloads.manifest import ManifestError, get_manifest

    try:
        words = shlex.split(task.command)
    except ValueError as err:
        raise ReplayInputError(f"task {task.task_id}: command {task.command!r}: {err}") from None
    script = Path(words[1]).name if len(words) > 1 else ""
    interpreter = Path(words[0]).name if words else ""
    if not re.fullmatch(r"python[0-9.]*", interpreter) or not script.endswith(".py"):
        raise ReplayInputError(
            f"task {task.task_id}: mode process runs only the catalogue's launchers "
            f"(python cpu_process_3.py ...), not {task.command!r}"
        )
    try:
        manifest = get_manifest()
    except ManifestError as err:
        raise ReplayInputError(str(err)) from None
    found = [workload.id for workload in manifest.workloads if workload.launcher == script]
    if not found:
        raise ReplayInputError(
            f"task {task.task_id}: {script} launches no workload of the catalogue"
        )
    run = [python, "-m", "workloads", "run", found[0], *words[2:]]
    return [*run, "--results-dir", str(task.output)]


def process_script(task: ReplayTask, replay_id: str, python: str) -> str:
    """The batch script that runs ``task``'s workload with the installed package."""
    command = process_command(task, python)
    return _PROCESS_SCRIPT.format(
        replay_id=replay_id, task_id=task.task_id, workload=command[4], command=shlex.join(command)
    )


# -- Slurm's record ----------------------------------------------------------------------------
@dataclass
class JobRecord:
    """What Slurm says of a job (times in Unix seconds, None where unset)."""

    job_id: str
    state: str
    reason: str = ""
    submit: float | None = None
    start: float | None = None
    end: float | None = None
    evaluated: float | None = None  # the scheduler's last look at it (the pending reason's time)
    nodes: str = ""
    comment: str = ""
    exit_code: int | None = None  # as a shell reports it: the code, or 128 + the signal
    exit_status: str = ""  # Slurm's own CODE:SIGNAL

    @property
    def ran(self) -> bool:
        return self.state != "PENDING" and self.start is not None and self.nodes not in _NO_NODE

    @property
    def ended(self) -> bool:
        return self.state in _ENDED


def _epoch(text: str | None) -> float | None:
    """A Slurm time as Unix seconds: ours are (SLURM_TIME_FORMAT=%s), the controller's
    completion log writes its local time; None for Unknown, N/A, None or 0."""
    text = (text or "").strip()
    if text.isdigit():
        return float(text) or None
    with contextlib.suppress(ValueError):
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    return None


def exit_code(status: str) -> int | None:
    """Slurm's ``CODE:SIGNAL`` as a shell reports it: the code, or 128 + the signal (SIGKILL
    for Slurm's out-of-memory mark, 0:125: the kernel's OOM killer sends it)."""
    match = re.fullmatch(r"(\d+):(\d+)", status.strip())
    if match is None:
        return None
    code, number = int(match.group(1)), int(match.group(2))
    if number == _SIG_OOM:
        return 128 + _SIGKILL
    return 128 + number if number else code


def parse_squeue(text: str) -> dict[str, JobRecord]:
    """``squeue -O`` lines of _FIELDS, separated by '|', by job id."""
    found = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < len(_FIELDS):
            continue
        job_id, state, reason, submit, start, end, evaluated, nodes, comment = parts[:9]
        found[job_id.strip()] = JobRecord(
            job_id=job_id.strip(),
            state=state.strip().split()[0] if state.strip() else "",
            reason=reason.strip(),
            submit=_epoch(submit),
            start=_epoch(start),
            end=_epoch(end),
            evaluated=_epoch(evaluated),
            nodes=nodes.strip(),
            comment=comment.strip(),
        )
    return found


_PAIR = re.compile(r"(\w+)=(\S*)")


def parse_key_values(line: str) -> dict[str, str]:
    """``Key=Value`` pairs of a one-line record (``scontrol -o``, the job-completion log)."""
    return dict(_PAIR.findall(line))


def record_from_pairs(pairs: Mapping[str, str]) -> JobRecord:
    """A job's record from ``scontrol -o show job`` or a job-completion log line."""
    status = pairs.get("ExitCode", "")
    return JobRecord(
        job_id=pairs.get("JobId", ""),
        state=pairs.get("JobState", ""),
        reason=pairs.get("Reason", ""),
        submit=_epoch(pairs.get("SubmitTime")),
        start=_epoch(pairs.get("StartTime")),
        end=_epoch(pairs.get("EndTime")),
        nodes=pairs.get("NodeList", ""),
        exit_code=exit_code(status),
        exit_status=status,
    )


def parse_sacct(text: str) -> dict[str, JobRecord]:
    """``sacct -X -n -P -o JobIDRaw,State,ExitCode,Submit,Start,End,NodeList`` lines."""
    found = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 7:
            continue
        job_id, state, status, submit, start, end, nodes = parts[:7]
        found[job_id] = JobRecord(
            job_id=job_id,
            state=state.split()[0] if state else "",  # "CANCELLED by 0"
            submit=_epoch(submit),
            start=_epoch(start),
            end=_epoch(end),
            nodes=nodes,
            exit_code=exit_code(status),
            exit_status=status,
        )
    return found


def parse_nodes(text: str, partition: str) -> list[Node]:
    """The usable nodes of ``partition`` in ``scontrol -o show node``, with their capacity."""
    nodes = []
    for line in text.splitlines():
        pairs = parse_key_values(line)
        if partition not in pairs.get("Partitions", "").split(","):
            continue
        if any(word in pairs.get("State", "") for word in _UNUSABLE_NODE):
            continue
        memory = int(pairs.get("RealMemory", "0")) - int(pairs.get("MemSpecLimit", "0") or 0)
        name = pairs["NodeName"]
        nodes.append(Node(id=name, name=name, cpus=float(pairs.get("CPUTot", "0")),
                          memory=memory * MIB, gpus=gpu_count(pairs.get("Gres", ""))))  # fmt: skip
    return nodes


def gpu_count(gres: str) -> int:
    """GPUs in a node's ``Gres`` (``gpu:2``, ``gpu:a100:4(S:0-1),gpu:v100:2``)."""
    return sum(int(n) for n in re.findall(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)", gres))


def _registry_says(image: str) -> str | None:
    """Whether the image's registry has it, asked over HTTP: None when it does, or cannot say
    (a registry that wants credentials); else why not."""
    name, _, tag = image.rpartition(":")
    if "/" in tag or not name:
        name, tag = image, "latest"
    host, _, repository = name.partition("/")
    if "." not in host and ":" not in host and host != "localhost":
        host, repository = "registry-1.docker.io", name if "/" in name else f"library/{name}"
    local = host.startswith(("localhost", "127."))
    url = f"{'http' if local else 'https'}://{host}/v2/{repository}/manifests/{tag}"
    accept = ", ".join(
        f"application/vnd.{kind}+json"
        for kind in (
            "oci.image.index.v1",
            "oci.image.manifest.v1",
            "docker.distribution.manifest.list.v2",
            "docker.distribution.manifest.v2",
        )
    )
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=15):
            return None
    except urllib.error.HTTPError as err:
        return None if err.code in (401, 403) else f"{url} answers {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return f"{host} does not answer ({getattr(err, 'reason', err)})"


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


def _call(
    command: Sequence[str], *, stdin: str | None = None, timeout: float = CALL_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **_ENVIRONMENT},
    )


def _complaint(completed: subprocess.CompletedProcess[str]) -> str:
    lines = (completed.stderr or completed.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {completed.returncode}"


def _config() -> dict[str, str]:
    completed = _call(["scontrol", "show", "config"])
    pairs = {}
    for line in completed.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs


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
        self.config = _config()
        self.partition = self._partition(partition)
        self._nodes = parse_nodes(_call(["scontrol", "-o", "show", "node"]).stdout, self.partition)
        if not self._nodes:
            raise ReplayInputError(f"partition {self.partition} has no node that is up")
        self._user = str(os.getuid())
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}  # Slurm's job id -> the replay's record of it
        self._scripts: dict[int, str] = {}

    # -- describe and check --------------------------------------------------------------------
    def _partition(self, wanted: str | None) -> str:
        completed = _call(["scontrol", "-o", "show", "partition"])
        partitions = [parse_key_values(line) for line in completed.stdout.splitlines()]
        names = [p.get("PartitionName", "") for p in partitions]
        if wanted is None:
            default = [p for p in partitions if p.get("Default") == "YES"]
            if not default:
                raise ReplayInputError(
                    f"Slurm has no default partition: name one ({', '.join(names) or 'none'})"
                )
            chosen = default[0]
        else:
            matching = [p for p in partitions if p.get("PartitionName") == wanted]
            if not matching:
                raise ReplayInputError(
                    f"Slurm has no partition {wanted!r} (it has {', '.join(names) or 'none'})"
                )
            chosen = matching[0]
        if chosen.get("State") != "UP":
            raise ReplayInputError(
                f"partition {chosen['PartitionName']} is {chosen.get('State')}: no job would start"
            )
        return chosen["PartitionName"]

    def describe(self) -> EngineInfo:
        version = self.config.get("SLURM_VERSION", "unknown")
        client = _call(["sbatch", "--version"]).stdout.split()
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
            shapes.setdefault(self._asks(task), task)
        for (cpus, memory, gpus), task in sorted(shapes.items()):
            test = _call(["sbatch", "--test-only", *self._options(task), "--wrap", "true"])
            if test.returncode:
                raise ReplayInputError(
                    f"task {task.task_id}: Slurm refuses its request ({cpus} CPUs, {memory} MiB, "
                    f"{gpus} GPUs) in partition {self.partition}: {_complaint(test)}"
                )
        if self.mode == "container":
            for image in sorted({task.image for task in tasks}):
                self._have_image(image)

    def _script(self, task: ReplayTask) -> str:
        if self.mode == "process":
            return process_script(task, self.replay_id, self.python)
        return container_script(task, self.replay_id)

    def _have_image(self, image: str) -> None:
        """Pull it here when this machine has podman (its nodes' store, when they are this
        machine), else ask its registry: no task's start should include a pull it can avoid."""
        if shutil.which("podman"):
            pulled = _call(["podman", "pull", "--quiet", image], timeout=900)
            if pulled.returncode == 0:
                return
            why = _complaint(pulled)
        else:
            reason = _registry_says(image)
            if reason is None:
                return
            why = reason
        raise ReplayInputError(f"image {image} cannot be pulled, as the nodes would ({why})")

    @staticmethod
    def _asks(task: ReplayTask) -> tuple[int, int, int]:
        """What the job asks for: whole CPUs, MiB, GPUs (Slurm's units, rounded up)."""
        return math.ceil(task.cpus), math.ceil(task.memory / MIB), task.gpus

    def _options(self, task: ReplayTask) -> list[str]:
        cpus, memory, gpus = self._asks(task)
        options = [
            f"--partition={self.partition}",
            "--nodes=1",
            "--ntasks=1",
            f"--cpus-per-task={cpus}",
            f"--mem={memory}M",
        ]
        if gpus:
            options.append(f"--gres=gpu:{gpus}")
        return [*options, *self.sbatch_args]

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
        completed = _call(command, stdin=script)
        if completed.returncode:
            raise RuntimeError(f"sbatch: {_complaint(completed)}")
        job_id = completed.stdout.strip().split(";")[0]
        with self._lock:
            self._jobs[job_id] = _Job(task.task_id, job_id, time.time())

    # -- watch -----------------------------------------------------------------------------------
    def _squeue(self) -> dict[str, JobRecord]:
        listing = _call(
            ["squeue", "--noheader", "--states=all", f"--user={self._user}",
             "--Format=" + ",".join(f"{name}:|" for name in _FIELDS)],
        )  # fmt: skip
        if listing.returncode:
            raise RuntimeError(f"squeue: {_complaint(listing)}")
        return parse_squeue(listing.stdout)

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
                record = self._with_exit(record)
            self._follow(emit, job, record, now)

    def _with_exit(self, record: JobRecord) -> JobRecord:
        """The ended job's exit code, from the controller (squeue does not show it)."""
        shown = _call(["scontrol", "-o", "show", "job", record.job_id])
        if shown.returncode == 0 and shown.stdout.strip():
            detailed = record_from_pairs(parse_key_values(shown.stdout.splitlines()[0]))
            record.exit_code, record.exit_status = detailed.exit_code, detailed.exit_status
            return record
        return self._archived(record.job_id) or record

    def _forgotten(self, job: _Job, now: float) -> JobRecord | None:
        """A job squeue no longer lists: the controller has purged it (MinJobAge). Its end from
        the accounting or the job-completion log; LOST when neither keeps it."""
        found = self._archived(job.job_id)
        if found is not None:
            return found
        if job.vanished_at is None:
            job.vanished_at = now
        if now - job.vanished_at < 10 * POLL_SECONDS:  # a listing that raced the submission
            return None
        return JobRecord(job_id=job.job_id, state="LOST", end=now)

    def _archived(self, job_id: str) -> JobRecord | None:
        if self.config.get("AccountingStorageType", "accounting_storage/none") != (
            "accounting_storage/none"
        ):
            listed = _call(
                ["sacct", "-X", "-n", "-P", "-j", job_id,
                 "-o", "JobIDRaw,State,ExitCode,Submit,Start,End,NodeList"],
            )  # fmt: skip
            record = parse_sacct(listed.stdout).get(job_id)
            if record is not None and record.ended:
                return record
        if self.config.get("JobCompType") == "jobcomp/filetxt":
            with contextlib.suppress(OSError):
                for line in Path(self.config.get("JobCompLoc", "")).read_text().splitlines():
                    if line.startswith(f"JobId={job_id} "):
                        return record_from_pairs(parse_key_values(line))
        return None

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
            kind, detail = self._ending(job, record)
            nodes = record.nodes if record.nodes not in _NO_NODE else None
            code = record.exit_code if record.ran else None  # a job that never ran has none
            self._record(emit, job, kind, record.end or now, now, node=nodes, exit_code=code,
                         detail=detail)  # fmt: skip

    def _ending(self, job: _Job, record: JobRecord) -> tuple[str, str]:
        state = record.state
        slurm = f"Slurm: {state}" + (f" {record.exit_status}" if record.exit_status else "")
        if job.stopping:
            return "KILL", f"stopped by the replay ({slurm})"
        if state == "COMPLETED":
            return "FINISH", slurm
        if state == "OUT_OF_MEMORY":
            return "FAIL", f"out of memory: the job's memory cgroup's OOM killer ({slurm})"
        if state == "TIMEOUT":
            return "FAIL", f"time limit reached ({slurm})"
        if state in ("CANCELLED", "REVOKED"):
            return "KILL", f"cancelled outside the replay ({slurm})"
        if state == "PREEMPTED":
            return "EVICT", f"preempted ({slurm})"
        if state == "NODE_FAIL":
            return "LOST", f"its node failed ({slurm})"
        return "FAIL", slurm

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
            _call(["scancel", *arguments], timeout=2 * RESEND_STOP_S)

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
            left = _call(["podman", "ps", "--all", "--quiet", "--filter",
                          f"label={REPLAY_LABEL}={self.replay_id}"])  # fmt: skip
            if left.stdout.split():
                _call(["podman", "rm", "--force", "--time", "0", *left.stdout.split()])


# -- connecting ----------------------------------------------------------------------------------
def connect(replay_id: str, grace: float, options: Mapping[str, object]) -> SlurmEngine:
    """The engine of the Slurm controller the clients on PATH talk to; ReplayInputError (one
    line) when a client is missing or no controller answers. ``options``: ``partition``,
    ``sbatch_args`` (or ``sbatch_arg``; a list, each item split as a shell would), ``mode``
    (container or process), ``python`` (process mode's interpreter on the nodes)."""
    missing = [name for name in CLIENTS if shutil.which(name) is None]
    if missing:
        raise ReplayInputError(
            f"{missing[0]} is not on PATH: the Slurm clients are needed (Debian: slurm-client; "
            "scripts/slurm-up installs a cluster on this machine)"
        )
    try:
        ping = _call(["scontrol", "ping"], timeout=20)
        answer = ping.stdout.strip() or _complaint(ping)
    except subprocess.TimeoutExpired:
        ping, answer = None, "scontrol ping got no answer in 20 s"
    if ping is None or ping.returncode or "UP" not in answer:
        raise ReplayInputError(f"no Slurm controller answers ({first_line(Exception(answer))})")
    arguments: list[str] = []
    given = options.get("sbatch_args", options.get("sbatch_arg")) or []
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
