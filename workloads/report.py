"""``python -m workloads report RESULTS``: what the runs did, to look at rather than read.

For each run document, a PNG timeline of CPU cores, memory, IO throughput and (when a GPU was
used) GPU utilisation and memory, against the declared envelope and the load shape; across the
runs, a summary page (``index.html``, with ``summary.png``) of status, duration, primary metric,
peak resources against the envelope and verification.
"""

from __future__ import annotations

import html
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from workloads.plots import Axes, html_page, legend_outside, plt
from workloads.runtime.document import RunDocument
from workloads.sizes import GIB, MIB

ENVELOPE, LIMIT, TARGET = "#d62728", "#7f7f7f", "#2ca02c"


class ReportError(Exception):
    """Nothing to report on, or the output folder cannot be written."""


@dataclass(frozen=True)
class Run:
    path: Path
    document: RunDocument

    @property
    def stem(self) -> str:
        return self.path.stem

    def series(self, key: str, scale: float = 1.0) -> tuple[list[float], list[float | None]]:
        samples = self.document.timeseries.samples
        values = [getattr(sample, key) for sample in samples]
        return [sample.t for sample in samples], [
            None if value is None else value / scale for value in values
        ]

    @property
    def uses_gpu(self) -> bool:
        return any(sample.gpu_util_pct is not None for sample in self.document.timeseries.samples)


def load_runs(inputs: list[Path]) -> list[Run]:
    """Run documents from files and folders; anything else is skipped with a one-line note."""
    paths: list[Path] = []
    for item in inputs:
        paths += sorted(item.glob("*.json")) if item.is_dir() else [item]
    runs = []
    for path in paths:
        try:
            runs.append(Run(path, RunDocument.model_validate_json(path.read_bytes())))
        except (OSError, ValidationError) as err:
            reason = err.strerror if isinstance(err, OSError) else f"{err.error_count()} error(s)"
            print(f"report: skipped {path}: not a run document ({reason})", file=sys.stderr)
    if not runs:
        raise ReportError(f"no run documents in {', '.join(map(str, inputs))}")
    return sorted(runs, key=lambda run: run.document.started_at)


# -- one run --------------------------------------------------------------------------------
def _line(axes: Axes, y: float | None, color: str, label: str, style: str = "--") -> None:
    if y is not None:
        axes.axhline(y, color=color, linestyle=style, linewidth=1.2, label=label)


def _cpu_panel(axes: Axes, run: Run) -> None:
    document = run.document
    times, cores = run.series("cpu_cores")
    axes.plot(times, cores, color="#1f77b4", linewidth=1.6, label="cores used")
    workers = document.load.workers
    _, target = run.series("target_intensity_pct", 100.0 / workers)
    axes.step(
        times,
        target,
        where="post",
        color=TARGET,
        linewidth=1,
        alpha=0.8,
        label=f"load shape ({document.params.profile}) x {workers} workers",
    )
    _line(axes, document.workload.envelope.cpus, ENVELOPE, "envelope")
    _line(axes, document.limits.cpu_quota, LIMIT, "CPU quota", ":")
    axes.set_ylabel("CPU cores")
    axes.set_ylim(bottom=0)
    legend_outside(axes)


def _memory_panel(axes: Axes, run: Run) -> None:
    document = run.document
    times, rss = run.series("rss_bytes", MIB)
    axes.plot(times, rss, color="#9467bd", linewidth=1.6, label="resident (process tree)")
    _line(axes, document.workload.envelope.memory / MIB, ENVELOPE, "envelope")
    _line(axes, document.params.memory_budget / MIB, TARGET, "data budget", ":")
    limit = document.limits.memory_limit
    _line(axes, limit / MIB if limit else None, LIMIT, "memory limit", ":")
    axes.set_ylabel("memory (MiB)")
    axes.set_ylim(bottom=0)
    legend_outside(axes)


def _io_panel(axes: Axes, run: Run) -> None:
    times, read = run.series("read_bytes_per_s", 1e6)
    _, written = run.series("write_bytes_per_s", 1e6)
    axes.plot(times, read, color="#17becf", linewidth=1.4, label="read")
    axes.plot(times, written, color="#ff7f0e", linewidth=1.4, label="written")
    axes.set_ylabel("storage (MB/s)")
    axes.set_ylim(bottom=0)
    legend_outside(axes)


