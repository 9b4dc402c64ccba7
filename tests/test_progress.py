"""Progress on stdout: a bar only for a person at a terminal, plain short lines for logs; a
scheduler that gives the run a TTY and reads its log line by line gets lines when asked."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, uncontrolled_environment
from workloads.runtime import progress as progress_module
from workloads.runtime.progress import ProgressReporter

pytestmark = pytest.mark.contract

ANSI = re.compile(r"\x1b\[")
SAMPLE = {"t": 3.0, "cpu_cores": 1.5, "rss_bytes": 64 << 20}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "mode", "expected"),
    [
        (Terminal(), "auto", "bar"),
        (io.StringIO(), "auto", "lines"),
        (io.StringIO(), "bar", "bar"),
        (Terminal(), "lines", "lines"),
        (Terminal(), "off", "off"),
    ],
)
def test_auto_draws_a_bar_only_on_a_terminal(stream: io.StringIO, mode: str, expected: str) -> None:
    assert ProgressReporter("cpu-3", 60, mode, stream).mode == expected


def test_lines_are_plain_and_spaced(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Terminal()
    reporter = ProgressReporter("cpu-3", 60, "lines", stream)
    reporter.update(SAMPLE, 4)  # less than LINE_EVERY after the start: nothing yet
    monkeypatch.setattr(progress_module, "LINE_EVERY", 0.0)
    reporter.update(SAMPLE, 5)
    reporter.line("done")
    reporter.close()
    assert stream.getvalue() == ("[cpu-3] 3/60 s  it 5  cores 1.50  rss 64.0 MiB\n[cpu-3] done\n")


def test_the_bar_redraws_in_place_and_keeps_lines_above_it() -> None:
    stream = Terminal()
    reporter = ProgressReporter("cpu-3", 60, "bar", stream)
    reporter.update(SAMPLE, 4)
    reporter.line("a warning-free line")
    reporter.close()
    text = stream.getvalue()
    assert text.startswith("\r\x1b[K[cpu-3] [=>   ")
    assert "\r\x1b[K[cpu-3] a warning-free line\n[cpu-3] [=>   " in text
    assert text.endswith("\r\x1b[K")  # the bar is erased at the end


def test_off_prints_only_what_is_said() -> None:
    stream = io.StringIO()
    reporter = ProgressReporter("cpu-3", 60, "off", stream)
    reporter.update(SAMPLE, 4)
    reporter.line("results: x.json")
    assert stream.getvalue() == "[cpu-3] results: x.json\n"


def _run_under_a_tty(*args: str, env: dict[str, str]) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal, as `docker run -t` does."""
    controller, terminal = pty.openpty()
    environment = uncontrolled_environment()
    process = subprocess.Popen(
        [sys.executable, "-m", "workloads", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env=environment | env,
    )
    os.close(terminal)
    output = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0, output.decode(errors="replace")
    return output.decode()


@pytest.mark.parametrize(("variable", "bar"), [("lines", False), ("", True)])
def test_under_a_tty_lines_mode_writes_no_escapes(tmp_path: Path, variable: str, bar: bool) -> None:
    log = _run_under_a_tty(
        "run", "cpu-3", "--duration", "2", "--scale", "0.02", "--results-dir", str(tmp_path),
        env={"CLOUDAI_PROGRESS": variable},
    )  # fmt: skip
    assert bool(ANSI.search(log)) == bar
    if not bar:
        assert "\r" not in log.replace("\r\n", "\n")
        assert max(len(line) for line in log.splitlines()) < 1024
        assert "results: " in log
