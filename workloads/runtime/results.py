"""Where run documents go, and how they are written: atomically, never over another run's."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from workloads.jsonio import new_id, write_json
from workloads.runtime.environment import in_container
from workloads.runtime.filesystems import is_mount, mount_of

PACKAGE = Path(__file__).resolve().parent.parent
SCHEMA_PATH = PACKAGE / "schema" / "result.schema.json"
# The docs say /results; the real worker bind-mounts its output folder at /output.
MOUNT_CANDIDATES = (Path("/results"), Path("/output"))
# The filesystems of a container's own writable layer: what is written there goes with it.
CONTAINER_LAYERS = ("overlay", "fuse.fuse-overlayfs", "aufs")


class ResultsDirError(Exception):
    """The results folder cannot be created or written."""


def choose_results_dir(
    explicit: Path | None,
    candidates: Sequence[Path] = MOUNT_CANDIDATES,
    is_mounted: Callable[[Path], bool] = is_mount,
    cwd: Path | None = None,
) -> Path:
    """The flag or variable; else the first mounted candidate; else /results if writable; else
    ./results. An unmounted /results inside a container would lose results with the container.
    A working folder inside the package (the launchers' folder) gives the results folder beside
    the package (a checkout's results/), so that no run's document is ever inside the package."""
    if explicit is not None:
        return explicit
    for candidate in candidates:
        if is_mounted(candidate):
            return candidate
    first = candidates[0]
    if first.is_dir() and os.access(first, os.W_OK | os.X_OK):
        return first
    here = (cwd or Path.cwd()).resolve()
    if here.is_relative_to(PACKAGE):
        here = PACKAGE.parent
    return here / "results"


def leaves_with_the_container(
    folder: Path, container: Callable[[], bool] = in_container, mountinfo: Path | None = None
) -> bool:
    """Whether ``folder`` lies in a container's own writable layer (no volume, no bind mount):
    a document written there is lost when the container is removed."""
    if not container():
        return False
    mount = mount_of(folder) if mountinfo is None else mount_of(folder, mountinfo)
    return mount is not None and mount.point == Path("/") and mount.fstype in CONTAINER_LAYERS


def prepare_results_dir(path: Path, warn_if_lost: bool = True) -> Path:
    """Create the folder and prove it writable before any work is done. Inside a container, a
    folder in the container's own layer gets one warning line on stderr: the document will go
    with the container."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".cloudai-probe-"):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        raise ResultsDirError(f"results folder {path} is not writable: {reason}") from None
    if warn_if_lost and leaves_with_the_container(path):
        print(lost_with_the_container(path), file=sys.stderr, flush=True)
    return path


def lost_with_the_container(path: Path) -> str:
    """The warning of a results folder in a container's own layer: what happens, what to do."""
    return (
        f"warning: {path} is not a mounted folder: the results document will stay in this "
        f'container and go with it (mount one there, e.g. docker run -v "$PWD/results:{path}")'
    )


def new_run_id(started: datetime) -> str:
    """Sortable and unique: UTC start time plus 48 random bits (jsonio's one id format)."""
    return new_id(started)


def document_name(workload_id: str, run_id: str) -> str:
    return f"{workload_id}_{run_id}.json"


def write_document(directory: Path, name: str, document: dict[str, Any]) -> Path:
    """Write atomically and never replace an existing file (jsonio's one writer)."""
    return write_json(directory / name, document)
