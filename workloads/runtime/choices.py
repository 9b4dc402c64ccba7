"""The fixed choices of the controls, one definition each: the options parse them, the runtime
uses them, the results document's schema lists them. Light on purpose (no numpy)."""

from __future__ import annotations

import textwrap
from typing import Literal, get_args

Profile = Literal["steady", "ramp", "wave", "bursty"]
Device = Literal["auto", "cpu", "cuda"]
ProgressMode = Literal["auto", "bar", "lines", "off"]

PROFILES: tuple[str, ...] = get_args(Profile)
DEVICES: tuple[str, ...] = get_args(Device)
PROGRESS_MODES: tuple[str, ...] = get_args(ProgressMode)

# Live metrics: where a run serves them (the images document the port: EXPOSE, a label).
DEFAULT_METRICS_PORT, METRICS_PATH = 9464, "/metrics"

# Exit statuses of a run (and of every command): 128 + N when stopped by signal N.
EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Their meanings, the one definition: --help prints them, generate.py renders README's table.
EXIT_STATUSES: tuple[tuple[str, str], ...] = (
    (
        "0",
        "completed: the duration or iteration limit was reached and every check that could "
        "judge passed (replay: every task ended; analyze: every --check bound was met)",
    ),
    (
        "1",
        "failed: an error, a failed check, too little memory, or a document that could not be "
        "written (it is then printed as the last line of stdout); replay: the engine failed "
        "mid-run (the records are still written); analyze: a --check bound was missed",
    ),
    (
        "2",
        "usage error: unknown workload or engine, bad flag or variable, malformed manifest or "
        "trace, unwritable results folder, a metrics port in use, a missing optional extra, "
        "input an engine can never run, an image given only options as its command; one line "
        "on stderr, nothing run",
    ),
    (
        "127",
        "an image's command could not be started (not found); the supervisor says which",
    ),
    (
        "128+N",
        "stopped by signal N (143 for SIGTERM, 130 for SIGINT), with a partial document "
        "(replay: the running tasks stopped with the grace, the records written)",
    ),
)


def exit_statuses_text() -> str:
    """The exit statuses as plain text, for --help."""
    lines = ["exit status:"]
    for status, meaning in EXIT_STATUSES:
        lines += textwrap.wrap(
            meaning, 92, initial_indent=f"  {status:<7}", subsequent_indent=" " * 9
        )
    return "\n".join(lines) + "\n"
