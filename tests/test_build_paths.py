"""The two ways to the images, through their plans (the CLI plugins, no engine): a connected
machine's defaults, which name nothing in a namespace this project does not own, and the settings
scripts/docker-up writes for a machine that cannot pull, read as they are by bake, compose and sh.
Compose builds what it lacks from the same instructions as bake; bake never sees those builds.
tests/test_newcomer.py builds and runs for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from workloads.exports import DEFAULT_NAMESPACE, DEFAULT_REGISTRY, Images
from workloads.manifest import load_manifest

pytestmark = pytest.mark.contract

MANIFEST = load_manifest(ROOT / "workloads.yaml")
# What a user's shell may hold that the plans read: a test starts from none of them.
VARIABLES = (
    "REGISTRY", "NAMESPACE", "DOCKER_USERNAME", "VERSION", "SBOM", "PROVENANCE", "PIP_CERT",
    "PIP_CONFIG_FILE", "PLATFORMS", "BASE_IMAGE", "WHEELHOUSE", "TORCH_SPEC", "TORCH_INDEX_URL",
    "CACHE_REGISTRY", "RESULTS_DIR",
)  # fmt: skip


def _plugin(name: str) -> bool:
    if shutil.which("docker") is None:
        return False
    return (
        subprocess.run(["docker", name, "version"], capture_output=True, check=False).returncode
        == 0
    )


needs_buildx = pytest.mark.skipif(
    not _plugin("buildx"), reason="no docker buildx (scripts/docker-up)"
)
needs_compose = pytest.mark.skipif(
    not _plugin("compose"), reason="no docker compose (scripts/docker-up)"
)


def clean_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    return {**environment, **extra}


def bake_plan(*args: str, cwd: Path = ROOT, **env: str) -> dict[str, Any]:
    completed = subprocess.run(
        ["docker", "buildx", "bake", "--print", *args],
        cwd=cwd, env=clean_environment(**env), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def compose_config(*args: str, **env: str) -> dict[str, Any]:
    completed = subprocess.run(
        ["docker", "compose", *args, "config", "--format", "json"],
        cwd=ROOT, env=clean_environment(**env), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docker-up.env as scripts/docker-up writes it (its function alone: nothing installed)."""
    path = tmp_path_factory.mktemp("docker-up") / "docker-up.env"
    completed = subprocess.run(
        ["bash", "-c", f'source scripts/docker-up && ENV_FILE="{path}" && write_settings'],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return path


# -- the defaults: runnable as they are, nobody else's namespace --------------------------------
def test_the_defaults_name_a_registry_on_this_machine() -> None:
    assert (DEFAULT_REGISTRY, DEFAULT_NAMESPACE) == ("localhost:5000", "cloudai")
    workload = MANIFEST.get("cpu-3")
    assert Images().of(workload) == "localhost:5000/cloudai/cloudai-cpu-intensive:3"


def test_no_default_points_at_a_namespace_this_project_does_not_own() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    pattern = re.compile(r"docker\.io/cloudai|REGISTRY:-docker\.io|default = \"docker\.io\"")
    offenders = [
        name
        for name in tracked
        if (ROOT / name).is_file()
        and not name.startswith("tests/")
        and pattern.search((ROOT / name).read_text(errors="replace"))
    ]
    assert offenders == []


@needs_buildx
def test_bake_s_defaults_are_the_connected_machine_s_path() -> None:
    plan = bake_plan("--file", "docker-bake.hcl")
    for workload in MANIFEST:
        target = plan["target"][workload.id]
        assert target["tags"][0] == Images().of(workload)
        assert target["platforms"] == workload.platforms
        assert target["args"]["BASE_IMAGE"].startswith("python:3.12-slim@sha256:")
        assert "type=sbom,disabled=false" in target["attest"]


@needs_buildx
def test_bake_without_a_file_reads_the_same_plan() -> None:
    """Bake also reads compose.yaml when no --file is given: compose's builds must not reach it
    (they live in compose.override.yaml, which bake does not read)."""
    created = "2020-01-01T00:00:00Z"  # else the build time: two plans a second apart differ
    assert bake_plan(CREATED=created) == bake_plan("--file", "docker-bake.hcl", CREATED=created)


# -- the machine that cannot pull: docker-up.env ------------------------------------------------
def test_docker_up_writes_the_settings_it_provisioned(settings: Path) -> None:
    values = dict(
        line.split("=", 1) for line in settings.read_text().splitlines() if "=" in line[:30]
    )
    assert values == {
        "REGISTRY": '"localhost:5000"',
        "BASE_IMAGE": '"localhost:5000/cloudai/python:3.11"',
        "PLATFORMS": '"linux/amd64"',
        "SBOM": "false",
    }
    sourced = subprocess.run(
        ["sh", "-c", f'set -a; . "{settings}"; set +a; env'],
        env=clean_environment(), capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert "BASE_IMAGE=localhost:5000/cloudai/python:3.11" in sourced
    assert "SBOM=false" in sourced


@needs_buildx
def test_bake_reads_docker_up_env_as_a_file_and_the_environment_wins(settings: Path) -> None:
    files = ("--file", "docker-bake.hcl", "--file", str(settings))
    target = bake_plan(*files, "cpu-3")["target"]["cpu-3"]
    assert target["tags"] == ["localhost:5000/cloudai/cloudai-cpu-intensive:3"]
    assert target["args"]["BASE_IMAGE"] == "localhost:5000/cloudai/python:3.11"
    assert target["platforms"] == ["linux/amd64"]
    assert "type=sbom,disabled=true" in target["attest"]
    mine = bake_plan(*files, "cpu-3", NAMESPACE="me")["target"]["cpu-3"]
    assert mine["tags"] == ["localhost:5000/me/cloudai-cpu-intensive:3"]


@needs_buildx
def test_platforms_narrows_each_image_to_what_the_engine_builds() -> None:
    plan = bake_plan("--file", "docker-bake.hcl", PLATFORMS="linux/arm64")
    for workload in MANIFEST:
        # An image none of whose platforms is listed keeps its own (its build then says why).
        expected = [p for p in workload.platforms if p == "linux/arm64"] or workload.platforms
        assert plan["target"][workload.id]["platforms"] == expected


# -- compose: the engine's image, else the registry's, else built here -------------------------
def _stages(dockerfile: str) -> dict[str, list[str]]:
    """Instructions by stage name, comments dropped, continuation lines kept."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in dockerfile.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("FROM "):
            name = line.split(" AS ")[-1] if " AS " in line else f"stage{len(stages)}"
            current = stages.setdefault(name, [])
        current.append(line)
    return stages


def _instructions(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


@needs_compose
def test_compose_builds_a_missing_image_with_bake_s_instructions() -> None:
    config = compose_config("--profile", "io", "--profile", "cpu", "--profile", "gpu")
    dockerfiles = set()
    for workload in MANIFEST:
        service = config["services"][workload.id]
        assert service["image"] == Images().of(workload)
        assert service["pull_policy"] == "missing"
        build = service["build"]
        assert build["target"] == workload.id
        assert build["args"]["BASE_IMAGE"].startswith("python:3.12-slim@sha256:")
        assert build["secrets"] == [{"source": "pip_cert"}, {"source": "pip_conf"}]  # as bake's
        dockerfiles.add(build["dockerfile_inline"])
    # pip's own variables, as bake passes them; an empty file (no secret) when unset.
    assert config["secrets"]["pip_cert"]["file"] == "/dev/null"
    (dockerfile,) = dockerfiles  # one Dockerfile, a stage per variant
    stages = _stages(dockerfile.replace("$$", "$"))
    base = _instructions(ROOT / "images" / "base" / "Dockerfile")
    assert stages["base"][1:] == base[base.index("FROM ${BASE_IMAGE}") + 1 :]
    assert stages["base-gpu"][1:] == _instructions(ROOT / "images" / "base-gpu" / "Dockerfile")[1:]
    for workload in MANIFEST:
        variant = _instructions(ROOT / "images" / workload.id / "Dockerfile")
        assert stages[workload.id][1:] == variant[1:]  # the same COPY and CMD
        parent = "base-gpu" if workload.category == "gpu" else "base"
        assert stages[workload.id][0] == f"FROM {parent} AS {workload.id}"


@needs_compose
def test_compose_reads_docker_up_env(settings: Path) -> None:
    config = compose_config("--env-file", str(settings), "--profile", "cpu-3")
    service = config["services"]["cpu-3"]
    assert service["build"]["args"]["BASE_IMAGE"] == "localhost:5000/cloudai/python:3.11"
    assert service["image"] == "localhost:5000/cloudai/cloudai-cpu-intensive:3"


# -- nothing from the host in an image or a wheel: allow-lists ---------------------------------
def test_the_build_context_and_the_wheel_are_allow_lists() -> None:
    patterns = [
        line for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]  # fmt: skip
    assert patterns[0] == "*"  # everything out, then only what the images copy or mount
    assert all(p.startswith("!") or p == "**/__pycache__" for p in patterns[1:])
    assert not any(p.endswith("*.json") and "schema" not in p for p in patterns)
    import tomllib

    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    wheel = build["targets"]["wheel"]
    assert wheel["include"] == ["/workloads/**/*.py", "/workloads/schema/*.schema.json"]
    assert yaml.safe_load((ROOT / "workloads.yaml").read_text())  # force-included beside them


def test_the_tool_names_images_as_bake_does_by_default() -> None:
    from tests.conftest import run_cli

    completed = run_cli("tasks", "cpu-3", env={name: "" for name in VARIABLES[:3]})
    assert completed.returncode == 0, completed.stderr
    (spec,) = json.loads(completed.stdout)
    assert spec["image"] == Images().of(MANIFEST.get("cpu-3"))
