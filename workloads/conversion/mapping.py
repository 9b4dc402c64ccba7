"""Which workload replays a job: the rules of a ``--map`` file first, then the default rules by
the job's shape.

Default rules, the first that holds decides the job's class:

    gpu-share     it asked for a share of a GPU        -> the GPU inference workloads
    gpu           it asked for GPUs                    -> the GPU workloads
    memory-heavy  a larger share of a node's memory    -> the memory-heavy IO workloads
                  than of its CPUs
    io            it used its CPUs for less than half  -> the other IO workloads
                  of its run time
    cpu           the rest                             -> the CPU workloads

Within the chosen set, the same application (else the same user, else the job alone) always
gets the same workload: a stable hash of the class and that key picks it.

A map file (YAML) holds rules tried in order before the defaults; every key of ``when`` must
match (a list matches any of its values; values compare as text), ``use`` names workload ids,
categories or task types::

    rules:
      - when: {queue: "2"}            # Gaia's best-effort queue
        use: io-3
      - when: {user: ["8", "75"], class: cpu}
        use: [cpu-1, cpu-3]
      - when: {class: memory-heavy}   # class: the default rules' verdict
        use: memory-heavy
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workloads.manifest import Manifest, Workload
from workloads.sources import SourceJob
from workloads.yamlio import YamlError, load_yaml

# A job that used its CPUs for less than this fraction of its run time waited on something else.
IO_BELOW_CPU_FRACTION = 0.5
MATCH_KEYS = ("user", "group", "queue", "application", "status", "class")
CLASSES: dict[str, Callable[[Workload], bool]] = {
    "gpu-share": lambda w: w.category == "gpu" and w.task_type == "gpu-inference",
    "gpu": lambda w: w.category == "gpu",
    "memory-heavy": lambda w: w.category == "io" and w.task_type == "memory-heavy",
    "io": lambda w: w.category == "io" and w.task_type != "memory-heavy",
    "cpu": lambda w: w.category == "cpu",
}
# A class with no member in the catalogue falls back to its category.
CATEGORY = {"gpu-share": "gpu", "gpu": "gpu", "memory-heavy": "io", "io": "io", "cpu": "cpu"}


class MapError(ValueError):
    """A map file that cannot be read or names what the catalogue lacks (one line)."""


def classify(job: SourceJob, cpu_share: float, memory_share: float) -> str:
    if job.gpus and job.gpu_share is not None:
        return "gpu-share"
    if job.gpus:
        return "gpu"
    if memory_share > cpu_share:
        return "memory-heavy"
    if job.cpu_fraction is not None and job.cpu_fraction < IO_BELOW_CPU_FRACTION:
        return "io"
    return "cpu"


def members(manifest: Manifest, name: str) -> list[Workload]:
    """The workloads a class, id, category or task type names."""
    if name in CLASSES:
        found = [w for w in manifest if CLASSES[name](w)]
        return found or [w for w in manifest if w.category == CATEGORY[name]]
    return [w for w in manifest if name in (w.id, w.category, w.task_type)]


def stable_choice(candidates: list[Workload], key: str) -> Workload:
    return candidates[zlib.crc32(key.encode()) % len(candidates)]


@dataclass(frozen=True)
class Rule:
    when: dict[str, frozenset[str]]
    use: tuple[Workload, ...]
    label: str  # "map.yaml rule 2", in the trace's meta


def _values(job: SourceJob, job_class: str) -> dict[str, str | None]:
    return {
        "user": job.user,
        "group": job.group,
        "queue": job.queue,
        "application": job.application,
        "status": job.status,
        "class": job_class,
    }


class Mapper:
    def __init__(self, manifest: Manifest, rules: list[Rule] | None = None) -> None:
        self.manifest, self.rules = manifest, rules or []

    def choose(self, job: SourceJob, job_class: str) -> tuple[Workload, list[Workload], str]:
        """The workload for a job, the set it came from, and the rule that decided."""
        values = _values(job, job_class)
        for rule in self.rules:
            if all(values[key] in allowed for key, allowed in rule.when.items()):
                return self.pick(list(rule.use), job, job_class), list(rule.use), rule.label
        candidates = members(self.manifest, job_class)
        return self.pick(candidates, job, job_class), candidates, f"default: {job_class}"

    @staticmethod
    def pick(candidates: list[Workload], job: SourceJob, job_class: str) -> Workload:
        key = job.application or (f"user {job.user}" if job.user else f"job {job.id}")
        return stable_choice(candidates, f"{job_class}|{key}")


def load_map(path: Path, manifest: Manifest) -> list[Rule]:
    try:
        data = load_yaml(path)
    except YamlError as err:
        raise MapError(str(err)) from None
    if not isinstance(data, dict) or set(data) != {"rules"} or not isinstance(data["rules"], list):
        raise MapError(f"{path}: a map file is 'rules:' and a list of {{when, use}}")
    return [_rule(path, number, item, manifest) for number, item in enumerate(data["rules"], 1)]


def _rule(path: Path, number: int, item: Any, manifest: Manifest) -> Rule:
    where = f"{path}: rule {number}"
    if not isinstance(item, dict) or "use" not in item or set(item) - {"when", "use"}:
        raise MapError(f"{where}: give 'use' and optionally 'when', nothing else")
    when = item.get("when") or {}
    if not isinstance(when, dict):
        raise MapError(f"{where}: 'when' is a mapping of {', '.join(MATCH_KEYS)}")
    unknown = sorted(set(map(str, when)) - set(MATCH_KEYS))
    if unknown:
        raise MapError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(MATCH_KEYS)})")
    names = item["use"] if isinstance(item["use"], list) else [item["use"]]
    use: list[Workload] = []
    for name in map(str, names):
        found = [w for w in manifest if name in (w.id, w.category, w.task_type)]
        if not found:
            raise MapError(f"{where}: use: {name!r} is no workload id, category or task type")
        use += [w for w in found if w not in use]
    matches = {
        str(key): frozenset(map(str, value if isinstance(value, list) else [value]))
        for key, value in when.items()
    }
    return Rule(matches, tuple(use), f"{path.name} rule {number}")
