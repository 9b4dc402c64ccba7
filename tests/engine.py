"""The engine the tests use: what scripts/docker-up provides (an engine, a local registry, base
images), and the session fixture that builds and pushes every image there."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import _toolchain as toolchain
from bench._toolchain import BASE_IMAGE, REGISTRY, REGISTRY_RACE

ROOT = Path(__file__).resolve().parent.parent

NAMESPACE = "cloudai-test"  # the tests' own: nothing the bench pushes stands in for it
ARM64 = "linux/arm64"
# The grace a test gives a stopped task. What the tests judge is that the task heard the stop and
# left its document; on a busy host a container's Python took over 5 s just to start, so a 5 s
# grace killed one before it could write. A stop heard sooner ends the task sooner.
STOP_GRACE_S = 30


def docker_cli(*args: str, check: bool = True, timeout: float = 600) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    ).stdout


def _base_platforms() -> set[str]:
    """Platforms of the base image in the local registry (empty when there is none)."""
    probe = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", "--raw", BASE_IMAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode:
        return set()
    index = json.loads(probe.stdout)
    return {
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in index.get("manifests", [])
        if "platform" in m
    }


def _engine_ready() -> str | None:
    """None when the engine, registry and base image of scripts/docker-up are there."""
    if shutil.which("docker") is None:
        return "no docker client"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        return "no Docker engine running (scripts/docker-up starts one)"
    if not _base_platforms():
        return f"no base image {BASE_IMAGE} in a local registry (scripts/docker-up makes one)"
    return None


def emulates_arm64() -> bool:
    """scripts/docker-up --arm64 registers QEMU and publishes an arm64 base image."""
    return ARM64 in _base_platforms() and ARM64 in docker_cli("buildx", "inspect", check=False)


def bake_environment() -> dict[str, str]:
    return toolchain.bake_environment(NAMESPACE=NAMESPACE)


def expected_platforms(workload: Any) -> list[str]:
    return [p for p in workload.platforms if p != ARM64 or emulates_arm64()]


def run_again_on(
    transient: str, command: list[str], attempts: int, **run: Any
) -> subprocess.CompletedProcess[str]:
    """subprocess.run(command), started again (``attempts`` times in all) only while it fails with
    ``transient`` in its stderr: a failure of the toolchain, never of what is under test."""
    for attempt in range(1, attempts + 1):
        completed = subprocess.run(command, capture_output=True, text=True, check=False, **run)
        if completed.returncode == 0 or transient not in completed.stderr:
            return completed
        if attempt < attempts:
            warnings.warn(
                f"attempt {attempt} of {attempts} of {' '.join(command[:3])} met {transient!r}; "
                "starting it again",
                stacklevel=2,
            )
    return completed


def push_with_bake(
    *extra: str, env: dict[str, str], attempts: int = 3
) -> subprocess.CompletedProcess[str]:
    """`docker buildx bake --push`, repeated only when the local registry answered 500."""
    command = ["docker", "buildx", "bake", "--file", "docker-bake.hcl", *extra, "--push"]
    return run_again_on(REGISTRY_RACE, command, attempts, cwd=ROOT, env=env)


@pytest.fixture(scope="session")
def pushed_images() -> str:
    """All 20 targets built for their manifest platforms (arm64 where emulated) and pushed."""
    reason = _engine_ready()
    if reason:
        pytest.skip(reason)
    platforms = [] if emulates_arm64() else ["--set", "*.platform=linux/amd64"]
    completed = push_with_bake(*platforms, env=bake_environment())
    assert completed.returncode == 0, completed.stderr[-4000:]
    return f"{REGISTRY}/{NAMESPACE}"


# -- what a replay leaves on the engine, and a swarm to replay on ------------------------------
REPLAY_LABEL_FILTER = "label=org.cloudai.replay"


def swarm_state() -> str:
    return subprocess.run(
        ["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def leftovers() -> list[str]:
    """Containers and services any replay made that are still on the engine."""
    containers = subprocess.run(
        ["docker", "ps", "-aq", "--filter", REPLAY_LABEL_FILTER],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    services = []
    if swarm_state() == "active":
        services = subprocess.run(
            ["docker", "service", "ls", "-q", "--filter", REPLAY_LABEL_FILTER],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
    return containers + services


@pytest.fixture(scope="module")
def one_node_swarm() -> Iterator[None]:
    """A one-node swarm on the test engine, left afterwards if this fixture made it."""
    made = swarm_state() != "active"
    if made:
        subprocess.run(
            ["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"],
            capture_output=True, check=True,
        )  # fmt: skip
    yield
    if made:
        subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, check=False)
