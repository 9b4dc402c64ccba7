"""Results people can look at (report), and the catalogue as scheduler work (tasks, trace)."""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import statistics
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from PIL import Image

from tests.conftest import ROOT, TINY, run_cli
from workloads.exports import Images, kubernetes_jobs, task_specs
from workloads.manifest import load_manifest
from workloads.report import ReportError, build_report
from workloads.runfolder import TRACE_FIELDS as FIELDS
from workloads.trace import generate, parse_mix

pytestmark = pytest.mark.contract

MANIFEST = load_manifest(ROOT / "workloads.yaml")
PNG = b"\x89PNG\r\n\x1a\n"


# -- report -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real documents: a CPU and an IO workload, sampled often enough to draw. Bound by
    iterations, not by a short duration that a busy host's start-up may spend."""
    folder = tmp_path_factory.mktemp("runs")
    for workload, profile in (("cpu-1", "wave"), ("io-1", "steady")):
        completed = run_cli(
            "run",
            workload,
            *TINY,
            "--iterations",
            "12",
            "--duration",
            "60",
            "--profile",
            profile,
            "--sample-interval",
            "0.2",
            "--results-dir",
            str(folder),
        )
        assert completed.returncode == 0, completed.stderr
    return folder


def _panels(png: Path) -> int:
    """Timelines are 2.3 inches a panel plus 1.2 for the title, at 100 dpi."""
    height = Image.open(png).size[1]
    return round((height / 100 - 1.2) / 2.3)


def test_report_draws_a_timeline_per_run_and_a_summary(run_documents: Path, tmp_path: Path) -> None:
    written = build_report([run_documents], tmp_path)
    documents = sorted(run_documents.glob("*.json"))
    timelines = sorted(tmp_path.glob("*_*.png"))
    assert [png.stem for png in timelines] == [document.stem for document in documents]
    for png in [*timelines, tmp_path / "summary.png"]:
        assert png.read_bytes().startswith(PNG)
        assert png.stat().st_size > 20_000  # drawn, not blank
    assert all(_panels(png) == 3 for png in timelines)  # CPU, memory, IO: no GPU was used
    page = (tmp_path / "index.html").read_text()
    for document in documents:
        assert f'href="{document.stem}.png"' in page
    assert page.count("<tr>") == len(documents) + 1
    assert "passed" in page and "GFLOP/s" in page and "MB/s" in page
    assert len(written) == len(documents) + 2


def test_report_adds_a_gpu_panel_when_a_gpu_was_used(run_documents: Path, tmp_path: Path) -> None:
    document = json.loads(next(run_documents.glob("cpu-1_*.json")).read_text())
    gpu = copy.deepcopy(document)
    for number, sample in enumerate(gpu["timeseries"]["samples"]):
        sample.update(gpu_util_pct=90.0 - number, gpu_memory_bytes=(2 + number % 3) * 2**30)
    source = tmp_path / "runs"
    source.mkdir()
    (source / "gpu-like_run.json").write_text(json.dumps(gpu))
    build_report([source], tmp_path / "report")
    assert _panels(tmp_path / "report" / "gpu-like_run.png") == 4


def test_report_skips_what_is_not_a_run_document(
    run_documents: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stray = tmp_path / "notes.json"
    stray.write_text('{"hello": 1}')
    build_report([run_documents, stray], tmp_path / "report")
    assert "skipped" in capsys.readouterr().err
    with pytest.raises(ReportError, match="no run documents"):
        build_report([stray], tmp_path / "other")


def test_report_command(run_documents: Path, tmp_path: Path) -> None:
    completed = run_cli("report", str(run_documents), "--output", str(tmp_path / "out"))
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "out" / "index.html").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = run_cli("report", str(empty))
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1


# -- tasks --------------------------------------------------------------------------------------
def test_task_specs_carry_the_envelope_for_the_worker() -> None:
    specs = task_specs(MANIFEST, Images("registry.example", "team"), {"duration": "300"})
    assert [spec["name"] for spec in specs] == MANIFEST.ids
    cpu3 = specs[MANIFEST.ids.index("cpu-3")]
    assert cpu3 == {
        "name": "cpu-3",
        "image": "registry.example/team/cloudai-cpu-intensive:3",
        "command": "python cpu_process_3.py --duration 300",
        "cpu": 2.0,
        "memory_gib": 1.0,
        "storage_gib": 0.0,
        "gpu": 0,
        "task_type": "cpu-heavy",
        "description": "Sorting algorithms benchmark",
    }
    assert specs[MANIFEST.ids.index("gpu-2")]["gpu"] == 1
    assert specs[MANIFEST.ids.index("io-1")]["storage_gib"] == 2.0


