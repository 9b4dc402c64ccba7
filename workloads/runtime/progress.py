"""Progress on stdout: a bar for a person at a terminal, plain lines for logs.

``--progress`` picks the mode: ``bar`` redraws one line in place (carriage returns and an ANSI
erase), ``lines`` prints a line every ``LINE_EVERY`` seconds, ``off`` prints no progress (the
start line, the outcome and the results path still go out), and ``auto`` (the default) draws the
bar only when stdout is a terminal. The images set ``CLOUDAI_PROGRESS=lines``: a scheduler
that gives a container a TTY reads its log with a line scanner, and a bar redrawn for the
whole run is one endless line full of escapes to it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from typing import Any, TextIO

from workloads.sizes import format_size

# In lines mode, one line per this many seconds at most.
LINE_EVERY = 10.0
_ERASE_LINE = "\r\x1b[K"


def silence_stdout() -> None:
    """The reader of stdout went away (``| head``): send what follows to /dev/null, so neither
    later lines nor the interpreter's final flush raise BrokenPipeError."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def resolve_mode(mode: str, stream: TextIO) -> str:
    """``auto`` is a bar on a terminal and lines anywhere else."""
    if mode != "auto":
        return mode
    return "bar" if stream.isatty() else "lines"


class ProgressReporter:
    def __init__(
        self, label: str, duration: float, mode: str = "auto", stream: TextIO | None = None
    ) -> None:
        self._label, self._duration = label, duration
        self._stream = stream or sys.stdout
        self.mode = resolve_mode(mode, self._stream)
        self._last_line = time.monotonic()
        self._bar_text = ""  # the bar as last drawn; empty when none is on screen

    def update(self, sample: dict[str, Any], iterations: int) -> None:
        status = (
            f"it {iterations}  cores {sample['cpu_cores']:.2f}  "
            f"rss {format_size(sample['rss_bytes'])}"
        )
        if sample.get("gpu_util_pct") is not None:
            status += f"  gpu {sample['gpu_util_pct']:.0f}%"
        if self.mode == "bar":
            self._draw_bar(sample["t"], status)
        elif self.mode == "lines" and time.monotonic() - self._last_line >= LINE_EVERY:
            self._last_line = time.monotonic()
            self.line(f"{sample['t']:.0f}/{self._duration:.0f} s  {status}")

    def line(self, message: str) -> None:
        """A line that stays (above the bar, when one is drawn)."""
        text = f"[{self._label}] {message}\n"
        if self._bar_text:
            text = _ERASE_LINE + text + self._bar_text
        self._write(text)

    def close(self) -> None:
        if self._bar_text:
            self._bar_text = ""
            self._write(_ERASE_LINE)

    def _draw_bar(self, elapsed: float, status: str) -> None:
        done = min(max(elapsed / max(self._duration, 1e-9), 0.0), 1.0)
        columns = shutil.get_terminal_size(fallback=(80, 24)).columns
        seconds = f"{min(elapsed, self._duration):.0f}/{self._duration:.0f} s"
        width = max(10, min(40, columns - len(self._label) - len(seconds) - len(status) - 10))
        filled = round(done * width)
        bar = "=" * filled + (">" if filled < width else "") + " " * (width - filled - 1)
        self._bar_text = f"[{self._label}] [{bar[:width]}] {seconds}  {status}"[: columns - 1]
        self._write(_ERASE_LINE + self._bar_text)

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except BrokenPipeError:
            silence_stdout()  # progress is a courtesy: the run and its document go on
