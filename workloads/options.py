"""The run controls: each is a flag and a CLOUDAI_ variable; a flag beats its variable.

These names are an interface other tools script against: keep them.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workloads.runtime.choices import DEVICES, PROFILES, PROGRESS_MODES
from workloads.runtime.params import Given
from workloads.sizes import parse_size

ENV_PREFIX = "CLOUDAI_"


class UsageError(Exception):
    """Bad input from the user (flag, variable, workload id); exit status 2."""


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be greater than 0")
    return value


def positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise ValueError(f"{text!r} must be at least 1")
    return value


def count(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise ValueError(f"{text!r} must be 0 or more")
    return value


def seed(text: str) -> int:
    value = _whole_number(text)
    if not 0 <= value < 2**63:
        raise ValueError(f"{text!r} must be between 0 and 2**63-1")
    return value


def percent(text: str) -> float:
    value = _number(text.rstrip("%"))
    if not 0 < value <= 100:
        raise ValueError(f"{text!r} must be in (0, 100]")
    return value


def size(text: str) -> int:
    value = parse_size(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be greater than 0")
    return value


def interval(text: str) -> float:
    value = positive_float(text)
    if value < 0.05:
        raise ValueError(f"{text!r} must be at least 0.05 seconds")
    return value


def port(text: str) -> int:
    value = _whole_number(text)
    if not 1 <= value <= 65535:
        raise ValueError(f"{text!r} is not a TCP port (1 to 65535)")
    return value


def choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def path(text: str) -> Path:
    if not text:
        raise ValueError("the path is empty")
    return Path(text)


@dataclass(frozen=True)
class Option:
    name: str  # the params key: results_dir
    metavar: str
    parse: Callable[[str], Any]
    help: str  # what it does, in Markdown (README's table); --help shows it as plain text
    default: str  # what applies without it, in Markdown

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def cli_help(self) -> str:
        """``help`` and ``default`` as --help shows them: plain text, then the variable."""
        text = _plain(f"{self.help} (default: {self.default}) [{self.variable}]")
        return text.replace("%", "%%")  # argparse formats help with %


def _plain(markdown: str) -> str:
    """Markdown of a table cell as plain text: no backticks, links as their text."""
    return re.sub(r"\[([^]]+)\]\([^)]+\)", r"\1", markdown).replace("`", "")


OPTIONS: tuple[Option, ...] = (
    Option(
        "duration",
        "SECONDS",
        positive_float,
        "run exactly this long, counted from the process start",
        "drawn from the manifest range with the seed",
    ),
    Option(
        "iterations",
        "N",
        count,
        "stop after N iterations; with a duration, the first limit reached wins and "
        "`stop_reason` says which; 0 sets up, runs nothing and writes the document",
        "none",
    ),
    Option(
        "scale",
        "FACTOR",
        positive_float,
        "problem-size factor (0.01 for smoke tests)",
        "1",
    ),
    Option(
        "seed",
        "N",
        seed,
        "same seed → same problem sizes, same verification digest",
        "random, recorded",
    ),
    Option(
        "workers",
        "N",
        positive_int,
        "parallel workers (processes for CPU work)",
        "usable CPUs, capped by the envelope",
    ),
    Option(
        "memory",
        "SIZE",
        size,
        "memory budget for the workload's data (`512m`, `2g`)",
        "envelope, with headroom under the limit",
    ),
    Option(
        "profile",
        "SHAPE",
        choice(PROFILES),
        "load shape: `steady`, `ramp`, `wave`, `bursty` (seeded)",
        "steady",
    ),
    Option(
        "intensity",
        "PERCENT",
        percent,
        "peak busy fraction of each worker",
        "100",
    ),
    Option(
        "device",
        "DEVICE",
        choice(DEVICES),
        "`auto`, `cpu` or `cuda` (GPU workloads)",
        "auto",
    ),
    Option(
        "results_dir",
        "PATH",
        path,
        "folder for the results document (more below)",
        "`/results` or `/output` if mounted, else `./results`",
    ),
    Option(
        "work_dir",
        "PATH",
        path,
        "where the run's hidden scratch folder goes (IO workloads)",
        "the results folder",
    ),
    Option(
        "disk",
        "SIZE",
        size,
        "disk budget for scratch data (`1g`); at most 90 % of the free space",
        "envelope, at most half the free space",
    ),
    Option(
        "sample_interval",
        "SECONDS",
        interval,
        "seconds between resource samples",
        "1",
    ),
    Option(
        "progress",
        "MODE",
        choice(PROGRESS_MODES),
        "`auto`: a bar on a terminal, else lines; `bar`; `lines`: a plain line every 10 s; "
        "`off`: no progress, only the start line, the outcome and the results path",
        "auto (`lines` in the images)",
    ),
    Option(
        "metrics_port",
        "PORT",
        port,
        "serve the run's metrics as OpenMetrics on this port while it runs "
        "([live metrics](docs/running.md#live-metrics-ground-truth-for-monitoring))",
        "none",
    ),
    Option(
        "metrics_textfile",
        "PATH",
        path,
        "write the same metrics to this file at every sample (node_exporter's textfile collector)",
        "none",
    ),
)


def gather(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Given]:
    """Merge parsed flags with CLOUDAI_ variables; raise UsageError naming a bad variable."""
    environ = os.environ if environ is None else environ
    given: dict[str, Given] = {}
    for option in OPTIONS:
        if flags.get(option.name) is not None:
            given[option.name] = Given(flags[option.name], "flag")
        elif environ.get(option.variable, "").strip():
            text = environ[option.variable].strip()
            try:
                given[option.name] = Given(option.parse(text), "env")
            except ValueError as err:
                raise UsageError(f"{option.variable}: {err}") from None
    return given