def test_tasks_command_selects_and_passes_controls() -> None:
    completed = run_cli("tasks", "io", "cpu-3", "--scale", "0.5", "--namespace", "me")
    assert completed.returncode == 0, completed.stderr
    specs = json.loads(completed.stdout)
    io_ids = [workload.id for workload in MANIFEST if workload.category == "io"]
    assert [spec["name"] for spec in specs] == [*io_ids, "cpu-3"]
    assert all(spec["command"].endswith(" --scale 0.5") for spec in specs)
    assert specs[0]["image"] == "localhost:5000/me/cloudai-io-intensive:1"
    unknown = run_cli("tasks", "tpu")
    assert unknown.returncode == 2 and "unknown workload or category" in unknown.stderr


# The master's POST /api/tasks handler (master/internal/http/task_handler.go in the seed's
# repository): these fields, docker_image required, cpu and memory > 0 (else 400), k_value in
# [1.5, 2.5], tag the scheduler's task types; json.Number fields take JSON numbers.
MASTER_FIELDS = (
    "docker_image",
    "command",
    "cpu_required",
    "memory_required",
    "gpu_required",
    "storage_required",
    "user_id",
    "tag",
    "k_value",
)
MASTER_TASK_TYPES = {
    "cpu-light",
    "cpu-heavy",
    "memory-heavy",
    "gpu-inference",
    "gpu-training",
    "mixed",
}


def master_accepts(body: dict[str, object]) -> list[str]:
    """What the master's handler would reject in ``body`` (nothing: a 201)."""
    problems = [f"unknown field {name}" for name in body if name not in MASTER_FIELDS]
    problems += [f"missing {name}" for name in MASTER_FIELDS if name not in body]
    numbers = ("cpu_required", "memory_required", "gpu_required", "storage_required", "k_value")
    for name in numbers:
        value = body.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{name} is not a number: {value!r}")
    if not body.get("docker_image"):
        problems.append("Missing required field: docker_image")
    if not all(isinstance(body.get(name), str) for name in ("command", "user_id", "tag")):
        problems.append("command, user_id and tag must be strings")
    if not problems and not (body["cpu_required"] > 0 and body["memory_required"] > 0):
        problems.append("cpu_required and memory_required must be greater than 0")
    if not problems and not 1.5 <= body["k_value"] <= 2.5:
        problems.append("k_value must be between 1.5 and 2.5")
    if body.get("tag") not in MASTER_TASK_TYPES:
        problems.append(f"tag {body.get('tag')!r} is not a task type of the scheduler")
    return problems


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_the_master_accepts_every_cloudai_task_body() -> None:
    completed = run_cli("tasks", "--format", "cloudai", "--k-value", "1.5", "--user", "lab")
    assert completed.returncode == 0, completed.stderr
    bodies = _json_lines(completed.stdout)
    assert len(bodies) == len(MANIFEST.ids)
    for body, workload in zip(bodies, MANIFEST, strict=True):
        assert master_accepts(body) == [], body
        assert list(body) == list(MASTER_FIELDS)
        envelope = workload.envelope
        # The worker sets memory to memory_required x 2**30 bytes and NanoCPUs to cpu x 1e9.
        assert body["memory_required"] * 2**30 == envelope.memory
        assert body["cpu_required"] * 1e9 == envelope.cpus * 1e9
        assert body["storage_required"] * 2**30 == envelope.disk
        assert (body["gpu_required"], body["tag"]) == (envelope.gpus, workload.task_type)
        assert (body["k_value"], body["user_id"]) == (1.5, "lab")
        assert body["command"] == f"python {workload.launcher}"


def test_master_accepts_rejects_what_the_handler_rejects() -> None:
    body = json.loads(run_cli("tasks", "cpu-3", "--format", "cloudai").stdout)
    assert master_accepts(body) == []
    for change in ({"memory_required": 0}, {"docker_image": ""}, {"k_value": 3.0}):
        assert master_accepts(body | change), change


def test_trace_cloudai_lines_are_bodies_with_their_submit_time() -> None:
    completed = run_cli("trace", "--tasks", "30", "--seed", "4", "--format", "cloudai")
    assert completed.returncode == 0, completed.stderr
    lines = _json_lines(completed.stdout)
    trace = json.loads(run_cli("trace", "--tasks", "30", "--seed", "4").stdout)["tasks"]
    assert [line.pop("submit_time") for line in lines] == [t["submit_time"] for t in trace]
    for line, task in zip(lines, trace, strict=True):
        assert master_accepts(line) == [], line
        assert (line["docker_image"], line["command"]) == (task["image"], task["command"])
        assert line["k_value"] == 2.0


@pytest.mark.parametrize("k_value", ["1.4", "2.6", "lots"])
def test_a_k_value_the_master_refuses_is_a_usage_error(k_value: str) -> None:
    completed = run_cli("tasks", "--format", "cloudai", "--k-value", k_value)
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and "--k-value" in completed.stderr