def _gpu_panel(axes: Axes, run: Run) -> None:
    times, utilisation = run.series("gpu_util_pct")
    axes.plot(times, utilisation, color="#e377c2", linewidth=1.4, label="GPU utilisation")
    axes.set_ylabel("GPU (%)")
    axes.set_ylim(0, 105)
    memory_axes = axes.twinx()
    _, memory = run.series("gpu_memory_bytes", GIB)
    memory_axes.plot(times, memory, color="#8c564b", linewidth=1.2, label="GPU memory")
    gpu_memory = run.document.workload.envelope.gpu_memory
    _line(memory_axes, gpu_memory / GIB if gpu_memory else None, ENVELOPE, "GPU memory envelope")
    memory_axes.set_ylabel("GPU memory (GiB)")
    memory_axes.set_ylim(bottom=0)
    legend_outside(axes, memory_axes)


def _headline(document: RunDocument) -> str:
    return (
        f"{document.status} ({document.stop_reason}) after "
        f"{document.wall_seconds:.1f} s · {document.primary_metric_text()} · "
        f"verification {document.verification_text()} · seed {document.seed}"
    )


def timeline(run: Run, path: Path) -> Path:
    panels = [_cpu_panel, _memory_panel, _io_panel] + ([_gpu_panel] if run.uses_gpu else [])
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(12, 2.3 * len(panels) + 1.2), sharex=True, constrained_layout=True
    )
    for draw, panel in zip(panels, axes, strict=True):
        draw(panel, run)
        panel.grid(alpha=0.3)
    document = run.document
    axes[-1].set_xlabel("seconds since the start of the run")
    axes[-1].set_xlim(0, max(document.wall_seconds, 1e-3))
    figure.suptitle(
        f"{document.workload.id}: {document.workload.title}\n{_headline(document)}",
        fontsize=11,
    )
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# -- across runs ----------------------------------------------------------------------------
def _share(value: float, whole: float) -> float:
    return 100.0 * value / whole if whole else 0.0


def summary_chart(runs: list[Run], path: Path) -> Path:
    """Peak CPU and memory of each run as a share of its envelope (100 % = as declared)."""
    documents = [run.document for run in runs]
    labels = [f"{document.workload.id} {document.run_id[:15]}" for document in documents]
    cpu = [_share(d.peak_cores, d.workload.envelope.cpus) for d in documents]
    memory = [_share(d.resources.peak_memory_bytes, d.workload.envelope.memory) for d in documents]
    height = max(2.5, 0.45 * len(runs) + 1.5)
    figure, axes = plt.subplots(figsize=(10, height), constrained_layout=True)
    rows = range(len(runs))
    axes.barh([row + 0.2 for row in rows], cpu, height=0.4, color="#1f77b4", label="peak CPU")
    axes.barh([row - 0.2 for row in rows], memory, height=0.4, color="#9467bd", label="peak memory")
    axes.axvline(100, color=ENVELOPE, linestyle="--", label="envelope")
    axes.set_yticks(list(rows), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("% of the declared envelope")
    axes.set_title("Peak resources against the envelope")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(axis="x", alpha=0.3)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _row(run: Run) -> str:
    document = run.document
    envelope = document.workload.envelope
    cells = [
        document.workload.id,
        document.run_id,
        f"{document.status} ({document.stop_reason})",
        f"{document.wall_seconds:.1f} s",
        document.primary_metric_text(),
        f"{document.peak_cores:.2f} / {envelope.cpus:g}",
        f"{document.resources.peak_memory_bytes / MIB:.0f} / {envelope.memory / MIB:.0f}",
        document.verification_text(),
    ]
    row = "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
    return f'{row}<td><a href="{html.escape(run.stem)}.png">timeline</a></td>'


def summary_page(runs: list[Run], path: Path) -> Path:
    head = (
        "workload",
        "run",
        "status",
        "duration",
        "primary metric",
        "peak cores / envelope",
        "peak MiB / envelope",
        "verification",
        "",
    )
    rows = "\n".join(f"<tr>{_row(run)}</tr>" for run in runs)
    body = f"""<h1>{len(runs)} run(s)</h1>
<table><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in head)}</tr>
{rows}
</table>
<p><img src="summary.png" alt="peak resources against the envelope"></p>"""
    return html_page(path, "cloudai-workloads runs", body)


def build_report(inputs: list[Path], output: Path) -> list[Path]:
    """Write the timelines and the summary page into ``output``; return what was written."""
    runs = load_runs(inputs)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportError(f"cannot create {output}: {err.strerror}") from None
    written = [timeline(run, output / f"{run.stem}.png") for run in runs]
    written.append(summary_chart(runs, output / "summary.png"))
    written.append(summary_page(runs, output / "index.html"))
    return written
