"""The build matrix: generated Dockerfiles, the bake plan and the compose file — and, where an
engine is available (scripts/docker-up), the images built, pushed, pulled and run for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, assert_valid, only_document
from tests.engine import (
    ARM64,
    NAMESPACE,
    REGISTRY,
    REGISTRY_RACE,
    STOP_GRACE_S,
    docker_cli,
    emulates_arm64,
    expected_platforms,
    push_with_bake,
    run_again_on,
)
from workloads.manifest import load_manifest

pytestmark = pytest.mark.contract

MANIFEST = load_manifest(ROOT / "workloads.yaml")
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))


def _docker_plugin(name: str) -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", name, "version"], capture_output=True, check=False)
    return probe.returncode == 0


needs_buildx = pytest.mark.skipif(
    not _docker_plugin("buildx"), reason="docker buildx is not installed (scripts/docker-up)"
)
needs_compose = pytest.mark.skipif(
    not _docker_plugin("compose"), reason="docker compose is not installed (scripts/docker-up)"
)


# -- generated files --------------------------------------------------------------------------
def test_one_dockerfile_per_variant_plus_two_bases() -> None:
    names = {path.parent.name for path in DOCKERFILES}
    assert names == {*MANIFEST.ids, "base", "base-gpu"}


@pytest.mark.parametrize("workload", MANIFEST.workloads, ids=MANIFEST.ids)
def test_variant_adds_only_its_module_and_runs_its_launcher(workload: Any) -> None:
    text = (ROOT / "images" / workload.id / "Dockerfile").read_text()
    instructions = [
        line.split()[0] for line in text.splitlines() if line and not line.startswith("#")
    ]
    assert instructions == ["FROM", "COPY", "CMD"]  # one thin layer on the category's base
    module = workload.module.replace(".", "/") + ".py"
    assert f"COPY {module} /app/{module}" in text
    assert f'CMD ["python", "{workload.launcher}"]' in text


def test_base_leaves_out_every_workload_module() -> None:
    text = (ROOT / "images" / "base" / "Dockerfile").read_text()
    for workload in MANIFEST:
        assert f"/src/{workload.module.replace('.', '/')}.py" in text
    assert 'ENTRYPOINT ["/opt/venv/bin/python", "-m", "workloads.supervisor"]' in text
    assert "WORKDIR /app/workloads/launchers" in text


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    completed = subprocess.run(
        [hadolint, str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_compose_has_one_service_per_variant_from_the_manifest() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert list(services) == MANIFEST.ids
    for workload in MANIFEST:
        service = services[workload.id]
        assert service["profiles"] == [workload.category, workload.id]
        assert service["image"].endswith(
            f"/cloudai-{workload.category}-intensive:{workload.number}"
        )
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) == workload.envelope.cpus
        assert "CLOUDAI_DURATION" in service["environment"]
        assert service["volumes"] == ["${RESULTS_DIR:-./results}:/results"]
        devices = service["deploy"]["resources"].get("reservations", {}).get("devices")
        assert bool(devices) == (workload.category == "gpu")


# -- the bake plan and compose config (CLI plugins, no engine) ----------------------------------
def _plan(*targets: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "REGISTRY",
            "NAMESPACE",
            "DOCKER_USERNAME",
            "VERSION",
            "SBOM",
            "PROVENANCE",
            "PIP_CERT",
            "PIP_CONFIG_FILE",
            "PLATFORMS",
            "BASE_IMAGE",
        )
    }
    completed = subprocess.run(
        ["docker", "buildx", "bake", "--file", "docker-bake.hcl", "--print", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**environment, **(env or {})},
        check=True,
    )
    return json.loads(completed.stdout)


@needs_buildx
def test_bake_plan_default_group_builds_the_catalogue() -> None:
    plan = _plan()
    groups = plan["group"]
    expanded = [t for group in groups["default"]["targets"] for t in groups[group]["targets"]]
    assert sorted(expanded) == sorted(MANIFEST.ids)  # each workload once, in its category
    assert set(plan["target"]) == {*MANIFEST.ids, "base", "base-gpu"}


@needs_buildx
def test_bake_plan_targets_tags_platforms_labels_contexts() -> None:
    targets = _plan()["target"]
    for workload in MANIFEST:
        target = targets[workload.id]
        repository = f"localhost:5000/cloudai/cloudai-{workload.category}-intensive"
        expected_tags = [f"{repository}:{workload.number}"]
        if workload.number == 1:
            expected_tags.append(f"{repository}:latest")
        assert target["tags"] == expected_tags
        assert target["platforms"] == workload.platforms
        base = "target:base-gpu" if workload.category == "gpu" else "target:base"
        assert target["contexts"] == {"base": base}
        labels = target["labels"]
        assert labels["org.cloudai.workload.id"] == workload.id
        assert labels["org.cloudai.envelope.gpus"] == str(workload.envelope.gpus)
        assert labels["org.opencontainers.image.title"].endswith(f":{workload.number}")
        for key in (
            "source",
            "revision",
            "created",
            "version",
            "licenses",
            "base.name",
            "description",
        ):
            assert f"org.opencontainers.image.{key}" in labels
        assert target["dockerfile"] == f"images/{workload.id}/Dockerfile"
    assert targets["base-gpu"]["contexts"] == {"base": "target:base", "wheels": "images/wheelhouse"}
    # A base must cover every platform of the images built on it.
    for workload in MANIFEST:
        base = targets["base-gpu" if workload.category == "gpu" else "base"]
        assert set(workload.platforms) <= set(base["platforms"])


@needs_buildx
def test_bake_variables_registry_version_attestations_cache() -> None:
    plan = _plan(
        "cpu-1",
        "gpu-3",
        env={
            "REGISTRY": "docker.io",
            "DOCKER_USERNAME": "me",
            "VERSION": "1.0.0",
            "SBOM": "false",
            "CACHE_REGISTRY": "ghcr.io/me/cache",
        },
    )
    cpu = plan["target"]["cpu-1"]
    assert cpu["tags"] == [
        "docker.io/me/cloudai-cpu-intensive:1",
        "docker.io/me/cloudai-cpu-intensive:1-1.0.0",
        "docker.io/me/cloudai-cpu-intensive:latest",
        "docker.io/me/cloudai-cpu-intensive:latest-1.0.0",
    ]
    assert "type=sbom,disabled=true" in cpu["attest"]
    assert "type=provenance,mode=max,disabled=false" in cpu["attest"]
    assert cpu["cache-from"] == ["type=registry,ref=ghcr.io/me/cache:cpu-1"]
    assert cpu["cache-to"] == ["type=registry,ref=ghcr.io/me/cache:cpu-1,mode=max"]
    assert cpu["labels"]["org.opencontainers.image.version"] == "1.0.0"
    namespaced = _plan(
        "gpu-3", env={"REGISTRY": "ghcr.io", "NAMESPACE": "org", "DOCKER_USERNAME": "me"}
    )
    assert namespaced["target"]["gpu-3"]["tags"] == ["ghcr.io/org/cloudai-gpu-intensive:3"]


@needs_compose
@pytest.mark.parametrize("profile", ["io", "cpu", "gpu", *MANIFEST.ids])
def test_compose_config_is_valid_for_every_profile(profile: str) -> None:
    completed = subprocess.run(
        ["docker", "compose", "--profile", profile, "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


# -- for real, with an engine (tests/engine.py builds and pushes the images) ---------------------


def _fake_subprocess(
    monkeypatch: pytest.MonkeyPatch, answers: list[tuple[int, str]]
) -> list[list[str]]:
    """Make subprocess.run answer (exit code, stderr) pairs in turn; returns the commands run."""
    replies, calls = iter(answers), []

    def fake_run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        code, stderr = next(replies)
        return subprocess.CompletedProcess(command, code, "", stderr)

    monkeypatch.setattr(subprocess, "run", fake_run)
    return calls


def test_push_repeats_only_after_the_registry_race(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [(1, f"ERROR: HEAD .../manifests/3: {REGISTRY_RACE}"), (1, "no space"), (0, "")]
    calls = _fake_subprocess(monkeypatch, answers)
    with pytest.warns(UserWarning, match="attempt 1 of 3"):
        completed = push_with_bake(env={})
    assert len(calls) == 2  # the race is retried; another failure is reported as it is
    assert completed.stderr == "no space"
    assert calls[0][-1] == "--push"


# The daemon's error (docker run exits 125) when runc's init died before the container began
# (seen once in CI under emulation: "waiting for init preliminary setup: read init-p: connection
# reset by peer"). The workload never ran, so starting it again cannot hide a workload failure.
CONTAINER_NEVER_STARTED = "OCI runtime create failed"


def docker_run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`docker run ARGS`, started once more only when the runtime failed to create it."""
    return run_again_on(CONTAINER_NEVER_STARTED, ["docker", "run", *args], 2, timeout=timeout)


