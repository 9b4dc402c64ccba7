"""Mount points and filesystem types of this process, from /proc/self/mountinfo."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Mount:
    point: Path
    fstype: str
    source: str


def _unescape(field: str) -> str:
    # Spaces, tabs, newlines and backslashes are octal-escaped in mountinfo.
    return field.encode().decode("unicode_escape")


def mounts(mountinfo: Path = MOUNTINFO) -> list[Mount]:
    found = []
    with contextlib.suppress(OSError):
        for line in mountinfo.read_text().splitlines():
            fields = line.split()
            if len(fields) < 5:
                continue
            after = fields[fields.index("-") + 1 :] if "-" in fields else []
            fstype = after[0] if after else "unknown"
            source = after[1] if len(after) > 1 else ""
            found.append(Mount(Path(_unescape(fields[4])), fstype, source))
    return found


def is_mount(path: Path, mountinfo: Path = MOUNTINFO) -> bool:
    """True for mount points, bind mounts included (os.path.ismount misses same-device binds)."""
    if not path.is_dir():
        return False
    return os.path.ismount(path) or path in {mount.point for mount in mounts(mountinfo)}


def mount_of(path: Path, mountinfo: Path = MOUNTINFO) -> Mount | None:
    """The mount that holds ``path`` (the longest mount point above it)."""
    resolved = path.resolve()
    candidates = [m for m in mounts(mountinfo) if resolved.is_relative_to(m.point)]
    return max(candidates, key=lambda mount: len(mount.point.parts), default=None)
