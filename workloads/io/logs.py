"""io-3: log processing and text analysis.

Each iteration generates a few log files of realistic lines (ISO timestamp, level, service,
a message from one of a few dozen templates with variable parts, a request duration on request
lines, and multi-line stack traces after some errors), writes each in one go and makes it
durable (fsync), then drops it from the page cache. It then streams the files back line by line
and analyses them with regular expressions: counts per level, per service and per level and
service, stack-trace lines, the most frequent messages (numbers and ids normalised away),
request durations per service and timestamps in order. Finally it writes the analysis as a JSON
report (fsync) and reads it back.

The generator keeps its own tallies, computed from the random choices rather than the text: the
analysis must equal them exactly, and the report must read back equal to the analysis. Files
grow and shrink with the iterations (the text of a file is built in memory, so memory follows).
Iterations run in worker processes (the default): they share nothing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workloads.io import storage
from workloads.io.storage import MIB
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, timed

_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_LEVEL_WEIGHTS = (0.25, 0.6, 0.1, 0.045, 0.005)
_SERVICES = (
    "api-gateway", "auth", "billing", "cart", "catalog", "checkout",
    "inventory", "notifications", "orders", "payments", "search", "shipping",
)  # fmt: skip
# Literal text holds no digits, so the analysis's normalisation maps each message back to its
# template; "took" templates are requests, with a duration in ms.
_TEMPLATES = (
    "user {} logged in from {}",
    "user {} logged out",
    "session {} expired",
    "cache miss for key {}",
    "cache hit for key {}",
    "GET /api/orders/{} returned status {} took={}ms",
    "POST /api/cart/{} returned status {} took={}ms",
    "GET /api/catalog/items/{} returned status {} took={}ms",
    "PUT /api/users/{}/address returned status {} took={}ms",
    "payment {} authorised for amount {}",
    "payment {} declined: insufficient funds",
    "order {} created with {} items",
    "order {} shipped via carrier {}",
    "inventory for sku {} below threshold: {} left",
    "retrying call to upstream after {} ms (attempt {})",
    "timeout after {} ms waiting for lock {}",
    "connection pool exhausted: {} active, {} idle",
    "disk usage at {} percent on volume {}",
    "garbage collection paused {} ms",
    "failed to parse message {}: unexpected token",
    "null reference in handler {}",
    "rate limit exceeded for client {}",
    "feature flag {} evaluated to {}",
    "scheduled job {} finished in {} ms",
)
_TEMPLATE_WEIGHTS = np.array([8 if "took=" in t else 3 for t in _TEMPLATES], dtype=float)
_PLACEHOLDERS = tuple(template.count("{}") for template in _TEMPLATES)
_TRACE_FRAMES = (
    "    at com.example.{package}.Handler.handle(Handler.java:{line})\n",
    "    at com.example.{package}.Service.process(Service.java:{line})\n",
    "    at com.example.common.Retry.call(Retry.java:{line})\n",
    "Caused by: java.io.IOException: broken pipe\n",
)
_TRACE_CHANCE = 0.3  # of ERROR and FATAL lines being followed by a stack trace
_LINES = (40_000, 400_000)  # per iteration, at scale 1
_FILES = (2, 5)
_LINE_BYTES = 130  # at most, about: to size files against the budgets
_MEMORY_SHARE = 0.15  # of the memory budget for one file's text (held twice while joined)
_DISK_SHARE = 0.8
_TOP = 10

_LINE = re.compile(rb"^(\S+) (DEBUG|INFO|WARN|ERROR|FATAL) +\[([a-z-]+)\] (.*)$")
_TOOK = re.compile(rb" took=(\d+)ms$")
_VARIABLE = re.compile(rb"\d+")  # the variable parts of messages are numbers


# -- generation -------------------------------------------------------------------------------
@dataclass
class Tallies:
    """What a set of log lines holds, counted by the generator or by the analysis."""

    lines: int = 0
    trace_lines: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    services: Counter[str] = field(default_factory=Counter)
    level_service: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    took_ms: Counter[str] = field(default_factory=Counter)  # summed per service
    requests: Counter[str] = field(default_factory=Counter)  # per service
    out_of_order: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "trace_lines": self.trace_lines,
            "levels": dict(sorted(self.levels.items())),
            "services": dict(sorted(self.services.items())),
            "level_service": dict(sorted(self.level_service.items())),
            "messages": dict(sorted(self.messages.items())),
            "took_ms": dict(sorted(self.took_ms.items())),
            "requests": dict(sorted(self.requests.items())),
            "out_of_order": self.out_of_order,
        }


def _normalised(template: str) -> str:
    return template.replace("{}", "<*>")


def _timestamp(milliseconds: int) -> str:
    seconds, millis = divmod(milliseconds, 1000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    return f"2026-11-{1 + days % 28:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def generate(rng: np.random.Generator, count: int, start_ms: int, tallies: Tallies) -> str:
    """``count`` log entries (plus stack-trace lines) as text; adds what it wrote to
    ``tallies`` from the random choices themselves."""
    levels = rng.choice(len(_LEVELS), count, p=_LEVEL_WEIGHTS)
    services = rng.integers(0, len(_SERVICES), count)
    templates = rng.choice(len(_TEMPLATES), count, p=_TEMPLATE_WEIGHTS / _TEMPLATE_WEIGHTS.sum())
    times = start_ms + np.cumsum(rng.integers(0, 40, count))
    values = rng.integers(1, 1_000_000, (count, 3))
    traces = (levels >= 3) & (rng.random(count) < _TRACE_CHANCE)
    trace_depth = rng.integers(2, 6, count)
    out = []
    for number in range(count):
        level, service = _LEVELS[levels[number]], _SERVICES[services[number]]
        template = int(templates[number])
        parts = values[number, : _PLACEHOLDERS[template]].tolist()
        if "took=" in _TEMPLATES[template]:
            parts[-1] %= 5000  # a request's duration in ms
        message = _TEMPLATES[template].format(*parts)
        out.append(f"{_timestamp(int(times[number]))} {level:<5} [{service}] {message}\n")
        if traces[number]:
            package = service.replace("-", "")
            for depth in range(int(trace_depth[number])):
                frame = _TRACE_FRAMES[depth % len(_TRACE_FRAMES)]
                out.append(frame.format(package=package, line=17 + 31 * depth))
    _tally(tallies, levels, services, templates, values, traces, trace_depth)
    return "".join(out)


def _tally(
    tallies: Tallies,
    levels: np.ndarray,
    services: np.ndarray,
    templates: np.ndarray,
    values: np.ndarray,
    traces: np.ndarray,
    trace_depth: np.ndarray,
) -> None:
    trace_lines = int(trace_depth[traces].sum())
    tallies.lines += len(levels) + trace_lines
    tallies.trace_lines += trace_lines
    for code, count in zip(*np.unique(levels, return_counts=True), strict=True):
        tallies.levels[_LEVELS[code]] += int(count)
    for code, count in zip(*np.unique(services, return_counts=True), strict=True):
        tallies.services[_SERVICES[code]] += int(count)
    pairs = levels * len(_SERVICES) + services
    for code, count in zip(*np.unique(pairs, return_counts=True), strict=True):
        level, service = divmod(int(code), len(_SERVICES))
        tallies.level_service[f"{_LEVELS[level]} {_SERVICES[service]}"] += int(count)
    for code, count in zip(*np.unique(templates, return_counts=True), strict=True):
        tallies.messages[_normalised(_TEMPLATES[code])] += int(count)
    for code, template in enumerate(_TEMPLATES):
        if "took=" not in template:
            continue
        chosen = templates == code
        took = values[chosen, _PLACEHOLDERS[code] - 1] % 5000
        for service_code, ms in zip(services[chosen].tolist(), took.tolist(), strict=True):
            tallies.took_ms[_SERVICES[service_code]] += ms
            tallies.requests[_SERVICES[service_code]] += 1


# -- analysis ---------------------------------------------------------------------------------
def analyse(path: Path, tallies: Tallies) -> int:
    """Stream a log file line by line and add what it holds to ``tallies``; returns bytes read."""
    size, previous = 0, b""
    with path.open("rb", buffering=MIB) as handle:
        for line in handle:
            size += len(line)
            tallies.lines += 1
            match = _LINE.match(line.rstrip(b"\n"))
            if match is None:
                tallies.trace_lines += 1
                continue
            stamp, level, service, message = match.groups()
            level_name, service_name = level.decode(), service.decode()
            tallies.levels[level_name] += 1
            tallies.services[service_name] += 1
            tallies.level_service[f"{level_name} {service_name}"] += 1
            tallies.messages[_VARIABLE.sub(b"<*>", message).decode()] += 1
            took = _TOOK.search(message)
            if took is not None:
                tallies.took_ms[service_name] += int(took.group(1))
                tallies.requests[service_name] += 1
            tallies.out_of_order += stamp < previous
            previous = stamp
        storage.drop_cache(handle.fileno())
    return size


def report(tallies: Tallies) -> dict[str, Any]:
    """The analysis as a report: totals, the top messages, durations and error rates."""
    summary = tallies.summary()
    errors = Counter()
    for key, count in tallies.level_service.items():
        level, service = key.split(" ")
        if level in ("ERROR", "FATAL"):
            errors[service] += count
    summary["top_messages"] = [
        [message, count]
        for message, count in sorted(tallies.messages.items(), key=lambda item: (-item[1], item[0]))
    ][:_TOP]
    summary["mean_took_ms"] = {
        service: round(total / tallies.requests[service], 3)
        for service, total in sorted(tallies.took_ms.items())
    }
    summary["error_rate"] = {
        service: round(errors[service] / count, 6)
        for service, count in sorted(tallies.services.items())
    }
    return summary


# -- one iteration ----------------------------------------------------------------------------
def _plan(iteration: Iteration) -> tuple[int, int]:
    """(files, entries per file): both vary, within the memory and disk budgets."""
    files = int(iteration.rng.integers(_FILES[0], _FILES[1] + 1))
    lines = iteration.grow(_LINES[0] * iteration.scale, _LINES[1] * iteration.scale)
    room = iteration.memory_budget * _MEMORY_SHARE * files
    if iteration.disk_budget:
        room = min(room, iteration.disk_budget * _DISK_SHARE)
    lines = min(lines, room / _LINE_BYTES / 1.3)  # stack traces add about a quarter
    return files, max(10, int(lines / files))


def one_iteration(iteration: Iteration) -> IterationResult:
    files, per_file = _plan(iteration)
    result = IterationResult(size=files * per_file)
    expected, found = Tallies(), Tallies()
    with iteration.folder() as folder:
        paths = [folder / f"app-{number}.log" for number in range(files)]
        for number, path in enumerate(paths):
            iteration.checkpoint()
            start_ms = int(iteration.rng.integers(0, 10**9)) + number
            text = generate(iteration.rng, per_file, start_ms, expected)
            storage.write_durably(path, text.encode(), result)
            del text
        with timed(result, "analysis"):
            for path in paths:
                iteration.checkpoint()
                result.add("analysis_bytes", analyse(path, found))
        result.add("lines", found.lines)
        result.add("bytes_read", result.work["analysis_bytes"])
        _check_tallies(result, expected, found)
        _report_round_trip(folder / "report.json", report(found), result)
        result.fingerprint_with(json.dumps(expected.summary(), sort_keys=True))
    return result


def _check_tallies(result: IterationResult, expected: Tallies, found: Tallies) -> None:
    want, got = expected.summary(), found.summary()
    for key, label in (
        ("lines", "line count equals the generator's"),
        ("levels", "counts per level equal the generator's"),
        ("services", "counts per service equal the generator's"),
        ("level_service", "counts per level and service equal the generator's"),
        ("messages", "counts per normalised message equal the generator's"),
        ("took_ms", "request durations per service sum to the generator's"),
        ("trace_lines", "stack-trace lines equal the generator's"),
    ):
        result.check(label, got[key] == want[key], f"{key}: {_differences(want[key], got[key])}")
    result.check("timestamps are in order", found.out_of_order == 0, f"{found.out_of_order}")


def _differences(want: Any, got: Any) -> str:
    if not isinstance(want, dict):
        return f"expected {want}, found {got}"
    wrong = sorted(key for key in set(want) | set(got) if want.get(key) != got.get(key))
    return f"{len(wrong)} differ" + (f", e.g. {wrong[0]!r}" if wrong else "")


def _report_round_trip(path: Path, content: dict[str, Any], result: IterationResult) -> None:
    storage.write_durably(path, json.dumps(content, indent=1).encode(), result)
    data = path.read_bytes()
    result.add("bytes_read", len(data))
    result.check("the report reads back equal to the analysis", json.loads(data) == content)


def run(ctx: Context) -> None:
    rates = {
        "lines_per_s": Rate("lines", ["analysis"], "lines/s"),
        "analysis_read_mb_s": Rate("analysis_bytes", ["analysis"], "MB/s", 1e6),
        "write_mb_s": Rate("bytes_written", ["write"], "MB/s", 1e6),
    }
    storage.run_on_storage(ctx, one_iteration, rates=rates).report_bytes(ctx)
