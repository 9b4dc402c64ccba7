"""analyze: a hand-written run folder (events and documents) into exact numbers, recomputed by
hand here; thresholds, baselines and bad input."""

from __future__ import annotations

import copy
import csv
import json
import statistics
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import only_document, run_cli
from workloads.analysis import SUMMARY_SCHEMA_PATH, analyze_folder
from workloads.analysis.jobs import Job, enforced
from workloads.runfolder import (
    EngineRecord,
    Node,
    Origin,
    ReplayRecord,
    TraceFile,
    TraceSource,
    TraceTask,
)

pytestmark = pytest.mark.contract

GIB = 1 << 30
START = 1000.0  # the replay's start, Unix seconds

# task_id: (workload, category, cpu, memory GiB)
TASKS = {
    0: ("cpu-1", "cpu", 2.0, 1.0),
    1: ("io-1", "io", 1.0, 1.0),
    2: ("cpu-3", "cpu", 2.0, 1.0),
    3: ("io-2", "io", 1.0, 0.5),
}
# (time, task, event, extra): planned/submitted offsets on the replay's clock, engine times.
EVENTS: list[tuple[float, int, str, dict[str, Any]]] = [
    (1000.02, 0, "SUBMIT", {"planned": 0.0, "submitted": 0.01}),
    (1000.05, 0, "SCHEDULE", {"node": "n1"}),
    (1000.10, 0, "START", {}),
    (1001.03, 1, "SUBMIT", {"planned": 1.0, "submitted": 1.02}),
    (1001.04, 1, "QUEUE", {"detail": "no suitable node"}),
    (1002.01, 2, "SUBMIT", {"planned": 2.0, "submitted": 2.0}),
    (1003.00, 3, "SUBMIT", {"planned": 3.0, "submitted": 3.05}),
    (1004.10, 0, "FINISH", {"exit_code": 0}),
    (1004.20, 1, "SCHEDULE", {"node": "n1"}),
    (1004.30, 1, "START", {}),
    (1020.30, 1, "FINISH", {"exit_code": 0}),
    (1020.31, 2, "SCHEDULE", {"node": "n1"}),
    (1020.40, 2, "START", {}),
    (1030.40, 2, "FAIL", {"exit_code": 1}),
    (1030.45, 3, "SCHEDULE", {"node": "n1"}),
    (1030.50, 3, "START", {}),
    (1031.00, 3, "FINISH", {"exit_code": 0}),
]
# task_id: (cpu quota, cpuset, memory limit, cpu seconds); task 3 left no document.
DOCUMENTS = {
    0: (2.0, [0, 1], 1 * GIB, 8.0),  # enforced
    1: (None, [0, 1], 1 * GIB, 10.0),  # no quota, the whole host: CPU not enforced
    2: (2.0, [0, 1], None, 15.0),  # no memory limit: not enforced
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real results document (a run that sets up and stops), the shape every task's takes."""
    folder = tmp_path_factory.mktemp("template")
    completed = run_cli("run", "cpu-1", "--iterations", "0", "--results-dir", str(folder))
    assert completed.returncode == 0, completed.stderr
    return only_document(folder)


def _document(template: dict[str, Any], task_id: int, started: str) -> dict[str, Any]:
    quota, cpuset, memory, cpu_seconds = DOCUMENTS[task_id]
    document = copy.deepcopy(template)
    document["workload"]["id"] = TASKS[task_id][0]
    document["status"] = "completed" if task_id != 2 else "failed"
    document["stop_reason"] = "duration" if task_id != 2 else "verification"
    document["started_at"] = started
    document["verification"]["passed"] = task_id != 2
    document["metrics"]["primary"] = {"name": "rate", "value": 10.0 + task_id, "unit": "x/s"}
    document["resources"].update(
        cpu_seconds=cpu_seconds, average_cores=1.5, peak_memory_bytes=100 << 20
    )
    document["limits"].update(cpu_quota=quota, cpuset=cpuset, memory_limit=memory, host_cpus=2)
    sample = document["timeseries"]["samples"][0]
    document["timeseries"]["samples"] = [
        sample | {"t": 1.0, "cpu_cores": 1.5},
        sample | {"t": 2.0, "cpu_cores": 1.0},
    ]
    return document


# A trace converted from a log: task_id: (user, the wait in the log); its time scale is 10.
ORIGINS = {0: ("a", 0.0), 1: ("a", 30.0), 2: ("b", 100.0), 3: ("b", 500.0)}
TIME_SCALE = 10.0


def _trace_task(task_id: int, from_log: bool = False) -> TraceTask:
    workload, category, cpu, memory = TASKS[task_id]
    user, wait = ORIGINS[task_id]
    origin = Origin(
        format="swf", id=str(100 + task_id), user=user, submit=10.0 * task_id, wait=wait,
        runtime=100.0, processors=4, time_scale=TIME_SCALE,
    )  # fmt: skip
    return TraceTask(
        submit_time=float(task_id), task_id=task_id, task_name=workload, category=category,
        task_type="cpu-heavy", image=f"localhost:5000/cloudai/{workload}", command="python x.py",
        cpu_request=cpu, memory_request_gib=memory, disk_request_gib=0, gpu_request=0,
        duration_seconds=10, seed=task_id,
        **({"user": user, "queue": "1", "source": origin} if from_log else {}),
    )  # fmt: skip


def make_run(
    folder: Path,
    template: dict[str, Any],
    events: list[tuple[float, int, str, dict[str, Any]]] = EVENTS,
    from_log: bool = False,
) -> Path:
    """A run folder as a replay writes it, with the times and documents above (and, from_log,
    a trace whose tasks came from a log: users, queues, original waits)."""
    folder.mkdir(parents=True)
    trace = TraceFile(tasks=[_trace_task(task_id, from_log) for task_id in TASKS])
    (folder / "trace.json").write_text(trace.to_json())
    record = ReplayRecord(
        schema_version=2, replay_id="test", tool="test", command=["replay"],
        trace=TraceSource(path="trace.json", sha256="0" * 64, tasks=len(TASKS), meta={}),
        engine=EngineRecord(name="test", version="1", api_version="1"),
        nodes=[Node(id="n1", name="n1", cpus=2.0, memory=8 * GIB)], speed=1.0,
        grace_seconds=10.0, outcome="completed", start_time=START,
    )  # fmt: skip
    record.write(folder)
    lines = [
        json.dumps({"time": time, "t": time - START, "task_id": task, "event": kind, **extra})
        for time, task, kind, extra in events
    ]
    (folder / "events.jsonl").write_text("".join(line + "\n" for line in lines))
    for task_id in DOCUMENTS:
        tasks = folder / "tasks" / str(task_id)
        tasks.mkdir(parents=True)
        started = "1970-01-01T00:16:45.000Z"  # 1005.0
        name = f"{TASKS[task_id][0]}_run.json"
        (tasks / name).write_text(json.dumps(_document(template, task_id, started)))
    (folder / "tasks" / "3").mkdir()
    return folder


@pytest.fixture
def run(tmp_path: Path, template: dict[str, Any]) -> Path:
    return make_run(tmp_path / "run", template)


def test_exact_times_per_task(run: Path) -> None:
    jobs, _ = analyze_folder(run)
    by_id = {job.task_id: job for job in jobs}
    # task 1: submitted 1001.03, started 1004.30, ended 1020.30
    one = by_id[1]
    assert one.wait == pytest.approx(1004.30 - 1001.03)
    assert one.turnaround == pytest.approx(1020.30 - 1001.03)
    assert one.runtime == pytest.approx(16.0)
    assert one.stretch == pytest.approx((1020.30 - 1001.03) / 16.0)
    assert one.bounded_slowdown == pytest.approx((1020.30 - 1001.03) / 16.0)
    assert (one.node, one.state, one.exit_code) == ("n1", "FINISH", 0)
    # task 0 ran 4 s: below tau = 10 s, so its slowdown is turnaround / 10, then at least 1
    assert by_id[0].bounded_slowdown == 1.0
    # task 3 ran 0.5 s after waiting 27.5 s: 28 / 10
    assert by_id[3].bounded_slowdown == pytest.approx((1031.0 - 1003.0) / 10.0)
    assert (by_id[2].state, by_id[2].exit_code) == ("FAIL", 1)
    assert by_id[2].submit_planned == 2.0 and by_id[3].submit_actual == 3.05


def test_documents_are_joined_and_enforcement_judged(run: Path) -> None:
    jobs, summary = analyze_folder(run)
    by_id = {job.task_id: job for job in jobs}
    assert [by_id[i].enforced for i in range(4)] == [True, False, False, None]
    assert by_id[0].limit_cpu_quota == 2.0 and by_id[0].limit_memory_bytes == GIB
    assert (by_id[2].status, by_id[2].metric_value, by_id[2].metric_unit) == ("failed", 12, "x/s")
    assert by_id[3].document is None
    assert summary.enforcement_violations == 2
    assert summary.tasks_without_document == [3]
    # started at 1005.0: the first sample stands for the second before it
    assert by_id[0].cpu_samples == [(5.0, 1.5), (6.0, 1.5), (7.0, 1.0)]


def test_exact_summary(run: Path) -> None:
    _, summary = analyze_folder(run)
    assert summary.states == {"FINISH": 3, "FAIL": 1}
    assert summary.success_rate == 0.75
    makespan = 1031.0 - 1000.02
    assert summary.makespan_s == pytest.approx(makespan)
    waits = sorted([1000.10 - 1000.02, 1004.30 - 1001.03, 1020.40 - 1002.01, 1030.50 - 1003.00])
    wait = summary.overall.wait_s
    assert wait.mean == pytest.approx(sum(waits) / 4)
    assert wait.max == pytest.approx(waits[-1])
    # linear interpolation between ranks: p50 of four sits halfway between the 2nd and 3rd
    assert wait.p50 == pytest.approx((waits[1] + waits[2]) / 2)
    assert wait.p90 == pytest.approx(waits[2] + 0.7 * (waits[3] - waits[2]))
    # utilisation over 2 CPUs for the makespan
    requested = 2 * 4.0 + 1 * 16.0 + 2 * 10.0 + 1 * 0.5
    assert summary.utilisation.requested == pytest.approx(requested / (2 * makespan))
    assert summary.utilisation.measured == pytest.approx((8.0 + 10.0 + 15.0) / (2 * makespan))
    # Jain's index over the categories' mean bounded slowdown
    cpu = (1.0 + (1030.40 - 1002.01) / 10.0) / 2
    io = ((1020.30 - 1001.03) / 16.0 + (1031.0 - 1003.0) / 10.0) / 2
    assert summary.fairness_jain == pytest.approx((cpu + io) ** 2 / (2 * (cpu**2 + io**2)))
    assert summary.submit_lag_s.max == pytest.approx(0.05)
    assert summary.submit_lag_s.mean == pytest.approx((0.01 + 0.02 + 0.0 + 0.05) / 4)
    assert summary.by_category["io"].wait_s.count == 2


def test_analyze_writes_jobs_summary_and_pictures(run: Path) -> None:
    completed = run_cli("analyze", str(run))
    assert completed.returncode == 0, completed.stderr
    assert "1 of 4 tasks left no document: 3" in completed.stderr
    rows = list(csv.DictReader((run / "jobs.csv").open()))
    assert [row["task_id"] for row in rows] == ["0", "1", "2", "3"]
    assert rows[1]["wait"] == str(round(1004.30 - 1001.03, 6))
    assert rows[3]["document"] == "" and rows[3]["enforced"] == ""
    summary = json.loads((run / "summary.json").read_text())
    jsonschema.validate(summary, json.loads(SUMMARY_SCHEMA_PATH.read_text()))
    for picture in ("wait_cdf.png", "gantt.png", "queue.png", "cpu.png"):
        assert (run / picture).read_bytes().startswith(b"\x89PNG")
    assert 'src="gantt.png"' in (run / "index.html").read_text()


def test_thresholds_gate_a_run(run: Path, tmp_path: Path) -> None:
    met = tmp_path / "met.yaml"
    met.write_text("wait_p99_s: {max: 30}\nenforcement_violations: {max: 2}\n")
    assert run_cli("analyze", str(run), "--check", str(met)).returncode == 0
    missed = tmp_path / "missed.yaml"
    missed.write_text(
        "success_rate: {min: 1.0}\nenforcement_violations: {max: 0}\ncpu.wait_p99_s: {max: 60}\n"
    )
    completed = run_cli("analyze", str(run), "--check", str(missed))
    assert completed.returncode == 1
    lines = [line for line in completed.stderr.splitlines() if line.startswith("check: ")]
    assert lines == [
        "check: success_rate = 0.75, min 1",
        "check: enforcement_violations = 2, max 0",
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("wait_p99: {max: 30}\n", "unknown figure 'wait_p99'"),
        ("wait_p99_s: 30\n", "give min and/or max"),
        ("- a list\n", "not a mapping"),
        ("wait_p99_s: {max: [30\n  min: 1\n", "not YAML"),
        ("user.a.wait_p99: {max: 30}\n", "unknown figure"),
    ],
)
def test_a_bad_thresholds_file_is_one_line_and_exit_2(
    run: Path, tmp_path: Path, text: str, fragment: str
) -> None:
    thresholds = tmp_path / "t.yaml"
    thresholds.write_text(text)
    completed = run_cli("analyze", str(run), "--check", str(thresholds))
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and fragment in completed.stderr
    assert not (run / "summary.json").exists()


