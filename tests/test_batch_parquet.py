"""screening batch --out results.parquet: one row per record, readable as it is by pyarrow,
pandas and DuckDB, and resumable after a kill like the JSONL output."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from screening.batch.parquet import parts_dir
from screening.batch.run import run_batch
from screening.cli import main
from screening.errors import InputError
from screening.ruleset.loading import load_ruleset

from .conftest import AS_OF, ROOT, RULES, write_cohort

MALFORMED = {3: b"{not json\n", 77: b'{"id": "dead", "deceased": true}\n'}
MALFORMED[150] = (
    b'{"id": "bad-bp", "blood_pressure": [{"systolic": 40000, "diastolic": 80, "date": "2026-11-01"}]}\n'
)
COUNT = 400
GROUP = 64


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("parquet") / "patients.jsonl", COUNT, 3, MALFORMED)


@pytest.fixture(scope="module")
def reference(patients: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "results.parquet"
    result = run_batch([patients], out, rules=RULES, as_of=AS_OF, workers=1, row_group_size=GROUP)
    assert result.records == COUNT and result.failed == 2
    return out


def rows(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


def test_one_row_per_record_with_the_outcome_lines_contents(
    patients: Path, reference: Path, tmp_path: Path
) -> None:
    lines = tmp_path / "outcome.jsonl"
    run_batch([patients], lines, rules=RULES, as_of=AS_OF, workers=1, detail="outcome")
    criteria = [c.id for c in load_ruleset(RULES).criteria]
    table = pq.read_table(reference)
    assert table.column_names == [
        "position",
        "source",
        "record_id",
        "outcome",
        "decisive",
        "missing",
        "indication_grade",
        "age",
        "sex",
        *criteria,
        "error_code",
        "error_message",
        "not_screened",
    ]
    assert str(table.schema.field("decisive").type) == "list<element: string>"
    assert pq.ParquetFile(reference).num_row_groups == -(-COUNT // GROUP)
    assert not parts_dir(reference).exists()
    assert stat.S_IMODE(reference.stat().st_mode) == 0o600
    found = rows(reference)
    assert [row["position"] for row in found] == list(range(COUNT))
    for row, raw in zip(found, lines.read_bytes().splitlines(), strict=True):
        line = orjson.loads(raw)
        assert (row["source"], row["record_id"]) == (line["source"], line["record_id"])
        if "decision" in line:
            decision = line["decision"]
            assert row["outcome"] == decision["outcome"]
            assert row["decisive"] == decision["decisive"]
            assert row["missing"] == decision["missing_information"]
            assert {c: row[c] for c in criteria} == {c["id"]: c["status"] for c in decision["criteria"]}
            assert {f: row[f] for f in ("indication_grade", "age", "sex")} == decision["facts"]
            assert row["error_code"] is row["error_message"] is row["not_screened"] is None
        else:
            assert row["outcome"] is row["decisive"] is None
            assert {row[c] for c in criteria} == {None}
    assert found[3]["error_code"] == "invalid_input" and "not valid JSON" in found[3]["error_message"]
    assert found[150]["error_code"] == "invalid_record" and "systolic" in found[150]["error_message"]
    assert found[77]["not_screened"] == "the patient is recorded as deceased"
    assert found[77]["error_code"] is None


def test_file_metadata_names_the_rules_the_date_and_the_parameters(reference: Path) -> None:
    ruleset = load_ruleset(RULES)
    metadata = pq.read_schema(reference).metadata
    assert metadata[b"screening.ruleset_id"] == ruleset.id.encode()
    assert metadata[b"screening.ruleset_version"] == ruleset.version.encode()
    assert metadata[b"screening.ruleset_sha256"] == ruleset.sha256.encode()
    assert metadata[b"screening.as_of"] == AS_OF.encode()
    assert orjson.loads(metadata[b"screening.parameters"]) == {}


def test_pandas_reads_it(reference: Path) -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_parquet(reference)
    assert len(frame) == COUNT and frame["position"].is_monotonic_increasing
    counts = frame["outcome"].value_counts()
    assert set(counts.index) == {
        "eligible",
        "eligible_with_cautions",
        "needs_review",
        "needs_information",
        "ineligible",
    }
    assert counts.sum() == COUNT - frame["error_code"].notna().sum() - frame["not_screened"].notna().sum()
    assert frame.loc[frame["outcome"] == "ineligible", "decisive"].map(len).min() >= 1


def test_duckdb_queries_it(reference: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    found = duckdb.sql(
        f"SELECT outcome, count(*) AS n FROM '{reference}' WHERE outcome IS NOT NULL GROUP BY outcome"
    ).fetchall()
    frame_counts = {outcome: 0 for outcome, _ in found}
    for row in rows(reference):
        if row["outcome"]:
            frame_counts[row["outcome"]] += 1
    assert dict(found) == frame_counts
    unknown_bp = duckdb.sql(
        f"""SELECT count(*) FROM '{reference}' WHERE "EXC-BP-UNCONTROLLED" = 'unknown'"""
    ).fetchall()
    assert unknown_bp == [(sum(row["EXC-BP-UNCONTROLLED"] == "unknown" for row in rows(reference)),)]


def test_parquet_by_option_and_refusals(patients: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.bin"
    run_batch(
        [patients], out, rules=RULES, as_of=AS_OF, workers=1, out_format="parquet", row_group_size=GROUP
    )
    assert rows(out) == rows(reference)
    with pytest.raises(InputError, match="Parquet cannot be written to standard output"):
        run_batch([patients], "-", rules=RULES, as_of=AS_OF, workers=1, out_format="parquet")
    with pytest.raises(InputError, match="--detail full is for JSONL"):
        run_batch([patients], tmp_path / "x.parquet", rules=RULES, workers=1, detail="full")
    with pytest.raises(InputError, match="already holds results"):
        run_batch([patients], out, rules=RULES, as_of=AS_OF, workers=1, out_format="parquet")
    with pytest.raises(InputError, match="was screened as of"):
        run_batch(
            [patients], out, rules=RULES, as_of="2026-01-01", workers=1, resume=True, out_format="parquet"
        )
    result = CliRunner().invoke(
        main, ["batch", str(patients), "--out", "-", "--out-format", "parquet", "--rules", str(RULES)]
    )
    assert result.exit_code == 1 and "Parquet cannot be written to standard output" in result.output


def test_resume_of_a_finished_file_keeps_it(patients: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.parquet"
    out.write_bytes(reference.read_bytes())
    resumed = run_batch([patients], out, rules=RULES, workers=1, resume=True, row_group_size=GROUP)
    assert resumed.resumed == COUNT and resumed.records == 0
    assert (
        resumed.summary.as_dict()
        == run_batch(
            [patients], tmp_path / "again.parquet", rules=RULES, as_of=AS_OF, workers=1
        ).summary.as_dict()
    )
    assert rows(out) == rows(reference) and not parts_dir(out).exists()


def _screening(out: Path, patients: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "screening.cli", "batch", str(patients), "--out", str(out)]
    command += ["--as-of", AS_OF, "--rules", str(RULES), "--workers", "2", "--chunk-size", "16", "-q"]
    command += ["--row-group-size", str(GROUP), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)


def _parts(out: Path) -> list[Path]:
    directory = parts_dir(out)
    return sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []


def test_resume_after_sigkill_writes_every_row_exactly_once_in_order(
    patients: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed.parquet"
    process = _screening(out, patients)
    deadline = time.monotonic() + 120
    while len(_parts(out)) < 2:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the batch wrote no part"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists(), "kill the batch mid-run"
    kept = sum(pq.ParquetFile(part).metadata.num_rows for part in _parts(out))
    assert 0 < kept < COUNT
    resumed = _screening(out, patients, "--resume")
    _, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 2, err  # the malformed records fail; the rest are screened
    assert rows(out) == rows(reference)
    assert [row["position"] for row in rows(out)] == list(range(COUNT))
    assert not parts_dir(out).exists()
