"""``python -m workloads``: list, describe and run the catalogue's workloads; report on runs;
export the catalogue as scheduler tasks and arrival traces.

Exit status: 0 completed, 1 failed (the document says why), 2 usage error (bad flag or variable,
unknown workload, malformed manifest, unwritable results folder), 128+N stopped by signal N.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import workloads
from workloads.manifest import Manifest, ManifestError, Workload, get_manifest
from workloads.options import OPTIONS, UsageError, gather, positive_float, positive_int, seed
from workloads.runtime.choices import EXIT_USAGE

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
    _add_exports(commands)
    _add_experiments(commands)
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
    from workloads.sizes import format_size

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
    from workloads.sizes import format_size

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
        f"  metric      {workload.primary_metric.name} ({workload.primary_metric.unit})",
        "  checks      " + "\n              ".join(workload.checks),
        f"  launcher    python {workload.launcher}",
        f"  run         python -m workloads run {workload.id} [options]",
    ]
    print("\n".join(lines))
    return 0


def _run(args: argparse.Namespace, manifest: Manifest) -> int:
    from workloads.runtime.exporter import ExporterError
    from workloads.runtime.limits import detect_limits
    from workloads.runtime.params import resolve_params
    from workloads.runtime.results import prepare_results_dir
    from workloads.runtime.runner import Run

    workload = _lookup(manifest, args.id)
    given = gather(vars(args))
    limits = detect_limits()
    params = resolve_params(workload, given, limits)
    prepare_results_dir(params.results_dir)
    try:
        run = Run(workload, params, limits)
    except ExporterError as err:
        raise UsageError(str(err)) from None
    return run.execute()


def _add_exports(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="PNG timelines of run documents and a summary page across them"
    )
    report.add_argument(
        "inputs", nargs="+", type=Path, metavar="RESULTS", help="run documents, or folders of them"
    )
    report.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="where to write the report (default: RESULTS/report)",
    )
    tasks = commands.add_parser(
        "tasks", help="the catalogue as task specs for the master/worker system or Kubernetes"
    )
    tasks.add_argument(
        "ids", nargs="*", metavar="ID", help="workload ids or categories (default: all)"
    )
    tasks.add_argument(
        "--format",
        choices=("json", "k8s", "cloudai"),
        default="json",
        help="json task specs (default), k8s Jobs as YAML, or cloudai: one body of the "
        "master's POST /api/tasks per line",
    )
    tasks.add_argument(
        "--results-claim",
        metavar="NAME",
        help="k8s: a PersistentVolumeClaim for /results (default: an emptyDir)",
    )
    _add_image_options(tasks)
    _add_master_options(tasks)
    _add_controls(tasks, "every task")
    trace = commands.add_parser(
        "trace", help="a seeded arrival trace of tasks for scheduler experiments"
    )
    trace.add_argument(
        "--tasks",
        type=_argument_type(positive_int),
        default=100,
        metavar="N",
        help="how many tasks (default 100)",
    )
    trace.add_argument(
        "--mix",
        default="io=1,cpu=1,gpu=1",
        metavar="MIX",
        help="weights by category or id, e.g. io=1,cpu=2,gpu-3=0.5 (default io=1,cpu=1,gpu=1)",
    )
    trace.add_argument(
        "--arrival",
        choices=("poisson", "fixed"),
        default="poisson",
        help="a Poisson process (default) or a fixed rate",
    )
    trace.add_argument(
        "--rate",
        type=_argument_type(positive_float),
        default=0.1,
        metavar="PER_SECOND",
        help="mean arrivals per second (default 0.1)",
    )
    trace.add_argument(
        "--seed",
        type=_argument_type(seed),
        default=0,
        metavar="N",
        help="the same seed gives the same trace (default 0)",
    )
    trace.add_argument(
        "--duration-scale",
        type=_argument_type(positive_float),
        default=1.0,
        metavar="FACTOR",
        help="multiply every task's duration (default 1)",
    )
    trace.add_argument(
        "--duration-range",
        type=_argument_type(_seconds_range),
        metavar="MIN:MAX",
        help="draw every task's duration from MIN to MAX seconds instead of its workload's "
        "range (before --duration-scale)",
    )
    trace.add_argument(
        "--format",
        choices=("json", "csv", "cloudai"),
        default="json",
        help="json (default), csv, or cloudai: per line a submit_time and the master's task body",
    )
    trace.add_argument("--output", type=Path, metavar="FILE", help="default: stdout")
    _add_image_options(trace)
    _add_master_options(trace)
    _add_controls(trace, "every task", exclude=_DRAWN_BY_TRACE)


def _add_experiments(commands: Any) -> None:
    replay = commands.add_parser(
        "replay", help="play a trace against an engine (docker, or a Docker Swarm) and record it"
    )
    replay.add_argument("trace", type=Path, metavar="TRACE", help="a trace file (JSON or CSV)")
    replay.add_argument(
        "--engine",
        choices=("docker", "swarm"),
        default="docker",
        help="docker: every task starts when it arrives (default); swarm: Swarm schedules it",
    )
    replay.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="a new, or empty, run folder"
    )
    replay.add_argument(
        "--speed",
        type=_argument_type(positive_float),
        default=1.0,
        metavar="F",
        help="divide every submit time by F (default 1)",
    )
    replay.add_argument(
        "--grace",
        type=_argument_type(positive_float),
        default=10.0,
        metavar="SECONDS",
        help="between SIGTERM and SIGKILL when a stop ends a task (default 10)",
    )
    _add_image_options(replay, otherwise_from_trace=True)
    analyze = commands.add_parser(
        "analyze",
        help="a replay's run folder into jobs.csv, summary.json and pictures",
    )
    analyze.add_argument("run", type=Path, metavar="DIR", help="the run folder of a replay")
    analyze.add_argument(
        "--check",
        type=Path,
        metavar="THRESHOLDS.yaml",
        help="bounds on summary figures, e.g. 'wait_p99_s: {max: 30}'; exit 1 when one is missed",
    )
    analyze.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR2",
        help="another replay's run folder: print every figure of both side by side",
    )


def _add_image_options(
    parser: argparse.ArgumentParser, *, otherwise_from_trace: bool = False
) -> None:
    """``--registry`` and ``--namespace``, defaulting to the same variables as docker-bake.hcl
    and compose.yaml; when unset, a replay keeps what its trace names."""
    registry = os.environ.get("REGISTRY")
    namespace = os.environ.get("NAMESPACE") or os.environ.get("DOCKER_USERNAME")
    if otherwise_from_trace:
        registry_fallback = namespace_fallback = "the trace's"
    else:
        registry, registry_fallback = registry or "docker.io", "docker.io"
        namespace, namespace_fallback = namespace or "cloudai", "cloudai"
    parser.add_argument(
        "--registry",
        default=registry,
        help=f"image registry (default: $REGISTRY, else {registry_fallback})",
    )
    parser.add_argument(
        "--namespace",
        default=namespace,
        help=f"image namespace (default: $NAMESPACE, $DOCKER_USERNAME, else {namespace_fallback})",
    )


def _add_controls(parser: argparse.ArgumentParser, to: str, exclude: tuple[str, ...] = ()) -> None:
    """The run controls as flags passed on to tasks' commands (not where results go)."""
    for option in OPTIONS:
        if option.name not in ("results_dir", "work_dir", *exclude):
            parser.add_argument(
                option.flag,
                dest=option.name,
                metavar=option.metavar,
                type=_argument_type(option.parse),
                help=f"pass {option.flag} to {to}",
            )


