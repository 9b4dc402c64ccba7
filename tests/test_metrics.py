"""Live ground truth: a run serves what it is doing as OpenMetrics (a port, a textfile), and a
real Prometheus server scraping it sees the same numbers as the run's own document."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus_text

from tests.conftest import ROOT, TINY, only_document, run_cli, uncontrolled_environment

pytestmark = pytest.mark.contract

EXPECTED = {
    "cloudai_run",
    "cloudai_elapsed_seconds",
    "cloudai_target_busy_fraction",
    "cloudai_workers",
    "cloudai_achieved_cores",
    "cloudai_cpu_seconds",
    "cloudai_rss_bytes",
    "cloudai_read_bytes",
    "cloudai_write_bytes",
    "cloudai_iterations",
    "cloudai_envelope_cpus",
    "cloudai_envelope_memory_bytes",
    "cloudai_envelope_gpus",
    "cloudai_limit_cpus",
    "cloudai_limit_memory_bytes",
    "cloudai_primary_metric",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(*args: str) -> subprocess.Popen[str]:
    environment = uncontrolled_environment()
    return subprocess.Popen(
        [sys.executable, "-m", "workloads", "run", *args],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _scrape(port: int, openmetrics_format: bool) -> str:
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics_format else "text/plain"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return answer.read().decode()


def test_a_run_serves_openmetrics_while_it_lasts(tmp_path: Path) -> None:
    port = free_port()
    # Long enough to be scraped after its first iterations, however slow a busy host starts it.
    process = _start("cpu-5", *TINY, "--duration", "8", "--workers", "1",
                     "--metrics-port", str(port), "--results-dir", str(tmp_path))  # fmt: skip
    text = ""
    while process.poll() is None and "cloudai_primary_metric{" not in text:
        time.sleep(0.3)
        try:
            text = _scrape(port, openmetrics_format=True)
        except OSError:
            continue
    assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""
    families = {family.name: family for family in openmetrics(text)}  # a strict parser
    assert set(families) >= EXPECTED
    document = only_document(tmp_path)
    info = families["cloudai_run"].samples[0].labels
    assert info == {
        "workload": "cpu-5",
        "category": "cpu",
        "run_id": document["run_id"],
        "seed": str(document["seed"]),
        "profile": "steady",
    }
    (primary,) = families["cloudai_primary_metric"].samples
    assert primary.labels == {"name": "samples_per_s", "unit": "samples/s"}
    assert primary.value > 0
    assert families["cloudai_iterations"].type == "counter"
    assert families["cloudai_envelope_cpus"].samples[0].value == 2.0
    assert "cloudai_gpu_utilisation_ratio" not in families  # no GPU: absent, not zero
    with pytest.raises(OSError):
        _scrape(port, openmetrics_format=True)  # served while the run lasts, not after


def test_the_textfile_is_rewritten_at_every_sample(tmp_path: Path) -> None:
    textfile = tmp_path / "cloudai.prom"
    # Bound by iterations, not time: a busy host may spend a short duration starting up.
    completed = run_cli("run", "cpu-5", *TINY, "--iterations", "40", "--duration", "60",
                        "--workers", "1", "--sample-interval", "0.2",
                        "--metrics-textfile", str(textfile),
                        "--results-dir", str(tmp_path / "results"))  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    families = {f.name: f for f in prometheus_text(textfile.read_text())}
    assert EXPECTED - {"cloudai_run"} | {"cloudai_run_info"} <= set(families)  # the text format
    document = only_document(tmp_path / "results")
    last = document["timeseries"]["samples"][-1]
    assert families["cloudai_elapsed_seconds"].samples[0].value == last["t"]
    # The last sample's count: iterations that ended after it are in the document only.
    assert 0 < families["cloudai_iterations"].samples[0].value <= document["metrics"]["iterations"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".prom")] == ["cloudai.prom"]


def test_a_port_in_use_is_one_line_and_exit_2_before_any_work(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = run_cli("run", "cpu-5", "--metrics-port", str(port),
                            "--results-dir", str(tmp_path))  # fmt: skip
    assert completed.returncode == 2
    assert completed.stderr == f"error: --metrics-port {port}: the port is in use\n"
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_textfile_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    textfile = blocker / "cloudai.prom"
    completed = run_cli("run", "cpu-5", "--metrics-textfile", str(textfile),
                        "--results-dir", str(tmp_path / "results"))  # fmt: skip
    assert completed.returncode == 2
    assert completed.stderr.startswith(f"error: --metrics-textfile {textfile}: cannot write it")
    assert completed.stderr.count("\n") == 1
    assert list((tmp_path / "results").iterdir()) == []


@pytest.mark.parametrize("value", ["0", "70000", "http"])
def test_a_bad_port_is_a_usage_error(value: str) -> None:
    completed = run_cli("run", "cpu-5", "--metrics-port", value)
    assert completed.returncode == 2 and "--metrics-port" in completed.stderr


# -- a real Prometheus server ------------------------------------------------------------------
needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="no prometheus server (scripts/prometheus-up --install)",
)


def _query(base: str, expression: str, at: float) -> list[tuple[float, float]]:
    """The raw samples of a range selector: (scrape time, value)."""
    query = urllib.parse.urlencode({"query": expression, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{base}/api/v1/query?{query}", timeout=10) as answer:
        result = json.loads(answer.read())["data"]["result"]
    assert len(result) == 1, result
    return [(float(t), float(v)) for t, v in result[0]["values"]]


@pytest.fixture
def prometheus(tmp_path: Path) -> Any:
    """A real server scraping a workload's port on the loopback every second."""
    target, server = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 900ms}\n"
        "scrape_configs:\n"
        f"  - job_name: cloudai\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
    )
    started = subprocess.run(
        [ROOT / "scripts" / "prometheus-up", str(config), str(server), str(tmp_path / "data")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split()[-1])
    yield target, f"http://127.0.0.1:{server}"
    os.kill(pid, 15)


def _scraped_run(prometheus: Any, tmp_path: Path) -> tuple[dict, dict[str, list]]:
    """A 15 s wave run that the server scraped: its document, and what the server stored of
    it (``up``, elapsed, cores and target, each a list of (scraped at, value))."""
    port, base = prometheus
    results = tmp_path / "results"
    completed = run_cli("run", "cpu-1", *TINY, "--duration", "15", "--profile", "wave",
                        "--metrics-port", str(port), "--results-dir", str(results))  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    document = only_document(results)
    time.sleep(1.5)  # the last scrapes reach the storage
    now = time.time()
    queries = {
        "up": "up[60s]",
        "elapsed": "cloudai_elapsed_seconds[60s]",
        "cores": "cloudai_achieved_cores[60s]",
        "target": "cloudai_target_busy_fraction[60s]",
    }
    return document, {name: _query(base, query, now) for name, query in queries.items()}


@pytest.mark.system
@needs_prometheus
def test_prometheus_sees_what_the_document_records(prometheus: Any, tmp_path: Path) -> None:
    document, stored = _scraped_run(prometheus, tmp_path)
    cores, target = dict(stored["cores"]), dict(stored["target"])
    # Each scrape shows one sample of the document's own time series (named by its t). How
    # many it saw is the server's cadence on a busy host: the timing test below holds that.
    samples = {sample["t"]: sample for sample in document["timeseries"]["samples"]}
    seen = {t for _, t in stored["elapsed"]}
    assert len(seen) >= 4, seen  # enough to see the wave move
    for scraped_at, t in stored["elapsed"]:
        sample = samples[t]
        assert cores[scraped_at] == pytest.approx(sample["cpu_cores"], rel=0.05, abs=1e-9)
        expected = sample["target_intensity_pct"] / 100
        assert target[scraped_at] == pytest.approx(expected, rel=0.05)
    assert len({value for value in target.values()}) > 3  # the wave moved


@pytest.mark.system
@pytest.mark.timing
@needs_prometheus
def test_prometheus_scrapes_a_live_run_every_second(prometheus: Any, tmp_path: Path) -> None:
    _, stored = _scraped_run(prometheus, tmp_path)
    # No scrape went missing while the run was alive (from its first successful scrape to its
    # last): one a second, each a success, most of the 15 samples seen.
    up = stored["up"]
    served = [t for t, value in up if value == 1]
    alive = [(t, value) for t, value in up if served[0] <= t <= served[-1]]
    assert all(value == 1 for _, value in alive), alive
    gaps = [b - a for a, b in itertools.pairwise(served)]
    assert len(served) >= 10 and max(gaps) < 1.5, gaps
    assert len({t for _, t in stored["elapsed"]}) >= 10
