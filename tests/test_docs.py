"""The docs run as written: the cheap shell blocks of README.md and docs/*.md marked runnable run
in a fresh copy of the checkout, in order, each file's as a newcomer types them; the build blocks
run through `docker buildx bake --print`; and no block calls the tool without the venv. The
blocks that need an engine run in the system tier (tests/test_newcomer.py)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.docs_blocks import (
    DOCS,
    ROOT,
    clean_environment,
    commands,
    fresh_checkout,
    run_block,
    runnable,
    sh_blocks,
)
from workloads.exports import DEFAULT_NAMESPACE, DEFAULT_REGISTRY

pytestmark = pytest.mark.contract

CONTRACT = runnable("contract")
PRINT = runnable("print")
FILES = sorted({block.path for block in CONTRACT}, key=DOCS.index)


@pytest.mark.unit
def test_markers_are_well_formed_and_name_blocks_in_every_tier() -> None:
    for path in DOCS:
        sh_blocks(path)  # raises on a marker that is not before a ```sh fence
    assert CONTRACT and PRINT and runnable("system")


@pytest.mark.unit
def test_no_cheap_block_installs_into_the_shared_venv() -> None:
    """The contract tier links the copy's .venv to this checkout's: an install would move it."""
    assert [block.name for block in CONTRACT if "pip install" in block.text] == []


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_cheap_blocks_run_as_written(path: Path, tmp_path: Path) -> None:
    checkout = fresh_checkout(tmp_path / "checkout")
    for block in [block for block in CONTRACT if block.path == path]:
        completed = run_block(block, checkout, clean_environment(), timeout=150)
        assert completed.returncode == 0, (
            f"{block.name} failed ({completed.returncode}):\n{block.text}\n"
            f"{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
        )
    # What they leave is the checkout's, never the package's.
    assert list((checkout / "workloads").rglob("*_*.json")) == []


needs_buildx = pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "buildx", "version"], capture_output=True, check=False).returncode,
    reason="no docker buildx (scripts/docker-up)",
)


def _bake_lines(text: str) -> list[tuple[dict[str, str], list[str]]]:
    """(variables set on the line, bake's arguments) of each `docker buildx bake` command."""
    found = []
    for command in commands(text):
        words = shlex.split(command, comments=True)
        if "bake" not in words:
            continue
        variables = {}
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            key, _, value = words.pop(0).partition("=")
            variables[key] = value
        assert words[:3] == ["docker", "buildx", "bake"], command
        found.append((variables, words[3:]))
    return found


@needs_buildx
@pytest.mark.parametrize("block", PRINT, ids=lambda block: block.name)
def test_the_connected_machine_s_builds_print_their_plan(block: object, tmp_path: Path) -> None:
    """Each documented bake command with --print in place of building or pushing."""
    checkout = fresh_checkout(tmp_path / "checkout")
    lines = _bake_lines(block.text)  # type: ignore[attr-defined]
    assert lines
    for variables, arguments in lines:
        planned = [argument for argument in arguments if argument not in ("--push", "--print")]
        completed = subprocess.run(
            ["docker", "buildx", "bake", "--print", *planned],
            cwd=checkout, env=clean_environment(**variables),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        plan = json.loads(completed.stdout)
        registry = variables.get("REGISTRY", DEFAULT_REGISTRY)
        namespace = variables.get("NAMESPACE", DEFAULT_NAMESPACE)
        tagged = [target for target in plan["target"].values() if target.get("tags")]
        assert tagged
        for target in tagged:
            assert all(tag.startswith(f"{registry}/{namespace}/") for tag in target["tags"])
            assert target["args"]["BASE_IMAGE"].startswith("python:3.12-slim@sha256:")
            if "VERSION" in variables:
                assert any(tag.endswith(f"-{variables['VERSION']}") for tag in target["tags"])


def _own_blocks(path: Path) -> list[str]:
    return [block for _, _, block in sh_blocks(path)]


@pytest.mark.unit
@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_block_calls_the_tool_without_the_venv(path: Path) -> None:
    bare = re.compile(r"(^|[;&|(]\s*|\s)(python3? -m (workloads|pytest)|pip install)\b")
    offenders = [
        command
        for block in _own_blocks(path)
        for command in commands(block)
        if bare.search(command.split("#")[0])
    ]
    assert offenders == []
