"""The images' entrypoint: run the command as an unprivileged user, relay stop signals to all of
it, and exit only when all of it has.

    ENTRYPOINT ["python", "-m", "workloads.supervisor"]   CMD ["python", "cpu_process_3.py"]

Why not tini or dumb-init: the real worker runs ``/bin/sh -c "python cpu_process_3.py"``, and
Debian's sh neither execs its command nor survives SIGTERM. An init that signals the child's
process group (``tini -g``, dumb-init) sees sh die at once and exits with it, and the container's
teardown then kills Python while it writes its results document. This supervisor relays SIGTERM,
SIGINT and SIGHUP to the whole process group, reaps every descendant (it is PID 1, or a child
subreaper), exits when the last one has, and sends SIGKILL if they outlive the grace period.

Started as root (the image's default), it runs the command as the ``cloudai`` user when that user
can write the results folder, else as the folder's owner (files then belong to whoever owns the
mount, as the host expects). Started as any other user (``docker run --user``), it runs the
command as that user.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import stat
import subprocess
import sys
from pathlib import Path
from types import FrameType

from workloads.runtime.results import choose_results_dir

USER = "cloudai"
# Seconds the command gets after a stop signal before SIGKILL (the real worker waits 5 s).
GRACE = 4.5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_CHILD_SUBREAPER = 36


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


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    if os.geteuid() != 0:
        return subprocess.Popen(command, start_new_session=True)
    uid, gid, home = choose_user(_results_folder())
    environment = {**os.environ, "HOME": home}
    if uid == 0:
        return subprocess.Popen(command, start_new_session=True, env=environment)
    return subprocess.Popen(
        command, start_new_session=True, env=environment, user=uid, group=gid, extra_groups=[]
    )


class Supervisor:
    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.stopping = False

    def run(self) -> int:
        if os.getpid() != 1:  # orphaned descendants must come back to us to be reaped
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)
        for number in STOP_SIGNALS:
            signal.signal(number, self._relay)
        signal.signal(signal.SIGALRM, self._kill)
        try:
            self.child = _spawn(self.command)
        except OSError as err:
            print(f"supervisor: cannot run {self.command[0]}: {err.strerror}", file=sys.stderr)
            return 127
        return self._wait()

    def _relay(self, number: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.child.pid, number)
        if not self.stopping:
            self.stopping = True
            signal.setitimer(signal.ITIMER_REAL, GRACE)

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


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print("usage: python -m workloads.supervisor COMMAND [ARG...]", file=sys.stderr)
        return 2
    return Supervisor(command).run()


if __name__ == "__main__":
    sys.exit(main())
