"""What a Slurm job of the ``slurm`` engine runs (workloads/replay/slurm_engine.py): its batch
script, in one of two modes.

- ``container``: the task's image, with podman on the node. podman would put the container in
  cgroups of its own, beside the job's, where Slurm neither limits nor tracks it; an OCI
  prestart hook (``HOOK``) moves the container's first process into the job's own cgroups
  before the command starts, so every process of it is the job's: limited, accounted,
  signalled and killed by Slurm. The host's cgroup tree is mounted read-only, so that the
  workload finds the job's limits above its cgroup. podman pulls a missing image on the node;
  ``registry_says`` asks an image's registry where this machine has no podman to pull it.
- ``process``: the installed package, run directly in the job (``python -m workloads run ID``
  with the task's controls), for sites without a container runtime on their nodes.

Either way the job's first process stays the script, which passes a stop on only to a process
ready for it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from workloads.replay.engine import (
    REPLAY_LABEL,
    TASK_LABEL,
    ReplayInputError,
    ReplayTask,
    stop_grace_variable,
)
from workloads.replay.slurm_records import MIB, call, complaint

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
  --env {stop_grace} {image} /bin/sh -c {command} &
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


def container_script(task: ReplayTask, replay_id: str, grace: float) -> str:
    """The batch script that runs ``task``'s image in its job's cgroups; a stop gives it
    ``grace`` seconds, inside the image too (its supervisor's bound)."""
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
        stop_grace=shlex.quote(stop_grace_variable(grace)),
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


def registry_says(image: str) -> str | None:
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


# -- what a job asks for, and whether its image can be had -------------------------------------
def asks(task: ReplayTask) -> tuple[int, int, int]:
    """What the job asks for: whole CPUs, MiB, GPUs (Slurm's units, rounded up)."""
    return math.ceil(task.cpus), math.ceil(task.memory / MIB), task.gpus


def sbatch_options(task: ReplayTask, partition: str, extra: Sequence[str]) -> list[str]:
    """The ``sbatch`` options of ``task``'s job: one node, one task, exactly its requests, and
    the user's ``extra`` arguments last."""
    cpus, memory, gpus = asks(task)
    options = [
        f"--partition={partition}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={cpus}",
        f"--mem={memory}M",
    ]
    if gpus:
        options.append(f"--gres=gpu:{gpus}")
    return [*options, *extra]


def have_image(image: str) -> None:
    """Pull it here when this machine has podman (its nodes' store, when they are this
    machine), else ask its registry: no task's start should include a pull it can avoid."""
    if shutil.which("podman"):
        pulled = call(["podman", "pull", "--quiet", image], timeout=900)
        if pulled.returncode == 0:
            return
        why = complaint(pulled)
    else:
        reason = registry_says(image)
        if reason is None:
            return
        why = reason
    raise ReplayInputError(f"image {image} cannot be pulled, as the nodes would ({why})")
