"""The shell blocks of README.md and docs/*.md that are marked runnable, and a fresh copy of the
checkout to run them in, in order, as a newcomer types them.

A marker is an HTML comment on the line before a ```sh fence:

    <!-- runnable -->          cheap: the contract tier runs the block (tests/test_docs.py)
    <!-- runnable: print -->   a build: every `docker buildx bake` line runs with --print instead
                               of building or pushing (contract tier)
    <!-- runnable: system -->  needs an engine, a registry, minutes: the system tier runs it
                               (tests/test_newcomer.py)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- runnable(?:: (?P<kind>\w+))? -->$")
KINDS = ("contract", "print", "system")
# What a user's shell may hold that the commands read: a block starts without any of them.
SETTINGS = (
    "REGISTRY", "NAMESPACE", "DOCKER_USERNAME", "VERSION", "SBOM", "PROVENANCE", "PLATFORMS",
    "BASE_IMAGE", "WHEELHOUSE", "TORCH_SPEC", "TORCH_INDEX_URL", "CACHE_REGISTRY", "RESULTS_DIR",
)  # fmt: skip


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the fence, 1-based
    kind: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def sh_blocks(path: Path) -> list[tuple[int, str | None, str]]:
    """Every ```sh block of ``path``: (line of its fence, its marker's kind or None, its text).
    A marker that is not followed by a ```sh fence raises ValueError."""
    lines = path.read_text().splitlines()
    found: list[tuple[int, str | None, str]] = []
    marker: tuple[int, str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        match = MARKER.match(line.strip())
        if match:
            marker = (index + 1, match["kind"] or "contract")
            if marker[1] not in KINDS:
                raise ValueError(f"{path.name}:{index + 1}: unknown kind {marker[1]!r}")
        elif line.strip() == "```sh":
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            kind = marker[1] if marker and marker[0] == index else None
            found.append((index + 1, kind, "\n".join(lines[index + 1 : end]) + "\n"))
            marker, index = None, end
        elif line.strip() and marker:
            raise ValueError(f"{path.name}:{marker[0]}: a runnable marker not before a ```sh fence")
        index += 1
    return found


def runnable(kind: str) -> list[Block]:
    return [
        Block(path, line, found, text)
        for path in DOCS
        for line, found, text in sh_blocks(path)
        if found == kind
    ]


def commands(text: str) -> list[str]:
    """The block's commands, continuation lines joined and trailing comments kept."""
    return [command for command in re.sub(r"\\\n\s*", " ", text).splitlines() if command.strip()]


def fresh_checkout(destination: Path, venv: bool = True) -> Path:
    """A copy of the checkout as a clone of it would be (tracked files and new ones git does not
    ignore, as they are now), with the README's virtual environment: a link to this one's, for
    blocks that only run the tool (never one that installs into it); none with ``venv=False``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if venv:
        (destination / ".venv").symlink_to(ROOT / ".venv")
    return destination


def clean_environment(**extra: str) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in SETTINGS and not key.startswith("CLOUDAI_") and key != "VIRTUAL_ENV"
    }
    return {**environment, **extra}


def run_block(
    block: Block, checkout: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """The block as one bash script that stops at the first failing command."""
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.text],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def settings_file(path: Path) -> dict[str, str]:
    """KEY="value" lines of docker-up.env, as `set -a; . ./docker-up.env` exports them."""
    values = {}
    for line in path.read_text().splitlines():
        key, equals, value = line.partition("=")
        if equals and not line.startswith("#"):
            values[key.strip()] = value.strip().strip('"')
    return values
