#!/usr/bin/env python3
"""The test suite's wall time against an earlier revision's, measured side by side in one run.

    python bench/suite_time.py [--before 06732d9] [--repeat 1] [--python PATH]
                               [--tests PATH ...] [-k EXPRESSION]

The earlier revision is checked out into a temporary worktree with its own virtual environment
(its test and report extras, and torch); its suite then runs as it was run then (``pytest -m
"not docker"``, one process), alternating with this checkout's plain ``pytest`` (the unit and
contract tiers, as the README says). Reported: each side's median wall time, its test count, and
the ratio after / before.

``--python`` runs the earlier suite with that interpreter instead of a new environment (it needs
the test tools; the package under test is still the worktree's, which ``python -m pytest`` puts
first on the path). ``--tests`` and ``-k`` narrow both suites alike: with them, and ``--before
HEAD``, a run takes seconds (a smoke run of this script, not a comparison).
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"  # the CPU-only wheel this project's tests use
OLD_SELECTION = ["-m", "not docker"]  # everything but the engine tests, before the tiers


def prepare_before(revision: str, folder: Path, python: Path | None) -> Path:
    """A worktree of ``revision`` with its own environment (or ``python``); returns its Python."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(folder), revision],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    if python is not None:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(folder / ".venv")], check=True)
    python = folder / ".venv" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", "-e", ".[test,report]", TORCH]
    subprocess.run(install, cwd=folder, check=True, capture_output=True)
    return python


def timed_suite(command: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds of one run of a suite, and its summary line (pytest's last)."""
    started = time.monotonic()
    finished = subprocess.run(command, check=False, cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - started
    summary = finished.stdout.strip().splitlines()[-1] if finished.stdout.strip() else "?"
    if "passed" not in summary:  # a test that fails still times the suite; no run does not
        sys.exit(f"{' '.join(command)} in {cwd} ran no test: {summary}")
    return wall, re.sub(r" in [0-9.]+s.*", "", summary.strip("= "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="06732d9", help="the earlier revision")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--python", type=Path, help="the earlier suite's interpreter (a new venv)")
    parser.add_argument("--tests", nargs="+", default=[], metavar="PATH", help="(every test)")
    parser.add_argument("-k", dest="keyword", help="pytest -k, for both suites")
    args = parser.parse_args()
    # A time limit's SIGTERM ends the run through its finally blocks: what it set up goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    quiet = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
    narrowed = [*args.tests, *(["-k", args.keyword] if args.keyword else [])]
    python_before = args.python.absolute() if args.python else None
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "before"
        try:
            python = prepare_before(args.before, folder, python_before)
            suites = {
                f"before ({args.before}): pytest -m 'not docker'": (
                    [str(python), *quiet, *OLD_SELECTION, *narrowed],
                    folder,
                ),
                "after: pytest (unit and contract)": (
                    [sys.executable, *quiet, *narrowed],
                    ROOT,
                ),
            }
            walls: dict[str, list[float]] = {name: [] for name in suites}
            summaries: dict[str, str] = {}
            for _ in range(args.repeat):
                for name, (command, cwd) in suites.items():
                    wall, summaries[name] = timed_suite(command, cwd)
                    walls[name].append(wall)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=False
            )
    medians = {name: statistics.median(values) for name, values in walls.items()}
    for name, median in medians.items():
        print(f"{name:<46} {median:7.1f} s  ({summaries[name]})")
    before, after = medians.values()
    print(f"after / before: {after / before:.2f}")


if __name__ == "__main__":
    main()
