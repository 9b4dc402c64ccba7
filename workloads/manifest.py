"""The catalogue manifest, ``workloads.yaml``: loading and validation.

Validation happens on load; a malformed manifest raises ManifestError with one line that names
the file, the entry and the field.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from workloads.sizes import parse_size
from workloads.yamlio import YamlError, load_yaml

MANIFEST_ENV = "CLOUDAI_MANIFEST"
MANIFEST_NAME = "workloads.yaml"

Category = Literal["io", "cpu", "gpu"]
TaskType = Literal[
    "cpu-light", "cpu-heavy", "memory-heavy", "gpu-inference", "gpu-training", "mixed"
]
Platform = Literal["linux/amd64", "linux/arm64"]
Bytes = Annotated[int, BeforeValidator(parse_size)]


class ManifestError(Exception):
    """The manifest cannot be read or is invalid; the message is one line."""


class _Strict(BaseModel):
    # strict: "2" is not a number and 1.5 is not an integer; extra keys are typos, not data.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Envelope(_Strict):
    """The resources a workload declares, and stays inside."""

    cpus: float = Field(gt=0)
    memory: Bytes = Field(gt=0)
    disk: Bytes = Field(ge=0)
    gpus: int = Field(ge=0)
    gpu_memory: Bytes = Field(ge=0)


class DurationRange(_Strict):
    min: float = Field(gt=0)
    max: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> DurationRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        return self


class PrimaryMetric(_Strict):
    """The metric a workload is judged by; every completed run reports it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    unit: str = Field(min_length=1)


class Workload(_Strict):
    id: str = Field(pattern=r"^[a-z]+-[1-9][0-9]*$")
    category: Category
    number: int = Field(ge=1)
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    module: str = Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
    envelope: Envelope
    duration: DurationRange
    task_type: TaskType
    platforms: list[Platform] = Field(min_length=1)
    primary_metric: PrimaryMetric
    checks: list[str] = Field(min_length=1)  # every run of 8 iterations or more makes these

    @model_validator(mode="after")
    def _id_matches(self) -> Workload:
        expected = f"{self.category}-{self.number}"
        if self.id != expected:
            raise ValueError(f"id {self.id!r} does not match category and number ({expected!r})")
        return self

    @property
    def launcher(self) -> str:
        """The earlier scripts' file name, kept as a launcher: ``cpu_process_3.py``."""
        return f"{self.category}_process_{self.number}.py"

    def image(self, registry: str, namespace: str) -> str:
        """The tag docker-bake.hcl gives it: ``<registry>/<namespace>/cloudai-cpu-intensive:3``
        (workloads.exports.Images has the defaults)."""
        return f"{registry}/{namespace}/cloudai-{self.category}-intensive:{self.number}"


class Manifest(_Strict):
    schema_version: Literal[1]
    workloads: list[Workload] = Field(min_length=1)

    def __iter__(self) -> Iterator[Workload]:  # type: ignore[override]
        return iter(self.workloads)

    @property
    def ids(self) -> list[str]:
        return [workload.id for workload in self.workloads]

    def get(self, workload_id: str) -> Workload | None:
        return next((w for w in self.workloads if w.id == workload_id), None)


def default_manifest_path() -> Path:
    """``$CLOUDAI_MANIFEST``, else the checkout's ``workloads.yaml``, else the packaged copy."""
    if os.environ.get(MANIFEST_ENV):
        return Path(os.environ[MANIFEST_ENV])
    package = Path(__file__).resolve().parent
    checkout = package.parent / MANIFEST_NAME
    return checkout if checkout.is_file() else package / MANIFEST_NAME


@cache
def _load_cached(path: Path) -> Manifest:
    return load_manifest(path)


def get_manifest() -> Manifest:
    """The manifest at the default path, loaded once per process."""
    return _load_cached(default_manifest_path())


def load_manifest(path: Path) -> Manifest:
    try:
        raw = load_yaml(path)
    except YamlError as err:
        raise ManifestError(str(err)) from None
    if not isinstance(raw, dict):
        raise ManifestError(
            f"{path}: the manifest must be a mapping with schema_version and workloads"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as err:
        raise ManifestError(f"{path}: {_describe_errors(raw, err)}") from None
    _check_unique(path, manifest)
    return manifest


def _check_unique(path: Path, manifest: Manifest) -> None:
    seen: dict[str, int] = {}
    for index, workload in enumerate(manifest.workloads, start=1):
        if workload.id in seen:
            raise ManifestError(
                f"{path}: entry #{index} ({workload.id}): id: "
                f"duplicate of entry #{seen[workload.id]}"
            )
        seen[workload.id] = index


def _describe_errors(raw: dict[str, Any], err: ValidationError) -> str:
    errors = err.errors(include_url=False)
    first = errors[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] not in ("missing", "extra_forbidden") and "input" in first:
        message += f" (got {first['input']!r})"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{_describe_location(raw, first['loc'])}: {message}{more}"


def _describe_location(raw: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    if len(loc) >= 2 and loc[0] == "workloads" and isinstance(loc[1], int):
        entry = raw["workloads"][loc[1]]
        label = entry.get("id") if isinstance(entry, dict) else None
        where = f"entry #{loc[1] + 1}" + (f" ({label})" if isinstance(label, str) else "")
        field = ".".join(str(part) for part in loc[2:]) or "(the entry itself)"
        return f"{where}: {field}"
    return ".".join(str(part) for part in loc) or "(top level)"
