"""SIGTERM, SIGINT and SIGHUP become a stop request; the run then ends within 2 s.

Entry points call ``capture_early()`` first thing, so a signal that arrives while the program is
still importing is kept, and the run that follows ends at once with its document rather than the
process dying silently (schedulers do cancel tasks right after starting them).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_pending: list[int] = []


def _remember(number: int, frame: FrameType | None) -> None:
    _pending.append(number)


# The supervisor's pipe: written once the stop signals are ours, so that it relays a stop only
# when this process can keep it (a stop that reached the interpreter earlier would kill it).
READY_FD = "CLOUDAI_READY_FD"
# The seconds a stop gives the command before SIGKILL, where whoever stops it says (``replay``
# passes its --grace): the supervisor's own bound must not cut a longer grace short.
STOP_GRACE = "CLOUDAI_STOP_GRACE"


def capture_early() -> None:
    """Keep stop signals until a run takes them over (or ``release_early`` replays them), and
    tell the supervisor, if there is one, that a stop may now come."""
    for number in STOP_SIGNALS:
        signal.signal(number, _remember)
    descriptor = os.environ.pop(READY_FD, "")
    if descriptor.isdigit():
        with contextlib.suppress(OSError):
            os.write(int(descriptor), b"ready")
            os.close(int(descriptor))


def release_early() -> None:
    """For commands that start no run: default handling again, and a kept signal delivered."""
    for number in STOP_SIGNALS:
        if signal.getsignal(number) is _remember:
            signal.signal(
                number, signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
            )
    if _pending:
        os.kill(os.getpid(), _pending[0])


class StopOnSignal:
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
            if _pending:  # a stop that came while the program was starting
                self._handle(_pending[0], None)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]

    def _handle(self, number: int, frame: FrameType | None) -> None:
        # Only flags here: printing from a handler can re-enter a half-written stream.
        if self.received is None:
            self.received = number
        self.stop.set()

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received else None
