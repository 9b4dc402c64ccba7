#!/usr/bin/env python3
"""Image figures: sizes, build times and the bake plan, on the toolchain of scripts/docker-up.

Sizes, the cold build time (amd64), the warm rebuild after editing one workload, and a summary
of the bake plan.

    python bench/images.py [--edit cpu-3] [--skip-cold] [--workloads ID ...]

All 20 images by default; ``--workloads`` builds, times and sizes only those (with
``--skip-cold``, the smallest run: one image, the build cache kept). Cold means an empty build
cache (docker buildx prune: every build's, not only these) and no local images of the bench's
namespace; the Python packages still come from the index, as they would for a user. Sizes are the
unpacked content of an image and what a pull downloads (compressed layers, from the registry).
The images are built from a copy of what the build context takes from this checkout, so the
edit of the warm rebuild never touches the checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _toolchain import BASE_IMAGE, ROOT, bake_environment, not_ready
from _toolchain import bake as toolchain_bake
from _toolchain import image as reference_of

sys.path.insert(0, str(ROOT))

from workloads.manifest import load_manifest

MANIFEST = load_manifest(ROOT / "workloads.yaml")
# What the build context takes from the checkout (.dockerignore), and the build plan.
CONTEXT = ("pyproject.toml", "workloads.yaml", "workloads", "images", "docker-bake.hcl")
CONTEXT_FILES = (".dockerignore",)


def sh(*command: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        command, cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def bake_stable_environment() -> dict[str, str]:
    return bake_environment(CREATED="2026-01-01T00:00:00Z")  # stable image configs


@contextmanager
def build_context() -> Iterator[Path]:
    """A copy of the checkout's build context and bake file, removed at the end."""
    with tempfile.TemporaryDirectory(prefix="cloudai-bench-images-") as scratch:
        copy = Path(scratch)
        for name in CONTEXT:
            source = ROOT / name
            if source.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(source, copy / name, ignore=ignore)
            else:
                shutil.copy2(source, copy / name)
        for name in CONTEXT_FILES:
            shutil.copy2(ROOT / name, copy / name)
        yield copy


def bake(context: Path, targets: list[str], *, push: bool = False) -> float:
    """Seconds of one bake of ``targets`` (linux/amd64) in ``context``; exits when it fails."""
    started = time.monotonic()
    completed = toolchain_bake(*targets, context=context, push=push, env=bake_stable_environment())
    if completed.returncode:
        last = (completed.stderr.strip().splitlines() or ["?"])[-1]
        sys.exit(f"docker buildx bake {' '.join(targets)}{' --push' * push} failed: {last}")
    return time.monotonic() - started


def image(workload_id: str) -> str:
    workload = MANIFEST.get(workload_id)
    return reference_of(workload.category, workload.number)


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


def cold_build(context: Path, workloads: list[str]) -> float:
    sh("docker", "buildx", "prune", "--all", "--force")
    for workload_id in workloads:
        subprocess.run(
            ["docker", "rmi", "-f", image(workload_id)], capture_output=True, check=False
        )
    return bake(context, workloads)


def warm_rebuild(context: Path, workloads: list[str], edited: str) -> tuple[float, list[str]]:
    """Rebuild ``workloads`` after editing the module of ``edited`` in the copy ``context``
    (undone afterwards); name the images whose layers changed."""
    before = {workload_id: layers(image(workload_id)) for workload_id in workloads}
    module = context / (MANIFEST.get(edited).module.replace(".", "/") + ".py")
    original = module.read_text()
    try:
        module.write_text(original + f"\n# edited by bench/images.py at {time.time()}\n")
        seconds = bake(context, workloads)
    finally:
        module.write_text(original)
    changed = []
    for workload_id in workloads:
        after = layers(image(workload_id))
        if after != before[workload_id]:
            shared = sum(a == b for a, b in zip(after, before[workload_id], strict=False))
            changed.append(f"{workload_id} ({len(after) - shared} of {len(after)} layers)")
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
    parser.add_argument(
        "--edit",
        default="cpu-3",
        choices=MANIFEST.ids,
        metavar="ID",
        help="the workload whose module is edited",
    )
    parser.add_argument("--skip-cold", action="store_true", help="reuse the build cache")
    parser.add_argument(
        "--workloads",
        nargs="+",
        default=MANIFEST.ids,
        choices=MANIFEST.ids,
        metavar="ID",
        help="(all)",
    )
    args = parser.parse_args()
    # A time limit's SIGTERM ends the run through its finally blocks: what it set up goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    reason = not_ready()
    if reason:
        sys.exit(reason)
    workloads, count = list(args.workloads), len(args.workloads)

    with build_context() as context:
        cold = None if args.skip_cold else cold_build(context, workloads)
        if args.skip_cold:
            bake(context, workloads)
        warm, changed = warm_rebuild(context, workloads, args.edit)
        bake(context, workloads, push=True)
    print(f"plan: {plan_summary()}")
    print(f"base image: {BASE_IMAGE}")
    if cold is not None:
        print(f"cold build, {count} images (amd64): {cold:.0f} s")
    print(
        f"warm rebuild of {count} images after editing {args.edit}: {warm:.1f} s; "
        f"changed: {', '.join(changed) or 'none'}"
    )
    print(f"{'image':<40} {'layers':>6} {'unpacked MB':>12} {'pull MB':>9}")
    local_base = f"{BASE_IMAGE}-amd64"  # scripts/docker-up's per-architecture tag
    print(
        f"{'stand-in base python:3.11':<40} {len(layers(local_base)):>6} "
        f"{unpacked_size(local_base) / 1e6:>12.0f} {pulled_size(BASE_IMAGE) / 1e6:>9.0f}"
    )
    for workload_id in first_of_each_category(workloads):
        reference = image(workload_id)
        print(
            f"{reference.split('/')[-1]:<40} {len(layers(reference)):>6} "
            f"{unpacked_size(reference) / 1e6:>12.0f} {pulled_size(reference) / 1e6:>9.0f}"
        )


def first_of_each_category(workloads: list[str]) -> list[str]:
    """io-1, cpu-1, gpu-1 of all 20: the first built of each category."""
    first: dict[str, str] = {}
    for workload_id in workloads:
        first.setdefault(MANIFEST.get(workload_id).category, workload_id)
    return list(first.values())


if __name__ == "__main__":
    main()
