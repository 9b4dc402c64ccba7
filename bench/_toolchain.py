"""The local Docker toolchain of scripts/docker-up, as the bench scripts use it: its registry,
its base image, and the images built from this checkout and pushed there.

The facts are those of scripts/docker-up (registry, base image) and of the machine (a local
wheelhouse with the CPU-only torch wheel). The bench keeps its images in a namespace of its own,
``cloudai-bench``, so that nothing it builds or pushes stands in for what a test obtains itself.
No bench script imports from tests/: what the scripts share is here.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = "localhost:5000"  # scripts/docker-up: a registry on 127.0.0.1:5000
NAMESPACE = "cloudai-bench"
BASE_IMAGE = f"{REGISTRY}/cloudai/python:3.11"  # scripts/docker-up's stand-in for python:3.x-slim
AMD64 = ["--set", "*.platform=linux/amd64"]
# Registry 2.8 can answer a HEAD that races a push's PUTs of the same tag with a 500: a push is
# idempotent, so it is made again, a few times at most.
REGISTRY_RACE = "500 Internal Server Error"
PUSH_ATTEMPTS = 3


def wheelhouse() -> str:
    """The folder of wheels the GPU images install torch from (the CPU-only wheel here)."""
    return os.environ.get("CLOUDAI_TEST_WHEELHOUSE", "/opt/wheels")


def bake_environment(**extra: str) -> dict[str, str]:
    """The variables of docker-bake.hcl for the local toolchain."""
    return {
        **os.environ,
        "REGISTRY": REGISTRY,
        "NAMESPACE": NAMESPACE,
        "BASE_IMAGE": BASE_IMAGE,
        "SBOM": "false",  # the SBOM scanner is an image that cannot be pulled here
        "WHEELHOUSE": wheelhouse(),
        "TORCH_SPEC": f"torch=={metadata.version('torch')}",  # the CPU-only wheel
        **extra,
    }


def image(category: str, number: int) -> str:
    return f"{REGISTRY}/{NAMESPACE}/cloudai-{category}-intensive:{number}"


def not_ready() -> str | None:
    """None when the engine, the registry and the base image of scripts/docker-up answer."""
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        return "no Docker engine answers (scripts/docker-up starts one)"
    probe = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", "--raw", BASE_IMAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode or not json.loads(probe.stdout).get("manifests"):
        return f"no base image {BASE_IMAGE} in the local registry (scripts/docker-up makes one)"
    return None


def bake(
    *args: str, context: Path = ROOT, push: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker buildx bake`` of docker-bake.hcl in ``context`` for linux/amd64; with ``push``,
    made again while the registry answers the race above."""
    command = ["docker", "buildx", "bake", "--file", "docker-bake.hcl", *AMD64, *args]
    command += ["--push"] if push else []
    for _ in range(PUSH_ATTEMPTS if push else 1):
        completed = subprocess.run(
            command,
            cwd=context,
            env=env or bake_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode == 0 or REGISTRY_RACE not in completed.stderr:
            break
    return completed


def push_images(targets: list[str]) -> str:
    """Build ``targets`` (workload ids, categories) from this checkout and push them; returns
    the repository prefix. Exits with bake's last line when it fails."""
    reason = not_ready()
    if reason:
        raise SystemExit(reason)
    completed = bake(*targets, push=True)
    if completed.returncode:
        last = (completed.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"docker buildx bake {' '.join(targets)} --push failed: {last}")
    return f"{REGISTRY}/{NAMESPACE}"
