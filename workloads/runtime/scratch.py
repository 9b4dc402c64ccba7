"""Scratch folders: private to a run, on the filesystem being tested, removed at the end.

A run's scratch folder is ``.cloudai-work-<run id>`` inside the work folder (by default the
results folder, so IO lands on the storage the results go to). An owner file lets a later run
remove what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

import psutil

PREFIX = ".cloudai-work-"
OWNER = "owner.json"
# A folder left by another host (a shared volume) is removed once it is this old.
FOREIGN_AGE = 24 * 3600.0


def create(base: Path, run_id: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    remove_stale(base)
    folder = base / f"{PREFIX}{run_id}"
    folder.mkdir(mode=0o700)
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": _started(os.getpid())}
    (folder / OWNER).write_text(json.dumps(owner))
    return folder


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def remove_stale(base: Path) -> list[Path]:
    """Remove scratch folders whose run is gone; return them."""
    removed = []
    for folder in base.glob(f"{PREFIX}*"):
        if folder.is_dir() and _abandoned(folder):
            remove(folder)
            removed.append(folder)
    return removed


def _abandoned(folder: Path) -> bool:
    try:
        owner = json.loads((folder / OWNER).read_text())
        host, pid, started = owner["host"], int(owner["pid"]), owner["started"]
    except (OSError, ValueError, KeyError, TypeError):
        return time.time() - folder.stat().st_mtime > FOREIGN_AGE
    if host != socket.gethostname():
        return time.time() - folder.stat().st_mtime > FOREIGN_AGE
    return _started(pid) != started  # the pid is gone, or now names another process


def _started(pid: int) -> float | None:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).create_time()
    return None
