"""Kubernetes Jobs fit what was asked: the deadline follows an explicit duration, scratch data and
its ephemeral-storage request point at the same place, and a second export applies beside the
first. Every Job is checked against the Kubernetes schemas (kubernetes-validate)."""

from __future__ import annotations

import math
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT, run_cli
from workloads.exports import (
    DEADLINE_MARGIN,
    DEADLINE_SLACK,
    Images,
    kubernetes_jobs,
)
from workloads.manifest import load_manifest

pytestmark = pytest.mark.contract

MANIFEST = load_manifest(ROOT / "workloads.yaml")
WITH_DISK = [w for w in MANIFEST if w.envelope.disk]


def _valid(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    version = kubernetes_validate.latest_version()
    for job in jobs:
        kubernetes_validate.validate(job, version, strict=True)
    return jobs


def _container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_the_deadline_follows_an_explicit_duration_with_the_documented_margin() -> None:
    for duration in ("30", "3000", "90.5"):
        for job in _valid(kubernetes_jobs(MANIFEST, Images(), {"duration": duration})):
            deadline = job["spec"]["activeDeadlineSeconds"]
            assert deadline == math.ceil(float(duration) * DEADLINE_MARGIN) + DEADLINE_SLACK
            assert deadline > float(duration)  # the run always has the time it was given


def test_without_a_duration_the_deadline_covers_the_longest_default_one() -> None:
    for workload, job in zip(
        MANIFEST, _valid(kubernetes_jobs(MANIFEST, Images(), {})), strict=True
    ):
        deadline = job["spec"]["activeDeadlineSeconds"]
        assert deadline == math.ceil(workload.duration.max * DEADLINE_MARGIN) + DEADLINE_SLACK


def test_the_issue_s_job_lives_longer_than_its_duration() -> None:
    """`tasks cpu-1 --format k8s --duration 3000` once gave activeDeadlineSeconds 1350."""
    completed = run_cli("tasks", "cpu-1", "--format", "k8s", "--duration", "3000")
    assert completed.returncode == 0, completed.stderr
    (job,) = _valid(list(yaml.safe_load_all(completed.stdout)))
    env = {item["name"]: item["value"] for item in _container(job)["env"]}
    assert env["CLOUDAI_DURATION"] == "3000"
    assert job["spec"]["activeDeadlineSeconds"] >= 3000 * DEADLINE_MARGIN


def test_scratch_in_an_emptydir_is_requested_as_ephemeral_storage() -> None:
    jobs = _valid(kubernetes_jobs(WITH_DISK, Images(), {}))
    for workload, job in zip(WITH_DISK, jobs, strict=True):
        (volume,) = job["spec"]["template"]["spec"]["volumes"]
        assert volume == {"name": "results", "emptyDir": {}}
        container = _container(job)
        env = {item["name"]: item["value"] for item in container["env"]}
        # No CLOUDAI_WORK_DIR: scratch goes inside the results folder, the emptyDir.
        assert "CLOUDAI_WORK_DIR" not in env and env["CLOUDAI_RESULTS_DIR"] == "/results"
        resources = container["resources"]
        requested = resources["requests"]["ephemeral-storage"]
        assert _bytes(requested) == workload.envelope.disk
        assert _bytes(resources["limits"]["ephemeral-storage"]) >= workload.envelope.disk


def test_scratch_on_a_claim_asks_no_ephemeral_storage_of_the_node() -> None:
    jobs = _valid(kubernetes_jobs(MANIFEST, Images(), {}, results_claim="results"))
    for job in jobs:
        (volume,) = job["spec"]["template"]["spec"]["volumes"]
        assert volume["persistentVolumeClaim"] == {"claimName": "results"}
        resources = _container(job)["resources"]
        assert "ephemeral-storage" not in resources["requests"]
        assert "ephemeral-storage" not in resources["limits"]


def test_names_are_unique_per_export_and_one_label_selects_an_export() -> None:
    first = _valid(kubernetes_jobs(MANIFEST, Images(), {}))
    second = _valid(kubernetes_jobs(MANIFEST, Images(), {}))
    names = [job["metadata"]["name"] for job in first + second]
    assert len(set(names)) == len(names)  # a second apply creates Jobs beside the first
    for jobs in (first, second):
        exports = {job["metadata"]["labels"]["cloudai.org/export"] for job in jobs}
        assert len(exports) == 1  # kubectl delete jobs -l cloudai.org/export=ID
        (export,) = exports
        for workload, job in zip(MANIFEST, jobs, strict=True):
            assert job["metadata"]["name"] == f"cloudai-{workload.id}-{export}"
            assert job["spec"]["template"]["metadata"]["labels"]["cloudai.org/export"] == export
            assert len(job["metadata"]["name"]) <= 63  # a DNS label, as a Job's name must be


def test_two_runs_of_the_tasks_command_give_different_names() -> None:
    names = []
    for _ in range(2):
        completed = run_cli("tasks", "io-1", "--format", "k8s")
        assert completed.returncode == 0, completed.stderr
        (job,) = _valid(list(yaml.safe_load_all(completed.stdout)))
        names.append(job["metadata"]["name"])
    assert names[0] != names[1]


def _bytes(quantity: str) -> int:
    factors = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    for suffix, factor in factors.items():
        if quantity.endswith(suffix):
            return int(quantity.removesuffix(suffix)) * factor
    return int(quantity)
