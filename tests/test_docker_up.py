"""scripts/docker-up installs only what needs Debian 13 and refuses a partial distribution
upgrade (libc6, python3) unless told --yes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.contract

SCRIPT = ROOT / "scripts" / "docker-up"
TRIXIE_SOURCE = Path("/etc/apt/sources.list.d/cloudai-trixie.sources")


def _bash(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_an_unknown_flag_is_a_usage_error() -> None:
    completed = _bash(f"{SCRIPT} --arm64 --bogus")
    assert completed.returncode == 2
    assert completed.stderr.strip() == "usage: scripts/docker-up [--arm64 | --cli] [--yes]"


def _simulated_upgrades(*packages: str) -> set[str]:
    plan = _bash("apt-get -s install -y " + " ".join(packages)).stdout
    return {
        line.split()[1] for line in plan.splitlines() if line.startswith("Inst ") and " [" in line
    }


@pytest.mark.docker
@pytest.mark.skipif(not TRIXIE_SOURCE.exists(), reason="scripts/docker-up has not added trixie")
def test_an_install_that_would_replace_libc6_is_refused_without_yes() -> None:
    # trixie's tini needs libc6 >= 2.38: taking it with -t trixie drags libc6 along.
    if "libc6" not in _simulated_upgrades("-t", "trixie", "tini"):
        pytest.skip("on this machine trixie's tini would not upgrade libc6")
    libc_before = _bash("dpkg-query -W -f '${Version}' libc6").stdout
    refused = _bash(f"source {SCRIPT}; apt_install -t trixie tini")
    assert refused.returncode == 3
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("[docker-up] refusing: installing -t trixie tini would upgrade libc6")
    assert last.endswith("rerun with --yes to allow it")
    assert _bash("dpkg-query -W -f '${Version}' libc6").stdout == libc_before
