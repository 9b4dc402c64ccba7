"""Controls: flags and CLOUDAI_ variables, sizes, and how parameters are resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from workloads.manifest import load_manifest
from workloads.options import OPTIONS, Given, UsageError, gather
from workloads.runtime.limits import Limits
from workloads.runtime.params import (
    InsufficientMemory,
    draw_duration,
    memory_budget,
    resolve_params,
)
from workloads.sizes import parse_size

pytestmark = pytest.mark.unit

WORKLOAD = load_manifest(ROOT / "workloads.yaml").get("cpu-1")


def test_every_option_has_a_flag_and_a_variable() -> None:
    names = {option.flag: option.variable for option in OPTIONS}
    assert names == {
        "--duration": "CLOUDAI_DURATION",
        "--iterations": "CLOUDAI_ITERATIONS",
        "--scale": "CLOUDAI_SCALE",
        "--seed": "CLOUDAI_SEED",
        "--workers": "CLOUDAI_WORKERS",
        "--memory": "CLOUDAI_MEMORY",
        "--profile": "CLOUDAI_PROFILE",
        "--intensity": "CLOUDAI_INTENSITY",
        "--device": "CLOUDAI_DEVICE",
        "--results-dir": "CLOUDAI_RESULTS_DIR",
        "--work-dir": "CLOUDAI_WORK_DIR",
        "--disk": "CLOUDAI_DISK",
        "--sample-interval": "CLOUDAI_SAMPLE_INTERVAL",
        "--progress": "CLOUDAI_PROGRESS",
        "--metrics-port": "CLOUDAI_METRICS_PORT",
        "--metrics-textfile": "CLOUDAI_METRICS_TEXTFILE",
    }


def test_flag_beats_variable_and_variables_are_parsed() -> None:
    given = gather(
        {"duration": 5.0, "seed": None},
        {
            "CLOUDAI_DURATION": "9",
            "CLOUDAI_SEED": "42",
            "CLOUDAI_MEMORY": "1.5g",
            "CLOUDAI_PROFILE": "wave",
            "CLOUDAI_SCALE": "",
        },
    )
    assert given["duration"] == Given(5.0, "flag")
    assert given["seed"] == Given(42, "env")
    assert given["memory"] == Given(3 << 29, "env")
    assert given["profile"] == Given("wave", "env")
    assert "scale" not in given  # an empty variable counts as unset


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CLOUDAI_DURATION", "soon"),
        ("CLOUDAI_WORKERS", "0"),
        ("CLOUDAI_INTENSITY", "150"),
        ("CLOUDAI_PROFILE", "spiky"),
        ("CLOUDAI_MEMORY", "lots"),
        ("CLOUDAI_DEVICE", "tpu"),
        ("CLOUDAI_SEED", "-1"),
        ("CLOUDAI_SAMPLE_INTERVAL", "0.001"),
    ],
)
def test_bad_variable_is_a_usage_error_naming_it(variable: str, value: str) -> None:
    with pytest.raises(UsageError, match=f"^{variable}: "):
        gather({}, {variable: value})


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512m", 512 << 20),
        ("2g", 2 << 30),
        ("1.5GiB", 3 << 29),
        ("1GB", 10**9),
        ("4096", 4096),
        (1024, 1024),
        ("64k", 64 << 10),
        ("1 MiB", 1 << 20),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-5m", "1.2.3g", "5 parsecs"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


def _limits(memory_limit: int | None = None, quota: float | None = None) -> Limits:
    return Limits(
        cgroup_version=2,
        cpu_quota=quota,
        cpuset=None,
        affinity=(0, 1, 2, 3),
        host_cpus=4,
        memory_limit=memory_limit,
        host_memory=16 << 30,
        memory_available=12 << 30,
    )


def test_defaults_come_from_seed_limits_and_envelope(tmp_path: Path) -> None:
    given = {"seed": Given(7, "flag"), "results_dir": Given(tmp_path, "flag")}
    params = resolve_params(WORKLOAD, given, _limits(quota=1.5))
    assert params.duration == draw_duration(WORKLOAD, 7)
    assert WORKLOAD.duration.min <= params.duration <= WORKLOAD.duration.max
    assert params.workers == 2  # ceil(1.5), inside the envelope's 2 cores
    assert (params.scale, params.profile, params.intensity, params.device) == (
        1.0,
        "steady",
        100.0,
        "auto",
    )
    assert params.sources["duration"] == "manifest"
    other = resolve_params(WORKLOAD, {**given, "seed": Given(8, "flag")}, _limits())
    assert other.duration != params.duration


def test_random_seed_is_recorded(tmp_path: Path) -> None:
    params = resolve_params(WORKLOAD, {"results_dir": Given(tmp_path, "flag")}, _limits())
    assert params.sources["seed"] == "random"
    assert 0 <= params.seed < 2**32


def test_memory_budget_leaves_headroom_under_the_limit(tmp_path: Path) -> None:
    params = resolve_params(WORKLOAD, {"seed": Given(1, "flag")}, _limits(600 << 20))
    budget, warning = memory_budget(WORKLOAD, params, _limits(600 << 20), 80 << 20, 2)
    assert warning is None
    assert budget + (80 << 20) + 2 * (48 << 20) <= 600 << 20
    assert budget > 200 << 20


def test_memory_budget_defaults_to_the_envelope_on_a_big_host() -> None:
    params = resolve_params(WORKLOAD, {"seed": Given(1, "flag")}, _limits())
    budget, _ = memory_budget(WORKLOAD, params, _limits(), 80 << 20, 2)
    assert budget == WORKLOAD.envelope.memory - (80 << 20) - 2 * (48 << 20)


def test_explicit_memory_above_the_limit_is_lowered_with_a_warning() -> None:
    params = resolve_params(WORKLOAD, {"memory": Given(4 << 30, "flag")}, _limits(1 << 30))
    budget, warning = memory_budget(WORKLOAD, params, _limits(1 << 30), 80 << 20, 2)
    assert budget < 1 << 30
    assert warning and "lowered" in warning


def test_tiny_memory_limit_is_refused_clearly() -> None:
    params = resolve_params(WORKLOAD, {}, _limits(128 << 20))
    with pytest.raises(InsufficientMemory, match=r"below the 16\.0 MiB minimum"):
        memory_budget(WORKLOAD, params, _limits(128 << 20), 80 << 20, 2)
