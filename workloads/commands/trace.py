"""``trace``: an arrival trace of tasks for scheduler experiments, seeded from a mix of the
catalogue, or converted from a public cluster log (``--from``)."""

from __future__ import annotations

import argparse
import sys
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
from workloads.runfolder import TraceFile, TraceMeta

HELP = "an arrival trace of tasks: a seeded mix, or a public cluster log (--from)"
# trace draws each task's duration and seed itself (its own --seed seeds the trace).
DRAWN_BY_TRACE = ("duration", "seed")
# Flags of each kind of trace, and their defaults (None in the parser, to tell them given).
SEEDED = {"tasks": 100, "mix": "io=1,cpu=1,gpu=1", "arrival": "poisson", "rate": 0.1}
SEEDED |= {"duration_scale": 1.0}
FROM_LOG = ("source_format", "window", "time_scale", "span", "node", "nodes", "load", "map")
FROM_LOG += ("source_node",)


def _seconds_range(text: str) -> tuple[float, float]:
    low_text, _, high_text = text.partition(":")
    low, high = positive_float(low_text), positive_float(high_text or low_text)
    if high < low:
        raise ValueError(f"{text!r}: MAX is below MIN")
    return low, high


def _window(text: str) -> tuple[int, int | None]:
    first_text, colon, count_text = text.partition(":")
    if not colon:
        raise ValueError(f"{text!r} is not FIRST:COUNT (e.g. 1000:50, or 1000: to the end)")
    first = int(first_text) if first_text.strip() else 0
    if first < 0:
        raise ValueError(f"{text!r}: FIRST counts records from 0")
    return first, positive_int(count_text) if count_text.strip() else None


def _node(text: str):
    from workloads.conversion.sizing import parse_node

    return parse_node(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tasks",
        type=argument_type(positive_int),
        metavar="N",
        help="how many tasks (default 100)",
    )
    parser.add_argument(
        "--mix",
        metavar="MIX",
        help="weights by category or id, e.g. io=1,cpu=2,gpu-3=0.5 (default io=1,cpu=1,gpu=1)",
    )
    parser.add_argument(
        "--arrival",
        choices=("poisson", "fixed"),
        help="a Poisson process (default) or a fixed rate",
    )
    parser.add_argument(
        "--rate",
        type=argument_type(positive_float),
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
        metavar="FACTOR",
        help="multiply every task's duration (default 1)",
    )
    parser.add_argument(
        "--duration-range",
        type=argument_type(_seconds_range),
        metavar="MIN:MAX",
        help="draw every task's duration from MIN to MAX seconds instead of its workload's "
        "range (before --duration-scale); with --from: clamp the scaled run times to it "
        "(default 10:120)",
    )
    add_source_arguments(parser)
    add_format(
        parser,
        ("json", "csv", "cloudai"),
        "json (default), csv, or cloudai: per line a submit_time and the master's task body",
    )
    parser.add_argument("--output", type=Path, metavar="FILE", help="default: stdout")
    add_image_options(parser)
    add_master_options(parser)
    add_controls(parser, "every task", exclude=DRAWN_BY_TRACE)


def _given(args: argparse.Namespace, names) -> list[str]:
    return ["--" + name.replace("_", "-") for name in names if getattr(args, name) is not None]


def main(args: argparse.Namespace) -> int:
    from workloads.taskspec import Images
    from workloads.trace import to_cloudai

    if args.source is not None:
        stray = _given(args, SEEDED)
        if stray:
            raise UsageError(f"{stray[0]} makes a seeded trace: it does not go with --from")
        trace, warnings = convert_log(args, Images(args.registry, args.namespace))
    else:
        stray = _given(args, FROM_LOG)
        if stray:
            raise UsageError(f"{stray[0]} converts a log: give --from PATH")
        for name, default in SEEDED.items():
            setattr(args, name, default if getattr(args, name) is None else getattr(args, name))
        trace, warnings = _seeded(args, Images(args.registry, args.namespace)), []
    if args.format == "cloudai":
        text = to_cloudai(trace.tasks, k_value=args.k_value, user=args.user)
    else:
        text = trace.to_csv() if args.format == "csv" else trace.to_json()
    for warning in warnings:
        print(f"trace: warning: {warning}", file=sys.stderr)
    if args.output:
        try:
            args.output.write_text(text)
        except OSError as err:
            raise UsageError(f"--output {args.output}: {err.strerror}") from None
    else:
        print(text, end="")
    return 0


