"""Pictures of a replay, in the style of ``report``: the wait-time CDF per category, a Gantt
chart of tasks per node, queued and running tasks over time, the cluster's CPU requested
against what the tasks used, and (for a trace from a log) each task's replayed wait against its
original one; one PNG each and an index.html with the summary."""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.collections import PolyCollection

from workloads.analysis.jobs import FIDELITY_WAIT_FLOOR_S, Job
from workloads.analysis.summary import Summary, figures
from workloads.plots import html_page, legend_outside, plt

CATEGORY_COLOURS = {"io": "#1f77b4", "cpu": "#ff7f0e", "gpu": "#2ca02c"}
OTHER_COLOUR = "#7f7f7f"
PICTURES = ("wait_cdf.png", "gantt.png", "queue.png", "cpu.png")
FIDELITY_PICTURE = "fidelity.png"


def _colour(category: str) -> str:
    return CATEGORY_COLOURS.get(category, OTHER_COLOUR)


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def wait_cdf(jobs: list[Job], path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(9, 4))
    by_category: dict[str, list[float]] = defaultdict(list)
    for job in jobs:
        if job.wait is not None:
            by_category[job.category].append(job.wait)
    for category, waits in sorted(by_category.items()):
        values = np.sort(np.array(waits))
        shares = np.arange(1, values.size + 1) / values.size
        # The empirical CDF rises from 0 at the shortest wait.
        values, shares = np.concatenate([values[:1], values]), np.concatenate([[0.0], shares])
        axes.step(values, shares, where="post", color=_colour(category), label=category)
    axes.set_xlabel("wait: start - submit (s)")
    axes.set_ylabel("share of tasks")
    axes.set_ylim(0, 1.02)
    axes.set_title("Wait time, per category")
    legend_outside(axes)
    return _save(figure, path)


def _lanes(jobs: list[Job]) -> list[int]:
    """The lowest free lane for each job (by start), so that overlapping tasks stack."""
    ends: list[float] = []
    lanes = []
    for job in jobs:
        lane = next((i for i, end in enumerate(ends) if end <= job.start), len(ends))
        if lane == len(ends):
            ends.append(0.0)
        ends[lane] = job.end
        lanes.append(lane)
    return lanes


def gantt(jobs: list[Job], path: Path) -> Path:
    ran = sorted(
        (job for job in jobs if job.start is not None and job.end is not None),
        key=lambda job: job.start,
    )
    nodes = sorted({job.node or "?" for job in ran})
    rows: dict[str, list[tuple[float, float, int]]] = defaultdict(list)  # category: bars
    ticks, separators = [], []
    base = 0
    for node in nodes:
        on_node = [job for job in ran if (job.node or "?") == node]
        lanes = _lanes(on_node)
        for job, lane in zip(on_node, lanes, strict=True):
            rows[job.category].append((job.start, job.end, base + lane))
        height = max(lanes, default=0) + 1
        ticks.append((base + (height - 1) / 2, node[:12]))
        base += height
        separators.append(base)
    figure, axes = plt.subplots(figsize=(10, 1.2 + 0.25 * max(base, 4)))
    for category, bars in sorted(rows.items()):
        # One collection of rectangles per category: 10 000 bars draw in a blink.
        start, end, lane = (np.array(column, dtype=float) for column in zip(*bars, strict=True))
        low, high = lane - 0.4, lane + 0.4
        outline = ((start, low), (end, low), (end, high), (start, high))
        corners = np.stack([np.column_stack(pair) for pair in outline], axis=1)
        colour = _colour(category)
        axes.add_collection(
            PolyCollection(corners, facecolors=colour, edgecolors="white", linewidths=0.3)
        )
        axes.plot([], [], color=_colour(category), linewidth=6, label=category)
    for separator in separators[:-1]:
        axes.axhline(separator - 0.5, color="#cccccc", linewidth=0.8)
    axes.autoscale_view()
    axes.set_ylim(-0.6, max(base, 1) - 0.4)
    axes.set_yticks([y for y, _ in ticks], [label for _, label in ticks])
    axes.set_xlabel("seconds since the replay started")
    axes.set_title("Tasks per node (start to end)")
    legend_outside(axes)
    return _save(figure, path)


def _counts(times: np.ndarray, starts: list[float], ends: list[float]) -> np.ndarray:
    """How many intervals [start, end) hold each time, by sorted searches (10 000 tasks in ms)."""
    return np.searchsorted(np.sort(starts), times, side="right") - np.searchsorted(
        np.sort(ends), times, side="right"
    )


def _grid(jobs: list[Job], points: int = 2000) -> np.ndarray:
    ends = [job.end for job in jobs if job.end is not None]
    return np.linspace(0.0, max(ends, default=1.0), points)


