#!/usr/bin/env python3
"""Image figures: sizes, cold build time of all 20 (amd64), warm rebuild after editing one
workload, and a summary of the bake plan. Needs the toolchain of scripts/docker-up.

    python bench/images.py [--edit cpu-3] [--skip-cold]

Cold means an empty build cache (docker buildx prune) and no local images of the namespace; the
Python packages still come from the index, as they would for a user. Sizes are the unpacked
content of an image and what a pull downloads (compressed layers, from the registry).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_images import (  # noqa: E402
    BASE_IMAGE,
    NAMESPACE,
    REGISTRY,
    bake_environment,
    push_with_bake,
)
from workloads.manifest import load_manifest  # noqa: E402

MANIFEST = load_manifest(ROOT / "workloads.yaml")
PREFIX = f"{REGISTRY}/{NAMESPACE}"


def sh(*command: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        command, cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def bake_stable_environment() -> dict[str, str]:
    return bake_environment() | {"CREATED": "2026-01-01T00:00:00Z"}  # stable image configs


def bake(*extra: str) -> float:
    environment = bake_stable_environment()
    started = time.monotonic()
    sh(
        "docker",
        "buildx",
        "bake",
        "--file",
        "docker-bake.hcl",
        "--set",
        "*.platform=linux/amd64",
        *extra,
        env=environment,
    )
    return time.monotonic() - started


def image(workload_id: str) -> str:
    workload = MANIFEST.get(workload_id)
    return f"{PREFIX}/cloudai-{workload.category}-intensive:{workload.number}"


def layers(reference: str) -> list[str]:
    return json.loads(
        sh("docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", reference)
    )


def unpacked_size(reference: str) -> int:
    """Bytes of the image's filesystem (the containerd store reports compressed content)."""
    kib = sh("docker", "run", "--rm", "--entrypoint", "du", reference, "-skx", "/").split()[0]
    return int(kib) * 1024


def pulled_size(reference: str) -> int:
    """Compressed layers of the linux/amd64 image in the registry."""
    index = json.loads(sh("docker", "buildx", "imagetools", "inspect", "--raw", reference))
    digest = next(
        entry["digest"]
        for entry in index.get("manifests", [])
        if entry.get("platform", {}).get("architecture") == "amd64"
    )
    repository = reference.rsplit(":", 1)[0]
    manifest = json.loads(
        sh("docker", "buildx", "imagetools", "inspect", "--raw", f"{repository}@{digest}")
    )
    return sum(layer["size"] for layer in manifest["layers"])


def cold_build() -> float:
    sh("docker", "buildx", "prune", "--all", "--force")
    for workload in MANIFEST:
        subprocess.run(
            ["docker", "rmi", "-f", image(workload.id)], capture_output=True, check=False
        )
    return bake()


def warm_rebuild(workload_id: str) -> tuple[float, list[str]]:
    """Rebuild all 20 after editing one module; name the images whose layers changed."""
    before = {workload.id: layers(image(workload.id)) for workload in MANIFEST}
    module = ROOT / (MANIFEST.get(workload_id).module.replace(".", "/") + ".py")
    original = module.read_text()
    try:
        module.write_text(original + f"\n# edited by bench/images.py at {time.time()}\n")
        seconds = bake()
    finally:
        module.write_text(original)
    changed = []
    for workload in MANIFEST:
        after = layers(image(workload.id))
        if after != before[workload.id]:
            shared = sum(a == b for a, b in zip(after, before[workload.id], strict=False))
            changed.append(f"{workload.id} ({len(after) - shared} of {len(after)} layers)")
    return seconds, changed


def plan_summary() -> str:
    plan = json.loads(
        sh(
            "docker",
            "buildx",
            "bake",
            "--file",
            "docker-bake.hcl",
            "--print",
            env={**os.environ, "DOCKER_USERNAME": "me"},
        )
    )
    targets = plan["target"]
    images = [name for name in targets if name not in ("base", "base-gpu")]
    tags = sum(len(targets[name]["tags"]) for name in images)
    platforms = sum(len(targets[name]["platforms"]) for name in images)
    return (
        f"{len(images)} image targets + 2 bases; {tags} tags; {platforms} image-platforms; "
        f"groups {sorted(plan['group'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edit", default="cpu-3", help="the workload whose module is edited")
    parser.add_argument("--skip-cold", action="store_true", help="reuse the build cache")
    args = parser.parse_args()

    cold = None if args.skip_cold else cold_build()
    if args.skip_cold:
        bake()
    warm, changed = warm_rebuild(args.edit)
    push = push_with_bake("--set", "*.platform=linux/amd64", env=bake_stable_environment())
    if push.returncode:
        sys.exit(f"bake --push failed: {push.stderr.strip().splitlines()[-1]}")
    print(f"plan: {plan_summary()}")
    print(f"base image: {BASE_IMAGE}")
    if cold is not None:
        print(f"cold build, all 20 (amd64): {cold:.0f} s")
    print(
        f"warm rebuild of all 20 after editing {args.edit}: {warm:.1f} s; "
        f"changed: {', '.join(changed) or 'none'}"
    )
    print(f"{'image':<40} {'layers':>6} {'unpacked MB':>12} {'pull MB':>9}")
    local_base = f"{BASE_IMAGE}-amd64"  # scripts/docker-up's per-architecture tag
    print(
        f"{'stand-in base python:3.11':<40} {len(layers(local_base)):>6} "
        f"{unpacked_size(local_base) / 1e6:>12.0f} {pulled_size(BASE_IMAGE) / 1e6:>9.0f}"
    )
    for workload_id in ("io-1", "cpu-1", "gpu-1"):
        reference = image(workload_id)
        print(
            f"{reference.split('/')[-1]:<40} {len(layers(reference)):>6} "
            f"{unpacked_size(reference) / 1e6:>12.0f} {pulled_size(reference) / 1e6:>9.0f}"
        )


if __name__ == "__main__":
    main()
