"""``python -m workloads`` (or ``cloudai-workloads``): wires the commands of workloads/commands/
into one parser and turns their errors into exit statuses (workloads/runtime/choices.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from types import ModuleType

import workloads
from workloads.commands import COMMANDS
from workloads.commands.common import Parser
from workloads.manifest import ManifestError
from workloads.options import UsageError
from workloads.runtime.choices import EXIT_USAGE, exit_statuses_text


def _command(name: str) -> ModuleType:
    return import_module(f"workloads.commands.{name}")


def _prog() -> str:
    """The name the user typed: the console script, or the module."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return script if script == "cloudai-workloads" else "python -m workloads"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that command's arguments are built (so a light
    command imports nothing another one needs)."""
    parser = Parser(
        prog=_prog(),
        description="Synthetic IO, CPU and GPU workloads for testing schedulers and clusters.",
        epilog=exit_statuses_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {workloads.__version__}")
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for name in COMMANDS:
        module = _command(name)
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=exit_statuses_text(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if command in (None, name):
            module.add_arguments(sub)
    return parser


def _chosen(argv: Sequence[str]) -> str | None:
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines reach logs as they happen
    from workloads.runtime.progress import silence_stdout
    from workloads.runtime.results import ResultsDirError
    from workloads.runtime.signals import release_early

    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_chosen(arguments)).parse_args(arguments)
        if args.command != "run":
            release_early()
        return _command(args.command).main(args)
    except (ManifestError, UsageError, ResultsDirError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except BrokenPipeError:  # list | head: the reader has what it wanted
        silence_stdout()
        return 0
