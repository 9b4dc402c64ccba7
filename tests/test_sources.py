"""Public cluster logs into traces, piece by piece: the format readers (SWF, Alibaba's openb pod
list), windows and offered loads, the time scale that keeps the load, requests sized to the
target's nodes, the mapping rules and map files, and the trace format's own validation. Each
test writes its own few records."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from workloads.conversion.mapping import MapError, Mapper, classify, load_map, members
from workloads.conversion.sizing import (
    CPU_FLOOR,
    MEMORY_FLOOR,
    Sizer,
    SizingError,
    parse_node,
)
from workloads.conversion.window import Scaling, WindowError, select, source_load
from workloads.manifest import get_manifest
from workloads.runfolder import Origin, TraceError, TraceFile, TraceTask, load_trace
from workloads.sizes import GIB, MIB
from workloads.sources import NodeShape, SourceError, SourceJob, detect, read_log

pytestmark = pytest.mark.unit
MANIFEST = get_manifest()

SWF = """\
; Version: 2.2
; Acknowledge: Someone, Somewhere
; MaxNodes: 4
; MaxProcs: 16
;
1 0 5 100 4 90 1024 4 200 -1 1 1 1 7 1 -1 -1 -1
2 10 0 50 2 10 2048 2 100 -1 1 2 2 8 2 -1 -1 -1
3 20 -1 -1 4 -1 -1 4 100 -1 5 1 1 7 1 -1 -1 -1
4 30 2 200 16 150 512 16 300 -1 0 3 3 9 0 -1 -1 -1
5 40 1 0 1 0 100 1 10 -1 1 1 1 7 1 -1 -1 -1
"""
PODS = """\
name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
pod-0,8000,16384,1,1000,,LS,Running,0,1000,0
pod-1,4000,8192,1,500,,BE,Succeeded,10,400,30
pod-2,2000,4096,0,0,,BE,Failed,20,100,20
pod-3,4000,8192,1,1000,,LS,Pending,25,,
"""
NODES = """\
sn,cpu_milli,memory_mib,gpu,model
node-0,32000,131072,4,V100
node-1,32000,131072,4,V100
node-2,16000,65536,2,T4
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


# -- readers -------------------------------------------------------------------------------------
def test_swf_records_in_the_log_units(tmp_path: Path) -> None:
    log = read_log(write(tmp_path, "a.swf", SWF))
    assert (log.format, len(log.records), log.node, log.nodes) == ("swf", 5, NodeShape(4.0), 4)
    assert log.capacity == NodeShape(16.0) and log.acknowledge == "Someone, Somewhere"
    first = log.records[0]
    assert (first.id, first.line, first.submit, first.wait, first.runtime) == ("1", 6, 0, 5, 100)
    assert first.memory == 1024 * 1024 * 4  # KiB per processor, times processors
    assert first.cpu_fraction == pytest.approx(0.9)
    assert (first.user, first.group, first.application, first.queue) == ("1", "1", "7", "1")
    assert (first.status, first.skip) == ("completed", None)
    assert log.records[2].skip == "cancelled before start"
    assert log.records[3].status == "failed" and log.records[3].queue == "0"


def test_swf_gz_reads_as_the_plain_log(tmp_path: Path) -> None:
    path = tmp_path / "a.swf.gz"
    path.write_bytes(gzip.compress(SWF.encode()))
    assert read_log(path).records == read_log(write(tmp_path, "a.swf", SWF)).records


def test_a_malformed_record_names_its_line(tmp_path: Path) -> None:
    broken = SWF.replace("2 10 0 50 2 10", "2 10 0 fifty 2 10")
    with pytest.raises(SourceError, match=r"b\.swf:7: not an SWF record"):
        read_log(write(tmp_path, "b.swf", broken))
    short = SWF + "6 50 1 10 1\n"
    with pytest.raises(SourceError, match=r"c\.swf:11: "):
        read_log(write(tmp_path, "c.swf", short))


def test_formats_are_detected_from_the_content(tmp_path: Path) -> None:
    assert detect(write(tmp_path, "log.txt", SWF)) == "swf"
    assert detect(write(tmp_path, "pods.data", PODS)) == "openb"
    with pytest.raises(SourceError, match="unknown trace format"):
        detect(write(tmp_path, "x.csv", "a,b,c\n1,2,3\n"))
    with pytest.raises(SourceError, match="no such file"):
        read_log(tmp_path / "absent.swf")


