"""Progress on stdout: a bar on a terminal, a line every few seconds otherwise."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any, TextIO

from workloads.runtime.sizes import format_size

# Without a terminal (logs, CI, schedulers), one line per this many seconds at most.
LINE_EVERY = 10.0


def silence_stdout() -> None:
    """The reader of stdout went away (``| head``): send what follows to /dev/null, so neither
    later lines nor the interpreter's final flush raise BrokenPipeError."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class ProgressReporter:
    def __init__(self, label: str, duration: float, stream: TextIO | None = None) -> None:
        self._label, self._duration = label, duration
        self._stream = stream or sys.stdout
        self._last_line = time.monotonic()
        self._bar: Any = None
        if self._stream.isatty():
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.console import Console  # imported only for terminals
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(file=self._stream),
            transient=True,
        )
        self._task = self._bar.add_task(self._label, total=self._duration, status="starting")
        self._bar.start()

    def update(self, sample: dict[str, Any], iterations: int) -> None:
        status = (
            f"it {iterations}  cores {sample['cpu_cores']:.2f}  "
            f"rss {format_size(sample['rss_bytes'])}"
        )
        if sample.get("gpu_util_pct") is not None:
            status += f"  gpu {sample['gpu_util_pct']:.0f}%"
        if self._bar is not None:
            self._bar.update(self._task, completed=min(sample["t"], self._duration), status=status)
        elif time.monotonic() - self._last_line >= LINE_EVERY:
            self._last_line = time.monotonic()
            self.line(f"{sample['t']:.0f}/{self._duration:.0f} s  {status}")

    def line(self, message: str) -> None:
        try:
            if self._bar is not None:
                self._bar.console.print(f"[{self._label}] {message}", markup=False, highlight=False)
            else:
                print(f"[{self._label}] {message}", file=self._stream, flush=True)
        except BrokenPipeError:
            silence_stdout()  # progress is a courtesy: the run and its document go on

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
