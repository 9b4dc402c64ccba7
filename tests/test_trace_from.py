"""``trace --from``: a public cluster log into a replayable trace with one command, the same
output options as a seeded trace, bad input as one line and exit 2 with nothing written; the
public logs of ../shared/traces when they are there; and a converted window replayed on a real
engine and analyzed (system tier)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import ROOT, run_cli
from tests.test_sources import NODES, PODS, SWF, write
from workloads.analysis import SUMMARY_SCHEMA_PATH
from workloads.conversion.convert import DEFAULT_DURATION_RANGE
from workloads.manifest import get_manifest
from workloads.runfolder import load_trace

pytestmark = pytest.mark.contract
MANIFEST = get_manifest()
TRACES = ROOT.parent / "shared" / "traces"
GAIA = TRACES / "swf" / "UniLu-Gaia-2014-1.swf"
ATLAS = TRACES / "swf" / "LLNL-Atlas-2006-2.1-cln.swf"
OPENB = TRACES / "alibaba-gpu-v2023" / "openb_pod_list_default.csv"
needs_traces = pytest.mark.skipif(not TRACES.is_dir(), reason=f"no public traces in {TRACES}")


def convert(*args: str) -> dict:
    completed = run_cli("trace", *args)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_an_swf_log_becomes_a_trace_that_keeps_its_load(tmp_path: Path) -> None:
    log = write(tmp_path, "a.swf", SWF)
    trace = convert("--from", str(log), "--node", "2:4g", "--nodes", "2", "--seed", "3")
    source = trace["meta"]["source"]
    assert source["sha256"] == hashlib.sha256(log.read_bytes()).hexdigest()
    assert (source["file"], source["format"], source["records"]) == ("a.swf", "swf", 5)
    assert source["window"]["skipped"] == {"cancelled before start": 1}
    assert source["time_scale_from"] == "the source's load"
    load = source["load"]
    assert load["matched"] == "cpus"
    assert load["target"]["cpus"] == pytest.approx(load["source"]["cpus"], rel=0.01)
    loaded = load_trace(write(tmp_path, "t.json", json.dumps(trace)))
    assert loaded.meta.to_dict() == trace["meta"]  # the typed meta reads back what was written
    tasks = loaded.tasks
    scale = source["time_scale"]
    assert [task.source.id for task in tasks] == ["1", "2", "4", "5"]
    assert [task.submit_time for task in tasks] == [round(s / scale, 3) for s in (0, 10, 30, 40)]
    low, high = DEFAULT_DURATION_RANGE
    for task in tasks:
        workload = MANIFEST.get(task.task_name)
        assert low <= task.duration_seconds <= high
        assert task.cpu_request <= min(workload.envelope.cpus, 2.0)
        assert task.memory_bytes <= min(workload.envelope.memory, 4 << 30)
        assert (task.user, task.queue) == (task.source.user, task.source.queue)
        assert task.source.time_scale == scale
        if task.cpu_request < workload.envelope.cpus:  # the workload sizes itself to it
            assert f"--workers {-(-task.cpu_request // 1):.0f}" in task.command
    whole = tasks[2]  # job 4 took every processor: 4 nodes of 4
    assert whole.cpu_request == min(2.0, MANIFEST.get(whole.task_name).envelope.cpus)
    assert convert("--from", str(log), "--node", "2:4g", "--nodes", "2", "--seed", "3") == trace


def test_time_scale_span_and_load_set_the_clock(tmp_path: Path) -> None:
    log = str(write(tmp_path, "a.swf", SWF))
    fixed = convert("--from", log, "--time-scale", "10", "--duration-range", "1:3")
    assert [t["submit_time"] for t in fixed["tasks"]] == [0.0, 1.0, 3.0, 4.0]
    # run times 100, 50, 200 and 0 s, divided by 10, clamped to 1:3
    assert [t["duration_seconds"] for t in fixed["tasks"]] == [3.0, 3.0, 3.0, 1.0]
    assert fixed["meta"]["source"]["durations_clamped"] == {"raised_to_min": 1, "cut_to_max": 3}
    spanned = convert("--from", log, "--span", "8")
    assert spanned["meta"]["source"]["time_scale"] == pytest.approx(40 / 8)
    assert spanned["tasks"][-1]["submit_time"] == pytest.approx(8.0)
    loaded = convert("--from", log, "--load", "0.5", "--node", "2:4g", "--window", "1:3")
    assert loaded["meta"]["source"]["load"]["target"]["cpus"] == pytest.approx(0.5, rel=0.01)
    assert loaded["meta"]["source"]["window"]["running_when_it_opens"] == 1


def test_the_same_output_options_as_a_seeded_trace(tmp_path: Path) -> None:
    log = str(write(tmp_path, "a.swf", SWF))
    common = ("--from", log, "--registry", "r.example:5000", "--namespace", "lab", "--scale", "0.1")
    text = run_cli("trace", *common, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["source.id"] for row in rows] == ["1", "2", "4", "5"]
    assert (
        load_trace(write(tmp_path, "t.csv", text)).tasks
        == load_trace(write(tmp_path, "t.json", run_cli("trace", *common).stdout)).tasks
    )
    assert all(row["image"].startswith("r.example:5000/lab/") for row in rows)
    assert all("--scale 0.1" in row["command"] for row in rows)
    lines = run_cli("trace", *common, "--format", "cloudai").stdout.splitlines()
    assert [json.loads(line)["user_id"] for line in lines] == ["1", "2", "3", "1"]


def test_an_openb_pod_list_becomes_gpu_tasks(tmp_path: Path) -> None:
    write(tmp_path, "openb_node_list_gpu_node.csv", NODES)
    pods = write(tmp_path, "openb_pod_list_default.csv", PODS)
    trace = convert("--from", str(pods), "--node", "4:16g:1", "--nodes", "2")
    source = trace["meta"]["source"]
    assert source["format"] == "openb" and source["window"]["skipped"] == {"never scheduled": 1}
    assert source["load"]["matched"] == "gpus"
    tasks = {task["source"]["id"]: task for task in trace["tasks"]}
    assert tasks["pod-0"]["category"] == "gpu" and "gpu_share" not in tasks["pod-0"]
    shared = tasks["pod-1"]
    assert (shared["task_type"], shared["gpu_request"], shared["gpu_share"]) == (
        "gpu-inference", 1, 0.5,
    )  # fmt: skip
    assert shared["queue"] == "BE" and shared["source"]["wait"] == 20
    assert tasks["pod-2"]["gpu_request"] == 0 and tasks["pod-2"]["category"] != "gpu"


def test_a_map_file_chooses_workloads(tmp_path: Path) -> None:
    rules = write(tmp_path, "map.yaml", "rules:\n  - when: {queue: [0, 2]}\n    use: io-3\n")
    trace = convert("--from", str(write(tmp_path, "a.swf", SWF)), "--map", str(rules))
    names = {task["source"]["id"]: task["task_name"] for task in trace["tasks"]}
    assert names["2"] == names["4"] == "io-3"
    assert trace["meta"]["source"]["mapping"]["by_rule"]["map.yaml rule 1"] == 2


@pytest.mark.parametrize(
    ("setup", "args", "fragment"),
    [
        (("x.log", "hello\n"), (), "unknown trace format"),
        (("a.swf", SWF + "6 1 2\n"), (), "a.swf:11: not an SWF record"),
        (("a.swf", SWF), ("--source-format", "openb"), "not an openb pod list"),
        (("a.swf", SWF), ("--window", "5:1"), "starts past the end"),
        (("a.swf", SWF), ("--window", "2:1", "--map", "nothing.yaml"), "cannot read it"),
        (("a.swf", SWF), ("--window", "3:3"), "runs past the end"),
        (("a.swf", SWF), ("--map", "map.yaml"), "'tpu' is no workload id"),
        (("a.swf", SWF), ("--window", "2:0"), "must be at least 1"),
        (("a.swf", SWF), ("--node", "2g"), "CPUS:MEMORY"),
        (("a.swf", SWF), ("--time-scale", "2", "--span", "3"), "give one"),
        (("a.swf", SWF), ("--load", "1", "--span", "3"), "does not go with"),
        (("a.swf", SWF), ("--tasks", "3"), "--tasks makes a seeded trace"),
        (("a.swf", SWF), ("--node", "2:4g", "--source-node", "1:100m:0"), None),
        (("pods.csv", PODS), (), "does not say how large its nodes are"),
        (("pods.csv", PODS), ("--source-node", "8:32g:2", "--node", "2:4g"), "needs a GPU"),
        (("pods.csv", PODS), ("--source-node", "8:32g:2"), "give --load, --time-scale or --span"),
    ],
)
def test_bad_input_is_one_line_and_nothing_written(
    tmp_path: Path, setup: tuple[str, str], args: tuple[str, ...], fragment: str | None
) -> None:
    log = write(tmp_path, *setup)
    write(tmp_path, "map.yaml", "rules:\n  - use: tpu\n")
    output = tmp_path / "out.json"
    args = tuple(str(tmp_path / arg) if arg.endswith(".yaml") else arg for arg in args)
    completed = run_cli("trace", "--from", str(log), *args, "--output", str(output))
    if fragment is None:  # a plain success among them: the parameters around it are sound
        assert completed.returncode == 0, completed.stderr
        return
    assert completed.returncode == 2, completed.stdout
    assert completed.stderr.count("\n") == 1 and fragment in completed.stderr, completed.stderr
    assert not output.exists() and completed.stdout == ""


def test_conversion_flags_need_a_log_and_an_output_folder_must_exist(tmp_path: Path) -> None:
    completed = run_cli("trace", "--window", "0:5")
    assert completed.returncode == 2 and "--window converts a log" in completed.stderr
    log = str(write(tmp_path, "a.swf", SWF))
    missing = run_cli("trace", "--from", log, "--output", str(tmp_path / "no" / "t.json"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


# -- the public logs -----------------------------------------------------------------------------
@needs_traces
def test_a_window_of_the_gaia_log(tmp_path: Path) -> None:
    output = tmp_path / "gaia.json"
    completed = run_cli(
        "trace", "--from", str(GAIA), "--window", "1000:50", "--node", "2:4g", "--nodes", "3",
        "--output", str(output),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    trace = load_trace(output)
    source = trace.meta.source
    assert len(trace.tasks) == 50 and source.window.running_when_it_opens > 0
    assert source.load.target["cpus"] == pytest.approx(source.load.source["cpus"], 0.01)
    assert {task.category for task in trace.tasks} <= {"io", "cpu"}
    assert all(task.source.wait is not None and task.user for task in trace.tasks)
    assert source.acknowledge == "Joseph Emeras, SnT"


@needs_traces
def test_windows_of_the_atlas_log_and_the_gpu_pod_list() -> None:
    atlas = convert("--from", str(ATLAS), "--window", "0:200", "--span", "600")
    skipped = atlas["meta"]["source"]["window"]["skipped"]
    assert skipped.get("cancelled before start", 0) > 0
    assert all("wait" not in task["source"] for task in atlas["tasks"])  # the log has none
    pods = convert(
        "--from", str(OPENB), "--window", "2000:40", "--node", "8:32g:1", "--load", "0.8"
    )
    assert pods["meta"]["source"]["load"]["target"]["gpus"] == pytest.approx(0.8, rel=0.01)
    shares = [task for task in pods["tasks"] if "gpu_share" in task]
    assert shares and all(task["task_type"] == "gpu-inference" for task in shares)


# -- replayed on a real engine, and analyzed ------------------------------------------------------
@pytest.mark.docker
def test_a_converted_window_replays_unchanged_and_analyze_reads_its_origin(
    tmp_path: Path, pushed_images: str
) -> None:
    from tests.engine import NAMESPACE, REGISTRY

    trace = tmp_path / "trace.json"
    completed = run_cli(
        "trace", "--from", str(write(tmp_path, "a.swf", SWF)), "--node", "2:2g",
        "--time-scale", "10", "--duration-range", "3:5", "--scale", "0.05",
        "--registry", REGISTRY, "--namespace", NAMESPACE, "--output", str(trace),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    run = tmp_path / "run"
    replayed = run_cli("replay", str(trace), "--engine", "docker", "--output", str(run))
    assert replayed.returncode == 0, replayed.stdout[-3000:] + replayed.stderr[-3000:]
    record = json.loads((run / "replay.json").read_text())
    assert record["trace"]["meta"] == json.loads(trace.read_text())["meta"]  # the log, as written
    analyzed = run_cli("analyze", str(run))
    assert analyzed.returncode == 0, analyzed.stderr
    assert "fidelity over 4 tasks" in analyzed.stdout
    summary = json.loads((run / "summary.json").read_text())
    jsonschema.validate(summary, json.loads(SUMMARY_SCHEMA_PATH.read_text()))
    assert summary["states"] == {"FINISH": 4} and set(summary["by_user"]) == {"1", "2", "3"}
    assert summary["fidelity"]["tasks"] == 4 and (run / "fidelity.png").is_file()
