"""Live ground truth: what a run is doing, served as OpenMetrics while it runs.

``--metrics-port PORT`` serves ``/metrics`` (prometheus_client; OpenMetrics to a scraper that
asks for it, as Prometheus does, else the text format), ``--metrics-textfile PATH`` writes the
same metrics atomically for node_exporter's textfile collector. Both are updated by the run's
resource sampler, at each of its samples (no second sampler), so a scrape sees exactly the
values of the document's time series; ``cloudai_elapsed_seconds`` names the sample.

Metrics (base units, as Prometheus' naming guide asks):

    cloudai_run_info{workload,category,run_id,seed,profile}   1
    cloudai_elapsed_seconds            the run's time at the last sample
    cloudai_target_busy_fraction       the load shape now: each worker's target busy fraction
    cloudai_workers                    workers sharing the load
    cloudai_achieved_cores             cores the process tree used over the last interval
    cloudai_cpu_seconds_total          CPU seconds of the process tree
    cloudai_rss_bytes                  resident memory of the process tree
    cloudai_read_bytes_total           bytes read from storage (the kernel's count)
    cloudai_write_bytes_total          bytes written to storage
    cloudai_iterations_total           iterations done
    cloudai_envelope_cpus, cloudai_envelope_memory_bytes, cloudai_envelope_gpus
                                       what the workload declares
    cloudai_limit_cpus                 CPUs it may use: CFS quota, cpuset and affinity (the host's
                                       CPUs when nothing limits it)
    cloudai_limit_memory_bytes         its cgroup's memory limit (the host's memory without one)
    cloudai_gpu_utilisation_ratio, cloudai_gpu_memory_used_bytes, cloudai_gpu_power_watts
                                       from NVML, when a GPU is used
    cloudai_primary_metric{name,unit}  the primary metric so far, when it is a declared rate
    cloudai_run_finished               0 while the run lasts, 1 once it has ended
    cloudai_run_end_timestamp_seconds  when it ended (Unix time), once it has

When the run ends, the textfile is written once more, as node_exporter's users expect of a batch
job: ``cloudai_run_finished 1`` and the end time, the load gauges (target busy fraction, cores,
resident memory, GPU utilisation, memory and power) at zero, the counters and the rest as at the
last sample. A finished run does not look busy for as long as the file stays.
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from workloads.runtime.choices import DEFAULT_METRICS_PORT, METRICS_PATH  # noqa: F401 (its names)

if TYPE_CHECKING:
    from workloads.manifest import Workload
    from workloads.runtime.limits import Limits
    from workloads.runtime.params import RunParams

DEFAULT_PORT = DEFAULT_METRICS_PORT  # documented in the images (EXPOSE, org.cloudai.metrics.port)


class ExporterError(Exception):
    """The port is taken or the textfile cannot be written: one line, exit 2, no work done."""


class RunMetrics:
    """A collector of the run's last sample: what each scrape or textfile write shows."""

    def __init__(self, labels: dict[str, str], static: dict[str, float]) -> None:
        self._labels, self._static = labels, static
        self._lock = threading.Lock()
        self._values: dict[str, float | None] = {}
        self._primary: tuple[str, str, float | None] | None = None
        self._ended: float | None = None  # Unix time of the run's end

    def update(
        self, values: dict[str, float | None], primary: tuple[str, str, float | None] | None
    ) -> None:
        with self._lock:
            if self._ended is None:  # a sample after the end changes nothing
                self._values, self._primary = dict(values), primary

    def finish(self) -> None:
        """The run has ended: no load from now on, and say so."""
        with self._lock:
            self._ended = time.time()
            for name in IDLE_WHEN_FINISHED:
                if self._values.get(name) is not None:
                    self._values[name] = 0.0

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            values, primary, ended = dict(self._values), self._primary, self._ended
        info = InfoMetricFamily("cloudai_run", "the run: workload, seed, load shape")
        info.add_metric([], self._labels)
        yield info
        yield GaugeMetricFamily(
            "cloudai_run_finished", _HELP["cloudai_run_finished"], value=float(ended is not None)
        )
        if ended is not None:
            yield GaugeMetricFamily(
                "cloudai_run_end_timestamp_seconds",
                _HELP["cloudai_run_end_timestamp_seconds"],
                value=ended,
            )
        for name, value in self._static.items():
            yield GaugeMetricFamily(name, _HELP[name], value=value)
        for name, value in values.items():
            if value is None:
                continue  # not measured (no GPU, no sample yet): absent, not zero
            family = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
            yield family(name.removesuffix("_total"), _HELP[name], value=value)
        if primary is not None and primary[2] is not None:
            gauge = GaugeMetricFamily(
                "cloudai_primary_metric", _HELP["cloudai_primary_metric"], labels=["name", "unit"]
            )
            gauge.add_metric([primary[0], primary[1]], primary[2])
            yield gauge


# The gauges of load that a finished run reports as zero.
IDLE_WHEN_FINISHED = (
    "cloudai_target_busy_fraction",
    "cloudai_achieved_cores",
    "cloudai_rss_bytes",
    "cloudai_gpu_utilisation_ratio",
    "cloudai_gpu_memory_used_bytes",
    "cloudai_gpu_power_watts",
)

