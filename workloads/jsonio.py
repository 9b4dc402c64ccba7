"""What every record the tool writes shares: one timestamp format, one id format, one atomic
writer. A leaf module (the standard library only), so that the runtime, replay and analysis
use the same three without importing one another.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# UTC with milliseconds and a Z: 2026-12-01T22:16:25.123Z (results documents, replay.json).
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"


def timestamp(moment: datetime | float) -> str:
    """A moment (aware datetime, or Unix seconds) in the one format records use."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(text: str) -> float:
    """Unix seconds of a timestamp written by ``timestamp`` (or with a +00:00 offset, as
    replay.json was written before)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def new_id(started: datetime | None = None) -> str:
    """Sortable and unique, for runs and replays alike: the UTC start time to the second, then
    48 random bits (20261202T111521Z-21dca4e0b7f3)."""
    moment = (started or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}"


def dumps(data: Any) -> str:
    """The one JSON text of a record: indented, no NaN (not JSON), a final newline."""
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def write_json(path: Path, data: Any, *, replace: bool = False) -> Path:
    """Write ``data`` atomically (a temporary file in the same folder, fsync'ed, then linked
    into place): a reader sees the whole record or none. Without ``replace`` an existing file
    is never overwritten (FileExistsError); with it, the file is swapped for the new one."""
    folder, text = path.parent, dumps(data).encode()
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        if replace:
            os.replace(temporary, path)
        else:
            _link_new(Path(temporary), path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    _fsync_folder(folder)
    return path


def _link_new(temporary: Path, path: Path) -> None:
    try:
        os.link(temporary, path)  # fails if the name exists: nothing is ever overwritten
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(temporary, path)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