def queue(jobs: list[Job], path: Path) -> Path:
    times = _grid(jobs)
    horizon = float(times[-1])
    submitted = [job for job in jobs if job.submit is not None]
    queued = _counts(
        times,
        [job.submit for job in submitted],
        [job.start if job.start is not None else (job.end or horizon) for job in submitted],
    )
    started = [job for job in jobs if job.start is not None]
    running = _counts(
        times, [job.start for job in started], [job.end or horizon for job in started]
    )
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.step(times, queued, where="post", color="#d62728", label="queued")
    axes.step(times, running, where="post", color="#1f77b4", label="running")
    axes.set_xlabel("seconds since the replay started")
    axes.set_ylabel("tasks")
    axes.set_ylim(bottom=0)
    axes.set_title("Queued and running tasks")
    legend_outside(axes)
    return _save(figure, path)


def _used_cores(jobs: list[Job], times: np.ndarray) -> np.ndarray:
    """The cores the tasks' own samples measured, summed on the grid; a sample stands for the
    interval that ends at it."""
    used = np.zeros_like(times)
    for job in jobs:
        if len(job.cpu_samples) < 2:
            continue
        at, cores = np.array(job.cpu_samples, dtype=float).T
        index = np.searchsorted(at, times, side="left")
        inside = (times >= at[0]) & (index < at.size)
        used[inside] += cores[index[inside]]
    return used


def cpu(jobs: list[Job], path: Path, capacity: float) -> Path:
    times = _grid(jobs)
    horizon = float(times[-1])
    requested = np.zeros_like(times)
    for job in jobs:
        if job.start is not None:
            end = job.end if job.end is not None else horizon
            requested[(times >= job.start) & (times < end)] += job.cpu_request
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.step(times, requested, where="post", color="#ff7f0e", label="CPU requested (running)")
    axes.plot(times, _used_cores(jobs, times), color="#1f77b4", label="CPU used")
    axes.axhline(capacity, color="#d62728", linestyle="--", linewidth=1.2, label="capacity")
    axes.set_xlabel("seconds since the replay started")
    axes.set_ylabel("cores")
    axes.set_ylim(bottom=0)
    axes.set_title("Cluster CPU: requested by running tasks, used as the tasks measured")
    legend_outside(axes)
    return _save(figure, path)


def fidelity(jobs: list[Job], summary: Summary, path: Path) -> Path:
    """Replayed against original waits (log-log, both at least the floor): on the diagonal,
    the replay waited as the log did."""
    floor = FIDELITY_WAIT_FLOOR_S
    figure, axes = plt.subplots(figsize=(6.5, 6))
    by_category: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for job in jobs:
        if job.wait_ratio is not None and job.wait is not None and job.original_wait is not None:
            point = (max(job.original_wait, floor), max(job.wait, floor))
            by_category[job.category].append(point)
    everything = [value for points in by_category.values() for point in points for value in point]
    top = max(everything, default=floor) * 1.5
    for category, points in sorted(by_category.items()):
        original, replayed = zip(*points, strict=True)
        axes.scatter(original, replayed, s=14, color=_colour(category), label=category)
    axes.plot([floor, top], [floor, top], color="#999999", linestyle="--", label="as in the log")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(floor * 0.8, top)
    axes.set_ylim(floor * 0.8, top)
    axes.set_xlabel(f"original wait / time scale (s, at least {floor:g})")
    axes.set_ylabel(f"replayed wait (s, at least {floor:g})")
    shown = summary.fidelity
    ratio = (
        "-"
        if shown is None or shown.median_wait_ratio is None
        else f"{shown.median_wait_ratio:.3g}"
    )
    rho = (
        "-" if shown is None or shown.rank_correlation is None else f"{shown.rank_correlation:.2f}"
    )
    axes.set_title(f"Replay fidelity: median wait ratio {ratio}, rank correlation {rho}")
    legend_outside(axes)
    return _save(figure, path)


def draw(jobs: list[Job], summary: Summary, run: Path) -> list[Path]:
    written = [
        wait_cdf(jobs, run / "wait_cdf.png"),
        gantt(jobs, run / "gantt.png"),
        queue(jobs, run / "queue.png"),
        cpu(jobs, run / "cpu.png", summary.utilisation.capacity_cpus),
    ]
    if summary.fidelity is not None:
        written.append(fidelity(jobs, summary, run / FIDELITY_PICTURE))
    rows = "\n".join(
        f"<tr><td>{html.escape(name)}</td><td>{'-' if value is None else f'{value:.6g}'}</td></tr>"
        for name, value in figures(summary).items()
    )
    pictures = "\n".join(f'<p><img src="{path.name}" alt="{path.name}"></p>' for path in written)
    body = (
        f"<h1>Replay: {summary.tasks} tasks</h1>\n{pictures}\n"
        f"<table><tr><th>figure</th><th>value</th></tr>\n{rows}\n</table>\n"
        '<p><a href="jobs.csv">jobs.csv</a> · <a href="summary.json">summary.json</a></p>'
    )
    written.append(html_page(run / "index.html", "cloudai-workloads replay", body))
    return written
