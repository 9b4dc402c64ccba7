"""``tasks [ID...]``: the catalogue as task specs for the master/worker system or Kubernetes."""

from __future__ import annotations

import argparse
import json

from workloads.commands.common import (
    add_controls,
    add_format,
    add_image_options,
    add_master_options,
    controls,
    select,
)
from workloads.manifest import get_manifest

HELP = "the catalogue as task specs for the master/worker system or Kubernetes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ids", nargs="*", metavar="ID", help="workload ids or categories (default: all)"
    )
    add_format(
        parser,
        ("json", "k8s", "cloudai"),
        "json task specs (default), k8s Jobs as YAML, or cloudai: one body of the master's "
        "POST /api/tasks per line",
    )
    parser.add_argument(
        "--results-claim",
        metavar="NAME",
        help="k8s: a PersistentVolumeClaim for /results (default: an emptyDir)",
    )
    add_image_options(parser)
    add_master_options(parser)
    add_controls(parser, "every task")


def main(args: argparse.Namespace) -> int:
    import yaml

    from workloads.exports import Images, MasterTask, kubernetes_jobs, task_specs

    images = Images(args.registry, args.namespace)
    chosen = select(get_manifest(), args.ids)
    given = controls(args)
    if args.format == "k8s":
        jobs = kubernetes_jobs(chosen, images, given, args.results_claim)
        print(yaml.safe_dump_all(jobs, sort_keys=False), end="")
    elif args.format == "cloudai":
        for workload in chosen:
            task = MasterTask.of(workload, images, given, k_value=args.k_value, user=args.user)
            print(json.dumps(task.body()))
    else:
        print(json.dumps(task_specs(chosen, images, given), indent=2))
    return 0
