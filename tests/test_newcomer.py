"""A newcomer's path, for real, on a machine like this one (it cannot pull from docker.io): the
shell blocks of README.md and docs/*.md marked `runnable: system`, in a fresh copy of the
checkout, in the order a newcomer reaches them (scripts/docker-up and the offline build first,
then the README's image, compose, the experiment), each as written; then what they built: no
document of a host run in an image or a wheel, the warning of a container without a mount, an
image given only flags, and compose building an image it lacks.

Everything is obtained here, as on a new machine: the block runs scripts/docker-up (idempotent),
bake builds and pushes the images, compose pulls or builds them."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import only_document
from tests.docs_blocks import (
    DOCS,
    Block,
    clean_environment,
    fresh_checkout,
    run_block,
    runnable,
    settings_file,
)

pytestmark = [pytest.mark.system, pytest.mark.docker]

IMAGE = "localhost:5000/cloudai/cloudai-cpu-intensive:3"  # the docs' default name for cpu-3
PLANTED = "planted-by-a-host-run"  # what an older version's run left inside the package


def _cannot_provision() -> str | None:
    if os.geteuid() != 0:
        return "scripts/docker-up provisions as root"
    if shutil.which("apt-get") is None or shutil.which("docker") is None:
        return "scripts/docker-up needs a Debian machine with the docker client"
    return None


def newcomer_order(blocks: list[Block]) -> list[Block]:
    """The README's set-up first (the venv), then scripts/docker-up's block (the others need its
    engine and settings), then README and docs/*.md in the README's order of reading."""

    def rank(block: Block) -> tuple[int, int, int]:
        first = (
            0 if "python3 -m venv" in block.text else 1 if "scripts/docker-up" in block.text else 2
        )
        return first, DOCS.index(block.path), block.line

    return sorted(blocks, key=rank)


@dataclass
class Newcomer:
    checkout: Path
    env: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, tuple[int, float, str]] = field(default_factory=dict)


def _run_from_the_launchers_folder(checkout: Path) -> None:
    """A run the way docs/running.md shows it, and a document an older version left there."""
    launchers = checkout / "workloads" / "launchers"
    completed = subprocess.run(
        [sys.executable, "cpu_process_1.py", "--iterations", "1", "--scale", "0.02",
         "--progress", "off"],
        cwd=launchers, env=clean_environment(PYTHONPATH=str(checkout)), capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert list((checkout / "results").glob("cpu-1_*.json"))
    planted = launchers / "results"
    planted.mkdir()
    (planted / "cpu-1_20200101T000000Z-000000000000.json").write_text(
        json.dumps({"environment": {"hostname": PLANTED}})
    )


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newcomer]:
    reason = _cannot_provision()
    if reason:
        pytest.skip(reason)
    # Its own venv, made by the README's first block: the docs' installs go there.
    checkout = fresh_checkout(tmp_path_factory.mktemp("newcomer") / "checkout", venv=False)
    _run_from_the_launchers_folder(checkout)
    state = Newcomer(checkout, clean_environment())
    try:
        for block in newcomer_order(runnable("system")):
            started = time.monotonic()
            completed = run_block(block, checkout, state.env, timeout=1200)
            output = completed.stdout[-3000:] + completed.stderr[-3000:]
            state.outcomes[block.name] = (completed.returncode, time.monotonic() - started, output)
            print(
                f"{block.name}: exit {completed.returncode} in {time.monotonic() - started:.0f} s"
            )
            settings = checkout / "docker-up.env"
            if settings.exists():  # from here on, as a shell that sourced it (images.md)
                state.env = clean_environment(**settings_file(settings))
            if completed.returncode:
                break  # what follows needs what this block should have made
        yield state
    finally:
        subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, check=False)


def test_every_system_block_runs_as_written(newcomer: Newcomer) -> None:
    blocks = newcomer_order(runnable("system"))
    assert [block.name for block in blocks][: len(newcomer.outcomes)] == list(newcomer.outcomes)
    for block in blocks:
        assert block.name in newcomer.outcomes, f"{block.name} did not run"
        code, seconds, output = newcomer.outcomes[block.name]
        assert code == 0, f"{block.name} failed ({code}) after {seconds:.0f} s:\n{output}"


def _docker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_offline_build_pushed_amd64_images(newcomer: Newcomer) -> None:
    assert (newcomer.checkout / "docker-up.env").exists()
    raw = _docker("buildx", "imagetools", "inspect", "--raw", IMAGE)
    assert raw.returncode == 0, raw.stderr
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in json.loads(raw.stdout)["manifests"]
        if m.get("platform", {}).get("os") != "unknown"
    }
    assert "linux/amd64" in platforms


def test_no_document_of_a_host_run_is_in_the_image(newcomer: Newcomer) -> None:
    """The base and every layer on it: the image of cpu-3 holds the base whole."""
    listed = _docker(
        "run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c",
        "find /app /results /output -name '*.json'; grep -rl " + PLANTED + " /app || true",
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    found = sorted(listed.stdout.split())
    assert found and all(path.startswith("/app/workloads/schema/") for path in found), found


def test_no_document_of_a_host_run_is_in_the_wheel(newcomer: Newcomer, tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
         str(newcomer.checkout)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        held = [name for name in names if PLANTED.encode() in archive.read(name)]
    documents = [n for n in names if n.endswith(".json") and not n.endswith(".schema.json")]
    assert documents == [] and held == []
    assert "workloads/launchers/cpu_process_1.py" in names


def test_a_container_without_a_mount_says_its_document_goes_with_it(newcomer: Newcomer) -> None:
    completed = _docker(
        "run", "--rm", IMAGE, "python", "cpu_process_3.py", "--iterations", "2",
        "--scale", "0.05", "--progress", "off",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    warnings = [line for line in completed.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1, completed.stderr
    assert warnings[0].startswith("warning: /results is not a mounted folder")
    mounted = _docker(
        "run", "--rm", "-v", "/tmp:/output", "--tmpfs", "/results", IMAGE, "python",
        "cpu_process_3.py", "--iterations", "0", "--progress", "off",
    )  # fmt: skip
    assert mounted.returncode == 0 and "warning:" not in mounted.stderr, mounted.stderr


def test_an_image_given_only_flags_says_what_to_type(newcomer: Newcomer) -> None:
    completed = _docker("run", "--rm", IMAGE, "--duration", "5")
    assert completed.returncode == 2, completed.stderr
    (line,) = completed.stderr.splitlines()
    assert "docker run IMAGE python cpu_process_3.py --duration 5" in line
    assert "-e CLOUDAI_DURATION=5" in line


def test_compose_builds_an_image_it_lacks(newcomer: Newcomer, tmp_path: Path) -> None:
    """An image that is in no engine and no registry (a namespace of this test's own): compose
    builds it from the checkout, with docker-up.env's base image, then runs it."""
    namespace = f"cloudai-newcomer-{secrets.token_hex(3)}"
    image = f"localhost:5000/{namespace}/cloudai-cpu-intensive:3"
    results = tmp_path / "results"
    env = {
        **newcomer.env, "NAMESPACE": namespace, "RESULTS_DIR": str(results),
        "CLOUDAI_ITERATIONS": "2", "CLOUDAI_SCALE": "0.05",
    }  # fmt: skip
    compose = ["docker", "compose", "--env-file", "docker-up.env"]
    try:
        started = time.monotonic()
        completed = subprocess.run(
            [*compose, "run", "--rm", "cpu-3"], cwd=newcomer.checkout, env=env,
            capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        print(f"compose built and ran cpu-3 in {time.monotonic() - started:.0f} s")
        assert completed.returncode == 0, completed.stderr[-3000:]
        document = only_document(results)
        assert (document["workload"]["id"], document["status"]) == ("cpu-3", "completed")
        config = json.loads(_docker("image", "inspect", image).stdout)[0]["Config"]
        assert config["Cmd"] == ["python", "cpu_process_3.py"]
    finally:
        subprocess.run(
            [*compose, "down"], cwd=newcomer.checkout, env=env, capture_output=True, check=False
        )
        _docker("image", "rm", "-f", image)