def test_openb_pods_and_the_node_list_beside_them(tmp_path: Path) -> None:
    write(tmp_path, "openb_node_list_gpu_node.csv", NODES)
    log = read_log(write(tmp_path, "openb_pod_list_default.csv", PODS))
    assert log.node == NodeShape(32.0, 131072 * MIB, 4) and log.nodes == 3
    assert log.capacity == NodeShape(80.0, (2 * 131072 + 65536) * MIB, 10)
    one = log.records[1]
    assert (one.wait, one.runtime, one.cpus, one.gpus, one.gpu_share) == (20, 370, 4, 1, 0.5)
    assert (one.queue, one.status, one.memory) == ("BE", "Succeeded", 8192 * MIB)
    assert log.records[0].gpu_share is None  # a whole GPU
    assert log.records[3].skip == "never scheduled"
    with pytest.raises(SourceError, match="node list, not the pod list"):
        read_log(tmp_path / "openb_node_list_gpu_node.csv")
    with pytest.raises(SourceError, match=r"p\.csv:3: not an openb pod record"):
        read_log(write(tmp_path, "p.csv", PODS.replace("pod-1,4000", "pod-1,four")))


# -- windows and loads ---------------------------------------------------------------------------
def test_windows_skip_what_never_ran_and_count_it(tmp_path: Path) -> None:
    log = read_log(write(tmp_path, "a.swf", SWF))
    window = select(log, 1, 3)
    assert [job.id for job in window.jobs] == ["2", "4", "5"]
    assert (window.first, window.last, window.skipped) == (1, 4, {"cancelled before start": 1})
    assert [job.id for job in window.carried] == ["1"]  # started at 5, runs until 105
    assert [job.id for job in select(log).jobs] == ["1", "2", "4", "5"]
    with pytest.raises(WindowError, match="past the end"):
        select(log, 5, 1)
    with pytest.raises(WindowError, match="runs past the end"):
        select(log, 3, 5)
    log.records = [log.records[2]]  # only the cancelled one
    log.records[0].index = 0
    with pytest.raises(WindowError, match="is empty"):
        select(log, 0, 1)


def test_the_source_load_counts_jobs_already_running(tmp_path: Path) -> None:
    log = read_log(write(tmp_path, "a.swf", SWF))
    window = select(log, 1, 3)  # submits 10, 30, 40: a span of 30 s
    # job 2: 2 CPUs x 30 s; job 4: 16 x 10 s; job 5: 1 x 0 s; job 1 (running): 4 x 30 s
    expected = (2 * 30 + 16 * 10 + 0 + 4 * 30) / (16 * 30)
    assert source_load(window, 16.0, lambda job: job.cpus) == pytest.approx(expected)
    assert source_load(window, None, lambda job: job.cpus) is None


def test_a_time_scale_alone_keeps_the_load_the_clamp_makes_it_grow() -> None:
    scaling = Scaling(
        submits=np.array([0.0, 100.0, 200.0, 300.0]),
        runtimes=np.array([1000.0, 50.0, 400.0, 30.0]),
        requests=np.array([1.0, 2.0, 1.0, 0.5]),
        capacity=4.0,
        low=1e-9,
        high=1e12,
    )
    assert scaling.load(1.0) == pytest.approx(scaling.load(37.0))
    clamped = Scaling(**{**scaling.__dict__, "low": 10.0, "high": 60.0})
    loads = [clamped.load(scale) for scale in (0.5, 1, 2, 5, 10, 50)]
    assert loads == sorted(loads) and loads[0] < loads[-1]
    scale, reached = clamped.scale_for(0.3)
    assert reached == pytest.approx(0.3, rel=1e-6)
    assert clamped.load(scale) == pytest.approx(0.3, rel=1e-6)
    _, nearest = clamped.scale_for(100.0)  # beyond every job running the whole span
    assert nearest == pytest.approx(clamped.load(1e6)) and nearest < 100


# -- sizes ---------------------------------------------------------------------------------------
def job(cpus: float, memory: float | None = None, gpus: int = 0, **more) -> SourceJob:
    fields = {"index": 0, "line": 1, "id": "1", "submit": 0.0, "wait": 0.0, "runtime": 10.0}
    return SourceJob(**(fields | more), cpus=cpus, memory=memory, gpus=gpus)


