"""What the run ran on: Python, library versions, CPU model, kernel, container, device."""

from __future__ import annotations

import contextlib
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path

import workloads

# Reported when already imported by the workload; never imported here (torch is heavy).
_LIBRARIES = ("numpy", "psutil", "pydantic", "torch", "PIL", "nvidia-ml-py")
_DISTRIBUTIONS = {"PIL": "pillow", "nvidia-ml-py": "nvidia-ml-py"}


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                return value.strip()
    return platform.processor() or platform.machine()


def in_container() -> bool:
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        return True
    with contextlib.suppress(OSError):
        return any(
            marker in Path("/proc/1/cgroup").read_text()
            for marker in ("docker", "containerd", "kubepods", "libpod")
        )
    return False


def library_versions() -> dict[str, str]:
    versions = {"cloudai-workloads": workloads.__version__}
    for name in _LIBRARIES:
        if name in sys.modules or (name == "nvidia-ml-py" and "pynvml" in sys.modules):
            with contextlib.suppress(metadata.PackageNotFoundError):
                versions[name] = metadata.version(_DISTRIBUTIONS.get(name, name))
    return versions


def describe_environment() -> dict[str, object]:
    """The machine and software of the run (the device used is the workload's to say)."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "libraries": library_versions(),
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        "hostname": socket.gethostname(),
        "container": in_container(),
    }


LOCK_DIGEST_FILE = "cloudai-lock.sha256"  # written by images/pip-install.sh into the venv


def lock_digest() -> str | None:
    """sha256 of the dependency lock this environment was installed from (the images'), or
    None where it was not installed from one."""
    with contextlib.suppress(OSError):
        return (Path(sys.prefix) / LOCK_DIGEST_FILE).read_text().strip() or None
    return None
