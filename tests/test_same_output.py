"""bench/same_output.py, on a small cohort: two runs of the same code give the same bytes
once the run times and card uuids are normalised, and a threshold changed in a copy of the
code is reported as a difference. Each side is the real `python -m screening` on the real
rule files."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .conftest import ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("same_output", ROOT / "bench" / "same_output.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    sys.modules["same_output"] = module
    spec.loader.exec_module(module)
    return module


same_output: Any = _load()

# A native record, a FHIR Bundle and a CDS Hooks request (whose cards have random uuids).
CHECKED = {"eligible.json", "HelloWorld.json", "Jacki_Feil_2dfcf7a9-5fb8-4f56-9cf3-a35a74c60438.json"}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Artefacts of the repository run twice ("before", "again") and of a copy of it whose
    caution threshold for systolic pressure is 150 instead of 140 ("changed")."""
    work = tmp_path_factory.mktemp("same-output")
    inputs = same_output.make_inputs(ROOT, work / "inputs", records=40)
    # Few check inputs and no fixture batch keep the test short; the script reads them all.
    inputs = replace(
        inputs,
        check_files=tuple(p for p in inputs.check_files if p.name in CHECKED),
        batch_fixtures=(),
    )
    assert len(inputs.check_files) == len(CHECKED)
    changed = work / "changed-tree"
    for part in ("screening", "rules"):
        shutil.copytree(ROOT / part, changed / part, ignore=shutil.ignore_patterns("__pycache__"))
    cautions = changed / "rules" / "cautions.yaml"
    text = cautions.read_text(encoding="utf-8")
    old = "  bp_caution_systolic:\n    default: 140\n"
    assert old in text
    cautions.write_text(text.replace(old, old.replace("140", "150")), encoding="utf-8")
    modes = same_output.batch_modes(ROOT) & same_output.batch_modes(changed)
    assert {"full", "compact"} <= modes
    for name, tree in (("before", ROOT), ("again", ROOT), ("changed", changed)):
        same_output.run_side(tree, inputs, work, name, modes)
    return work


def test_the_same_code_run_twice_is_byte_identical(work: Path) -> None:
    rows = same_output.compare(work / "before", work / "again")
    names = {row.name for row in rows}
    assert {
        "batch-cohort-jsonl-full.jsonl",
        "batch-cohort-jsonl-compact.jsonl",
        "batch-cohort-csv-full.jsonl",
        "batch-cohort-csv-full-report.html",
        "batch-cohort-jsonl-compact-summary.csv",
        "batch-status.txt",
        "check-json.txt",
        "check-text.txt",
        "rules-compiled.json",
    } <= names
    assert [row.name for row in rows if not row.same] == []
    assert (work / "before" / "batch-cohort-jsonl-full.jsonl").read_bytes().count(b"\n") == 40
    # What was normalised was there to normalise: the run times and the card uuids.
    report = (work / "before" / "batch-cohort-jsonl-full-report.html").read_text(encoding="utf-8")
    assert "<tr><th>Time</th><td>(normalised)</td></tr>" in report
    assert "<tr><th>Report generated</th><td>(normalised)</td></tr>" in report
    assert b'"uuid": "(normalised)"' in (work / "before" / "check-json.txt").read_bytes()
    table = same_output.report(rows)
    assert "DIFFERENT" not in table and table.count(" same") == len(rows)


def test_a_changed_threshold_is_reported_with_its_first_differing_line(work: Path) -> None:
    rows = {row.name: row for row in same_output.compare(work / "before", work / "changed")}
    assert not rows["rules-compiled.json"].same
    # The report lists the parameters, so its parameter table shows the new value.
    assert not rows["batch-cohort-jsonl-full-report.html"].same
    number, before, after, _ = same_output.first_difference(
        rows["rules-compiled.json"].before, rows["rules-compiled.json"].after
    )
    assert '"bp_systolic": 140' in before and '"bp_systolic": 150' in after
    table = same_output.report(list(rows.values()))
    assert f"rules-compiled.json: first difference at line {number}" in table
    assert "DIFFERENT" in table


def test_first_difference_names_the_check_input_it_falls_under() -> None:
    before = b"### a.json (exit 0)\nsame\n### b.json (exit 0)\nold line\n"
    after = b"### a.json (exit 0)\nsame\n### b.json (exit 0)\nnew line\n"
    assert same_output.first_difference(before, after) == (4, "old line", "new line", "### b.json (exit 0)")
    assert same_output.first_difference(b"a\n", b"a\nb\n")[1:3] == ("", "b")
    # A long line is shown from near its first difference, not clipped before it.
    number, left, right, _ = same_output.first_difference(b"x" * 1000 + b"1", b"x" * 1000 + b"2")
    assert (number, left[-2:], right[-2:], left[0]) == (1, "x1", "x2", "…")


def test_a_ref_that_does_not_exist_stops_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert same_output.main(["--before", "no-such-ref-for-same-output", "--records", "1"]) == 2
    assert "no-such-ref-for-same-output" in capsys.readouterr().err
