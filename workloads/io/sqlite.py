"""io-2: database-like operations with random access (SQLite).

One database per run, a file in the run's scratch folder (so a second run into the same folder
starts afresh, and the file goes with the scratch folder), on one long-lived connection. The
iterations therefore run inline (``processes=False``): the table lives across iterations, so
queries reach rows written long before, as in an application's database; SQLite admits one
writer at a time anyway.

Each iteration:

1. inserts a batch of rows (customer, category, status, amount, a payload and its CRC-32) in
   transactions of growing size; the journal is a WAL with ``synchronous=FULL``, so every commit
   is fsync'ed before it returns;
2. runs random point queries by id, range queries over ids (count and sum) and aggregate queries
   (per category, over a customer range, through an index), timing each;
3. runs small update transactions (amounts of random rows, each commit fsync'ed);
4. deletes the oldest rows when the live data outgrows its share of the disk budget (SQLite
   reuses their pages), so the file stays within the budget however long the run;
5. verifies ``PRAGMA integrity_check``, the row count and the per-category counts and sums
   against a model held in memory (every live row's category, customer and amount), and every
   point query against the model and its payload's CRC-32.

SQLite's page cache (``cache_size``) and the batches grow and shrink with the iterations, so
memory varies within the budget. The database file (``workloads/io/database.py``) writes nothing
outside the scratch folder, aborts a statement as soon as the run must stop, and raises a full
disk (``SQLITE_FULL``) as ENOSPC: the run ends as disk-full.
"""

from __future__ import annotations

import sqlite3
import zlib

import numpy as np

from workloads.io import storage
from workloads.io.database import DatabaseFile, live_bytes, transaction
from workloads.io.storage import MIB
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, timed

_CATEGORIES = ("books", "games", "garden", "grocery", "health", "music", "sports", "tools")
_STATUSES = ("new", "paid", "shipped", "returned")
_CUSTOMERS = 100_000
_PAYLOAD = (16, 400)  # bytes
_INSERTS = (5_000, 50_000)  # rows per iteration at scale 1
_INSERT_BATCH = (100, 5_000)  # rows per insert transaction
_POINT_QUERIES = (2_000, 20_000)
_RANGE_QUERIES = (100, 1_000)
_AGGREGATE_QUERIES = (10, 100)
_UPDATE_TRANSACTIONS = (50, 500)
_UPDATES_PER_TRANSACTION = (1, 20)
_DATABASE_BYTES = 256 * MIB  # the live data's ceiling at scale 1
# Shares of the disk budget: live rows (deletes keep them below), rows inserted by one
# iteration (the file grows by them before the oldest go), and the WAL between checkpoints.
_LIVE_SHARE, _INSERT_SHARE, _WAL_SHARE = 0.35, 0.15, 0.15
_ROW_BYTES = 300  # on disk, about: fields, payload and index entry
_CACHE = (2 * MIB, 64 * MIB)  # SQLite page cache
_MEMORY_SHARE = 0.25  # of the memory budget for SQLite's page cache
_SCHEMA = """
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer INTEGER NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL,
    amount INTEGER NOT NULL,
    payload BLOB NOT NULL,
    crc INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX orders_by_customer ON orders (customer);
"""
_TRANSACTION_LATENCY = "transaction"
_POINT_LATENCY = "point_query"


class Model:
    """Every live row's category, customer and amount, ids ``low`` to ``high - 1``."""

    def __init__(self) -> None:
        self.low = self.high = 1
        self.category = np.zeros(0, dtype=np.int8)
        self.customer = np.zeros(0, dtype=np.int32)
        self.amount = np.zeros(0, dtype=np.int64)

    @property
    def rows(self) -> int:
        return self.high - self.low

    def append(self, category: np.ndarray, customer: np.ndarray, amount: np.ndarray) -> None:
        self.category = np.concatenate([self.category, category.astype(np.int8)])
        self.customer = np.concatenate([self.customer, customer.astype(np.int32)])
        self.amount = np.concatenate([self.amount, amount.astype(np.int64)])
        self.high += len(category)

    def drop_oldest(self, count: int) -> None:
        self.category, self.customer = self.category[count:], self.customer[count:]
        self.amount = self.amount[count:]
        self.low += count

    def per_category(self, mask: np.ndarray | None = None) -> dict[str, tuple[int, int]]:
        """{category: (rows, sum of amounts)} over all rows, or those ``mask`` selects."""
        category = self.category if mask is None else self.category[mask]
        amount = self.amount if mask is None else self.amount[mask]
        counts = np.bincount(category, minlength=len(_CATEGORIES))
        # float64 sums of integers are exact below 2**53 (here at most ~1e12)
        sums = np.bincount(category, weights=amount, minlength=len(_CATEGORIES))
        return {
            name: (int(counts[code]), int(sums[code]))
            for code, name in enumerate(_CATEGORIES)
            if counts[code]
        }


