"""``run ID``: run a workload and write its results document."""

from __future__ import annotations

import argparse

from workloads.commands.common import argument_type, lookup
from workloads.manifest import get_manifest
from workloads.options import OPTIONS, UsageError, gather

HELP = "run a workload and write its results document"
EPILOG = """\
Every option can also be set by a variable: CLOUDAI_ plus its name in upper case
(CLOUDAI_DURATION, CLOUDAI_RESULTS_DIR, ...); a flag beats its variable.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG + (parser.epilog or "")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("id", help="workload id, e.g. cpu-3")
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            dest=option.name,
            metavar=option.metavar,
            type=argument_type(option.parse),
            help=option.cli_help,
        )


def main(args: argparse.Namespace) -> int:
    from workloads.runtime.exporter import ExporterError
    from workloads.runtime.limits import detect_limits
    from workloads.runtime.params import resolve_params
    from workloads.runtime.results import prepare_results_dir
    from workloads.runtime.runner import Run

    workload = lookup(get_manifest(), args.id)
    given = gather(vars(args))
    limits = detect_limits()
    params = resolve_params(workload, given, limits)
    prepare_results_dir(params.results_dir)
    try:
        run = Run(workload, params, limits)
    except ExporterError as err:
        raise UsageError(str(err)) from None
    return run.execute()
