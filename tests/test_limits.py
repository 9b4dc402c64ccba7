"""Limits detection on fake cgroup trees: v1 and v2, limited and unlimited, fractional quotas."""

from __future__ import annotations

from pathlib import Path

import pytest

from workloads.runtime.limits import Limits, detect_limits, parse_cpu_list

pytestmark = pytest.mark.unit


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")


def _proc(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proc-self-cgroup"
    path.write_text(text)
    return path


def test_v2_fractional_quota_cpuset_and_memory(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _tree(
        root,
        {
            "cgroup.controllers": "cpuset cpu io memory pids",
            "cpu.max": "150000 100000",
            "cpuset.cpus.effective": "0-3",
            "memory.max": str(512 << 20),
        },
    )
    limits = detect_limits(root, _proc(tmp_path, "0::/\n"))
    assert limits.cgroup_version == 2
    assert limits.cpu_quota == pytest.approx(1.5)
    assert limits.cpuset == (0, 1, 2, 3)
    assert limits.memory_limit == 512 << 20
    assert limits.memory_ceiling == 512 << 20


def test_v2_unlimited(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _tree(root, {"cgroup.controllers": "cpu memory", "cpu.max": "max 100000", "memory.max": "max"})
    limits = detect_limits(root, _proc(tmp_path, "0::/\n"))
    assert (limits.cgroup_version, limits.cpu_quota, limits.memory_limit) == (2, None, None)
    assert limits.memory_ceiling == limits.memory_available


def test_v2_nested_cgroup_takes_the_tightest_ancestor(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _tree(
        root,
        {
            "cgroup.controllers": "cpu memory",
            "kubepods/cpu.max": "50000 100000",
            "kubepods/memory.max": str(256 << 20),
            "kubepods/pod1/cpu.max": "200000 100000",
            "kubepods/pod1/memory.max": "max",
        },
    )
    limits = detect_limits(root, _proc(tmp_path, "0::/kubepods/pod1\n"))
    assert limits.cpu_quota == pytest.approx(0.5)
    assert limits.memory_limit == 256 << 20


def test_v1_docker_mounts_the_container_cgroup_at_the_root(tmp_path: Path) -> None:
    # /proc/self/cgroup names the host path, which does not exist inside the container's mount.
    root = tmp_path / "cgroup"
    _tree(
        root,
        {
            "cpu,cpuacct/cpu.cfs_quota_us": "150000",
            "cpu,cpuacct/cpu.cfs_period_us": "100000",
            "cpuset/cpuset.cpus": "0,2",
            "memory/memory.limit_in_bytes": str(1 << 30),
        },
    )
    (root / "cpu").symlink_to(root / "cpu,cpuacct")
    proc = _proc(
        tmp_path,
        "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"
        "3:cpuset:/docker/abc\n1:name=systemd:/docker/abc\n",
    )
    limits = detect_limits(root, proc)
    assert limits.cgroup_version == 1
    assert limits.cpu_quota == pytest.approx(1.5)
    assert limits.cpuset == (0, 2)
    assert limits.memory_limit == 1 << 30


def test_v1_host_path_and_unlimited_values(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _tree(
        root,
        {
            "cpu/cpu.cfs_quota_us": "-1",
            "cpu/cpu.cfs_period_us": "100000",
            "cpu/jobs/a/cpu.cfs_quota_us": "-1",
            "cpu/jobs/a/cpu.cfs_period_us": "100000",
            "memory/memory.limit_in_bytes": "9223372036854771712",
            "memory/jobs/a/memory.limit_in_bytes": "9223372036854771712",
        },
    )
    limits = detect_limits(root, _proc(tmp_path, "4:memory:/jobs/a\n2:cpu:/jobs/a\n"))
    assert (limits.cgroup_version, limits.cpu_quota, limits.memory_limit) == (1, None, None)


def test_v1_quota_of_a_nested_cgroup(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _tree(
        root,
        {
            "cpu/cpu.cfs_quota_us": "-1",
            "cpu/cpu.cfs_period_us": "100000",
            "cpu/jobs/a/cpu.cfs_quota_us": "25000",
            "cpu/jobs/a/cpu.cfs_period_us": "100000",
            "memory/jobs/a/memory.limit_in_bytes": str(300 << 20),
        },
    )
    limits = detect_limits(root, _proc(tmp_path, "4:memory:/jobs/a\n2:cpu:/jobs/a\n"))
    assert limits.cpu_quota == pytest.approx(0.25)
    assert limits.memory_limit == 300 << 20


def test_no_cgroup_filesystem(tmp_path: Path) -> None:
    limits = detect_limits(tmp_path / "absent", tmp_path / "absent-proc")
    assert (limits.cgroup_version, limits.cpu_quota, limits.memory_limit) == (None, None, None)
    assert limits.usable_cpus >= 1


def _limits(quota: float | None, cpuset: tuple[int, ...] | None, affinity: tuple[int, ...]):
    return Limits(
        cgroup_version=2,
        cpu_quota=quota,
        cpuset=cpuset,
        affinity=affinity,
        host_cpus=8,
        memory_limit=None,
        host_memory=8 << 30,
        memory_available=4 << 30,
    )


@pytest.mark.parametrize(
    ("quota", "cpuset", "affinity", "usable", "workers"),
    [
        (None, None, tuple(range(8)), 8.0, 4),  # unlimited host: capped by the envelope (4)
        (1.5, None, tuple(range(8)), 1.5, 2),  # fractional quota: ceil keeps the quota busy
        (0.5, None, tuple(range(8)), 0.5, 1),
        (None, (0, 1, 2), tuple(range(8)), 3.0, 3),  # cpuset
        (6.0, (0, 1, 2, 3, 4, 5), (2, 3), 2.0, 2),  # affinity narrows the cpuset
    ],
)
def test_usable_cpus_and_default_workers(quota, cpuset, affinity, usable, workers) -> None:
    limits = _limits(quota, cpuset, affinity)
    assert limits.usable_cpus == pytest.approx(usable)
    assert limits.default_workers(envelope_cpus=4) == workers


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0-3", (0, 1, 2, 3)), ("0,2,4-5", (0, 2, 4, 5)), ("7", (7,)), ("0-1,\n", (0, 1))],
)
def test_parse_cpu_list(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpu_list(text) == cpus