class Database:
    """The run's database and the model of its rows; called once per iteration."""

    def __init__(self) -> None:
        self.file = DatabaseFile("orders.sqlite", _SCHEMA, wal_share=_WAL_SHARE)
        self.model = Model()
        self.peak_bytes = 0  # of the database and its WAL, after an iteration

    def __call__(self, iteration: Iteration) -> IterationResult:
        with self.file.serving(iteration) as connection:
            result = _iteration(iteration, connection, self.model)
        self.peak_bytes = max(self.peak_bytes, self.file.size())
        return result


# -- one iteration ----------------------------------------------------------------------------
def _scaled(iteration: Iteration, bounds: tuple[int, int]) -> int:
    return max(1, int(iteration.grow(bounds[0] * iteration.scale, bounds[1] * iteration.scale)))


def _insert(
    iteration: Iteration, connection: sqlite3.Connection, model: Model, result: IterationResult
) -> None:
    rng, count = iteration.rng, _scaled(iteration, _INSERTS)
    if iteration.disk_budget:
        count = max(1, min(count, int(iteration.disk_budget * _INSERT_SHARE / _ROW_BYTES)))
    category = rng.integers(0, len(_CATEGORIES), count)
    customer = rng.integers(0, _CUSTOMERS, count)
    status = rng.integers(0, len(_STATUSES), count)
    amount = rng.integers(100, 100_000, count)  # cents
    sizes = rng.integers(_PAYLOAD[0], _PAYLOAD[1] + 1, count)
    noise = rng.bytes(int(sizes.max()) + count)
    starts = rng.integers(0, count, count)
    rows = []
    for number in range(count):
        start = int(starts[number])
        payload = noise[start : start + int(sizes[number])]
        rows.append(
            (
                model.high + number,
                int(customer[number]),
                _CATEGORIES[category[number]],
                _STATUSES[status[number]],
                int(amount[number]),
                payload,
                zlib.crc32(payload),
            )
        )
    batch = _scaled(iteration, _INSERT_BATCH)
    statement = "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, 0)"
    for first in range(0, count, batch):
        iteration.checkpoint()
        chunk = rows[first : first + batch]
        with timed(result, "transaction", latency=_TRANSACTION_LATENCY):
            transaction(connection, statement, chunk)
        result.add("transactions", 1)
        result.add("rows_inserted", len(chunk))
    model.append(category, customer, amount)


def _point_queries(
    iteration: Iteration, connection: sqlite3.Connection, model: Model, result: IterationResult
) -> int:
    """Random rows by id; returns how many differ from the model or their CRC-32."""
    ids = iteration.rng.integers(model.low, model.high, _scaled(iteration, _POINT_QUERIES))
    statement = "SELECT category, customer, amount, payload, crc FROM orders WHERE id = ?"
    wrong = 0
    for number, row_id in enumerate(ids.tolist()):
        if number % 1000 == 0:
            iteration.checkpoint()
        with timed(result, "query", latency=_POINT_LATENCY):
            row = connection.execute(statement, (row_id,)).fetchone()
        at = row_id - model.low
        wrong += row is None or (
            row[0] != _CATEGORIES[model.category[at]]
            or row[1] != model.customer[at]
            or row[2] != model.amount[at]
            or zlib.crc32(row[3]) != row[4]
        )
    result.add("queries", len(ids))
    result.fingerprint_with(ids.tobytes())
    return wrong


def _range_queries(
    iteration: Iteration, connection: sqlite3.Connection, model: Model, result: IterationResult
) -> int:
    rng, wrong = iteration.rng, 0
    statement = "SELECT count(*), coalesce(sum(amount), 0) FROM orders WHERE id BETWEEN ? AND ?"
    count = _scaled(iteration, _RANGE_QUERIES)
    for _ in range(count):
        iteration.checkpoint()
        first = int(rng.integers(model.low, model.high))
        last = first + int(rng.integers(10, 1000))
        with timed(result, "query"):
            found = connection.execute(statement, (first, last)).fetchone()
        window = model.amount[first - model.low : last - model.low + 1]
        wrong += tuple(found) != (len(window), int(window.sum()))
    result.add("queries", count)
    return wrong


def _aggregate_queries(
    iteration: Iteration, connection: sqlite3.Connection, model: Model, result: IterationResult
) -> int:
    rng, wrong = iteration.rng, 0
    statement = (
        "SELECT category, count(*), sum(amount) FROM orders "
        "WHERE customer BETWEEN ? AND ? GROUP BY category"
    )
    count = _scaled(iteration, _AGGREGATE_QUERIES)
    for _ in range(count):
        iteration.checkpoint()
        low = int(rng.integers(0, _CUSTOMERS))
        high = low + int(rng.integers(100, 2000))
        with timed(result, "query"):
            rows = connection.execute(statement, (low, high)).fetchall()
        mask = (model.customer >= low) & (model.customer <= high)
        wrong += {name: (n, total) for name, n, total in rows} != model.per_category(mask)
    result.add("queries", count)
    return wrong


