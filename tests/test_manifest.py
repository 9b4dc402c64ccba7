"""The manifest: the real catalogue loads, and every kind of malformed entry is named clearly."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from workloads.manifest import ManifestError, load_manifest

pytestmark = pytest.mark.contract

MANIFEST = ROOT / "workloads.yaml"


def _raw() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "workloads.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_ids_are_unique_and_numbered_from_one_in_each_category() -> None:
    manifest = load_manifest(MANIFEST)
    assert len(set(manifest.ids)) == len(manifest.ids)
    for category in ("io", "cpu", "gpu"):
        numbers = [w.number for w in manifest if w.category == category]
        assert numbers == list(range(1, len(numbers) + 1)), category
    assert manifest.get("cpu-3").launcher == "cpu_process_3.py"
    assert manifest.get("gpu-2").envelope.gpus == 1
    assert manifest.get("io-1").envelope.disk == 2 << 30


def _broken(mutate: Any) -> dict[str, Any]:
    data = copy.deepcopy(_raw())
    mutate(data)
    return data


def _entry(data: dict[str, Any], workload_id: str) -> dict[str, Any]:
    return next(entry for entry in data["workloads"] if entry["id"] == workload_id)


def _position(workload_id: str) -> int:
    """The 1-based position of ``workload_id`` in the manifest, as errors number entries."""
    return [entry["id"] for entry in _raw()["workloads"]].index(workload_id) + 1


def _named(workload_id: str) -> str:
    """How an error names the manifest's entry ``workload_id``."""
    return f"entry #{_position(workload_id)} ({workload_id})"


CASES = {
    "duplicate id": (
        lambda d: d["workloads"].append(copy.deepcopy(_entry(d, "cpu-3"))),
        [
            f"entry #{len(_raw()['workloads']) + 1} (cpu-3)",  # appended: the last entry
            f"id: duplicate of entry #{_position('cpu-3')}",
        ],
    ),
    "missing field": (
        lambda d: _entry(d, "io-2").pop("title"),
        [_named("io-2"), "title", "Field required"],
    ),
    "unknown category": (
        lambda d: _entry(d, "cpu-4").update(category="tpu"),
        [_named("cpu-4"), "category", "'tpu'"],
    ),
    "min greater than max": (
        lambda d: _entry(d, "gpu-2").update(duration={"min": 900, "max": 300}),
        [_named("gpu-2"), "duration", "min (900) is greater than max (300)"],
    ),
    "wrong type": (
        lambda d: _entry(d, "cpu-1")["envelope"].update(cpus="two"),
        [_named("cpu-1"), "envelope.cpus", "'two'"],
    ),
    "integer expected": (
        lambda d: _entry(d, "io-5").update(number=5.5),
        [_named("io-5"), "number", "5.5"],
    ),
    "bad size": (
        lambda d: _entry(d, "io-3")["envelope"].update(memory="lots"),
        [_named("io-3"), "envelope.memory", "invalid size 'lots'"],
    ),
    "unknown key": (
        lambda d: _entry(d, "io-4").update(colour="blue"),
        [_named("io-4"), "colour", "Extra inputs are not permitted"],
    ),
    "id does not match": (
        lambda d: _entry(d, "cpu-6").update(number=9),
        [_named("cpu-6"), "does not match category and number ('cpu-9')"],
    ),
    "unknown task type": (
        lambda d: _entry(d, "gpu-6").update(task_type="gpu-heavy"),
        [_named("gpu-6"), "task_type"],
    ),
    "no platforms": (
        lambda d: _entry(d, "io-7").update(platforms=[]),
        [_named("io-7"), "platforms"],
    ),
    "schema version": (
        lambda d: d.update(schema_version=2),
        ["schema_version"],
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_malformed_manifest_names_entry_and_field(tmp_path: Path, case: str) -> None:
    mutate, fragments = CASES[case]
    with pytest.raises(ManifestError) as raised:
        load_manifest(_write(tmp_path, _broken(mutate)))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "workloads.yaml"))
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("schema_version: 1\nworkloads: [\n", "line"),
        ("- just\n- a list\n", "must be a mapping"),
        ("", "must be a mapping"),
    ],
)
def test_unreadable_manifest_is_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment) as raised:
        load_manifest(_write(tmp_path, text))
    assert "\n" not in str(raised.value)


def test_a_manifest_that_is_not_text_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "workloads.yaml"
    path.write_bytes(b"\xff\xfe schema_version")
    with pytest.raises(ManifestError, match="not YAML") as raised:
        load_manifest(path)
    assert "\n" not in str(raised.value)


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "absent.yaml")


def test_cli_reports_a_malformed_manifest_and_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, _broken(lambda d: _entry(d, "cpu-4").update(category="tpu")))
    completed = run_cli("list", env={"CLOUDAI_MANIFEST": str(path)})
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert f"{_named('cpu-4')}: category" in completed.stderr
