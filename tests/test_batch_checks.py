"""Batch runs that cannot start change nothing; resume checks its input; Ctrl-C and progress."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import screening.batch.run as batch
from screening.batch.inputs import input_size
from screening.batch.pool import WorkerPool
from screening.batch.run import run_batch
from screening.batch.synthetic import write_records
from screening.cli import main
from screening.errors import InputError
from screening.ruleset.loading import load_ruleset

from .conftest import AS_OF, ROOT, RULES


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("checks") / "patients.jsonl"
    write_records(path, 60, 4, AS_OF)
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["batch", *args, "--as-of", AS_OF, "--rules", str(RULES), "-w", "1", "-q"]
    )
    return result.exit_code, result.stderr


def test_a_batch_that_cannot_start_leaves_the_output_as_it_was(patients: Path, tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("id,foo\n1,2\n")
    out = tmp_path / "y.jsonl"
    out.write_bytes(b"kept\n")
    code, err = cli(str(odd), "--out", str(out), "--force")
    assert code == 1 and "unknown columns ['foo']" in err and "Traceback" not in err
    assert out.read_bytes() == b"kept\n"
    code, err = cli(
        str(patients), str(odd), "--out", str(out), "--force"
    )  # the CSV is checked before any record
    assert code == 1 and "unknown columns" in err
    assert out.read_bytes() == b"kept\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "/nonexistent-dir/x.jsonl"], "cannot write the output: no directory /nonexistent-dir"),
        (["--out", "OUT", "--report", "/nonexistent-dir/r.html"], "cannot write the report"),
        (["--out", "OUT", "--summary", "/nonexistent-dir/s.csv"], "cannot write the report"),
        (["--out", "OUT", "--input-format", "jsonl", "DIR"], "is not a file; --input-format jsonl"),
        (["--out", "OUT", "--input-format", "bulk"], "must be a directory"),
    ],
)
def test_bad_paths_fail_at_once_with_a_message(
    patients: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out.jsonl"
    args = [str(out) if a == "OUT" else str(tmp_path) if a == "DIR" else a for a in args]
    inputs = [] if str(tmp_path) in args else [str(patients)]
    if str(tmp_path) in args:
        args.remove(str(tmp_path))
        inputs = [str(tmp_path)]
    code, err = cli(*inputs, *args)
    assert code == 1 and message in err and "Traceback" not in err, err
    assert not out.exists()  # nothing was screened, nothing written


def test_resume_refuses_a_different_file_at_the_same_path(patients: Path, tmp_path: Path) -> None:
    data = tmp_path / "p.jsonl"
    data.write_bytes(patients.read_bytes())
    out = tmp_path / "out.jsonl"
    run_batch([data], out, rules=RULES, as_of=AS_OF, workers=1)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:30]))
    shuffled = data.read_bytes().splitlines(keepends=True)
    random.Random(3).shuffle(shuffled)
    data.write_bytes(b"".join(shuffled))
    with pytest.raises(InputError, match="another record at position"):
        run_batch([data], out, rules=RULES, workers=1, resume=True)
    assert len(out.read_bytes().splitlines()) == 30  # left as it was


def test_resume_accepts_the_same_file_by_another_path(
    patients: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    reference = tmp_path / "reference.jsonl"
    run_batch([patients], reference, rules=RULES, as_of=AS_OF, workers=1)
    out.write_bytes(b"".join(reference.read_bytes().splitlines(keepends=True)[:25]))
    monkeypatch.chdir(patients.parent)
    result = run_batch([patients.name], out, rules=RULES, workers=1, resume=True)  # relative, not absolute
    assert result.resumed == 25 and result.records == 35
    resumed = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    expected = [orjson.loads(line) for line in reference.read_bytes().splitlines()]
    assert [line["record_id"] for line in resumed] == [line["record_id"] for line in expected]
    assert [line["position"] for line in resumed] == list(range(60))
    assert resumed[25]["source"] == f"{patients.name}:26"


def test_ctrl_c_after_the_last_record_is_not_an_interruption(
    patients: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGINT while the last chunk is written, or while two workers shut down."""

    class LateWriter(batch.LineWriter):
        def write(self, block: bytes, lines: int) -> None:
            super().write(block, lines)
            if self.lines == 60:
                os.kill(os.getpid(), signal.SIGINT)

    class LatePool(WorkerPool):
        def shutdown(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            super().shutdown()

    monkeypatch.setattr(batch, "LineWriter", LateWriter)
    result = run_batch([patients], tmp_path / "one.jsonl", rules=RULES, as_of=AS_OF, workers=1, chunk_size=20)
    assert result.records == 60 and not result.interrupted
    monkeypatch.setattr(batch, "LineWriter", batch_output_writer())
    monkeypatch.setattr(batch, "WorkerPool", LatePool)
    result = run_batch([patients], tmp_path / "two.jsonl", rules=RULES, as_of=AS_OF, workers=2, chunk_size=20)
    assert result.records == 60 and not result.interrupted


def batch_output_writer() -> type:
    from screening.batch.output import LineWriter

    return LineWriter


def test_ctrl_c_with_records_left_is_an_interruption(
    patients: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class EarlyWriter(batch.LineWriter):
        def write(self, block: bytes, lines: int) -> None:
            super().write(block, lines)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(batch, "LineWriter", EarlyWriter)
    result = run_batch([patients], tmp_path / "one.jsonl", rules=RULES, as_of=AS_OF, workers=1, chunk_size=20)
    assert result.records == 20 and result.interrupted


def test_bulk_export_records_carry_the_export_size_for_the_progress_bar() -> None:
    bulk = ROOT / "tests" / "fixtures" / "fhir" / "synthea-bulk-ndjson"
    ruleset = load_ruleset(RULES)
    items = list(batch._chain_inputs([bulk], ["bulk"], ruleset, []))
    assert items and all(size > 0 for _, _, size in items)
    assert sum(size for _, _, size in items) == input_size([bulk])


def test_bom_csv_row_ids_and_long_values(tmp_path: Path) -> None:
    bom = tmp_path / "bom.jsonl"
    write_records(bom, 3, 5, AS_OF)
    bom.write_bytes(b"\xef\xbb\xbf" + bom.read_bytes())
    huge = tmp_path / "huge.jsonl"
    huge.write_bytes(orjson.dumps({"id": "big", "sex": "x" * 100_000}) + b"\n")
    table = tmp_path / "p.csv"
    write_records(table, 3, 5, AS_OF, "csv")
    rows = table.read_text().splitlines()
    table.write_text("\n".join([*rows[:2], rows[2] + ",extra"]) + "\n")
    out = tmp_path / "out.jsonl"
    run_batch([bom, huge, table], out, rules=RULES, as_of=AS_OF, workers=1)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert all("decision" in line for line in lines[:3])  # the BOM is not part of the first record
    error = lines[3]["error"]
    assert lines[3]["record_id"] == "big" and len(out.read_bytes().splitlines()[3]) < 2_000
    assert "x" * 79 + "…" in error["message"] and "x" * 81 not in error["problems"][0]["message"]
    assert lines[5]["error"]["code"] == "invalid_csv_row"
    assert lines[5]["record_id"] == rows[2].split(",", 1)[0]
