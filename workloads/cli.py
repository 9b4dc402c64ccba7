"""``python -m workloads``: list, describe and run the catalogue's workloads.

Exit status: 0 completed, 1 failed (the document says why), 2 usage error (bad flag or variable,
unknown workload, malformed manifest, unwritable results folder), 128+N stopped by signal N.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import workloads
from workloads.manifest import Manifest, ManifestError, Workload, get_manifest
from workloads.options import OPTIONS, UsageError, gather
from workloads.runtime.runner import EXIT_USAGE

EPILOG = """\
Every option can also be set by a variable: CLOUDAI_ plus its name in upper case
(CLOUDAI_DURATION, CLOUDAI_RESULTS_DIR, ...); a flag beats its variable.
Exit status: 0 completed, 1 failed, 2 usage error, 128+N stopped by signal N (143 for SIGTERM).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = parse.__name__
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m workloads",
        description="Synthetic IO, CPU and GPU workloads for testing schedulers and clusters.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {workloads.__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    listing = commands.add_parser("list", help="list the workloads")
    listing.add_argument("--json", action="store_true", help="print the manifest entries as JSON")
    describe = commands.add_parser("describe", help="show one workload's manifest entry")
    describe.add_argument("id", help="workload id, e.g. cpu-3")
    describe.add_argument("--json", action="store_true", help="print the entry as JSON")
    run = commands.add_parser(
        "run",
        help="run a workload and write its results document",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("id", help="workload id, e.g. cpu-3")
    for option in OPTIONS:
        run.add_argument(
            option.flag,
            dest=option.name,
            metavar=option.metavar,
            type=_argument_type(option.parse),
            help=f"{option.help} [{option.variable}]",
        )
    return parser


def _lookup(manifest: Manifest, workload_id: str) -> Workload:
    workload = manifest.get(workload_id)
    if workload is None:
        raise UsageError(f"unknown workload {workload_id!r}; valid ids: {', '.join(manifest.ids)}")
    return workload


def _entry(workload: Workload) -> dict[str, Any]:
    return workload.model_dump() | {"launcher": workload.launcher}


def _list(args: argparse.Namespace, manifest: Manifest) -> int:
    if args.json:
        print(json.dumps([_entry(workload) for workload in manifest], indent=2))
        return 0
    from workloads.runtime.sizes import format_size

    rows = [("ID", "TASK TYPE", "CPUS", "MEMORY", "DISK", "GPUS", "DURATION", "TITLE")]
    for w in manifest:
        envelope = w.envelope
        rows.append(
            (
                w.id,
                w.task_type,
                f"{envelope.cpus:g}",
                format_size(envelope.memory),
                format_size(envelope.disk),
                str(envelope.gpus),
                f"{w.duration.min / 60:g}-{w.duration.max / 60:g} min",
                w.title,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
    return 0


def _describe(args: argparse.Namespace, manifest: Manifest) -> int:
    workload = _lookup(manifest, args.id)
    if args.json:
        print(json.dumps(_entry(workload), indent=2))
        return 0
    from workloads.runtime.sizes import format_size

    e = workload.envelope
    gpu = f", {e.gpus} GPU(s) with {format_size(e.gpu_memory)}" if e.gpus else ""
    lines = [
        f"{workload.id}  {workload.title}",
        f"  {workload.description}",
        f"  category    {workload.category} (task type {workload.task_type})",
        f"  module      {workload.module}",
        f"  envelope    {e.cpus:g} CPU(s), {format_size(e.memory)} memory, "
        f"{format_size(e.disk)} disk{gpu}",
        f"  duration    {workload.duration.min:g}-{workload.duration.max:g} s "
        "(drawn with the seed unless --duration)",
        f"  platforms   {', '.join(workload.platforms)}",
        f"  launcher    python {workload.launcher}",
        f"  run         python -m workloads run {workload.id} [options]",
    ]
    print("\n".join(lines))
    return 0


def _run(args: argparse.Namespace, manifest: Manifest) -> int:
    from workloads.runtime.limits import detect_limits
    from workloads.runtime.params import resolve_params
    from workloads.runtime.results import prepare_results_dir
    from workloads.runtime.runner import Run

    workload = _lookup(manifest, args.id)
    given = gather(vars(args))
    limits = detect_limits()
    params = resolve_params(workload, given, limits)
    prepare_results_dir(params.results_dir)
    return Run(workload, params, limits).execute()


COMMANDS = {"list": _list, "describe": _describe, "run": _run}


def main(argv: Sequence[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines reach logs as they happen
    from workloads.runtime.progress import silence_stdout
    from workloads.runtime.results import ResultsDirError
    from workloads.runtime.signals import release_early

    try:
        manifest = get_manifest()
        args = build_parser().parse_args(argv)
        if args.command != "run":
            release_early()
        return COMMANDS[args.command](args, manifest)
    except (ManifestError, UsageError, ResultsDirError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except BrokenPipeError:  # list | head: the reader has what it wanted
        silence_stdout()
        return 0
