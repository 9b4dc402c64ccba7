"""Slurm's record of a job, as the ``slurm`` engine (workloads/replay/slurm_engine.py) reads
it: the calls to the Slurm clients (every one reading times as Unix seconds) and the parsers of
what they print. ``squeue`` gives the live view (submit, start and end times, state, pending
reason, node), ``scontrol`` an ended job's exit code, the partitions and the nodes, and once the
controller has forgotten a job (``MinJobAge``), ``sacct`` when accounting is configured, else
the job-completion log when it is a file this machine can read. ``ending`` says which of the
replay's events a job's end is.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workloads.replay.engine import Node, ReplayInputError

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
NO_NODE = ("", "(null)", "None assigned", "N/A")
# Slurm's exit code of a job its out-of-memory handler saw killed (SIG_OOM, 253, in 0:125).
_SIG_OOM = 125
_SIGKILL = 9


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
        return self.state != "PENDING" and self.start is not None and self.nodes not in NO_NODE

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


# -- the calls -------------------------------------------------------------------------------
def call(
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


def complaint(completed: subprocess.CompletedProcess[str]) -> str:
    lines = (completed.stderr or completed.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {completed.returncode}"


def read_config() -> dict[str, str]:
    """``scontrol show config`` by key."""
    completed = call(["scontrol", "show", "config"])
    pairs = {}
    for line in completed.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs


def list_jobs(user: str) -> dict[str, JobRecord]:
    """The jobs of ``user`` that the controller still lists (squeue), by id."""
    listing = call(
        ["squeue", "--noheader", "--states=all", f"--user={user}",
         "--Format=" + ",".join(f"{name}:|" for name in _FIELDS)],
    )  # fmt: skip
    if listing.returncode:
        raise RuntimeError(f"squeue: {complaint(listing)}")
    return parse_squeue(listing.stdout)


def choose_partition(wanted: str | None) -> str:
    """``wanted``, else the default partition; ReplayInputError when there is none such, or it
    is not up."""
    completed = call(["scontrol", "-o", "show", "partition"])
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


def usable_nodes(partition: str) -> list[Node]:
    return parse_nodes(call(["scontrol", "-o", "show", "node"]).stdout, partition)


def with_exit(record: JobRecord, config: Mapping[str, str]) -> JobRecord:
    """The ended job's exit code, from the controller (squeue does not show it)."""
    shown = call(["scontrol", "-o", "show", "job", record.job_id])
    if shown.returncode == 0 and shown.stdout.strip():
        detailed = record_from_pairs(parse_key_values(shown.stdout.splitlines()[0]))
        record.exit_code, record.exit_status = detailed.exit_code, detailed.exit_status
        return record
    return archived(record.job_id, config) or record


def archived(job_id: str, config: Mapping[str, str]) -> JobRecord | None:
    """The end of a job the controller has forgotten: from the accounting, else from the
    job-completion log; None when neither keeps it."""
    if config.get("AccountingStorageType", "accounting_storage/none") != (
        "accounting_storage/none"
    ):
        listed = call(
            ["sacct", "-X", "-n", "-P", "-j", job_id,
             "-o", "JobIDRaw,State,ExitCode,Submit,Start,End,NodeList"],
        )  # fmt: skip
        record = parse_sacct(listed.stdout).get(job_id)
        if record is not None and record.ended:
            return record
    if config.get("JobCompType") == "jobcomp/filetxt":
        with contextlib.suppress(OSError):
            for line in Path(config.get("JobCompLoc", "")).read_text().splitlines():
                if line.startswith(f"JobId={job_id} "):
                    return record_from_pairs(parse_key_values(line))
    return None


def ending(record: JobRecord, stopping: bool) -> tuple[str, str]:
    """The replay's event for an ended job (FINISH, FAIL, KILL, EVICT or LOST) and its detail,
    which names Slurm's state and ``CODE:SIGNAL``; a job the replay stopped ends as a KILL."""
    state = record.state
    slurm = f"Slurm: {state}" + (f" {record.exit_status}" if record.exit_status else "")
    if stopping:
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
