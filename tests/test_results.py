"""Where documents go, and that writing one is atomic and never overwrites another."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from workloads.runtime.results import (
    ResultsDirError,
    choose_results_dir,
    new_run_id,
    prepare_results_dir,
    write_document,
)

pytestmark = pytest.mark.unit


def _candidates(tmp_path: Path) -> tuple[Path, Path]:
    results, output = tmp_path / "results", tmp_path / "output"
    results.mkdir()
    output.mkdir()
    return results, output


def test_explicit_folder_wins(tmp_path: Path) -> None:
    explicit = tmp_path / "mine"
    chosen = choose_results_dir(explicit, _candidates(tmp_path), lambda path: True)
    assert chosen == explicit


def test_mounted_output_beats_an_unmounted_results(tmp_path: Path) -> None:
    results, output = _candidates(tmp_path)
    chosen = choose_results_dir(None, (results, output), lambda path: path == output)
    assert chosen == output


def test_mounted_results_comes_first(tmp_path: Path) -> None:
    results, output = _candidates(tmp_path)
    assert choose_results_dir(None, (results, output), lambda path: True) == results


def test_unmounted_but_writable_results(tmp_path: Path) -> None:
    results, output = _candidates(tmp_path)
    assert choose_results_dir(None, (results, output), lambda path: False) == results


def test_falls_back_to_the_working_directory(tmp_path: Path) -> None:
    candidates = (tmp_path / "absent-results", tmp_path / "absent-output")
    chosen = choose_results_dir(None, candidates, lambda path: False, cwd=tmp_path)
    assert chosen == tmp_path / "results"


def test_unwritable_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ResultsDirError, match="is not writable"):
        prepare_results_dir(blocker / "results")


def test_documents_never_overwrite_and_leave_no_temporary_files(tmp_path: Path) -> None:
    first = write_document(tmp_path, "cpu-1_x.json", {"n": 1})
    with pytest.raises(FileExistsError):
        write_document(tmp_path, "cpu-1_x.json", {"n": 2})
    assert first.read_text().strip().endswith("}")
    assert '"n": 1' in first.read_text()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cpu-1_x.json"]


def test_run_ids_sort_by_time_and_are_unique() -> None:
    early = datetime(2026, 1, 1, tzinfo=timezone.utc)
    late = datetime(2026, 1, 2, tzinfo=timezone.utc)
    ids = {new_run_id(early) for _ in range(100)}
    assert len(ids) == 100
    assert max(ids) < new_run_id(late)
