"""Batch screening: one line per record, in order, across workers, after kills and with CSV."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from screening.batch.csv_layout import CSV_COLUMNS
from screening.batch.inputs import detect_format
from screening.batch.run import run_batch
from screening.batch.synthetic import generate_records, write_records
from screening.cli import main
from screening.errors import InputError

from .conftest import AS_OF, ROOT, RULES, write_cohort

MALFORMED = {
    7: b"{not json\n",
    300: b"[1, 2, 3]\n",
    555: b'{"id": "bad-bp", "blood_pressure": [{"systolic": 40000, "diastolic": 80, "date": "2026-11-01"}]}\n',
    1001: b'{"id": "unknown-field", "favourite_colour": "blue"}\n',
    1200: b'{"id": "dead", "deceased": true}\n',
}
COUNT = 1300  # well past the 1,024 live sessions durable-rules allows in one ruleset


def lines_of(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,300 generated records with malformed lines at known line numbers (0-based keys)."""
    return write_cohort(tmp_path_factory.mktemp("batch") / "patients.jsonl", COUNT, 11, MALFORMED)


@pytest.fixture(scope="module")
def reference(patients: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output of one worker, in this process: the reference for the other runs."""
    out = tmp_path_factory.mktemp("reference") / "results.jsonl"
    result = run_batch([patients], out, rules=RULES, as_of=AS_OF, workers=1)
    assert result.records == COUNT and result.failed == 4
    return out


def test_one_line_per_input_line_in_order_with_errors_for_malformed_lines(
    patients: Path, reference: Path
) -> None:
    inputs = patients.read_bytes().splitlines()
    lines = lines_of(reference)
    assert len(lines) == len(inputs) == COUNT
    for index, (line, raw) in enumerate(zip(lines, inputs, strict=True)):
        assert line["position"] == index
        assert line["source"] == f"{patients}:{index + 1}"
        kinds = {"decision", "error", "not_screened"} & set(line)
        assert len(kinds) == 1, line
        if index not in MALFORMED:
            assert line["record_id"] == orjson.loads(raw)["id"]
            assert "decision" in line or "not_screened" in line
    assert lines[7]["error"]["code"] == "invalid_input" and "not valid JSON" in lines[7]["error"]["message"]
    assert lines[300]["error"]["code"] == "invalid_input" and lines[300]["record_id"] is None
    bad_bp = lines[555]["error"]
    assert lines[555]["record_id"] == "bad-bp" and bad_bp["code"] == "invalid_record"
    assert bad_bp["problems"][0]["field"] == "blood_pressure[0].systolic"
    assert lines[1001]["error"]["problems"][0] == {
        "field": "favourite_colour",
        "code": "unknown_field",
        "message": "unknown field",
    }
    assert lines[1200]["not_screened"]["reason"] == "the patient is recorded as deceased"


def test_two_workers_write_exactly_what_one_worker_writes(
    patients: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "two.jsonl"
    result = run_batch([patients], out, rules=RULES, as_of=AS_OF, workers=2, chunk_size=37)
    assert result.records == COUNT and result.workers == 2
    assert out.read_bytes() == reference.read_bytes()


def test_positions_run_across_inputs_and_blank_lines_are_not_records(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    records = [orjson.dumps(r) for r in generate_records(5, seed=2, as_of=AS_OF)]
    first.write_bytes(records[0] + b"\n\n" + records[1] + b"\n   \n")
    second.write_bytes(b"\n".join(records[2:]))  # no final newline
    out = tmp_path / "out.jsonl"
    run_batch([first, second], out, rules=RULES, as_of=AS_OF, workers=1)
    lines = lines_of(out)
    assert [line["position"] for line in lines] == [0, 1, 2, 3, 4]
    assert [line["source"] for line in lines] == [
        f"{first}:1",
        f"{first}:3",
        f"{second}:1",
        f"{second}:2",
        f"{second}:3",
    ]


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stderr


def test_exit_codes(patients: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean.jsonl"
    write_records(clean, 40, 3, AS_OF)
    out = tmp_path / "out.jsonl"
    code, err = run_cli(
        "batch", str(clean), "--out", str(out), "--as-of", AS_OF, "--rules", str(RULES), "-w", "1"
    )
    assert code == 0 and "40 records" in err
    code, err = run_cli(
        "batch", str(patients), "-o", str(out), "--as-of", AS_OF, "--rules", str(RULES), "-w", "1", "--force"
    )
    assert code == 2 and "4 with errors" in err
    code, err = run_cli("batch", str(tmp_path / "missing.jsonl"), "-o", str(out), "--rules", str(RULES))
    assert code == 1 and "no such file" in err and "Traceback" not in err


def _screening(out: Path, *extra: str, input_path: Path, workers: int = 2) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "screening.cli", "batch", str(input_path), "--out", str(out)]
    command += [
        "--as-of",
        AS_OF,
        "--rules",
        str(RULES),
        "--workers",
        str(workers),
        "--chunk-size",
        "20",
        "-q",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([*command, *extra], cwd=ROOT, env=env, stderr=subprocess.PIPE)


def _wait_for_output(out: Path, process: subprocess.Popen[bytes], min_bytes: int = 1) -> None:
    deadline = time.monotonic() + 60
    while not (out.exists() and out.stat().st_size >= min_bytes):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the batch wrote nothing"
        time.sleep(0.01)


def test_resume_after_sigkill_writes_every_record_exactly_once(
    patients: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed.jsonl"
    process = _screening(out, input_path=patients)
    _wait_for_output(out, process, min_bytes=200_000)
    process.kill()
    process.wait()
    written = out.read_bytes()
    assert 0 < written.count(b"\n") < COUNT, "kill the batch mid-run"
    resumed = _screening(out, "--resume", input_path=patients)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 2, err  # the malformed lines fail; everything else is screened
    assert out.read_bytes() == reference.read_bytes()


def test_ctrl_c_stops_on_a_whole_line_and_resume_finishes(
    patients: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "interrupted.jsonl"
    process = _screening(out, input_path=patients, workers=1)
    _wait_for_output(out, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    data = out.read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") < COUNT
    assert reference.read_bytes().startswith(data)
    result = run_batch([patients], out, rules=RULES, workers=1, resume=True)  # as_of from the file
    assert result.resumed == data.count(b"\n") and result.as_of == AS_OF
    assert out.read_bytes() == reference.read_bytes()
    assert result.summary.assessed == COUNT and result.failed == 4


def test_a_killed_worker_is_replaced_and_nothing_is_lost(
    patients: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "worker.jsonl"
    process = _screening(out, input_path=patients)
    _wait_for_output(out, process)
    workers = _pool_workers(process.pid)
    assert workers, "no pool worker found"
    os.kill(workers[0], signal.SIGKILL)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err.decode()
    assert out.read_bytes() == reference.read_bytes()


def _pool_workers(pid: int) -> list[int]:
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


def test_resume_drops_a_partial_last_line_and_checks_the_run_matches(
    patients: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "partial.jsonl"
    full = reference.read_bytes()
    cut = full.index(b"\n", len(full) // 3) + 1
    out.write_bytes(full[: cut + 500])  # whole lines, then half a line
    with pytest.raises(InputError, match="not 2026-01-01"):
        run_batch([patients], out, rules=RULES, as_of="2026-01-01", workers=1, resume=True)
    other = tmp_path / "other.jsonl"
    other.write_bytes(patients.read_bytes())
    with pytest.raises(InputError, match="same inputs"):
        run_batch([other], out, rules=RULES, workers=1, resume=True)
    result = run_batch([patients], out, rules=RULES, as_of=AS_OF, workers=1, resume=True)
    assert result.truncated_bytes == 500
    assert out.read_bytes() == full


def test_csv_input_screens_like_the_same_records_in_jsonl(tmp_path: Path) -> None:
    jsonl, table = tmp_path / "p.jsonl", tmp_path / "p.csv"
    write_records(jsonl, 300, 5, AS_OF)
    write_records(table, 300, 5, AS_OF, "csv")
    assert detect_format(table) == "csv" and detect_format(jsonl) == "jsonl"
    run_batch([jsonl], tmp_path / "j.out", rules=RULES, as_of=AS_OF, workers=1)
    run_batch([table], tmp_path / "c.out", rules=RULES, as_of=AS_OF, workers=1)
    for from_json, from_csv in zip(lines_of(tmp_path / "j.out"), lines_of(tmp_path / "c.out"), strict=True):
        assert from_json["record_id"] == from_csv["record_id"]
        if "decision" in from_json:
            statuses = [(c["id"], c["status"]) for c in from_json["decision"]["criteria"]]
            assert statuses == [(c["id"], c["status"]) for c in from_csv["decision"]["criteria"]]
        else:
            assert set(from_json) == set(from_csv)


def test_csv_cells_are_named_in_errors_and_blank_histories_are_unknown(tmp_path: Path) -> None:
    header = ",".join(CSV_COLUMNS)
    row = dict.fromkeys(CSV_COLUMNS, "")

    def line(**cells: str) -> str:
        return ",".join(f'"{v}"' for v in {**row, **cells}.values())

    table = tmp_path / "registry.csv"
    rows = [
        line(
            id="ok",
            birth_date="1970-01-01",
            systolic="130",
            diastolic="80",
            bp_date="2026-11-01",
            psychiatric_history="none",
            substance_use_history="F11.21|remission||2024-01-01",
        ),
        line(id="bad-bp", systolic="high", diastolic="80", bp_date="2026-11-01"),
        line(id="bad-item", treatments="gabapentin|ineffective|x|y"),
        "only,three,cells",
    ]
    table.write_text(header + "\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out.jsonl"
    run_batch([table], out, rules=RULES, as_of=AS_OF, workers=1)
    ok, bad_bp, bad_item, short = lines_of(out)
    assert ok["source"] == f"{table}:2" and short["source"] == f"{table}:5"
    criteria = {c["id"]: c for c in ok["decision"]["criteria"]}
    assert criteria["EXC-PSYCHOSIS"]["status"] == "not_met"  # "none": explicitly none
    assert criteria["INC-REFRACTORY"]["status"] == "unknown"  # blank: treatment history not taken
    assert criteria["CAU-SUD-REMISSION"]["status"] == "met"
    assert bad_bp["error"]["problems"][0]["column"] == "systolic"
    assert bad_item["error"]["problems"][0] == {
        "field": "treatments",
        "code": "csv_format",
        "message": "'gabapentin|ineffective|x|y' has 4 parts; expected name|outcome|class",
        "column": "treatments",
    }
    assert short["error"]["code"] == "invalid_csv_row"
    (tmp_path / "odd.csv").write_text("id,colour\n1,blue\n")
    with pytest.raises(InputError, match="unknown columns"):
        run_batch([tmp_path / "odd.csv"], out, rules=RULES, as_of=AS_OF, workers=1, force=True)


def test_fhir_bundles_and_bulk_export_are_read(tmp_path: Path) -> None:
    fixtures = ROOT / "tests" / "fixtures" / "fhir"
    bundles, bulk = fixtures / "synthea-r4-bundles", fixtures / "synthea-bulk-ndjson"
    assert detect_format(bundles) == "fhir" and detect_format(bulk) == "bulk"
    for source in (bundles, bulk):
        out = tmp_path / f"{source.name}.jsonl"
        result = run_batch([source], out, rules=RULES, as_of=AS_OF, workers=1)
        lines = lines_of(out)
        assert len(lines) == result.records > 0
        assert [line["position"] for line in lines] == list(range(len(lines)))
        assert not [line for line in lines if "error" in line]


def test_fhir_items_after_the_screening_date_are_left_out_not_fatal(tmp_path: Path) -> None:
    bundles = ROOT / "tests" / "fixtures" / "fhir" / "synthea-r4-bundles"
    out = tmp_path / "early.jsonl"
    run_batch([bundles], out, rules=RULES, as_of="2016-01-01", workers=1)
    lines = lines_of(out)
    assert lines and not [line for line in lines if "error" in line]
    notes = [note for line in lines for note in line["decision"].get("input_notes", [])]
    assert any("dated after the screening date 2016-01-01" in note for note in notes)


def test_compact_lines_keep_every_result_and_reason_and_resume_keeps_the_mode(
    patients: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "compact.jsonl"
    result = run_batch([patients], out, rules=RULES, as_of=AS_OF, workers=1, compact=True)
    full, compact = lines_of(reference), lines_of(out)
    assert len(compact) == len(full) == COUNT and result.failed == 4
    assert out.stat().st_size < reference.stat().st_size / 2
    for whole, small in zip(full, compact, strict=True):
        assert {k: v for k, v in small.items() if k != "decision"} == {
            k: v for k, v in whole.items() if k != "decision"
        }
        if "decision" not in whole:
            continue
        decision, lean = whole["decision"], small["decision"]
        assert lean["compact"] is True and "sources" not in lean
        assert lean["outcome"] == decision["outcome"]
        assert lean["missing_information"] == decision["missing_information"]
        for criterion, kept in zip(decision["criteria"], lean["criteria"], strict=True):  # type: ignore[arg-type]
            assert {"title", "effect", "parameters", "sources"}.isdisjoint(kept)
            for key in ("id", "status", "reason", "decisive", "facts"):
                assert kept[key] == criterion[key]
            for key in ("evidence", "missing", "not_checked"):
                assert kept.get(key, []) == criterion[key]
            assert kept.get("recommendation") == criterion["recommendation"]
            assert kept.get("urgent", False) == criterion["urgent"]
    assert (
        result.summary.as_dict()
        == run_batch(
            [patients], tmp_path / "again.jsonl", rules=RULES, as_of=AS_OF, workers=1
        ).summary.as_dict()
    )
    with pytest.raises(InputError, match="with --compact"):
        run_batch([patients], out, rules=RULES, workers=1, resume=True)
    resumed = run_batch([patients], out, rules=RULES, workers=1, resume=True, compact=True)
    assert resumed.resumed == COUNT and resumed.summary.assessed == COUNT
