#!/usr/bin/env python3
"""Render every file that follows from workloads.yaml, from the Jinja2 templates in templates/.

    python generate.py          write the files (and remove generated files no longer wanted)
    python generate.py --check  exit 1 and name the stale files when anything is out of date

Generated files are committed; CI runs --check. This script reads the manifest, and the typed
models of the documents the tool writes (their JSON Schemas).
"""

from __future__ import annotations

import argparse
import json
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from workloads import analysis  # noqa: E402
from workloads.manifest import Manifest, ManifestError, load_manifest  # noqa: E402
from workloads.options import OPTIONS  # noqa: E402
from workloads.runtime import document, exporter  # noqa: E402
from workloads.runtime.results import SCHEMA_PATH  # noqa: E402

HEADER = "Generated from workloads.yaml by generate.py: do not edit."
# The images' default base, pinned by the digest of its multi-platform index.
BASE_IMAGE = (
    "python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea"
)
LAUNCHERS = ROOT / "workloads" / "launchers"
IMAGES = ROOT / "images"
README = ROOT / "README.md"
# README.md holds hand-written prose around generated sections, each between two markers and
# rendered from templates/<name>.md.j2: the catalogue's size, and the workload table.
README_SECTIONS = ("catalogue-summary", "workload-table")


@dataclass(frozen=True)
class Output:
    path: Path
    text: str
    executable: bool = False


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(ROOT / "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["size"] = _size
    environment.filters["module_path"] = lambda module: module.replace(".", "/") + ".py"
    return environment


def _size(size: int) -> str:
    """Docker-style size for tables and labels: 512m, 2g, 0."""
    for unit, factor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _splice(text: str, name: str, section: str) -> str:
    """Replace what lies between the markers of the section ``name`` of README.md."""
    start_marker = f"<!-- {name}: generated from workloads.yaml by generate.py -->"
    end_marker = f"<!-- end of {name} -->"
    before, start, rest = text.partition(start_marker)
    _, end, after = rest.partition(end_marker)
    if not start or not end:
        raise SystemExit(f"error: README.md lacks the markers {start_marker} ... {end_marker}")
    return f"{before}{start}\n{section}{end}{after}"


def _readme(templates: Environment, manifest: Manifest) -> Output:
    text = README.read_text()
    for name in README_SECTIONS:
        section = templates.get_template(f"{name}.md.j2").render(manifest=manifest)
        text = _splice(text, name, section)
    return Output(README, text)


def render(manifest: Manifest) -> list[Output]:
    templates = _environment()
    launcher = templates.get_template("launcher.py.j2")
    outputs = [
        Output(
            LAUNCHERS / workload.launcher,
            launcher.render(workload=workload, header=HEADER),
            executable=True,
        )
        for workload in manifest
    ]
    outputs.append(_readme(templates, manifest))
    outputs += _build_files(templates, manifest)
    outputs.append(_schema(SCHEMA_PATH, document.schema()))
    outputs.append(_schema(analysis.SUMMARY_SCHEMA_PATH, analysis.schema()))
    return outputs


def _schema(path: Path, schema: dict[str, object]) -> Output:
    """A JSON Schema generated from a pydantic model."""
    return Output(path, json.dumps(schema, indent=2) + "\n")


def _build_files(templates: Environment, manifest: Manifest) -> list[Output]:
    """Dockerfiles (two bases, one per variant), the bake definition and the compose file."""
    common = {
        "header": HEADER,
        "manifest": manifest,
        "base_image": BASE_IMAGE,
        "metrics_port": exporter.DEFAULT_PORT,
        "metrics_path": exporter.METRICS_PATH,
    }
    categories: dict[str, list[object]] = {}
    for workload in manifest:
        categories.setdefault(workload.category, []).append(workload)
    platforms = sorted({p for w in manifest if w.category != "gpu" for p in w.platforms})
    gpu_platforms = sorted({p for w in manifest if w.category == "gpu" for p in w.platforms})
    outputs = [
        Output(
            IMAGES / "base" / "Dockerfile",
            templates.get_template("base.Dockerfile.j2").render(**common),
        ),
        Output(
            IMAGES / "base-gpu" / "Dockerfile",
            templates.get_template("base-gpu.Dockerfile.j2").render(**common),
        ),
        Output(
            ROOT / "docker-bake.hcl",
            templates.get_template("docker-bake.hcl.j2").render(
                **common,
                categories=categories,
                base_platforms=platforms,
                gpu_platforms=gpu_platforms or ["linux/amd64"],
            ),
        ),
        Output(
            ROOT / "compose.yaml",
            templates.get_template("compose.yaml.j2").render(
                **common,
                variables=[
                    option.variable
                    for option in OPTIONS
                    if option.name not in ("results_dir", "work_dir")
                ],
            ),
        ),
    ]
    variant = templates.get_template("variant.Dockerfile.j2")
    outputs += [
        Output(IMAGES / workload.id / "Dockerfile", variant.render(**common, workload=workload))
        for workload in manifest
    ]
    return outputs


def _generated_files() -> set[Path]:
    """Files on disk that carry the generated header (so stale ones can be found)."""
    candidates = [*LAUNCHERS.glob("*.py"), *IMAGES.glob("*/Dockerfile")]
    return {path for path in candidates if HEADER in path.read_text()}


def _stale(outputs: list[Output]) -> list[str]:
    problems = []
    for output in outputs:
        if not output.path.is_file():
            problems.append(f"{output.path.relative_to(ROOT)} (missing)")
        elif output.path.read_text() != output.text:
            problems.append(f"{output.path.relative_to(ROOT)} (out of date)")
        elif output.executable and not output.path.stat().st_mode & stat.S_IXUSR:
            problems.append(f"{output.path.relative_to(ROOT)} (not executable)")
    wanted = {output.path for output in outputs}
    problems += [
        f"{path.relative_to(ROOT)} (no longer in the manifest)"
        for path in sorted(_generated_files() - wanted)
    ]
    return problems


def _write(outputs: list[Output]) -> None:
    for path in _generated_files() - {output.path for output in outputs}:
        path.unlink()
    for output in outputs:
        output.path.parent.mkdir(parents=True, exist_ok=True)
        if not output.path.is_file() or output.path.read_text() != output.text:
            output.path.write_text(output.text)
        if output.executable:
            output.path.chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 and name the stale files instead of writing them",
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        default=ROOT / "workloads.yaml",
        help="the manifest to render (default: workloads.yaml)",
    )
    args = parser.parse_args(argv)
    try:
        outputs = render(load_manifest(args.manifest))
    except ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check:
        stale = _stale(outputs)
        for problem in stale:
            print(f"stale: {problem}", file=sys.stderr)
        if stale:
            print("run: python generate.py", file=sys.stderr)
        return 1 if stale else 0
    _write(outputs)
    print(f"generated {len(outputs)} files from {args.manifest.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