def _seconds_range(text: str) -> tuple[float, float]:
    low_text, _, high_text = text.partition(":")
    low, high = positive_float(low_text), positive_float(high_text or low_text)
    if high < low:
        raise ValueError(f"{text!r}: MAX is below MIN")
    return low, high


def _k_value(text: str) -> float:
    from workloads.exports import K_VALUE_RANGE

    value = positive_float(text)
    low, high = K_VALUE_RANGE
    if not low <= value <= high:
        raise ValueError(f"{text!r} must be between {low:g} and {high:g}")
    return value


def _add_master_options(parser: argparse.ArgumentParser) -> None:
    # Fields of the master's task body that the catalogue does not decide.
    from workloads.exports import DEFAULT_K_VALUE, DEFAULT_USER

    parser.add_argument(
        "--k-value",
        type=_argument_type(_k_value),
        default=DEFAULT_K_VALUE,
        metavar="K",
        help=f"cloudai: the SLA multiplier, 1.5 to 2.5 (default {DEFAULT_K_VALUE})",
    )
    parser.add_argument(
        "--user",
        default=DEFAULT_USER,
        metavar="ID",
        help=f"cloudai: the user_id (default {DEFAULT_USER})",
    )


def _select(manifest: Manifest, names: list[str]) -> list[Workload]:
    if not names:
        return list(manifest)
    chosen = []
    for name in names:
        members = [w for w in manifest if name in (w.category, w.id)]
        if not members:
            raise UsageError(
                f"unknown workload or category {name!r}; valid ids: {', '.join(manifest.ids)}"
            )
        chosen += [member for member in members if member not in chosen]
    return chosen