def test_kubernetes_jobs_are_valid_and_follow_the_envelope() -> None:
    jobs = kubernetes_jobs(MANIFEST, Images(), {"duration": "120", "seed": "7"})
    version = kubernetes_validate.latest_version()
    for workload, job in zip(MANIFEST, jobs, strict=True):
        kubernetes_validate.validate(job, version, strict=True)
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        resources = container["resources"]
        assert resources["requests"]["cpu"] == f"{workload.envelope.cpus:g}"
        assert resources["limits"]["memory"] == resources["requests"]["memory"]
        assert ("nvidia.com/gpu" in resources["limits"]) == (workload.category == "gpu")
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env == {
            "CLOUDAI_DURATION": "120",
            "CLOUDAI_SEED": "7",
            "CLOUDAI_RESULTS_DIR": "/results",
        }
        assert container["volumeMounts"] == [{"name": "results", "mountPath": "/results"}]
        assert container["args"] == ["python", workload.launcher]
        assert pod["restartPolicy"] == "Never"
        assert "ports" not in container
        assert "annotations" not in job["spec"]["template"]["metadata"]


def test_a_metrics_port_gives_jobs_a_container_port_and_scrape_annotations() -> None:
    (job,) = kubernetes_jobs([MANIFEST.get("cpu-3")], Images(), {"metrics_port": "9464"})
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
    template = job["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
    assert {"name": "CLOUDAI_METRICS_PORT", "value": "9464"} in container["env"]
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9464",
        "prometheus.io/path": "/metrics",
    }


def test_tasks_command_writes_kubernetes_yaml_with_a_claim() -> None:
    completed = run_cli("tasks", "gpu-2", "--format", "k8s", "--results-claim", "results")
    assert completed.returncode == 0, completed.stderr
    (job,) = list(yaml.safe_load_all(completed.stdout))
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
    volume = job["spec"]["template"]["spec"]["volumes"][0]
    assert volume == {"name": "results", "persistentVolumeClaim": {"claimName": "results"}}
    assert "&id" not in completed.stdout  # no YAML anchors


# -- trace --------------------------------------------------------------------------------------
def _trace(
    seed: int,
    tasks: int = 200,
    mix: str = "io=1,cpu=2,gpu=1",
    arrival: str = "poisson",
    rate: float = 0.5,
) -> list:
    return generate(
        MANIFEST,
        tasks=tasks,
        mix=parse_mix(mix, MANIFEST),
        arrival=arrival,
        rate=rate,
        seed=seed,
        images=Images(),
    )


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    assert _trace(3) == _trace(3)
    assert _trace(3) != _trace(4)
    first = run_cli("trace", "--tasks", "20", "--seed", "9")
    again = run_cli("trace", "--tasks", "20", "--seed", "9")
    assert first.returncode == 0 and first.stdout == again.stdout


def test_trace_follows_the_mix_and_the_arrival_process() -> None:
    trace = _trace(1, tasks=3000, rate=0.5)
    shares = {
        category: sum(task.category == category for task in trace) / len(trace)
        for category in ("io", "cpu", "gpu")
    }
    assert shares == pytest.approx({"io": 0.25, "cpu": 0.5, "gpu": 0.25}, abs=0.03)
    gaps = [b.submit_time - a.submit_time for a, b in itertools.pairwise(trace)]
    assert statistics.mean(gaps) == pytest.approx(2.0, rel=0.05)  # 1 / rate
    assert statistics.stdev(gaps) == pytest.approx(2.0, rel=0.1)  # exponential: sd = mean
    fixed = _trace(1, tasks=10, arrival="fixed", rate=0.25)
    assert [task.submit_time for task in fixed] == [4.0 * n for n in range(10)]


def test_trace_tasks_are_runnable_and_inside_their_ranges() -> None:
    for task in _trace(5, tasks=100, mix="gpu-3=1,cpu=1"):
        workload = MANIFEST.get(task.task_name)
        assert workload.duration.min <= task.duration_seconds <= workload.duration.max
        assert task.command == (
            f"python {workload.launcher} --duration {task.duration_seconds:g} --seed {task.seed}"
        )
        assert task.cpu_request == workload.envelope.cpus
        assert task.task_name == "gpu-3" or task.category == "cpu"


def test_trace_as_csv_mirrors_cluster_trace_fields(tmp_path: Path) -> None:
    out = tmp_path / "trace.csv"
    completed = run_cli(
        "trace",
        "--tasks",
        "5",
        "--format",
        "csv",
        "--output",
        str(out),
        "--arrival",
        "fixed",
        "--rate",
        "1",
        "--duration-scale",
        "0.01",
    )
    assert completed.returncode == 0, completed.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == list(FIELDS)
    assert [float(row["submit_time"]) for row in rows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(float(row["duration_seconds"]) <= 12 for row in rows)  # 0.01 x at most 1200 s


@pytest.mark.parametrize("mix", ["tpu=1", "cpu=0", "io=lots", ""])
def test_a_bad_mix_is_a_usage_error(mix: str) -> None:
    completed = run_cli("trace", "--mix", mix)
    assert completed.returncode == 2
    assert completed.stderr.startswith("error: --mix:")
