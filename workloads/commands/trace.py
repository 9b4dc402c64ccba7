"""``trace``: a seeded arrival trace of tasks for scheduler experiments."""

from __future__ import annotations

import argparse
from pathlib import Path

import workloads
from workloads.commands.common import (
    add_controls,
    add_format,
    add_image_options,
    add_master_options,
    argument_type,
    controls,
)
from workloads.manifest import get_manifest
from workloads.options import UsageError, positive_float, positive_int, seed

HELP = "a seeded arrival trace of tasks for scheduler experiments"
# trace draws each task's duration and seed itself (its own --seed seeds the trace).
DRAWN_BY_TRACE = ("duration", "seed")


def _seconds_range(text: str) -> tuple[float, float]:
    low_text, _, high_text = text.partition(":")
    low, high = positive_float(low_text), positive_float(high_text or low_text)
    if high < low:
        raise ValueError(f"{text!r}: MAX is below MIN")
    return low, high


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tasks",
        type=argument_type(positive_int),
        default=100,
        metavar="N",
        help="how many tasks (default 100)",
    )
    parser.add_argument(
        "--mix",
        default="io=1,cpu=1,gpu=1",
        metavar="MIX",
        help="weights by category or id, e.g. io=1,cpu=2,gpu-3=0.5 (default io=1,cpu=1,gpu=1)",
    )
    parser.add_argument(
        "--arrival",
        choices=("poisson", "fixed"),
        default="poisson",
        help="a Poisson process (default) or a fixed rate",
    )
    parser.add_argument(
        "--rate",
        type=argument_type(positive_float),
        default=0.1,
        metavar="PER_SECOND",
        help="mean arrivals per second (default 0.1)",
    )
    parser.add_argument(
        "--seed",
        type=argument_type(seed),
        default=0,
        metavar="N",
        help="the same seed gives the same trace (default 0)",
    )
    parser.add_argument(
        "--duration-scale",
        type=argument_type(positive_float),
        default=1.0,
        metavar="FACTOR",
        help="multiply every task's duration (default 1)",
    )
    parser.add_argument(
        "--duration-range",
        type=argument_type(_seconds_range),
        metavar="MIN:MAX",
        help="draw every task's duration from MIN to MAX seconds instead of its workload's "
        "range (before --duration-scale)",
    )
    add_format(
        parser,
        ("json", "csv", "cloudai"),
        "json (default), csv, or cloudai: per line a submit_time and the master's task body",
    )
    parser.add_argument("--output", type=Path, metavar="FILE", help="default: stdout")
    add_image_options(parser)
    add_master_options(parser)
    add_controls(parser, "every task", exclude=DRAWN_BY_TRACE)


def main(args: argparse.Namespace) -> int:
    from workloads.exports import Images
    from workloads.runfolder import TraceFile
    from workloads.trace import MixError, generate, parse_mix, to_cloudai

    manifest = get_manifest()
    try:
        mix = parse_mix(args.mix, manifest)
    except MixError as err:
        raise UsageError(f"--mix: {err}") from None
    given = controls(args, exclude=DRAWN_BY_TRACE)
    tasks = generate(
        manifest,
        tasks=args.tasks,
        mix=mix,
        arrival=args.arrival,
        rate=args.rate,
        seed=args.seed,
        images=Images(args.registry, args.namespace),
        duration_scale=args.duration_scale,
        duration_range=args.duration_range,
        controls=given,
    )
    meta = {
        "generator": f"cloudai-workloads {workloads.__version__}",
        "seed": args.seed,
        "tasks": args.tasks,
        "mix": mix,
        "arrival": args.arrival,
        "rate": args.rate,
        "duration_scale": args.duration_scale,
        "duration_range": args.duration_range,
        "controls": given,
    }
    trace = TraceFile(meta=meta, tasks=tasks)
    if args.format == "cloudai":
        text = to_cloudai(tasks, k_value=args.k_value, user=args.user)
    else:
        text = trace.to_csv() if args.format == "csv" else trace.to_json()
    if args.output:
        args.output.write_text(text)
    else:
        print(text, end="")
    return 0
