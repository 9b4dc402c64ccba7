# ruff: noqa: E402
"""The images' entrypoint: run the command as an unprivileged user, relay stop signals to all of
it, and exit only when all of it has.

    ENTRYPOINT ["python", "-m", "workloads.supervisor"]   CMD ["python", "cpu_process_3.py"]

Why not tini or dumb-init: the real worker runs ``/bin/sh -c "python cpu_process_3.py"``, and
Debian's sh neither execs its command nor survives SIGTERM. An init that signals the child's
process group (``tini -g``, dumb-init) sees sh die at once and exits with it, and the container's
teardown then kills Python while it writes its results document. This supervisor relays SIGTERM,
SIGINT and SIGHUP to the whole process group, reaps every descendant (it is PID 1, or a child
subreaper), exits when the last one has, and sends SIGKILL if they outlive the grace period
(4.5 s, inside the real worker's 5 s; ``CLOUDAI_STOP_GRACE`` seconds where the stopper gives
more, as ``replay --grace`` does).

A stop that reaches Python before it has taken over its signals kills it without a document
(under load, starting the interpreter can take a second). So the workload says when it is ready
(a byte on the pipe named by CLOUDAI_READY_FD, which capture_early writes), and a stop that comes
earlier is held until then, or READY_WAIT at most for a command that never says it.

Started as root (the image's default), it runs the command as the ``cloudai`` user when that user
can write the results folder, else as the folder's owner (files then belong to whoever owns the
mount, as the host expects). Started as any other user (``docker run --user``), it runs the
command as that user.

A command that starts with an option (``docker run IMAGE --duration 5``: the flags replaced the
image's command) is a usage error, exit 2, with the line to type instead; a command that cannot
be started is exit 127, as a shell says of a command not found.
"""

from __future__ import annotations

import signal

# First of all, before the imports below (hence E402 below): a stop that comes while this process
# starts is kept, not fatal (Supervisor.run takes it over). STOP_SIGNALS, spelled out: importing
# it would widen the window.
_EARLY: list[int] = []
for _number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_number, lambda number, _frame: _EARLY.append(number))

import contextlib
import ctypes
import os
import pwd
import select
import stat
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from workloads.runtime.choices import EXIT_USAGE
from workloads.runtime.results import choose_results_dir
from workloads.runtime.signals import READY_FD, STOP_GRACE, STOP_SIGNALS

USER = "cloudai"
# Seconds the command gets after a stop signal before SIGKILL: the real worker waits 5 s; an
# engine that gives more says so in CLOUDAI_STOP_GRACE (stop_grace).
GRACE = 4.5
# A stop is held at most this long for a command that does not say it is ready.
READY_WAIT = 1.5
_PR_SET_CHILD_SUBREAPER = 36
EXIT_CANNOT_RUN = 127  # the command cannot be started (not found, not executable)