def test_requests_keep_the_share_of_a_node() -> None:
    sizer = Sizer(NodeShape(16.0, 64 * GIB, 4), parse_node("4:16g:1"))
    gpu, cpu = MANIFEST.get("gpu-2"), MANIFEST.get("cpu-1")
    whole = sizer.request(job(16, 64 * GIB, 4), gpu)
    assert (whole.cpus, whole.memory, whole.gpus) == (4.0, 8 * GIB, 1)  # the envelope caps
    half = sizer.request(job(4, 8 * GIB), cpu)  # a quarter of the CPUs, an eighth of memory
    assert (half.cpus, half.memory, half.gpus) == (1.0, 1 * GIB, 0)
    tiny = sizer.request(job(0.1, 1 * MIB), cpu)
    assert (tiny.cpus, tiny.memory) == (CPU_FLOOR, MEMORY_FLOOR)
    # a GPU workload asks at least one whole GPU, and a quarter of its envelope's memory
    small = sizer.request(job(1, 1 * GIB, 1, gpu_share=0.3), gpu)
    assert (small.gpus, small.memory) == (1, 2 * GIB)


def test_a_log_without_node_memory_has_the_target_memory_per_cpu() -> None:
    sizer = Sizer(NodeShape(8.0), parse_node("2:4g"))
    assert sizer.source.memory == 16 * GIB
    assert sizer.memory_share(job(1, None)) == sizer.cpu_share(job(1, None)) == 1 / 8


@pytest.mark.parametrize("text", ["2", "2:4g:1:1", "x:4g", "2:lots", "0:4g", "2:4g:-1"])
def test_a_bad_node_is_refused(text: str) -> None:
    with pytest.raises(SizingError):
        parse_node(text)


def test_a_node_without_a_gpu_cannot_hold_gpu_workloads() -> None:
    sizer = Sizer(NodeShape(8.0), parse_node("2:4g"))
    assert sizer.misfit(MANIFEST.get("gpu-1")) == "needs a GPU"
    assert sizer.misfit(MANIFEST.get("cpu-1")) is None


# -- mapping -------------------------------------------------------------------------------------
def test_the_default_rules_by_shape() -> None:
    assert classify(job(1, gpus=1, gpu_share=0.5), 0.1, 0.1) == "gpu-share"
    assert classify(job(1, gpus=2), 0.1, 0.1) == "gpu"
    assert classify(job(1), 0.1, 0.4) == "memory-heavy"
    assert classify(job(1, cpu_fraction=0.3), 0.1, 0.1) == "io"
    assert classify(job(1, cpu_fraction=0.8), 0.1, 0.1) == "cpu"
    assert classify(job(1), 0.1, 0.1) == "cpu"  # CPU use unknown
    assert {w.task_type for w in members(MANIFEST, "gpu-share")} == {"gpu-inference"}
    assert {w.task_type for w in members(MANIFEST, "memory-heavy")} == {"memory-heavy"}
    assert "memory-heavy" not in {w.task_type for w in members(MANIFEST, "io")}


def test_the_same_application_always_gets_the_same_workload() -> None:
    mapper = Mapper(MANIFEST)
    chosen = {
        mapper.choose(job(1, application="42", user=str(user), id=str(user)), "cpu")[0].id
        for user in range(30)
    }
    assert len(chosen) == 1
    by_user = {mapper.choose(job(1, user="7", id=str(n)), "io")[0].id for n in range(30)}
    assert len(by_user) == 1
    spread = {mapper.choose(job(1, application=str(n)), "cpu")[0].id for n in range(60)}
    assert len(spread) > 3


def test_a_map_file_goes_first(tmp_path: Path) -> None:
    rules = load_map(
        write(
            tmp_path,
            "map.yaml",
            "rules:\n  - when: {queue: 2}\n    use: io-3\n"
            "  - when: {user: [8, 9], class: cpu}\n    use: [cpu-1, cpu-3]\n",
        ),
        MANIFEST,
    )
    mapper = Mapper(MANIFEST, rules)
    assert mapper.choose(job(1, queue="2"), "cpu")[0].id == "io-3"
    workload, _, rule = mapper.choose(job(1, user="9"), "cpu")
    assert workload.id in ("cpu-1", "cpu-3") and rule == "map.yaml rule 2"
    assert mapper.choose(job(1, user="9"), "io")[2] == "default: io"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rules: [\n", "not YAML"),
        ("- use: io-3\n", "a map file is 'rules:'"),
        ("rules:\n  - when: {colour: red}\n    use: io-3\n", "unknown key 'colour'"),
        ("rules:\n  - use: tpu-1\n", "'tpu-1' is no workload id"),
        ("rules:\n  - when: {queue: 1}\n", "give 'use'"),
    ],
)
def test_a_bad_map_file_is_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(MapError, match=fragment) as caught:
        load_map(write(tmp_path, "m.yaml", text), MANIFEST)
    assert "\n" not in str(caught.value)


