"""Reading FHIR: edge cases of the mapping (BP halves, codings, statuses, negations, bad resources).

Real engine, real rule files; the patients are built with the helpers of test_fhir, from
the native equivalence cases (``base_eligible`` is eligible, BP 128/78 on 2026-11-10).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from screening import InputError, NotScreened, RecordError, Screener
from screening.batch.inputs import FhirRecord, ReadError, read_bulk, read_bundles
from screening.decision import Decision
from screening.fhir.bundle import bundle_records

from .conftest import AS_OF
from .test_fhir import (
    BULK,
    ICD10,
    LOINC,
    NATIVE_CASES,
    RXNORM,
    bundle,
    cc,
    condition,
    observation,
    quantity,
    to_bundle,
)

ABSENT = {"dataAbsentReason": cc("http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-performed")}


def eligible(*extra: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(to_bundle(NATIVE_CASES["base_eligible"]))
    ref = {"reference": "Patient/" + data["entry"][0]["resource"]["id"]}
    for index, resource in enumerate(extra):
        key = "patient" if resource["resourceType"] == "AllergyIntolerance" else "subject"
        data["entry"].append({"resource": {"id": f"x{index}", key: ref, **resource}})
    return data


def decide(screener: Screener, data: dict[str, Any], as_of: str = AS_OF) -> Decision:
    [decision] = screener.screen_fhir(data, as_of)
    assert isinstance(decision, Decision), decision
    return decision


def test_the_base_case_is_eligible(screener: Screener) -> None:
    assert decide(screener, eligible()).outcome.value == "eligible"


# -- a later blood pressure with one half ------------------------------------------------


def _half_panel(when: str) -> dict[str, Any]:
    parts = [
        {"code": cc(LOINC, "8480-6"), **quantity(186, "mm[Hg]")},
        {"code": cc(LOINC, "8462-4"), **ABSENT},
    ]
    return observation("85354-9", when, component=parts)


@pytest.mark.parametrize(
    "later",
    [
        [_half_panel("2026-11-15")],
        [observation("8480-6", "2026-11-15T10:00:00Z", **quantity(192, "mm[Hg]"))],
    ],
    ids=["panel-diastolic-absent", "standalone-systolic"],
)
def test_a_later_half_reading_is_not_overruled_by_an_older_one(
    screener: Screener, later: list[dict[str, Any]]
) -> None:
    decision = decide(screener, eligible(*later))
    bp = decision.criterion("EXC-BP-UNCONTROLLED")
    assert bp.status == "unknown" and decision.outcome.value != "eligible"
    notes = decision.extra["input_notes"]
    assert any(n.startswith("Observation/x0: blood pressure on 2026-11-15 has systolic") for n in notes)
    assert any("superseded" in n and "Observation/" in n for n in notes)


def test_halves_pair_on_the_instant_whatever_the_notation(screener: Screener) -> None:
    decision = decide(
        screener,
        eligible(
            observation("8480-6", "2026-11-15T10:00:00Z", **quantity(192, "mm[Hg]")),
            observation("8462-4", "2026-11-15T10:00:00+00:00", **quantity(112, "mm[Hg]")),
        ),
    )
    bp = decision.criterion("EXC-BP-UNCONTROLLED")
    assert bp.status == "met" and decision.outcome.value == "ineligible"
    assert bp.evidence[0]["source"] == "Observation/x0 + Observation/x1"


def test_a_half_reading_after_the_screening_date_supersedes_nothing(screener: Screener) -> None:
    decision = decide(screener, eligible(_half_panel("2026-11-15")), as_of="2026-11-12")
    assert decision.criterion("EXC-BP-UNCONTROLLED").status == "not_met"
    assert bundle_records(eligible(_half_panel("2026-11-15")), screener.ruleset)[0]["blood_pressure"] == []


# -- every coding of a drug or substance -------------------------------------------------


def _drug(*codings: tuple[str, str], text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [{"system": RXNORM, "code": c, "display": d} for c, d in codings]}
    return out | ({"text": text} if text else {})


def test_a_benzodiazepine_coded_second_is_found(screener: Screener) -> None:
    xanax = _drug(("999997", "Xanax 0.5 MG Oral Tablet"), ("596", "alprazolam"), text="Xanax 0.5mg")
    statement = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": xanax,
    }
    decision = decide(screener, eligible(statement))
    assert decision.criterion("CAU-BENZODIAZEPINE").status == "met"


def test_a_failed_trial_coded_second_is_counted(screener: Screener) -> None:
    drug = _drug(("999999", "Zzbrand 5 MG"), ("7804", "oxycodone"), text="Zzbrand 5 MG")
    stopped = {
        "resourceType": "MedicationStatement",
        "status": "stopped",
        "medicationCodeableConcept": drug,
        "statusReason": [{"text": "ineffective"}],
    }
    decision = decide(screener, eligible(stopped))
    refractory = decision.criterion("INC-REFRACTORY")
    assert refractory.facts["failed_classes"] == 3, refractory.facts
    assert any(e["source"] == "MedicationStatement/x0" for e in refractory.evidence)


def test_an_allergy_coded_second_is_found(screener: Screener) -> None:
    allergy = {
        "resourceType": "AllergyIntolerance",
        "code": _drug(("999990", "Brandx"), ("6130", "ketamine")),
    }
    assert decide(screener, eligible(allergy)).criterion("EXC-HYPERSENSITIVITY").status == "met"


# -- single resources ------------------------------------------------------


def test_a_malformed_value_quantity_is_reported_where_it_is(screener: Screener) -> None:
    weight = observation("29463-7", valueQuantity={"value": 82, "unit": 5})
    with pytest.raises(InputError) as caught:
        bundle_records(bundle(weight), screener.ruleset, "x.json")
    assert caught.value.position == "entry[1].resource.valueQuantity.unit"
    panel = observation(
        "85354-9", component=[{"code": cc(LOINC, "8480-6"), "valueQuantity": {"value": 1, "code": 5}}]
    )
    with pytest.raises(InputError) as caught:
        bundle_records(bundle(panel), screener.ruleset, "x.json")
    assert caught.value.position == "entry[1].resource.component[0].valueQuantity.code"


def test_a_condition_without_clinical_status_is_dated_not_current(screener: Screener) -> None:
    old = condition("F11.10", ICD10, status=None, display="Opioid abuse", recordedDate="2005-03-01")
    decision = decide(screener, eligible(old))
    assert decision.criterion("EXC-SUD-ACTIVE").status == "not_met"
    assert any(
        "no clinicalStatus; read as last known active on 2005-03-01" in n
        for n in decision.extra["input_notes"]
    )


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("completed course, no side effects", "unknown"),
        ("stopped without adverse effects", "unknown"),
        ("not ineffective", "unknown"),
        ("no relief", "ineffective"),
        ("not tolerated", "not_tolerated"),
        ("no improvement, side effects", "not_tolerated"),
    ],
)
def test_negated_reasons_are_no_failure(screener: Screener, reason: str, outcome: str) -> None:
    stopped = {
        "resourceType": "MedicationStatement",
        "status": "completed",
        "medicationCodeableConcept": cc(RXNORM, "72625", "duloxetine"),
        "statusReason": [{"text": reason}],
    }
    [trial] = bundle_records(bundle(stopped), screener.ruleset)[0]["treatments"]
    assert trial["outcome"] == outcome


def test_measurements_are_read_as_recorded(screener: Screener) -> None:
    record = bundle_records(
        bundle(
            observation("72514-3", **quantity(0.663541)),
            observation("8480-6", "2026-11-01T09:00:00Z", **quantity(108.058, "mm[Hg]")),
            observation("8462-4", "2026-11-01T09:00:00Z", **quantity(79.9302, "mm[Hg]")),
        ),
        screener.ruleset,
    )[0]
    assert record["pain_scores"][0]["score"] == 0.663541
    assert (record["blood_pressure"][0]["systolic"], record["blood_pressure"][0]["diastolic"]) == (
        108.058,
        79.9302,
    )


def test_a_death_after_the_screening_date_does_not_stop_screening(screener: Screener) -> None:
    data = eligible()
    data["entry"][0]["resource"]["deceasedDateTime"] = "2026-12-01T08:00:00Z"
    decision = decide(screener, data)
    assert any("deceased on 2026-12-01" in n for n in decision.extra["input_notes"])
    [later] = screener.screen_fhir(data, "2026-12-02")
    assert isinstance(later, NotScreened)


def test_a_deceased_boolean_that_is_not_a_boolean_is_an_error(screener: Screener) -> None:
    data = eligible()
    data["entry"][0]["resource"]["deceasedBoolean"] = "yes"
    with pytest.raises(InputError) as caught:
        bundle_records(data, screener.ruleset, source="x.json")
    assert caught.value.position == "entry[0].resource.deceasedBoolean"
    [failed] = screener.screen_fhir(data, AS_OF, source="x.json")
    assert isinstance(failed, RecordError)
    assert [p.field for p in failed.problems] == ["entry[0].resource.deceasedBoolean"]


# -- one bad resource fails only its patient -------------------------------------------------


def test_a_corrupted_bulk_export_fails_only_the_patients_it_touches(
    screener: Screener, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    shutil.copytree(BULK, export)
    conditions = (export / "Condition.000.ndjson").read_text().splitlines()
    broken = json.loads(conditions[0])
    victim = broken["subject"]["reference"].removeprefix("Patient/")
    broken["code"]["coding"][0]["code"] = 123
    conditions[0] = json.dumps(broken)
    conditions.append('{"resourceType": "Condition", "subject": ')  # no JSON, no patient
    (export / "Condition.000.ndjson").write_text("\n".join(conditions) + "\n")

    items = list(read_bulk(export, screener.ruleset))
    records = [p for _, p, _ in items if isinstance(p, FhirRecord)]
    errors = {source: p for source, p, _ in items if isinstance(p, ReadError)}
    patients = [json.loads(line)["id"] for line in (BULK / "Patient.000.ndjson").read_text().splitlines()]
    assert len(records) == len(patients) - 1 and len(errors) == 2
    mine = errors[f"{export}#Patient/{victim}"]
    assert f"Patient/{victim}" in mine.message and "code.coding[0].code" in mine.message
    assert f"Condition/{broken['id']}" in mine.message
    [orphan] = [e for source, e in errors.items() if source == str(export)]
    assert "not valid JSON" in orphan.message and f"{len(conditions)}:" in orphan.message


def test_a_bad_resource_in_a_bundle_fails_only_its_patient(screener: Screener, tmp_path: Path) -> None:
    data = bundle({"resourceType": "Condition", "code": {"coding": [{"code": 20}]}})
    other = bundle(patient={"resourceType": "Patient", "id": "p2", "birthDate": "1970-01-01"})
    data["entry"] += other["entry"] + ["not an entry"]
    (tmp_path / "two.json").write_text(json.dumps(data))
    items = list(read_bundles(tmp_path, screener.ruleset))
    kinds = [type(p).__name__ for _, p, _ in items]
    assert kinds.count("FhirRecord") == 1 and kinds.count("ReadError") == 2
    errors = [p.message for _, p, _ in items if isinstance(p, ReadError)]
    assert any(m.startswith("Patient/p1: ") and "entry[1].resource.code.coding[0].code" in m for m in errors)
    assert any("entry[3]" in m and "must be an object" in m for m in errors)