def test_docker_run_starts_again_only_when_the_container_was_never_created(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = [
        (125, f"docker: Error response from daemon: {CONTAINER_NEVER_STARTED}: runc"),
        (3, ""),
    ]
    calls = _fake_subprocess(monkeypatch, answers)
    with pytest.warns(UserWarning, match="starting it again"):
        completed = docker_run("image", timeout=1)
    assert completed.returncode == 3  # the workload's own failure is reported, never retried
    assert len(calls) == 2 and calls[0][:2] == ["docker", "run"]


def _image(prefix: str, workload_id: str) -> str:
    workload = MANIFEST.get(workload_id)
    return f"{prefix}/cloudai-{workload.category}-intensive:{workload.number}"


def _index(reference: str) -> dict[str, Any]:
    return json.loads(docker_cli("buildx", "imagetools", "inspect", "--raw", reference))


def _platforms(index: dict[str, Any]) -> list[str]:
    return sorted(
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in index["manifests"]
        if m.get("platform", {}).get("os") not in (None, "unknown")
    )  # attestations


@pytest.mark.docker
@pytest.mark.parametrize("workload_id", MANIFEST.ids)
def test_every_tag_has_its_platforms(pushed_images: str, workload_id: str) -> None:
    workload = MANIFEST.get(workload_id)
    index = _index(_image(pushed_images, workload_id))
    assert _platforms(index) == sorted(expected_platforms(workload))
    if workload.number == 1:
        latest = _index(f"{pushed_images}/cloudai-{workload.category}-intensive:latest")
        assert latest == index, f"{workload.category}: latest is not variant 1"


@pytest.mark.docker
@pytest.mark.parametrize("workload_id", MANIFEST.ids)
def test_every_variant_runs_like_the_real_worker(
    pushed_images: str, workload_id: str, tmp_path: Path
) -> None:
    """Pulled, then run as the worker does: a TTY, a CPU quota, a memory limit, a host folder at
    /output and its launcher through /bin/sh -c."""
    image = _image(pushed_images, workload_id)
    docker_cli("rmi", "-f", image, check=False)
    docker_cli("pull", "-q", image)
    output = tmp_path / "output"
    output.mkdir()
    launcher = MANIFEST.get(workload_id).launcher
    completed = docker_run(
        "--rm",
        "-t",
        "--cpus",
        "1.5",
        "--memory",
        "1g",
        "-v",
        f"{output}:/output",
        image,
        "/bin/sh",
        "-c",
        # Bound by iterations (25: what a GPU workload's loss check needs), not by a short
        # duration that a busy host's start-up may spend.
        f"python {launcher} --iterations 25 --duration 300 --scale 0.05",
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout[-2000:]
    document = only_document(output)
    assert_valid(document)
    assert document["workload"]["id"] == workload_id
    assert (document["status"], document["verification"]["passed"]) == ("completed", True)
    assert document["limits"]["cpu_quota"] == pytest.approx(1.5)
    assert document["limits"]["memory_limit"] == 1 << 30
    assert document["environment"]["container"] is True
    assert document["environment"]["lock"] == _lock_digest(MANIFEST.get(workload_id).category)


@pytest.mark.docker
@pytest.mark.parametrize(
    "workload_id",
    [
        next(w.id for w in MANIFEST if w.category == category and ARM64 in w.platforms)
        for category in ("io", "cpu", "gpu")
        if any(w.category == category and ARM64 in w.platforms for w in MANIFEST)
    ],
)
def test_arm64_variant_runs_under_emulation(
    pushed_images: str, workload_id: str, tmp_path: Path
) -> None:
    if not emulates_arm64():
        pytest.skip("no arm64 emulation or arm64 base image (scripts/docker-up --arm64)")
    output = tmp_path / "output"
    output.mkdir()
    workload = MANIFEST.get(workload_id)
    completed = docker_run(
        "--rm",
        "--platform",
        ARM64,
        "--pull",
        "always",
        "-v",
        f"{output}:/output",
        _image(pushed_images, workload_id),
        "python",
        workload.launcher,
        # Bound by one unit, not by seconds: under emulation on a busy host a 20 s run
        # finished no unit and left nothing to verify. The duration is only a backstop.
        "--iterations",
        "1",
        "--duration",
        "240",
        "--scale",
        "0.02",
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    document = only_document(output)
    assert document["environment"]["machine"] == "aarch64"
    assert document["stop_reason"] == "iterations"
    assert document["verification"]["iterations"] >= 1
    assert document["verification"]["passed"]


@pytest.mark.docker
def test_docker_stop_leaves_a_partial_document(pushed_images: str, tmp_path: Path) -> None:
    output = tmp_path / "output"
    output.mkdir()
    os.chown(output, 1234, 1234)  # a folder the image's own user may not write
    container = docker_cli(
        "run",
        "-d",
        "-t",
        "-v",
        f"{output}:/output",
        _image(pushed_images, "cpu-1"),
        "/bin/sh",
        "-c",
        "python cpu_process_1.py --duration 120",
    ).strip()
    try:
        time.sleep(3)
        docker_cli("stop", "-t", str(STOP_GRACE_S), container)  # a busy host starts slowly
        state = json.loads(docker_cli("inspect", container))[0]["State"]
        assert state["ExitCode"] == 143
    finally:
        docker_cli("rm", "-f", container, check=False)
    document = only_document(output)
    assert (document["status"], document["signal"]) == ("terminated", "SIGTERM")
    assert next(output.iterdir()).stat().st_uid == 1234  # written as the folder's owner


def _compose(
    *args: str, results: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "REGISTRY": REGISTRY,
        "NAMESPACE": NAMESPACE,
        "RESULTS_DIR": str(results),
        "CLOUDAI_DURATION": "3",
        "CLOUDAI_SCALE": "0.05",
        **(env or {}),
    }
    return subprocess.run(
        ["docker", "compose", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.docker
def test_compose_run_one_variant(pushed_images: str, tmp_path: Path) -> None:
    completed = _compose("run", "--rm", "cpu-3", results=tmp_path)
    assert completed.returncode == 0, completed.stderr[-2000:]
    document = only_document(tmp_path)
    assert document["workload"]["id"] == "cpu-3"
    assert document["params"]["sources"]["duration"] == "env"  # CLOUDAI_* passed through
    assert document["limits"]["cpu_quota"] == MANIFEST.get("cpu-3").envelope.cpus


@pytest.mark.docker
@pytest.mark.parametrize("category", ["io", "cpu"])
def test_compose_profile_up_runs_the_whole_category(
    pushed_images: str, category: str, tmp_path: Path
) -> None:
    try:
        completed = _compose("--profile", category, "up", results=tmp_path)
        assert completed.returncode == 0, completed.stderr[-2000:]
    finally:
        _compose("--profile", category, "down", results=tmp_path)
    found = sorted(
        json.loads(path.read_text())["workload"]["id"] for path in tmp_path.glob("*.json")
    )
    assert found == sorted(w.id for w in MANIFEST if w.category == category)


# -- real clients: a TTY log read line by line, and all twenty at once on two cores --------------
@pytest.mark.docker
def test_a_tty_log_is_short_plain_lines(pushed_images: str, tmp_path: Path) -> None:
    """The real worker gives the container a TTY and reads its log with a 64 KiB line limit."""
    output = tmp_path / "output"
    output.mkdir()
    seconds = 40
    completed = docker_run(
        "--rm",
        "-t",
        "--cpus",
        "2",
        "--memory",
        "1g",
        "-v",
        f"{output}:/output",
        _image(pushed_images, "cpu-3"),
        "/bin/sh",
        "-c",
        f"python cpu_process_3.py --duration {seconds} --scale 0.2",
        timeout=seconds + 120,
    )
    assert completed.returncode == 0, completed.stdout[-2000:]
    log = completed.stdout.replace("\r\n", "\n")
    assert "\x1b" not in log and "\r" not in log
    assert max(len(line.encode()) for line in log.splitlines()) <= 1024
    assert len(log.encode()) < 8192 * seconds / 60, log
    assert "results: /output/" in log
    assert only_document(output)["params"]["progress"] == "lines"  # the images' default


def _container_states(containers: list[str]) -> dict[str, dict[str, Any]]:
    inspected = json.loads(docker_cli("inspect", *containers))
    return {item["Name"].lstrip("/"): item["State"] for item in inspected}


@pytest.mark.docker
def test_all_twenty_at_once_on_two_cores_complete(pushed_images: str, tmp_path: Path) -> None:
    """Contention is a scheduler's normal state: the 14 io and cpu services through compose and
    the six GPU images (CPU fallback) with docker run, all at once, 30 s each. A starved run
    completes: 20 documents, 20 completed, none failed, none OOM-killed."""
    results = tmp_path / "results"
    results.mkdir()
    gpu_ids = [w.id for w in MANIFEST if w.category == "gpu"]
    gpu_containers = [f"cloudai-contention-{workload_id}" for workload_id in gpu_ids]
    environment = {"CLOUDAI_DURATION": "30"}
    try:
        for workload_id, name in zip(gpu_ids, gpu_containers, strict=True):
            envelope = MANIFEST.get(workload_id).envelope
            docker_cli(
                "run", "-d", "-t", "--name", name, "--cpus", "2",
                "--memory", str(envelope.memory), "-v", f"{results}:/output",
                "-e", "CLOUDAI_DURATION=30", "-e", "CLOUDAI_SCALE=0.05",
                _image(pushed_images, workload_id),
            )  # fmt: skip
        up = _compose(
            "--profile", "io", "--profile", "cpu", "up",
            results=results, env=environment | {"CLOUDAI_SCALE": "0.2"},
        )  # fmt: skip
        assert up.returncode == 0, up.stderr[-2000:]
        compose_containers = _compose(
            "--profile", "io", "--profile", "cpu", "ps", "-a", "-q", results=results
        ).stdout.split()
        docker_cli("wait", *gpu_containers, timeout=300)
        states = _container_states(compose_containers + gpu_containers)
    finally:
        docker_cli("rm", "-f", *gpu_containers, check=False)
        _compose("--profile", "io", "--profile", "cpu", "down", results=results)
    assert len(states) == len(MANIFEST.ids)
    assert [name for name, state in states.items() if state["OOMKilled"]] == []
    assert {name: state["ExitCode"] for name, state in states.items() if state["ExitCode"]} == {}
    found = {}
    for path in results.glob("*.json"):
        document = json.loads(path.read_text())
        found[document["workload"]["id"]] = (document["status"], document["stop_reason"])
    assert found == {w.id: ("completed", "duration") for w in MANIFEST}


# -- reproducible images -------------------------------------------------------------------------
def _lock_digest(category: str) -> str:
    """What an image's documents record: the sha256 of the locks it was installed from."""
    import hashlib

    locks = ["requirements.lock"] + (["requirements-gpu.lock"] if category == "gpu" else [])
    text = b"".join((ROOT / "images" / lock).read_bytes() for lock in locks)
    return "sha256:" + hashlib.sha256(text).hexdigest()


def _locked(lock: str) -> dict[str, list[str]]:
    """Package -> its hashes, from a lock with hashes."""
    pinned: dict[str, list[str]] = {}
    name = ""
    for line in (ROOT / "images" / lock).read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name = line.split("==")[0].strip()
            pinned[name] = []
        elif "--hash=sha256:" in line:
            pinned[name].append(line.split("--hash=sha256:")[1].split()[0])
    return pinned


def test_the_locks_pin_every_dependency_with_hashes() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core, gpu = _locked("requirements.lock"), _locked("requirements-gpu.lock")
    names = [re.split(r"[<>=!~ ;\[]", r)[0].lower() for r in project["dependencies"]]
    assert set(names) <= set(core), "run scripts/lock after changing a dependency"
    gpu_extra = project["optional-dependencies"]["gpu"]
    assert {re.split(r"[<>=!~ ;\[]", r)[0] for r in gpu_extra} - {"torch"} <= set(gpu)
    assert all(hashes for hashes in (core | gpu).values())
    for dockerfile in ("base", "base-gpu"):
        text = (ROOT / "images" / dockerfile / "Dockerfile").read_text()
        assert "images/requirements.lock" in text
    assert "--require-hashes" in (ROOT / "images" / "pip-install.sh").read_text()


@needs_buildx
def test_the_default_base_image_is_pinned_by_digest() -> None:
    base = _plan("base")["target"]["base"]["args"]["BASE_IMAGE"]
    assert re.fullmatch(r"python:3\.12-slim@sha256:[0-9a-f]{64}", base), base