# -- the trace format ----------------------------------------------------------------------------
def task(**changes) -> dict:
    base = {
        "submit_time": 0.0, "task_id": 0, "task_name": "cpu-1", "category": "cpu",
        "task_type": "cpu-heavy", "image": "r/n/cloudai-cpu-intensive:1",
        "command": "python cpu_process_1.py --duration 30 --seed 1", "cpu_request": 2.0,
        "memory_request_gib": 1.0, "disk_request_gib": 0.0, "gpu_request": 0,
        "duration_seconds": 30.0, "seed": 1,
    }  # fmt: skip
    return base | changes


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"submit_time": -1.0}, "submit_time"),
        ({"cpu_request": 0}, "cpu_request"),
        ({"cpu_request": -1}, "cpu_request"),
        ({"memory_request_gib": float("nan")}, "memory_request_gib"),
        ({"duration_seconds": 60.0}, "--duration 30 disagrees with duration_seconds 60"),
        ({"command": "python cpu_process_1.py --duration=31"}, "disagrees"),
        ({"gpu_share": 0.5}, "needs a gpu_request"),
        ({"gpu_request": 1, "gpu_share": 1.5}, "gpu_share"),
        ({"user": ""}, "user"),
    ],
)
def test_the_loader_validates_values(tmp_path: Path, changes: dict, fragment: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"meta": {}, "tasks": [task(**changes)]}))
    with pytest.raises(TraceError, match=fragment) as caught:
        load_trace(path)
    assert "\n" not in str(caught.value)


def test_meta_is_typed_and_keeps_what_it_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"meta": {"source": {"file": "x.swf"}}, "tasks": [task()]}))
    with pytest.raises(TraceError, match=r"meta\.source\.sha256") as caught:
        load_trace(path)  # a converted trace's record of its log is whole or refused
    assert "\n" not in str(caught.value)
    theirs = {"made_by": "our exporter", "cluster": {"nodes": 4}, "seed": 9, "rate": None}
    path.write_text(json.dumps({"meta": theirs, "tasks": [task()]}))
    trace = load_trace(path)
    assert trace.meta.seed == 9 and json.loads(trace.to_json())["meta"] == theirs


def test_duplicate_ids_and_rounded_durations(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"tasks": [task(), task(submit_time=1.0)]}))
    with pytest.raises(TraceError, match="task id 0 repeats"):
        load_trace(path)
    fine = task(command="python x.py --duration 1.23457e+06", duration_seconds=1234567.8)
    path.write_text(json.dumps({"tasks": [fine, task(task_id=1, command="python x.py")]}))
    assert len(load_trace(path).tasks) == 2  # :g's six digits, and no --duration at all


def test_optional_fields_round_trip_through_json_and_csv(tmp_path: Path) -> None:
    origin = Origin(
        format="swf", id="17", line=30, user="8", queue="1", submit=123.0, wait=4.0,
        runtime=600.0, processors=12.0, memory_gib=1.5, status="completed", time_scale=6.0,
    )  # fmt: skip
    tasks = [
        TraceTask(**task(user="8", queue="1", source=origin)),
        TraceTask(**task(task_id=1, gpu_request=1, gpu_share=0.25)),
        TraceTask(**task(task_id=2)),
    ]
    trace = TraceFile(meta={"generator": "a test", "seed": 3}, tasks=tasks)
    for name, text in (("t.json", trace.to_json()), ("t.csv", trace.to_csv())):
        path = write(tmp_path, name, text)
        assert load_trace(path).tasks == tasks, name
    assert "null" not in trace.to_json()  # absent optional fields are left out
    header = trace.to_csv().splitlines()[0]
    assert header.endswith("user,queue,gpu_share,source.format,source.id,source.line,"
                           "source.user,source.queue,source.submit,source.wait,source.runtime,"
                           "source.processors,source.memory_gib,source.gpus,source.status,"
                           "source.time_scale")  # fmt: skip
    assert origin.scaled_wait == pytest.approx(4.0 / 6.0)
    assert math.isclose(tasks[0].memory_bytes, GIB)
