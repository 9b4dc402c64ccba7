"""``python -m workloads analyze DIR``: a replay's run folder into scheduler metrics joined with
what each workload's own document saw.

Writes into DIR: ``jobs.csv`` (a row per task), ``summary.json`` (schema-versioned), four
pictures and ``index.html``. ``--check THRESHOLDS.yaml`` exits 1 with a line per violated bound;
``--baseline DIR2`` prints every figure of both runs side by side.
"""

from __future__ import annotations

import sys
from pathlib import Path

from workloads.analysis.jobs import Job, load_jobs, write_jobs_csv
from workloads.analysis.summary import (
    Summary,
    comparison,
    figures,
    load_thresholds,
    summarize,
    violations,
)
from workloads.jsonio import dumps
from workloads.runfolder import read_replay

SUMMARY_FILE, JOBS_FILE = "summary.json", "jobs.csv"
SUMMARY_SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "summary.schema.json"


def analyze_folder(run: Path) -> tuple[list[Job], Summary]:
    """The rows and the summary of one run folder (RunFolderError if it is not one)."""
    jobs, record = load_jobs(run), read_replay(run)
    return jobs, summarize(jobs, record.capacity_cpus, record.replay_id)


def write(run: Path, jobs: list[Job], summary: Summary, pictures: bool = True) -> list[Path]:
    written = [write_jobs_csv(jobs, run / JOBS_FILE)]
    (run / SUMMARY_FILE).write_text(dumps(summary.model_dump()))
    written.append(run / SUMMARY_FILE)
    if pictures:
        try:
            from workloads.analysis.pictures import draw
        except ModuleNotFoundError as err:
            print(
                f"analyze: no pictures: they need {err.name} "
                "(pip install 'cloudai-workloads[report]')",
                file=sys.stderr,
            )
            return written
        written += draw(jobs, summary, run)
    return written


def warn_if_traces_differ(run: Path, baseline: Path) -> None:
    """A comparison is of one trace on two schedulers: say so when the traces differ."""
    ours, theirs = read_replay(run).trace, read_replay(baseline).trace
    if ours.sha256 != theirs.sha256:
        print(
            f"analyze: warning: {run} and {baseline} replayed different traces "
            f"({ours.path}, {ours.tasks} tasks; {theirs.path}, {theirs.tasks} tasks): "
            "their figures differ by more than the scheduler",
            file=sys.stderr,
        )


def report_missing_documents(summary: Summary) -> None:
    missing = summary.tasks_without_document
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        print(
            f"analyze: {len(missing)} of {summary.tasks} tasks left no document: {shown}",
            file=sys.stderr,
        )


def schema() -> dict:
    """summary.json's JSON Schema (generated into workloads/schema by generate.py)."""
    return Summary.model_json_schema()


__all__ = [
    "analyze_folder",
    "comparison",
    "figures",
    "load_thresholds",
    "report_missing_documents",
    "schema",
    "violations",
    "warn_if_traces_differ",
    "write",
]