def _report(args: argparse.Namespace, manifest: Manifest) -> int:
    try:
        from workloads.report import ReportError, build_report
    except ModuleNotFoundError as err:
        print(
            f"error: the report needs {err.name}: pip install 'cloudai-workloads[report]'",
            file=sys.stderr,
        )
        return 1
    output = (
        args.output
        or (args.inputs[0] if args.inputs[0].is_dir() else args.inputs[0].parent) / "report"
    )
    try:
        written = build_report(args.inputs, output)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"report: {len(written) - 2} timeline(s), summary.png and {output / 'index.html'}")
    return 0


# trace draws each task's duration and seed itself (its own --seed seeds the trace).
_DRAWN_BY_TRACE = ("duration", "seed")


def _controls(args: argparse.Namespace, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    controls = {}
    for option in OPTIONS:
        value = None if option.name in exclude else getattr(args, option.name, None)
        if value is not None:
            controls[option.name] = f"{value:g}" if isinstance(value, float) else str(value)
    return controls


def _tasks(args: argparse.Namespace, manifest: Manifest) -> int:
    import yaml

    from workloads.exports import Images, MasterTask, kubernetes_jobs, task_specs

    images = Images(args.registry, args.namespace)
    workloads = _select(manifest, args.ids)
    if args.format == "k8s":
        jobs = kubernetes_jobs(workloads, images, _controls(args), args.results_claim)
        print(yaml.safe_dump_all(jobs, sort_keys=False), end="")
    elif args.format == "cloudai":
        for workload in workloads:
            task = MasterTask.of(
                workload, images, _controls(args), k_value=args.k_value, user=args.user
            )
            print(json.dumps(task.body()))
    else:
        print(json.dumps(task_specs(workloads, images, _controls(args)), indent=2))
    return 0


def _trace(args: argparse.Namespace, manifest: Manifest) -> int:
    from workloads.exports import Images
    from workloads.trace import MixError, generate, parse_mix, to_cloudai, to_csv, to_json

    try:
        mix = parse_mix(args.mix, manifest)
    except MixError as err:
        raise UsageError(f"--mix: {err}") from None
    trace = generate(
        manifest,
        tasks=args.tasks,
        mix=mix,
        arrival=args.arrival,
        rate=args.rate,
        seed=args.seed,
        images=Images(args.registry, args.namespace),
        duration_scale=args.duration_scale,
        duration_range=args.duration_range,
        controls=_controls(args, exclude=_DRAWN_BY_TRACE),
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
        "controls": _controls(args, exclude=_DRAWN_BY_TRACE),
    }
    if args.format == "cloudai":
        text = to_cloudai(trace, k_value=args.k_value, user=args.user)
    else:
        text = to_csv(trace) if args.format == "csv" else to_json(trace, meta)
    if args.output:
        args.output.write_text(text)
    else:
        print(text, end="")
    return 0


def _replay(args: argparse.Namespace, manifest: Manifest) -> int:
    from workloads.replay.engine import ReplayInputError
    from workloads.replay.runner import ReplayOptions, replay

    options = ReplayOptions(
        trace=args.trace,
        engine=args.engine,
        output=args.output,
        speed=args.speed,
        grace=args.grace,
        registry=args.registry,
        namespace=args.namespace,
    )
    try:
        return replay(options)
    except ReplayInputError as err:
        raise UsageError(str(err)) from None


def _analyze(args: argparse.Namespace, manifest: Manifest) -> int:
    from workloads import analysis
    from workloads.analysis.summary import ThresholdError
    from workloads.replay.records import RunFolderError

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
    if baseline is not None:
        print("\n".join(analysis.comparison(flat, analysis.figures(baseline))))
    missed = analysis.violations(flat, thresholds)
    for line in missed:
        print(f"check: {line}", file=sys.stderr)
    return 1 if missed else 0


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} s"


COMMANDS = {
    "list": _list,
    "describe": _describe,
    "run": _run,
    "report": _report,
    "tasks": _tasks,
    "trace": _trace,
    "replay": _replay,
    "analyze": _analyze,
}


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
