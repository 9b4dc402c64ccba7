"""The CPU and memory a process may really use: cgroup v2 and v1 limits, CPU affinity, the host.

Docker on cgroup v1 mounts the container's own cgroup at the controller's root while
/proc/self/cgroup still names the host path, so each controller is read at the deepest existing
directory along that path, and at every ancestor up to the mount (a parent's limit applies too).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 reports "no limit" as a page-rounded LONG_MAX; anything this large means unlimited.
_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class Limits:
    cgroup_version: int | None
    cpu_quota: float | None  # cores allowed by the CFS quota
    cpuset: tuple[int, ...] | None  # CPUs allowed by the cgroup cpuset
    affinity: tuple[int, ...]  # CPUs this process may be scheduled on
    host_cpus: int
    memory_limit: int | None  # bytes, hard limit of the cgroup
    host_memory: int  # bytes of RAM on the host
    memory_available: int  # bytes the host reports available now

    @property
    def usable_cpus(self) -> float:
        """Cores this process can keep busy: quota ∩ cpuset ∩ affinity."""
        cpus = set(self.affinity) & set(self.cpuset) if self.cpuset else set(self.affinity)
        count = float(max(1, len(cpus)))
        return min(count, self.cpu_quota) if self.cpu_quota else count

    @property
    def memory_ceiling(self) -> int:
        """Bytes the process tree may use before the OOM killer (or swapping) steps in."""
        if self.memory_limit is not None:
            return min(self.memory_limit, self.host_memory)
        return self.memory_available

    def default_workers(self, envelope_cpus: float) -> int:
        # ceil: a 1.5-core quota is only used up by two busy workers (CFS throttles the excess).
        return max(1, math.ceil(min(self.usable_cpus, envelope_cpus) - 1e-9))

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["cpuset"] = list(self.cpuset) if self.cpuset is not None else None
        data["affinity"] = list(self.affinity)
        data["usable_cpus"] = self.usable_cpus
        data["memory_ceiling"] = self.memory_ceiling
        return data


def detect_limits(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> Limits:
    memory = psutil.virtual_memory()
    affinity = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else ()
    host_cpus = os.cpu_count() or 1
    version, quota, cpuset, memory_limit = _read_cgroups(root, proc_cgroup)
    return Limits(
        cgroup_version=version,
        cpu_quota=quota,
        cpuset=cpuset,
        affinity=affinity or tuple(range(host_cpus)),
        host_cpus=host_cpus,
        memory_limit=memory_limit,
        host_memory=memory.total,
        memory_available=memory.available,
    )


def _read_cgroups(
    root: Path, proc_cgroup: Path
) -> tuple[int | None, float | None, tuple[int, ...] | None, int | None]:
    paths = _parse_proc_cgroup(proc_cgroup)
    if (root / "cgroup.controllers").is_file():
        dirs = _lineage(root, paths.get("", "/"))
        return 2, _v2_quota(dirs), _cpuset(dirs, "cpuset.cpus.effective"), _v2_memory(dirs)
    cpu_dirs = _v1_lineage(root, paths, "cpu")
    memory_dirs = _v1_lineage(root, paths, "memory")
    cpuset_dirs = _v1_lineage(root, paths, "cpuset")
    if not (cpu_dirs or memory_dirs or cpuset_dirs):
        return None, None, None, None
    cpuset = _cpuset(cpuset_dirs, "cpuset.effective_cpus") or _cpuset(cpuset_dirs, "cpuset.cpus")
    return 1, _v1_quota(cpu_dirs), cpuset, _v1_memory(memory_dirs)


def _parse_proc_cgroup(path: Path) -> dict[str, str]:
    """Map each controller ('' for the v2 unified hierarchy) to this process's cgroup path."""
    paths: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            paths[controller.removeprefix("name=")] = parts[2]
    return paths


def _lineage(mount: Path, cgroup_path: str) -> list[Path]:
    """Existing directories from the process's cgroup up to the mount point, deepest first."""
    parts = [part for part in cgroup_path.split("/") if part and part != ".."]
    candidates = [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]
    return [path for path in candidates if path.is_dir()]


def _v1_lineage(root: Path, paths: dict[str, str], controller: str) -> list[Path]:
    # Controllers may be co-mounted ("cpu,cpuacct"); Docker adds per-controller symlinks.
    for mount in (root / controller, *sorted(root.glob(f"*{controller}*"))):
        if mount.is_dir() and controller in mount.name.split(","):
            return _lineage(mount, paths.get(controller, "/"))
    return []


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _minimum(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def _v2_quota(dirs: list[Path]) -> float | None:
    def quota(directory: Path) -> float | None:
        fields = (_read(directory / "cpu.max") or "max").split()
        if fields[0] == "max":
            return None
        period = float(fields[1]) if len(fields) > 1 else 100_000.0
        return float(fields[0]) / period

    return _minimum([quota(directory) for directory in dirs])


def _v1_quota(dirs: list[Path]) -> float | None:
    def quota(directory: Path) -> float | None:
        quota_us, period_us = (
            _read(directory / "cpu.cfs_quota_us"),
            _read(directory / "cpu.cfs_period_us"),
        )
        if not quota_us or not period_us or int(quota_us) <= 0 or int(period_us) <= 0:
            return None
        return int(quota_us) / int(period_us)

    return _minimum([quota(directory) for directory in dirs])


def _v2_memory(dirs: list[Path]) -> int | None:
    def limit(directory: Path) -> float | None:
        value = _read(directory / "memory.max")
        return None if value in (None, "", "max") else float(value)

    found = _minimum([limit(directory) for directory in dirs])
    return int(found) if found is not None else None


def _v1_memory(dirs: list[Path]) -> int | None:
    def limit(directory: Path) -> float | None:
        value = _read(directory / "memory.limit_in_bytes")
        return None if not value or int(value) >= _V1_UNLIMITED else float(value)

    found = _minimum([limit(directory) for directory in dirs])
    return int(found) if found is not None else None


def _cpuset(dirs: list[Path], filename: str) -> tuple[int, ...] | None:
    # The deepest cpuset is already the intersection with its ancestors ("effective").
    for directory in dirs:
        value = _read(directory / filename)
        if value:
            return parse_cpu_list(value)
    return None


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """Parse the kernel's CPU list format: ``0-3,6,8-9``."""
    cpus: set[int] = set()
    for chunk in filter(None, (part.strip() for part in text.split(","))):
        low, _, high = chunk.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return tuple(sorted(cpus))
