"""``list``: the catalogue, a line per workload (or its entries as JSON)."""

from __future__ import annotations

import argparse
import json

from workloads.commands.common import add_format, entry
from workloads.manifest import get_manifest
from workloads.sizes import format_size

HELP = "list the workloads"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_format(parser, ("text", "json"), "text: a line per workload (default); json: the entries")


def main(args: argparse.Namespace) -> int:
    manifest = get_manifest()
    if args.format == "json":
        print(json.dumps([entry(workload) for workload in manifest], indent=2))
        return 0
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
