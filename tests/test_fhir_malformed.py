"""A malformed FHIR resource fails only its own patient, on every path that reads FHIR.

The resource here is an Observation whose ``status`` is an object: it used to raise a
TypeError that killed a Bulk batch (and truncated its output), made a Bundle directory
unreadable, printed a traceback from ``check`` and answered 500 from the service.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from screening import InputError, RecordError, Screener
from screening.batch.run import run_batch
from screening.decision import Decision
from screening.service.app import create_app

from .conftest import AS_OF, RULES, eligible_record
from .test_cli import run
from .test_fhir import BULK, LOINC, bundle, cc, quantity

BAD_STATUS = {
    "resourceType": "Observation",
    "id": "bad",
    "status": {"code": "final"},
    "code": cc(LOINC, "72514-3"),
    "effectiveDateTime": "2026-11-01",
    **quantity(7),
}


def two_patients() -> dict[str, Any]:
    """p1 with the malformed Observation, p2 with nothing wrong."""
    data = bundle(copy.deepcopy(BAD_STATUS))
    data["entry"] += bundle(patient={"resourceType": "Patient", "id": "p2", "birthDate": "1970-01-01"})[
        "entry"
    ]
    return data


def test_screen_fhir_gives_the_patient_a_record_error_and_screens_the_others(screener: Screener) -> None:
    results = screener.screen_fhir(two_patients(), AS_OF, source="chart.json")
    [failed] = [r for r in results if isinstance(r, RecordError)]
    assert failed.record_id == "p1" and failed.source == "chart.json"
    [problem] = failed.problems
    assert problem.field == "entry[1].resource.status"
    assert "Observation/bad" in problem.message and "expected a string" in problem.message
    assert [r.record_id for r in results if isinstance(r, Decision)] == ["p2"]


def test_check_names_the_record_and_field_without_a_traceback(tmp_path: Path) -> None:
    chart = tmp_path / "chart.json"
    chart.write_text(json.dumps(two_patients()))
    code, out, err = run("check", str(chart), "--as-of", AS_OF, "--format", "json")
    assert code == 1 and "Traceback" not in err
    assert "p1" in err and "entry[1].resource.status" in err
    assert '"p2"' in out


def test_the_service_answers_422_for_one_and_keeps_the_good_records_of_a_batch(screener: Screener) -> None:
    client = TestClient(create_app(screener, as_of=AS_OF), raise_server_exceptions=False)
    alone = client.post("/screen", json=bundle(copy.deepcopy(BAD_STATUS)))
    assert alone.status_code == 422, alone.text
    assert "entry[1].resource.status" in alone.text
    many = client.post("/screen/batch", json=[two_patients(), eligible_record(id="native")])
    assert many.status_code == 200, many.text
    results = many.json()["results"]
    assert sorted(r["decision"]["record_id"] for r in results if "decision" in r) == ["native", "p2"]
    [error] = [r["error"] for r in results if "error" in r]
    assert "entry[1].resource.status" in json.dumps(error)


def test_cds_hooks_answers_a_card_naming_the_field(screener: Screener) -> None:
    client = TestClient(create_app(screener, as_of=AS_OF), raise_server_exceptions=False)
    data = bundle(copy.deepcopy(BAD_STATUS))
    hook = {
        "hook": "patient-view",
        "hookInstance": "h1",
        "context": {"patientId": "p1"},
        "prefetch": {"patient": data["entry"][0]["resource"], "observations": data["entry"][1]["resource"]},
    }
    response = client.post("/cds-services/ketamine-screening", json=hook)
    assert response.status_code == 200, response.text
    card = response.json()["cards"][0]
    assert card["summary"].startswith("Ketamine screening could not run") and "status" in card["detail"]


def _export_with_a_bad_observation(tmp_path: Path) -> tuple[Path, str, list[str]]:
    export = tmp_path / "export"
    shutil.copytree(BULK, export)
    patients = [json.loads(line)["id"] for line in (BULK / "Patient.000.ndjson").read_text().splitlines()]
    bad = {**BAD_STATUS, "subject": {"reference": f"Patient/{patients[0]}"}}
    (export / "Observation.000.ndjson").write_text(json.dumps(bad) + "\n")
    return export, patients[0], patients


def test_a_bulk_batch_fails_only_the_patient_and_writes_every_other(tmp_path: Path) -> None:
    export, victim, patients = _export_with_a_bad_observation(tmp_path)
    out = tmp_path / "out.jsonl"
    result = run_batch([export], out, rules=RULES, as_of=AS_OF, workers=1)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(lines) == len(patients) and result.failed == 1
    [error] = [line for line in lines if "error" in line]
    assert f"Patient/{victim}" in error["error"]["message"] and "status" in error["error"]["message"]
    assert error["record_id"] == victim
    assert sum("decision" in line or "not_screened" in line for line in lines) == len(patients) - 1


def test_a_bundle_directory_batch_fails_only_the_patient(tmp_path: Path) -> None:
    folder = tmp_path / "bundles"
    folder.mkdir()
    (folder / "two.json").write_text(json.dumps(two_patients()))
    out = tmp_path / "out.jsonl"
    run_batch([folder], out, rules=RULES, as_of=AS_OF, workers=1)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [line["decision"]["record_id"] for line in lines if "decision" in line] == ["p2"]
    [error] = [line for line in lines if "error" in line]
    assert error["record_id"] == "p1"
    assert error["error"]["message"].startswith("Patient/p1: ")
    assert "entry[1].resource.status" in error["error"]["message"]


def test_a_batch_that_fails_before_its_first_record_leaves_the_old_output(tmp_path: Path) -> None:
    folder = tmp_path / "bundles"
    folder.mkdir()
    (folder / "a.json").symlink_to(tmp_path / "gone.json")  # listed, then cannot be read
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"earlier": "run"}\n')
    with pytest.raises(InputError):
        run_batch([folder], out, rules=RULES, as_of=AS_OF, workers=1, input_format="fhir")
    assert out.read_bytes() == b'{"earlier": "run"}\n'


def test_a_batch_with_nothing_to_screen_is_refused_and_keeps_the_output(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"earlier": "run"}\n')
    with pytest.raises(InputError, match="no records were read"):
        run_batch([empty], out, rules=RULES, as_of=AS_OF, workers=1, force=True)
    assert out.read_bytes() == b'{"earlier": "run"}\n'
