"""``report RESULTS...``: PNG timelines of run documents and a summary page across them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workloads.commands.common import MissingExtra

HELP = "PNG timelines of run documents and a summary page across them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", type=Path, metavar="RESULTS", help="run documents, or folders of them"
    )
    parser.add_argument(
        "--output", type=Path, metavar="DIR", help="where to write (default: RESULTS/report)"
    )


def main(args: argparse.Namespace) -> int:
    try:
        from workloads.report import ReportError, build_report
    except ModuleNotFoundError as err:
        raise MissingExtra("report", err.name or "matplotlib", "report") from None
    first = args.inputs[0]
    output = args.output or (first if first.is_dir() else first.parent) / "report"
    try:
        written = build_report(args.inputs, output)
    except ReportError as err:  # nothing to report on: the run failed, as it always has
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"report: {len(written) - 2} timeline(s), summary.png and {output / 'index.html'}")
    return 0
