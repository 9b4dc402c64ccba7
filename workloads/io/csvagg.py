"""io-7: CSV data processing with aggregations.

Each iteration writes a few CSV files of sales-like rows (order id, date, customer, region,
category, product, status, quantity, unit price, discount, total) with the csv module, makes
them durable (fsync) and drops them from the page cache, then streams them back with csv.reader,
checks each row's total against its quantity, price and discount, and aggregates orders,
quantities and revenue (exact, in cents) by category, region, status, customer, and region and
category together. It writes a summary and a top-N of customers as CSV files (fsync) and reads
them back.

The generator computes the same aggregates independently, with numpy, from the columns it drew:
the streamed aggregation must equal them exactly, and the written summary and top-N must read
back equal to what was computed. Files grow and shrink with the iterations, as do the columns
held in memory. Iterations run in worker processes (the default): they share nothing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.io import storage
from workloads.io.storage import MIB
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, timed

_HEADER = (
    "order_id", "date", "customer_id", "region", "category", "product", "status",
    "quantity", "unit_price", "discount_pct", "total",
)  # fmt: skip
_REGIONS = ("north", "south", "east", "west", "central", "overseas")
_CATEGORIES = ("books", "electronics", "garden", "grocery", "home", "sports", "toys", "fashion")
_STATUSES = ("pending", "paid", "shipped", "delivered", "returned", "cancelled")
_PRODUCTS_PER_CATEGORY = 40
_CUSTOMERS = (1_000, 50_000)
_ROWS = (20_000, 300_000)  # per iteration, at scale 1
_FILES = (1, 4)
_ROW_BYTES = 110  # at most, about: to size files against the budgets
_MEMORY_SHARE = 0.1  # of the memory budget for the columns (about 80 bytes a row)
_DISK_SHARE = 0.8
_TOP = 20
_GROUPS = ("category", "region", "status", "customer", "region_category")


@dataclass
class Columns:
    """One file's rows, as drawn (amounts in cents)."""

    customer: np.ndarray
    region: np.ndarray
    category: np.ndarray
    product: np.ndarray
    status: np.ndarray
    quantity: np.ndarray
    price: np.ndarray  # cents
    discount: np.ndarray  # percent
    day: np.ndarray

    @property
    def total(self) -> np.ndarray:
        """Cents: quantity x price, less the discount, rounded down."""
        return self.quantity * self.price * (100 - self.discount) // 100

    @classmethod
    def draw(cls, rng: np.random.Generator, rows: int, customers: int) -> Columns:
        return cls(
            customer=rng.zipf(1.3, rows) % customers,  # a few customers buy a lot
            region=rng.integers(0, len(_REGIONS), rows),
            category=rng.integers(0, len(_CATEGORIES), rows),
            product=rng.integers(0, _PRODUCTS_PER_CATEGORY, rows),
            status=rng.choice(len(_STATUSES), rows, p=(0.1, 0.2, 0.2, 0.4, 0.05, 0.05)),
            quantity=rng.integers(1, 20, rows),
            price=rng.integers(99, 99_999, rows),
            discount=rng.choice((0, 0, 0, 5, 10, 15, 25), rows),
            day=rng.integers(0, 365, rows),
        )


Aggregates = dict[str, dict[str, tuple[int, int, int]]]  # group -> key -> (orders, qty, cents)