def test_baseline_prints_both_runs_side_by_side(
    run: Path, tmp_path: Path, template: dict[str, Any]
) -> None:
    faster = [(t - 20.0 if kind == "START" and task == 3 else t, task, kind, extra)
              for t, task, kind, extra in EVENTS]  # fmt: skip
    baseline = make_run(tmp_path / "baseline", template, faster)
    completed = run_cli("analyze", str(run), "--baseline", str(baseline))
    assert completed.returncode == 0, completed.stderr
    assert "different traces" not in completed.stderr
    line = next(line for line in completed.stdout.splitlines() if line.startswith("wait_max_s "))
    _, old, new, change, relative = line.split()
    assert float(old) == pytest.approx(1020.40 - 1002.01, abs=1e-3)  # task 3 waited less
    assert float(new) == pytest.approx(1030.50 - 1003.00, abs=1e-3)
    assert change.startswith("+") and relative.endswith("%)")


@pytest.mark.parametrize("damage", ["truncate", "missing", "not-json"])
def test_a_damaged_event_log_is_one_clear_line(run: Path, damage: str) -> None:
    events = run / "events.jsonl"
    if damage == "truncate":
        events.write_text(events.read_text()[:-25])
    elif damage == "missing":
        events.unlink()
    else:
        events.write_text("SUBMIT 0\n")
    completed = run_cli("analyze", str(run))
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert "events.jsonl" in completed.stderr


