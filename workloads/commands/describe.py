"""``describe ID``: one workload's manifest entry, for people (or as JSON)."""

from __future__ import annotations

import argparse
import json

from workloads.commands.common import add_format, entry, lookup
from workloads.manifest import get_manifest
from workloads.sizes import format_size

HELP = "show one workload's manifest entry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="workload id, e.g. cpu-3")
    add_format(parser, ("text", "json"), "text (default) or json: the entry")


def main(args: argparse.Namespace) -> int:
    workload = lookup(get_manifest(), args.id)
    if args.format == "json":
        print(json.dumps(entry(workload), indent=2))
        return 0
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