def writable_by(folder: Path, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` may create files in ``folder`` (or its nearest existing parent)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    info = folder.stat()
    if uid == 0:
        return True
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IWUSR and info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IWGRP and info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IWOTH and info.st_mode & stat.S_IXOTH)


def choose_user(folder: Path) -> tuple[int, int, str]:
    """(uid, gid, home) to run as: the cloudai user if it can write ``folder``, else its owner."""
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        return 0, 0, "/root"
    if writable_by(folder, user.pw_uid, user.pw_gid):
        return user.pw_uid, user.pw_gid, user.pw_dir
    owner = folder
    while not owner.exists() and owner != owner.parent:
        owner = owner.parent
    info = owner.stat()
    with contextlib.suppress(KeyError):
        return info.st_uid, info.st_gid, pwd.getpwuid(info.st_uid).pw_dir
    return info.st_uid, info.st_gid, "/tmp"


def _results_folder() -> Path:
    explicit = os.environ.get("CLOUDAI_RESULTS_DIR", "").strip()
    return choose_results_dir(Path(explicit) if explicit else None)


def _spawn(command: list[str], ready_fd: int) -> subprocess.Popen[bytes]:
    environment = {**os.environ, READY_FD: str(ready_fd)}
    started = {"start_new_session": True, "pass_fds": (ready_fd,), "env": environment}
    if os.geteuid() != 0:
        return subprocess.Popen(command, **started)  # type: ignore[call-overload]
    uid, gid, home = choose_user(_results_folder())
    environment["HOME"] = home
    if uid == 0:
        return subprocess.Popen(command, **started)  # type: ignore[call-overload]
    return subprocess.Popen(  # type: ignore[call-overload]
        command, user=uid, group=gid, extra_groups=[], **started
    )


def stop_grace(environment: Mapping[str, str]) -> float:
    """The grace the stopper gives (STOP_GRACE, seconds), else GRACE; a value that is not a
    positive number is said in one line and GRACE kept."""
    value = environment.get(STOP_GRACE, "")
    if not value:
        return GRACE
    with contextlib.suppress(ValueError):
        if 0 < (grace := float(value)) < float("inf"):
            return grace
    print(f"supervisor: {STOP_GRACE}={value!r} is not a number of seconds; {GRACE} s kept",
          file=sys.stderr)  # fmt: skip
    return GRACE


class Supervisor:
    def __init__(self, command: list[str], grace: float = GRACE) -> None:
        self.command, self.grace = command, grace
        self.stopping = False
        self.ready = False
        self.held: int | None = None  # a stop signal that came before the command was ready
        self._lock = threading.Lock()  # between the signal handler and the readiness thread

    def run(self) -> int:
        if os.getpid() != 1:  # orphaned descendants must come back to us to be reaped
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)
        for number in STOP_SIGNALS:
            signal.signal(number, self._relay)
        for number in _EARLY[:1]:  # a stop that came while this process started
            self._relay(number, None)
        signal.signal(signal.SIGALRM, self._kill)
        reader, writer = os.pipe()
        try:
            self.child = _spawn(self.command, writer)
        except OSError as err:
            print(f"supervisor: cannot run {self.command[0]}: {err.strerror}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        finally:
            os.close(writer)
        threading.Thread(target=self._await_ready, args=(reader,), daemon=True).start()
        return self._wait()

    def _await_ready(self, reader: int) -> None:
        """Ready when the command says so, when it closes the pipe (it is gone, or it is not
        ours), or after READY_WAIT; then a held stop goes through."""
        with contextlib.suppress(OSError):
            select.select([reader], [], [], READY_WAIT)
        os.close(reader)
        with self._lock:
            self.ready, held = True, self.held
        if held is not None:
            self._send(held)

    def _relay(self, number: int, frame: FrameType | None) -> None:
        if not self.stopping:  # the grace runs from the stop, held or not
            self.stopping = True
            signal.setitimer(signal.ITIMER_REAL, self.grace)
        with self._lock:
            ready = self.ready
            if not ready:
                self.held = self.held or number
        if ready:
            self._send(number)

    def _send(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.child.pid, number)

    def _kill(self, number: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.child.pid, signal.SIGKILL)

    def _wait(self) -> int:
        """Reap until no descendant is left; return the child's exit status (128+N if signal N
        ended it: a relayed SIGTERM gives 143, as the workload itself does)."""
        status = 1
        while True:
            try:
                pid, raw = os.waitpid(-1, 0)
            except ChildProcessError:
                return status
            if pid == self.child.pid:
                code = os.waitstatus_to_exitcode(raw)
                status = 128 - code if code < 0 else code
                self.child.returncode = status  # reaped here: keep Popen from waiting again


def launcher_here(package: Path | None = None) -> str:
    """The launcher of this image's workload: a variant's image holds one workload module, its
    own; elsewhere (a base, a checkout) the generic name."""
    try:
        from workloads.manifest import get_manifest

        package = package or Path(__file__).resolve().parent
        present = [
            workload.launcher
            for workload in get_manifest()
            if (package.parent / (workload.module.replace(".", "/") + ".py")).is_file()
        ]
    except Exception:  # a broken manifest must not hide the usage line
        present = []
    return present[0] if len(present) == 1 else "cpu_process_N.py"


def only_options(command: list[str]) -> str:
    """What to type when the image's command is only options (``docker run IMAGE --duration 5``
    replaced the image's command with them)."""
    flag, _, value = command[0].partition("=")
    if not value and len(command) > 1 and not command[1].startswith("-"):
        value = command[1]
    line = (
        f"supervisor: {command[0]!r} is an option, not a command: the options replaced the "
        f"image's command. Put the launcher first: docker run IMAGE python {launcher_here()} "
        + " ".join(command)
    )
    with contextlib.suppress(Exception):  # the hint of a control's variable, when it is one
        from workloads.options import OPTIONS

        variable = next(option.variable for option in OPTIONS if option.flag == flag)
        line += f" (or set the control: docker run -e {variable}={value or '...'} IMAGE)"
    return line


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print("usage: python -m workloads.supervisor COMMAND [ARG...]", file=sys.stderr)
        return EXIT_USAGE
    if command[0].startswith("-"):
        print(only_options(command), file=sys.stderr)
        return EXIT_USAGE
    return Supervisor(command, stop_grace(os.environ)).run()


if __name__ == "__main__":
    sys.exit(main())