def _seeded(args: argparse.Namespace, images) -> TraceFile:
    from workloads.trace import MixError, generate, parse_mix

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
        images=images,
        duration_scale=args.duration_scale,
        duration_range=args.duration_range,
        controls=given,
    )
    meta = TraceMeta(
        generator=f"cloudai-workloads {workloads.__version__}",
        seed=args.seed,
        tasks=args.tasks,
        mix=mix,
        arrival=args.arrival,
        rate=args.rate,
        duration_scale=args.duration_scale,
        duration_range=args.duration_range,
        controls=given,
    )
    return TraceFile(meta=meta, tasks=tasks)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "from a cluster log", "convert a public log's jobs (SWF, Alibaba's openb pod list)"
    )
    group.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="PATH",
        help="the log: .swf, .swf.gz or an openb pod list (CSV), detected from its content",
    )
    group.add_argument("--source-format", choices=("swf", "openb"), help="do not detect it")
    group.add_argument(
        "--window",
        type=argument_type(_window),
        metavar="FIRST:COUNT",
        help="COUNT replayable records from record FIRST (from 0, in file order; default all)",
    )
    group.add_argument(
        "--time-scale",
        type=argument_type(positive_float),
        metavar="F",
        help="divide arrival gaps and run times by F (default: F that keeps the load)",
    )
    group.add_argument(
        "--span",
        type=argument_type(positive_float),
        metavar="SECONDS",
        help="choose F so that the window's arrivals span this long",
    )
    group.add_argument(
        "--load",
        type=argument_type(positive_float),
        metavar="X",
        help="choose F so that the target's offered load is X (default: the source's)",
    )
    group.add_argument(
        "--node",
        type=argument_type(_node),
        metavar="CPUS:MEMORY[:GPUS]",
        help="one target node, e.g. 2:4g (default: the largest envelope of the catalogue)",
    )
    group.add_argument(
        "--nodes",
        type=argument_type(positive_int),
        metavar="N",
        help="how many target nodes (default 1)",
    )
    group.add_argument(
        "--source-node",
        type=argument_type(_node),
        metavar="CPUS:MEMORY[:GPUS]",
        help="one node of the log's cluster (default: what the log says)",
    )
    group.add_argument(
        "--map",
        type=Path,
        metavar="FILE",
        help="YAML rules that choose workloads before the default rules",
    )


def convert_log(args: argparse.Namespace, images) -> tuple[TraceFile, list[str]]:
    """The trace of a window of the log at --from; every problem one line (exit 2)."""
    from workloads.conversion.convert import ConversionError, ConvertOptions, convert
    from workloads.conversion.mapping import MapError, load_map
    from workloads.conversion.sizing import SizingError
    from workloads.conversion.window import WindowError
    from workloads.sources import SourceError, read_log

    if args.time_scale is not None and args.span is not None:
        raise UsageError("--time-scale and --span both set the time scale: give one")
    if args.load is not None and (args.time_scale is not None or args.span is not None):
        raise UsageError("--load chooses the time scale: it does not go with --time-scale/--span")
    manifest = get_manifest()
    first, count = args.window or (0, None)
    try:
        rules = load_map(args.map, manifest) if args.map else []
        log = read_log(args.source, args.source_format)
        converted = convert(
            log,
            ConvertOptions(
                first=first,
                count=count,
                time_scale=args.time_scale,
                span=args.span,
                load=args.load,
                duration_range=args.duration_range,
                node=args.node,
                nodes=args.nodes or 1,
                source_node=args.source_node,
                rules=rules,
                map_file=str(args.map) if args.map else None,
                seed=args.seed,
                images=images,
                controls=controls(args, exclude=DRAWN_BY_TRACE),
            ),
            manifest,
        )
    except (SourceError, WindowError, SizingError, MapError, ConversionError) as err:
        raise UsageError(str(err)) from None
    return converted.trace, converted.warnings