def test_a_baseline_of_another_trace_is_compared_with_a_warning(
    run: Path, tmp_path: Path, template: dict[str, Any]
) -> None:
    baseline = make_run(tmp_path / "baseline", template)
    record = json.loads((baseline / "replay.json").read_text())
    record["trace"]["sha256"] = "1" * 64
    (baseline / "replay.json").write_text(json.dumps(record))
    completed = run_cli("analyze", str(run), "--baseline", str(baseline))
    assert completed.returncode == 0, completed.stderr
    assert "replayed different traces" in completed.stderr


def test_a_run_folder_of_the_first_schema_still_reads(run: Path) -> None:
    """replay.json as replays wrote it before the run folder was typed: schema 1, its
    timestamps with +00:00, events without the replay's id (the ones above have none)."""
    record = json.loads((run / "replay.json").read_text())
    record.update(schema_version=1, started_at="1970-01-01T00:16:40.000+00:00")
    del record["images"]
    (run / "replay.json").write_text(json.dumps(record))
    assert "replay_id" not in (run / "events.jsonl").read_text()
    completed = run_cli("analyze", str(run))
    assert completed.returncode == 0, completed.stderr
    assert "4 tasks" in completed.stdout


# -- a trace from a log: users and replay fidelity --------------------------------------------
WAITS = {0: 1000.10 - 1000.02, 1: 1004.30 - 1001.03, 2: 1020.40 - 1002.01, 3: 1030.50 - 1003.00}


