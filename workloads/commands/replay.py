"""``replay TRACE --engine NAME --output DIR``: play a trace against an engine and record it.

The engines are plug-ins (workloads/replay/plugins.py): ``--engine`` takes any installed one,
and each engine's own options (``--partition`` for slurm, say) are offered beside the common
ones; an option of another engine than the one chosen is a usage error.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from workloads.commands.common import add_image_options, argument_type
from workloads.options import UsageError, positive_float

HELP = "play a trace against an engine (docker, swarm, slurm...) and record what it did"
DEFAULT_ENGINE = "docker"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from workloads.replay import plugins
    from workloads.replay.engine import ReplayInputError

    names = plugins.installed()
    parser.add_argument("trace", type=Path, metavar="TRACE", help="a trace file (JSON or CSV)")
    parser.add_argument(
        "--engine",
        default=DEFAULT_ENGINE,
        metavar="NAME",
        help=f"the engine to replay on, of those installed: {', '.join(names) or 'none'} "
        f"(default {DEFAULT_ENGINE})",
    )
    parser.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="a new, or empty, run folder"
    )
    parser.add_argument(
        "--speed",
        type=argument_type(positive_float),
        default=1.0,
        metavar="F",
        help="divide every submit time by F (default 1)",
    )
    parser.add_argument(
        "--grace",
        type=argument_type(positive_float),
        default=10.0,
        metavar="SECONDS",
        help="between SIGTERM and SIGKILL when a stop ends a task (default 10)",
    )
    add_image_options(parser, otherwise_from_trace=True)
    owners: dict[str, str] = {}
    for name in names:
        try:
            plugin = plugins.load(name)
        except ReplayInputError as err:  # listed, and refused with this line if chosen
            parser.add_argument_group(f"engine {name}", str(err))
            continue
        group = parser.add_argument_group(f"engine {name}", plugin.summary)
        for option in plugin.options:
            if option.name in owners:  # two engines share an option: one flag serves both
                continue
            owners[option.name] = name
            group.add_argument(
                option.flag,
                dest=f"engine_{option.name}",
                metavar=option.metavar,
                action="append" if option.repeat else "store",
                help=option.help,
            )


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen engine's options, by name, with their defaults; one given for another
    engine is refused."""
    from workloads.replay import plugins

    plugin = plugins.load(args.engine)
    own = {option.name: option for option in plugin.options}
    found: dict[str, Any] = {}
    for key, value in vars(args).items():
        if not key.startswith("engine_"):
            continue
        name = key.removeprefix("engine_")
        if name in own:
            found[name] = own[name].default if value is None else value
        elif value is not None:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} is not an option of engine {args.engine!r}")
    return found


def main(args: argparse.Namespace) -> int:
    from workloads.replay.engine import ReplayInputError
    from workloads.replay.runner import ReplayOptions, replay

    try:
        options = ReplayOptions(
            trace=args.trace,
            engine=args.engine,
            output=args.output,
            speed=args.speed,
            grace=args.grace,
            registry=args.registry,
            namespace=args.namespace,
            engine_options=_engine_options(args),
        )
        return replay(options, os.environ)
    except ReplayInputError as err:
        raise UsageError(str(err)) from None
