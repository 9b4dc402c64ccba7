"""io-2's database file: one SQLite database in the run's scratch folder, on one long-lived
connection, tuned for durable transactions.

The journal is a WAL with ``synchronous=FULL``, so every commit is fsync'ed before it returns;
the WAL index lives on the heap (exclusive locking) and temporary data in memory, so nothing is
written outside the scratch folder. While an iteration is served, a progress handler aborts a
statement as soon as the run must stop, and SQLite's errors become what the run understands: a
stop, a full disk (``SQLITE_FULL`` as ENOSPC: the run ends as disk-full), or a failure.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from workloads.runtime.iterations import Interrupted, Iteration

PAGE_BYTES = 4096
_WAL_PAGES = 1000  # the WAL's bound without a disk budget
_PROGRESS_STEPS = 20_000  # SQLite VM steps between stop checks
_SQLITE_FULL = 13  # SQLite's result code for a full disk (sqlite3.SQLITE_FULL from Python 3.11)
_SUFFIXES = ("", "-wal", "-journal", "-shm")  # the database's files


def full_disk(error: sqlite3.Error, path: Path) -> OSError | None:
    """SQLITE_FULL as the ENOSPC it is, so the run ends as disk-full."""
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+; the message before
    # (extended result codes keep the primary one in their low byte)
    if (code & 0xFF == _SQLITE_FULL) if code is not None else "disk is full" in str(error):
        return OSError(errno.ENOSPC, f"database or disk is full ({error})", str(path))
    return None


class DatabaseFile:
    """The database ``name`` with ``schema``, made in the scratch folder of the first iteration
    it serves; its WAL takes at most ``wal_share`` of that iteration's disk budget."""

    def __init__(self, name: str, schema: str, *, wal_share: float) -> None:
        self.name, self.schema, self.wal_share = name, schema, wal_share
        self.path: Path | None = None
        self.connection: sqlite3.Connection | None = None
        self._task: Iteration | None = None

    @contextmanager
    def serving(self, iteration: Iteration) -> Iterator[sqlite3.Connection]:
        """The connection, for ``iteration``'s statements (opened on first use)."""
        if iteration.scratch is None:
            raise RuntimeError("the database needs scratch: run_iterations(fn, scratch=True)")
        self._task = iteration
        with self._errors():
            if self.connection is None:
                self.connection = self._open(iteration.scratch, iteration.disk_budget)
            yield self.connection

    def size(self) -> int:
        """Bytes of the database and its WAL."""
        files = [Path(f"{self.path}{suffix}") for suffix in _SUFFIXES[:2]] if self.path else []
        return sum(file.stat().st_size for file in files if file.exists())

    def close(self) -> None:
        """Close the connection and remove the database's files."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.path is not None:
            for suffix in _SUFFIXES:
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _open(self, folder: Path, disk_budget: int) -> sqlite3.Connection:
        self.path = folder / self.name
        connection = sqlite3.connect(self.path, isolation_level=None)
        wal = int(disk_budget * self.wal_share) if disk_budget else _WAL_PAGES * PAGE_BYTES
        for pragma in (
            f"page_size = {PAGE_BYTES}",
            "locking_mode = EXCLUSIVE",  # one connection: the WAL index lives on the heap
            "journal_mode = WAL",
            "synchronous = FULL",  # every commit is fsync'ed
            "temp_store = MEMORY",
            "auto_vacuum = NONE",
            f"wal_autocheckpoint = {max(16, min(_WAL_PAGES, wal // PAGE_BYTES))}",
            f"journal_size_limit = {wal}",
        ):
            connection.execute(f"PRAGMA {pragma}")
        connection.executescript(self.schema)
        connection.set_progress_handler(self._should_abort, _PROGRESS_STEPS)
        return connection

    def _should_abort(self) -> int:
        return int(self._task is not None and self._task.stopping())

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors as the run understands them: a stop, a full disk, or a failure."""
        try:
            yield
        except sqlite3.Error as error:
            if self._task is not None and self._task.stopping():
                raise Interrupted from error
            full = full_disk(error, self.path or Path())
            if full is not None:
                raise full from error
            raise


def transaction(connection: sqlite3.Connection, statement: str, rows: list[tuple]) -> None:
    """``statement`` over ``rows`` in one transaction (its commit fsync'ed)."""
    connection.execute("BEGIN")
    try:
        connection.executemany(statement, rows)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:  # SQLite may have rolled back already (a full disk)
            with suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise


def live_bytes(connection: sqlite3.Connection) -> int:
    """Bytes of the pages that hold data (the free list left out)."""
    pages = _pragma(connection, "page_count") - _pragma(connection, "freelist_count")
    return pages * _pragma(connection, "page_size")


def _pragma(connection: sqlite3.Connection, name: str) -> int:
    return int(connection.execute(f"PRAGMA {name}").fetchone()[0])