_HELP = {
    "cloudai_run_finished": "1 once the run has ended (its load gauges are then zero), else 0",
    "cloudai_run_end_timestamp_seconds": "when the run ended (Unix time)",
    "cloudai_elapsed_seconds": "the run's time at the last sample",
    "cloudai_target_busy_fraction": "the load shape now: each worker's target busy fraction",
    "cloudai_workers": "workers sharing the load",
    "cloudai_achieved_cores": "cores the process tree used over the last sample interval",
    "cloudai_cpu_seconds_total": "CPU seconds of the process tree",
    "cloudai_rss_bytes": "resident memory of the process tree",
    "cloudai_read_bytes_total": "bytes the process tree read from storage",
    "cloudai_write_bytes_total": "bytes the process tree wrote to storage",
    "cloudai_iterations_total": "iterations done",
    "cloudai_envelope_cpus": "CPUs the workload declares",
    "cloudai_envelope_memory_bytes": "memory the workload declares",
    "cloudai_envelope_gpus": "GPUs the workload declares",
    "cloudai_limit_cpus": "CPUs the run may use (CFS quota, cpuset, affinity; else the host's)",
    "cloudai_limit_memory_bytes": "the cgroup's memory limit (else the host's memory)",
    "cloudai_gpu_utilisation_ratio": "GPU utilisation (NVML)",
    "cloudai_gpu_memory_used_bytes": "GPU memory used (NVML)",
    "cloudai_gpu_power_watts": "GPU power draw (NVML)",
    "cloudai_primary_metric": "the workload's primary metric so far",
}


class Exporter:
    """The port and the textfile of one run; both optional, both checked before any work."""

    def __init__(self, port: int | None, textfile: Path | None, metrics: RunMetrics) -> None:
        self.metrics, self.textfile = metrics, textfile
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(metrics)  # type: ignore[arg-type]
        self._server: Any = None
        if textfile is not None:
            self.write_textfile()  # an unwritable path fails here, before the run
        if port is not None:
            try:
                self._server, _ = start_http_server(port, addr="0.0.0.0", registry=self.registry)
            except OSError as err:
                reason = "in use" if err.errno == errno.EADDRINUSE else err.strerror
                raise ExporterError(f"--metrics-port {port}: the port is {reason}") from None

    def write_textfile(self) -> None:
        if self.textfile is None:
            return
        try:
            write_to_textfile(str(self.textfile), self.registry)
        except OSError as err:
            raise ExporterError(
                f"--metrics-textfile {self.textfile}: cannot write it ({err.strerror})"
            ) from None

    def publish(
        self, values: dict[str, float | None], primary: tuple[str, str, float | None] | None
    ) -> None:
        """A new sample: what the next scrape sees, and the textfile rewritten."""
        self.metrics.update(values, primary)
        # A full disk mid-run: the document matters more than the textfile.
        with contextlib.suppress(ExporterError):
            self.write_textfile()

    def close(self) -> None:
        """The run has ended: the port closes (a last scrape still showed the last sample), then
        the textfile says so (finished, no load)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.metrics.finish()
        with contextlib.suppress(ExporterError):  # the document matters more
            self.write_textfile()


def sample_values(
    sample: dict[str, float | None], cumulative: dict[str, float], iterations: int, workers: int
) -> dict[str, float | None]:
    """The exporter's values from one sample of the sampler (and its running totals): the
    document's time series holds the same numbers."""
    gpu_util, target = sample.get("gpu_util_pct"), sample["target_intensity_pct"]
    return {
        "cloudai_elapsed_seconds": sample["t"],
        "cloudai_target_busy_fraction": None if target is None else target / 100.0,
        "cloudai_workers": float(workers),
        "cloudai_achieved_cores": sample["cpu_cores"],
        "cloudai_cpu_seconds_total": cumulative["cpu_seconds"],
        "cloudai_rss_bytes": sample["rss_bytes"],
        "cloudai_read_bytes_total": cumulative["read_bytes"],
        "cloudai_write_bytes_total": cumulative["write_bytes"],
        "cloudai_iterations_total": float(iterations),
        "cloudai_gpu_utilisation_ratio": None if gpu_util is None else gpu_util / 100.0,
        "cloudai_gpu_memory_used_bytes": sample.get("gpu_memory_bytes"),
        "cloudai_gpu_power_watts": sample.get("gpu_power_w"),
    }


def open_exporter(
    workload: Workload, params: RunParams, limits: Limits, run_id: str
) -> Exporter | None:
    """The run's exporter, when a port or a textfile is asked for (ExporterError if taken)."""
    if params.metrics_port is None and params.metrics_textfile is None:
        return None
    labels = {
        "workload": workload.id,
        "category": workload.category,
        "run_id": run_id,
        "seed": str(params.seed),
        "profile": params.profile,
    }
    envelope = workload.envelope
    static = {
        "cloudai_envelope_cpus": envelope.cpus,
        "cloudai_envelope_memory_bytes": float(envelope.memory),
        "cloudai_envelope_gpus": float(envelope.gpus),
        "cloudai_limit_cpus": limits.usable_cpus,
        "cloudai_limit_memory_bytes": float(limits.memory_ceiling),
    }
    return Exporter(params.metrics_port, params.metrics_textfile, RunMetrics(labels, static))