def test_users_and_fidelity_of_a_trace_from_a_log(tmp_path: Path, template: dict[str, Any]) -> None:
    run = make_run(tmp_path / "run", template, from_log=True)
    jobs, summary = analyze_folder(run)
    # each wait against the log's divided by the time scale, both at least 1 s
    ratios = {
        task_id: max(WAITS[task_id], 1.0) / max(ORIGINS[task_id][1] / TIME_SCALE, 1.0)
        for task_id in TASKS
    }
    assert {job.task_id: job.wait_ratio for job in jobs} == pytest.approx(ratios)
    assert [job.original_wait for job in jobs] == [0.0, 3.0, 10.0, 50.0]
    assert [(job.user, job.queue) for job in jobs] == [(u, "1") for u in ("a", "a", "b", "b")]
    fidelity = summary.fidelity
    assert fidelity is not None and fidelity.tasks == 4
    assert fidelity.median_wait_ratio == pytest.approx(statistics.median(ratios.values()))
    assert fidelity.rank_correlation == pytest.approx(1.0)  # the same order as in the log
    slowdowns = {job.task_id: job.bounded_slowdown for job in jobs}
    a, b = (slowdowns[0] + slowdowns[1]) / 2, (slowdowns[2] + slowdowns[3]) / 2
    assert summary.by_user["a"].bounded_slowdown.mean == pytest.approx(a)
    assert summary.by_user["b"].wait_s.max == pytest.approx(WAITS[3])
    assert summary.fairness_jain_users == pytest.approx((a + b) ** 2 / (2 * (a * a + b * b)))
    completed = run_cli("analyze", str(run))
    assert completed.returncode == 0, completed.stderr
    assert "fidelity over 4 tasks" in completed.stdout
    rows = list(csv.DictReader((run / "jobs.csv").open()))
    assert [row["user"] for row in rows] == ["a", "a", "b", "b"]
    assert float(rows[3]["wait_ratio"]) == pytest.approx(ratios[3], abs=1e-6)
    written = json.loads((run / "summary.json").read_text())
    jsonschema.validate(written, json.loads(SUMMARY_SCHEMA_PATH.read_text()))
    assert (run / "fidelity.png").read_bytes().startswith(b"\x89PNG")
    assert 'src="fidelity.png"' in (run / "index.html").read_text()
    met = tmp_path / "met.yaml"
    met.write_text("fidelity_wait_ratio_p50: {max: 2}\nuser.b.wait_max_s: {max: 20}\n")
    checked = run_cli("analyze", str(run), "--check", str(met))
    assert checked.returncode == 1
    assert "check: user.b.wait_max_s = 27.5, max 20" in checked.stderr


