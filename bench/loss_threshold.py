#!/usr/bin/env python3
"""How many training steps the "loss decreased" check needs to judge: for the four training
workloads, the share of seeds whose loss falls (mean of the last quarter of the steps below the
first quarter's) when the run is cut after N steps.

    python bench/loss_threshold.py [--seeds 100] [--steps 40] [--workloads gpu-1,gpu-4,gpu-5,gpu-6]

Each run is a tiny CPU run (scale 0.02, the sizes of the CPU fallback); a run cut after N steps
has the same first N losses as the longer run, so one run per seed gives every N. The check's
MIN_STEPS_TO_JUDGE (workloads/gpu/checks.py) is the smallest N where every workload held in
every seed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's package, as the other scripts run it

from workloads.cli import main  # noqa: E402

CUTS = (2, 4, 8, 12, 16, 20, 24, 32, 40)


def loss_series(workload: str, seed: int, iterations: int) -> list[float]:
    """The values the workload's end-of-run "decreased" check was given."""
    from workloads.gpu import checks, vae  # torch: imported once there is work for it

    captured: list[float] = []
    original = checks.check_decreased

    def spy(ctx: Any, name: str, values: list[float]) -> None:
        captured.extend(values)
        original(ctx, name, values)

    checks.check_decreased = vae.check_decreased = spy
    try:
        with (
            tempfile.TemporaryDirectory() as folder,
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            run = ["run", workload, "--iterations", str(iterations), "--duration", "600"]
            tiny_cpu = ["--scale", "0.02", "--device", "cpu", "--workers", "1"]
            main([*run, *tiny_cpu, "--seed", str(seed), "--results-dir", folder])
    finally:
        checks.check_decreased = vae.check_decreased = original
    return captured


def falls(values: list[float]) -> bool:
    window = max(1, len(values) // 4)
    return sum(values[-window:]) / window < sum(values[:window]) / window


def _share(share: float | None) -> str:
    return f"{'-':>8}" if share is None else f"{share:>8.2f}"


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=50, help="iterations per run")
    parser.add_argument("--workloads", default="gpu-1,gpu-4,gpu-5,gpu-6")
    args = parser.parse_args()
    try:
        from workloads.gpu import checks
    except ModuleNotFoundError as missing:
        parser.exit(2, f"loss_threshold: needs {missing.name}: pip install -e '.[gpu]'\n")
    print(f"share of {args.seeds} seeds whose loss fell, cut after N steps")
    print(f"{'workload':<9}" + "".join(f"{n:>8}" for n in CUTS))
    for workload in args.workloads.split(","):
        series = [loss_series(workload, seed, args.iterations) for seed in range(args.seeds)]
        shares = [
            sum(falls(values[:cut]) for values in series if len(values) >= cut) / len(series)
            if any(len(values) >= cut for values in series)
            else None  # no run was that long (--iterations)
            for cut in CUTS
        ]
        print(f"{workload:<9}" + "".join(_share(share) for share in shares))
    print(f"MIN_STEPS_TO_JUDGE = {checks.MIN_STEPS_TO_JUDGE}")


if __name__ == "__main__":
    main_bench()
