"""``analyze DIR``: a replay's run folder into jobs.csv, summary.json and pictures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workloads.options import UsageError

HELP = "a replay's run folder into jobs.csv, summary.json and pictures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="DIR", help="the run folder of a replay")
    parser.add_argument(
        "--check",
        type=Path,
        metavar="THRESHOLDS.yaml",
        help="bounds on summary figures, e.g. 'wait_p99_s: {max: 30}'; exit 1 when one is missed",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR2",
        help="another replay's run folder: print every figure of both side by side",
    )


def _value(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} s"


def main(args: argparse.Namespace) -> int:
    from workloads import analysis
    from workloads.analysis.summary import ThresholdError
    from workloads.runfolder import RunFolderError

    try:
        jobs, summary = analysis.analyze_folder(args.run)
        baseline = analysis.analyze_folder(args.baseline)[1] if args.baseline else None
        flat = analysis.figures(summary)
        thresholds = analysis.load_thresholds(args.check, flat) if args.check else {}
    except (RunFolderError, ThresholdError) as err:
        raise UsageError(str(err)) from None
    written = analysis.write(args.run, jobs, summary)
    analysis.report_missing_documents(summary)
    wait = summary.overall.wait_s
    print(
        f"analyze: {summary.tasks} tasks, {summary.success_rate:.0%} finished, wait p50 "
        f"{_seconds(wait.p50)} p99 {_seconds(wait.p99)}, makespan "
        f"{_seconds(summary.makespan_s)}, {summary.enforcement_violations} enforcement "
        f"violation(s); wrote {len(written)} files in {args.run}"
    )
    if summary.fidelity is not None:
        shown = summary.fidelity
        print(
            f"analyze: fidelity over {shown.tasks} tasks with their original wait: median "
            f"ratio of replayed to original wait {_value(shown.median_wait_ratio, '.3g')}, "
            f"rank correlation {_value(shown.rank_correlation, '.2f')}; Jain's index over "
            f"users {_value(summary.fairness_jain_users, '.3f')}"
        )
    if baseline is not None:
        analysis.warn_if_traces_differ(args.run, args.baseline)
        print("\n".join(analysis.comparison(flat, analysis.figures(baseline))))
    missed = analysis.violations(flat, thresholds)
    for line in missed:
        print(f"check: {line}", file=sys.stderr)
    return 1 if missed else 0