def test_a_trace_without_origins_has_no_users_nor_fidelity(run: Path) -> None:
    jobs, summary = analyze_folder(run)
    assert summary.by_user == {} and summary.fairness_jain_users is None
    assert summary.fidelity is None and all(job.wait_ratio is None for job in jobs)
    missing = run.parent / "fidelity.yaml"
    missing.write_text("fidelity_rank_correlation: {min: 0.5}\n")
    completed = run_cli("analyze", str(run), "--check", str(missing))
    assert completed.returncode == 1
    assert "fidelity_rank_correlation: not measured in this run" in completed.stderr


@pytest.mark.unit
@pytest.mark.parametrize(
    ("quota", "cpuset", "cpus", "expected"),
    [
        (2.0, 2, 2.0, True),  # a CFS quota (docker, swarm)
        (None, 1, 1.0, True),  # Slurm's cpuset of whole CPUs
        (None, 2, 2.0, True),  # all of the node's CPUs, as asked
        (None, 2, 1.0, False),  # the whole host for a one-CPU task: no limit
        (None, 0, 1.0, False),  # nothing detected
    ],
)
def test_a_cpu_limit_is_a_quota_or_a_cpuset_the_size_of_the_request(
    quota: float | None, cpuset: int, cpus: float, expected: bool
) -> None:
    job = Job(task_id=0, workload="cpu-1", category="cpu", task_type="cpu-heavy",
              cpu_request=cpus, memory_request_bytes=GIB, gpu_request=0,
              limit_cpu_quota=quota, limit_memory_bytes=GIB)  # fmt: skip
    assert enforced(job, cpuset, host_cpus=2) is expected
