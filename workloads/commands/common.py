"""What several commands' arguments share: parsing errors as usage errors, value types, where
images live, the run controls passed on to tasks, and selecting workloads."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, NoReturn

from workloads.manifest import Manifest, Workload
from workloads.options import OPTIONS, UsageError, positive_float


class Parser(argparse.ArgumentParser):
    """A parser whose errors are usage errors: one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parse function of workloads.options as an argparse type (its ValueError, one line)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = parse.__name__
    return convert


class MissingExtra(UsageError):
    """An optional dependency is not installed: one line naming the extra, exit 2."""

    def __init__(self, command: str, module: str, extra: str) -> None:
        super().__init__(
            f"{command} needs the Python module {module!r}: install the {extra!r} extra "
            f"(in a checkout: pip install -e '.[{extra}]')"
        )


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...], help: str) -> None:
    """``--format``, the same name in every command (``--json`` stays as an alias of json)."""
    parser.add_argument("--format", choices=choices, default=choices[0], help=help)
    if "json" in choices:
        parser.add_argument(
            "--json", dest="format", action="store_const", const="json", help="--format json"
        )


def add_image_options(
    parser: argparse.ArgumentParser, *, otherwise_from_trace: bool = False
) -> None:
    """``--registry`` and ``--namespace``: where images live. For ``tasks`` and ``trace`` they
    default to docker-bake.hcl's variables; a replay runs the images its trace names unless
    these flags are given (the variables only fill what the trace's image names leave out)."""
    if otherwise_from_trace:
        registry = namespace = None
        registry_fallback = namespace_fallback = "the trace's"
    else:
        from workloads.taskspec import DEFAULT_NAMESPACE, DEFAULT_REGISTRY

        registry = os.environ.get("REGISTRY") or DEFAULT_REGISTRY
        namespace = (
            os.environ.get("NAMESPACE") or os.environ.get("DOCKER_USERNAME") or DEFAULT_NAMESPACE
        )
        registry_fallback = f"$REGISTRY, else {DEFAULT_REGISTRY}"
        namespace_fallback = f"$NAMESPACE, $DOCKER_USERNAME, else {DEFAULT_NAMESPACE}"
    parser.add_argument(
        "--registry", default=registry, help=f"image registry (default: {registry_fallback})"
    )
    parser.add_argument(
        "--namespace", default=namespace, help=f"image namespace (default: {namespace_fallback})"
    )


def add_controls(parser: argparse.ArgumentParser, to: str, exclude: tuple[str, ...] = ()) -> None:
    """The run controls as flags passed on to tasks' commands (not where results go)."""
    for option in OPTIONS:
        if option.name not in ("results_dir", "work_dir", *exclude):
            parser.add_argument(
                option.flag,
                dest=option.name,
                metavar=option.metavar,
                type=argument_type(option.parse),
                help=f"pass {option.flag} to {to}",
            )


def controls(args: argparse.Namespace, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """The run controls given on the command line, as the text a task's command carries."""
    found = {}
    for option in OPTIONS:
        value = None if option.name in exclude else getattr(args, option.name, None)
        if value is not None:
            found[option.name] = f"{value:g}" if isinstance(value, float) else str(value)
    return found


def add_master_options(parser: argparse.ArgumentParser) -> None:
    """Fields of the master's task body that the catalogue does not decide."""
    from workloads.taskspec import DEFAULT_K_VALUE, DEFAULT_USER

    parser.add_argument(
        "--k-value",
        type=argument_type(_k_value),
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


def _k_value(text: str) -> float:
    from workloads.taskspec import K_VALUE_RANGE

    value = positive_float(text)
    low, high = K_VALUE_RANGE
    if not low <= value <= high:
        raise ValueError(f"{text!r} must be between {low:g} and {high:g}")
    return value


def lookup(manifest: Manifest, workload_id: str) -> Workload:
    workload = manifest.get(workload_id)
    if workload is None:
        raise UsageError(f"unknown workload {workload_id!r}; valid ids: {', '.join(manifest.ids)}")
    return workload


def select(manifest: Manifest, names: list[str]) -> list[Workload]:
    """The workloads named by id or category, in manifest order; all of them for none."""
    if not names:
        return list(manifest)
    chosen: list[Workload] = []
    for name in names:
        members = [w for w in manifest if name in (w.category, w.id)]
        if not members:
            raise UsageError(
                f"unknown workload or category {name!r}; valid ids: {', '.join(manifest.ids)}"
            )
        chosen += [member for member in members if member not in chosen]
    return chosen


def entry(workload: Workload) -> dict[str, Any]:
    """A manifest entry as ``list --format json`` and ``describe --format json`` print it."""
    return workload.model_dump() | {"launcher": workload.launcher}