def _updates(
    iteration: Iteration, connection: sqlite3.Connection, model: Model, result: IterationResult
) -> None:
    rng = iteration.rng
    statement = "UPDATE orders SET amount = amount + ?, version = version + 1 WHERE id = ?"
    for _ in range(_scaled(iteration, _UPDATE_TRANSACTIONS)):
        iteration.checkpoint()
        size = int(rng.integers(_UPDATES_PER_TRANSACTION[0], _UPDATES_PER_TRANSACTION[1] + 1))
        ids = rng.integers(model.low, model.high, size)
        deltas = rng.integers(-500, 501, size)
        rows = list(zip(deltas.tolist(), ids.tolist(), strict=True))
        with timed(result, "transaction", latency=_TRANSACTION_LATENCY):
            transaction(connection, statement, rows)
        np.add.at(model.amount, ids - model.low, deltas)
        result.add("transactions", 1)
        result.add("rows_updated", size)


def _retain(
    iteration: Iteration, connection: sqlite3.Connection, model: Model, result: IterationResult
) -> None:
    """Delete the oldest rows when the live data exceeds its share of the disk."""
    target = _DATABASE_BYTES * iteration.scale
    if iteration.disk_budget:
        target = min(target, iteration.disk_budget * _LIVE_SHARE)
    live = live_bytes(connection)
    if live <= target or model.rows < 2:
        return
    drop = min(model.rows - 1, int(model.rows * (1 - 0.8 * target / live)) + 1)
    cutoff = model.low + drop
    with timed(result, "transaction", latency=_TRANSACTION_LATENCY):
        transaction(connection, "DELETE FROM orders WHERE id < ?", [(cutoff,)])
    result.add("transactions", 1)
    result.add("rows_deleted", drop)
    model.drop_oldest(drop)


def _verify(
    connection: sqlite3.Connection, model: Model, result: IterationResult, wrong: dict[str, int]
) -> None:
    integrity = [row[0] for row in connection.execute("PRAGMA integrity_check").fetchall()]
    result.check("PRAGMA integrity_check is ok", integrity == ["ok"], "; ".join(integrity)[:200])
    count, low, high = connection.execute(
        "SELECT count(*), min(id), max(id) FROM orders"
    ).fetchone()
    expected = (model.rows, model.low, model.high - 1)
    result.check(
        "row count and id range equal the model",
        (count, low, high) == expected,
        f"{count} rows, ids {low}-{high}; expected {expected[0]}, ids {expected[1]}-{expected[2]}",
    )
    rows = connection.execute(
        "SELECT category, count(*), sum(amount) FROM orders GROUP BY category"
    ).fetchall()
    per_category = {name: (n, total) for name, n, total in rows}
    result.check(
        "per-category counts and sums equal the model",
        per_category == model.per_category(),
        f"{len(per_category)} categories, {model.rows} rows",
    )
    for name, label in (
        ("point", "point queries return the rows as written"),
        ("range", "range counts and sums equal the model"),
        ("aggregate", "aggregates over customer ranges equal the model"),
    ):
        result.check(label, wrong[name] == 0, f"{wrong[name]} differ")
    result.fingerprint_with(count, low, high, sorted(per_category.items()))


def _iteration(
    iteration: Iteration, connection: sqlite3.Connection, model: Model
) -> IterationResult:
    cache = min(iteration.grow(*_CACHE), iteration.memory_budget * _MEMORY_SHARE)
    connection.execute(f"PRAGMA cache_size = -{max(1024, int(cache) // 1024)}")
    result = IterationResult()
    _insert(iteration, connection, model, result)
    wrong = {
        "point": _point_queries(iteration, connection, model, result),
        "range": _range_queries(iteration, connection, model, result),
        "aggregate": _aggregate_queries(iteration, connection, model, result),
    }
    _updates(iteration, connection, model, result)
    _retain(iteration, connection, model, result)
    iteration.checkpoint()
    _verify(connection, model, result, wrong)
    result.size = model.rows
    return result


def run(ctx: Context) -> None:
    # SQLite does its own buffered IO; durability comes from fsync at every commit.
    database = Database()
    storage_run = storage.run_on_storage(
        ctx,
        database,
        buffered="buffered (SQLite), WAL, fsync",
        processes=False,  # one database, kept open between iterations
        finish=database.file.close,
        rates={
            "transactions_per_s": Rate("transactions", ["transaction"], "tx/s"),
            "queries_per_s": Rate("queries", ["query"], "queries/s"),
            "rows_inserted_per_s": Rate("rows_inserted", ["transaction"], "rows/s"),
        },
    )
    totals, kernel = storage_run.totals, storage_run.kernel
    ctx.report_latencies(totals, _TRANSACTION_LATENCY)
    ctx.report_latencies(totals, _POINT_LATENCY)
    # SQLite's own reads and writes are the bytes passed to the system calls of this process.
    storage.report_bytes(ctx, kernel.read_calls, kernel.write_calls, kernel)
    if totals.iterations:
        ctx.note(
            "database",
            {
                "rows_at_end": database.model.rows,
                "peak_file_bytes": database.peak_bytes,
                "sqlite_version": sqlite3.sqlite_version,
            },
        )