def _cents(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


def csv_text(columns: Columns, first_id: int) -> bytes:
    """The rows as CSV text (bytes), the way a spreadsheet export would write them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_HEADER)
    totals = columns.total
    for number in range(len(columns.customer)):
        category = _CATEGORIES[columns.category[number]]
        day = int(columns.day[number])
        writer.writerow(
            (
                first_id + number,
                f"2026-{1 + day // 31 % 12:02d}-{1 + day % 28:02d}",
                f"C{int(columns.customer[number]):06d}",
                _REGIONS[columns.region[number]],
                category,
                f'{category} item {int(columns.product[number])}, "{category[:3]}" line',
                _STATUSES[columns.status[number]],
                int(columns.quantity[number]),
                _cents(int(columns.price[number])),
                int(columns.discount[number]),
                _cents(int(totals[number])),
            )
        )
    return buffer.getvalue().encode()


# -- aggregation ------------------------------------------------------------------------------
def _parse_cents(text: str) -> int:
    units, _, cents = text.partition(".")
    return int(units) * 100 + int(cents)


def aggregate_stream(path: Path, into: Aggregates) -> tuple[int, int, int]:
    """Stream a CSV file and add its rows to ``into``; returns (rows, bytes, wrong totals)."""
    groups = {name: into.setdefault(name, {}) for name in _GROUPS}
    rows = wrong = 0
    with path.open("r", newline="", buffering=MIB) as handle:
        reader = csv.reader(handle)
        if next(reader) != list(_HEADER):
            return 0, 0, 1
        for row in reader:
            customer, region, category, status = row[2], row[3], row[4], row[6]
            quantity, discount = int(row[7]), int(row[9])
            price, total = _parse_cents(row[8]), _parse_cents(row[10])
            wrong += total != quantity * price * (100 - discount) // 100
            for group, key in (
                ("category", category),
                ("region", region),
                ("status", status),
                ("customer", customer),
                ("region_category", f"{region}/{category}"),
            ):
                orders, units, cents = groups[group].get(key, (0, 0, 0))
                groups[group][key] = (orders + 1, units + quantity, cents + total)
            rows += 1
        storage.drop_cache(handle.fileno())
    return rows, path.stat().st_size, wrong


def aggregate_columns(columns: Columns, into: Aggregates) -> None:
    """The same aggregates from the drawn columns, with numpy: an independent recomputation."""
    totals = columns.total
    keys = {
        "category": (columns.category, lambda code: _CATEGORIES[code]),
        "region": (columns.region, lambda code: _REGIONS[code]),
        "status": (columns.status, lambda code: _STATUSES[code]),
        "customer": (columns.customer, lambda code: f"C{code:06d}"),
        "region_category": (
            columns.region * len(_CATEGORIES) + columns.category,
            lambda code: (
                f"{_REGIONS[code // len(_CATEGORIES)]}/{_CATEGORIES[code % len(_CATEGORIES)]}"
            ),
        ),
    }
    for group, (codes, name) in keys.items():
        found, inverse = np.unique(codes, return_inverse=True)
        orders = np.bincount(inverse)
        units = np.bincount(inverse, weights=columns.quantity)
        cents = np.bincount(inverse, weights=totals)  # exact: sums stay far below 2**53
        target = into.setdefault(group, {})
        for index, code in enumerate(found.tolist()):
            previous = target.get(name(code), (0, 0, 0))
            target[name(code)] = (
                previous[0] + int(orders[index]),
                previous[1] + int(units[index]),
                previous[2] + int(cents[index]),
            )


# -- outputs ----------------------------------------------------------------------------------
def summary_rows(aggregates: Aggregates) -> list[list[str]]:
    rows = [["group", "key", "orders", "quantity", "revenue"]]
    for group in _GROUPS:
        if group == "customer":
            continue
        for key, (orders, units, cents) in sorted(aggregates.get(group, {}).items()):
            rows.append([group, key, str(orders), str(units), _cents(cents)])
    return rows


def top_rows(aggregates: Aggregates) -> list[list[str]]:
    customers = aggregates.get("customer", {})
    ranked = sorted(customers.items(), key=lambda item: (-item[1][2], item[0]))[:_TOP]
    header = [["rank", "customer_id", "orders", "revenue"]]
    return header + [
        [str(rank), key, str(orders), _cents(cents)]
        for rank, (key, (orders, _, cents)) in enumerate(ranked, start=1)
    ]


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def _round_trip(path: Path, rows: list[list[str]], result: IterationResult) -> bool:
    storage.write_durably(path, _csv_bytes(rows), result)
    with path.open(newline="") as handle:
        back = list(csv.reader(handle))
    result.add("bytes_read", path.stat().st_size)
    return back == rows


# -- one iteration ----------------------------------------------------------------------------
def _plan(iteration: Iteration) -> tuple[int, int, int]:
    """(files, rows per file, customers)."""
    files = int(iteration.rng.integers(_FILES[0], _FILES[1] + 1))
    rows = iteration.grow(_ROWS[0] * iteration.scale, _ROWS[1] * iteration.scale)
    room = iteration.memory_budget * _MEMORY_SHARE / 80 * files
    if iteration.disk_budget:
        room = min(room, iteration.disk_budget * _DISK_SHARE / _ROW_BYTES)
    customers = int(iteration.rng.integers(*_CUSTOMERS))
    return files, max(10, int(min(rows, room) / files)), customers


def one_iteration(iteration: Iteration) -> IterationResult:
    files, per_file, customers = _plan(iteration)
    result = IterationResult(size=files * per_file)
    expected: Aggregates = {}
    found: Aggregates = {}
    wrong_totals = 0
    with iteration.folder() as folder:
        paths = [folder / f"sales-{number}.csv" for number in range(files)]
        for number, path in enumerate(paths):
            iteration.checkpoint()
            columns = Columns.draw(iteration.rng, per_file, customers)
            aggregate_columns(columns, expected)
            storage.write_durably(path, csv_text(columns, number * per_file), result)
            del columns
        with timed(result, "aggregate"):
            for path in paths:
                iteration.checkpoint()
                rows, size, wrong = aggregate_stream(path, found)
                result.add("rows", rows)
                result.add("csv_bytes", size)
                wrong_totals += wrong
        result.add("bytes_read", result.work.get("csv_bytes", 0))
        _check(result, expected, found, wrong_totals, files * per_file)
        summary_ok = _round_trip(folder / "summary.csv", summary_rows(found), result)
        top_ok = _round_trip(folder / "top-customers.csv", top_rows(found), result)
        result.check("the summary and the top-N read back as written", summary_ok and top_ok)
        result.fingerprint_with(repr(sorted(expected["category"].items())), top_rows(expected))
    return result


def _check(
    result: IterationResult, expected: Aggregates, found: Aggregates, wrong_totals: int, rows: int
) -> None:
    read = result.work.get("rows", 0)
    result.check("every row was read back", read == rows, f"{int(read)} of {rows}")
    result.check("each row's total equals quantity x price less discount", wrong_totals == 0)
    for group in _GROUPS:
        want, got = expected.get(group, {}), found.get(group, {})
        differ = sum(want.get(key) != got.get(key) for key in set(want) | set(got))
        result.check(
            f"aggregates by {group.replace('_', ' and ')} equal an independent recomputation",
            differ == 0,
            f"{differ} of {len(want)} keys differ",
        )


def run(ctx: Context) -> None:
    rates = {
        "rows_per_s": Rate("rows", ["aggregate"], "rows/s"),
        "aggregate_read_mb_s": Rate("csv_bytes", ["aggregate"], "MB/s", 1e6),
        "write_mb_s": Rate("bytes_written", ["write"], "MB/s", 1e6),
    }
    storage.run_on_storage(ctx, one_iteration, rates=rates).report_bytes(ctx)
