"""The worklist (`screening batch --worklist`): one row per record and missing item, recounted
from the output file, through the CLI and the real rules."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from screening.batch.synthetic import write_records
from screening.cli import main
from screening.present.worklist import COLUMNS, ItemIds
from screening.ruleset.loading import load_ruleset

from .conftest import AS_OF, RULES, eligible_record


def batch(*args: str) -> Result:
    arguments = ["batch", *args, "--as-of", AS_OF, "--rules", str(RULES), "-w", "1", "-q"]
    return CliRunner().invoke(main, arguments)


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        return list(reader)


def expected_rows(results: Path) -> list[tuple[str, str, str, str, str]]:
    """(position, source, record_id, outcome, missing item) for each line's missing items."""
    rows = []
    for raw in results.read_bytes().splitlines():
        line = orjson.loads(raw)
        decision = line.get("decision")
        for item in decision["missing_information"] if decision else ():
            rows.append((str(line["position"]), line["source"], line["record_id"], decision["outcome"], item))
    return rows


@pytest.fixture
def patients(tmp_path: Path) -> Path:
    """An eligible record, one that needs two items, one ineligible that misses one, a bad line."""
    path = tmp_path / "patients.jsonl"
    records = [
        eligible_record(id="complete"),
        eligible_record(id="two-items", psychiatric_history=None, blood_pressure=[]),
        eligible_record(
            id="young-woman",
            birth_date="2010-05-01",
            sex="female",
            pain_conditions=[{"code": "G90.512", "display": "CRPS", "onset": "2026-10-01", "primary": True}],
        ),
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + b"{broken\n")
    return path


def test_a_row_per_record_and_missing_item(patients: Path, tmp_path: Path) -> None:
    out, worklist = tmp_path / "results.jsonl", tmp_path / "worklist.csv"
    result = batch(str(patients), "--out", str(out), "--worklist", str(worklist))
    assert result.exit_code == 2, result.stderr  # the broken line
    rows = read(worklist)
    assert [(r["position"], r["source"], r["record_id"], r["outcome"], r["obtain"]) for r in rows] == (
        expected_rows(out)
    )
    by_item = {(r["record_id"], r["item"]): r for r in rows}
    assert set(by_item) == {
        ("two-items", "answer:psychiatric_history"),
        ("two-items", "fact:bp_systolic"),
        ("young-woman", "criterion:EXC-PREGNANCY"),
    }
    psychiatric = by_item["two-items", "answer:psychiatric_history"]
    assert psychiatric["outcome"] == "needs_information" and psychiatric["source"] == f"{patients}:2"
    assert psychiatric["obtain"] == load_ruleset(RULES).answers["psychiatric_history"]
    waiting = psychiatric["criteria"].split("; ")
    assert "EXC-PSYCHOSIS (Psychosis or psychotic disorder)" in waiting
    assert "REV-PSYCH-HISTORY (Psychiatric history needing review)" in waiting
    blood_pressure = by_item["two-items", "fact:bp_systolic"]
    assert blood_pressure["obtain"] == "a blood pressure reading at rest from the last 30 days"
    # the caution left unknown (CAU-BP-STAGE2) does not wait on it: it is "not checked"
    assert [c.split(" (")[0] for c in blood_pressure["criteria"].split("; ")] == [
        "EXC-BP-UNCONTROLLED",
        "REV-BP-ELEVATED",
    ]
    pregnancy = by_item["young-woman", "criterion:EXC-PREGNANCY"]
    assert pregnancy["outcome"] == "ineligible"  # under 18, pain not chronic, and no status
    assert pregnancy["obtain"] == "a pregnancy status from the last 30 days"
    assert pregnancy["criteria"] == "EXC-PREGNANCY (Pregnancy)"


def test_a_resumed_run_has_the_whole_worklist(tmp_path: Path) -> None:
    patients = tmp_path / "patients.jsonl"
    write_records(patients, 300, 5, AS_OF)
    full, worklist = tmp_path / "full.jsonl", tmp_path / "full.csv"
    assert batch(str(patients), "--out", str(full), "--worklist", str(worklist)).exit_code == 0
    complete = read(worklist)
    assert len(complete) == len(expected_rows(full)) > 50
    data = full.read_bytes()
    part, resumed = tmp_path / "part.jsonl", tmp_path / "resumed.csv"
    part.write_bytes(data[: data.index(b"\n", len(data) // 2) + 200])  # whole lines, then part of one
    result = batch(str(patients), "--out", str(part), "--resume", "--worklist", str(resumed))
    assert result.exit_code == 0, result.stderr
    assert part.read_bytes() == data
    assert read(resumed) == complete


def test_every_missing_item_of_a_generated_batch_has_an_id(tmp_path: Path) -> None:
    patients, out, worklist = tmp_path / "p.jsonl", tmp_path / "r.jsonl", tmp_path / "w.csv"
    write_records(patients, 400, 3, AS_OF)
    assert batch(str(patients), "--out", str(out), "--worklist", str(worklist), "--compact").exit_code == 0
    rows = read(worklist)
    assert len(rows) == len(expected_rows(out)) > 50
    ruleset = load_ruleset(RULES)
    ids = {r["item"] for r in rows}
    assert "" not in ids
    known = {f"answer:{k}" for k in ruleset.answers} | {f"fact:{f}" for f in ruleset.facts}
    known |= {f"criterion:{c.id}" for c in ruleset.criteria}
    assert ids <= known and any(i.startswith("criterion:") for i in ids)
    assert all(r["criteria"] for r in rows)  # --compact lines name the criteria waiting too
    assert ItemIds(ruleset)("something no rule asks for") == ""


def test_the_worklist_is_written_like_the_report(patients: Path, tmp_path: Path) -> None:
    """0600 whatever the umask, --mode for another, overwritten, never the output itself,
    and never from standard output, which cannot be read back."""
    out, worklist = tmp_path / "results.jsonl", tmp_path / "worklist.csv"
    worklist.write_text("old")
    worklist.chmod(0o666)
    old = os.umask(0)
    try:
        assert batch(str(patients), "--out", str(out), "--worklist", str(worklist)).exit_code == 2
        assert stat.S_IMODE(worklist.stat().st_mode) == 0o600 and worklist.read_text() != "old"
        result = batch(
            str(patients), "--out", str(out), "--worklist", str(worklist), "--force", "--mode", "640"
        )
        assert result.exit_code == 2 and stat.S_IMODE(worklist.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    before = out.read_bytes()
    result = batch(str(patients), "--out", str(out), "--worklist", str(out), "--force")
    assert result.exit_code == 1 and "the report would overwrite the output" in result.stderr
    result = batch(str(patients), "--out", str(out), "--worklist", str(tmp_path / "no" / "w.csv"), "--force")
    assert result.exit_code == 1 and "no directory" in result.stderr
    assert out.read_bytes() == before
    result = batch(str(patients), "--out", "-", "--worklist", str(worklist))
    assert result.exit_code == 1 and "cannot be standard output" in result.stderr
