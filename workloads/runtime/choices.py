"""The fixed choices of the controls, one definition each: the options parse them, the runtime
uses them, the results document's schema lists them. Light on purpose (no numpy)."""

from __future__ import annotations

from typing import Literal, get_args

Profile = Literal["steady", "ramp", "wave", "bursty"]
Device = Literal["auto", "cpu", "cuda"]
ProgressMode = Literal["auto", "bar", "lines", "off"]

PROFILES: tuple[str, ...] = get_args(Profile)
DEVICES: tuple[str, ...] = get_args(Device)
PROGRESS_MODES: tuple[str, ...] = get_args(ProgressMode)

# Exit statuses of a run (and of every command): 128 + N when stopped by signal N.
EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
