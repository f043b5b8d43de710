"""Reading FHIR R4 (screening.fhir.bundle*): the mapping of docs/reading-rules.md, real data, Bulk Data.

Fixtures are copies of public data (tests/fixtures/fhir, each folder with its SOURCE.txt);
adding a file there adds a case to the parametrized tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from screening import InputError, NotScreened, RecordError, Screener
from screening.decision import Decision
from screening.fhir.bulk import bulk_records, read_bulk
from screening.fhir.bundle import bundle_records, is_fhir, read_bundle
from screening.record import load_json

from .conftest import AS_OF, eligible_record

FIXTURES = Path(__file__).parent / "fixtures" / "fhir"
EXAMPLES = Path(__file__).parent.parent / "examples"
SYNTHEA = FIXTURES / "synthea-r4-bundles"
BULK = FIXTURES / "synthea-bulk-ndjson"
FHIR_FILES = sorted(
    p
    for folder in ("synthea-r4-bundles", "fhir-r4-examples", "us-core-examples")
    for p in (FIXTURES / folder).glob("*.json")
)
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


# -- building FHIR in tests ---------------------------------------------------------------


def cc(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding], **({"text": display} if display else {})}


def bundle(*resources: dict[str, Any], patient: dict[str, Any] | None = None) -> dict[str, Any]:
    """A collection Bundle of one patient (id p1 unless given) and resources about them."""
    patient = patient or {
        "resourceType": "Patient",
        "id": "p1",
        "birthDate": "1970-01-01",
        "gender": "female",
    }
    ref = {"reference": f"Patient/{patient['id']}"}
    entries = [{"resource": patient}]
    for index, resource in enumerate(resources):
        resource = {"id": f"r{index}", **resource}
        key = "patient" if resource["resourceType"] == "AllergyIntolerance" else "subject"
        resource.setdefault(key, ref)
        entries.append({"resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def condition(code: str, system: str = SNOMED, status: str | None = "active", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Condition", "code": cc(system, code, extra.pop("display", None))}
    if status:
        out["clinicalStatus"] = cc("http://terminology.hl7.org/CodeSystem/condition-clinical", status)
    return out | extra


def observation(code: str, when: str = "2026-11-01", status: str = "final", **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": status,
        "code": cc(LOINC, code),
        "effectiveDateTime": when,
        **value,
    }


def quantity(value: float, unit: str | None = None) -> dict[str, Any]:
    return {"valueQuantity": {"value": value, **({"code": unit} if unit else {})}}


def bp_panel(
    systolic: float, diastolic: float, when: str = "2026-11-01", code: str = "85354-9"
) -> dict[str, Any]:
    parts = [
        {"code": cc(LOINC, "8480-6"), **quantity(systolic, "mm[Hg]")},
        {"code": cc(LOINC, "8462-4"), **quantity(diastolic, "mm[Hg]")},
    ]
    return observation(code, when, component=parts)


def one(data: dict[str, Any], screener: Screener) -> dict[str, Any]:
    records = bundle_records(data, screener.ruleset, "test")
    assert len(records) == 1
    return records[0]


# -- native record -> FHIR Bundle, for the equivalence test ---------------------------------

_STATUS = {"active": "active", "remission": "remission", "resolved": "resolved"}
_PROCEDURE_CLASSES = {"physical_therapy", "interventional", "psychological"}
_MED_REASON = {
    "ineffective": "ineffective",
    "not_tolerated": "stopped: side effects",
    "partial_response": None,
}
_PROCEDURE_OUTCOME = {"ineffective": "385671000", "partial_response": "385670004", "effective": "385669000"}


def to_bundle(record: dict[str, Any]) -> dict[str, Any]:
    """The FHIR Bundle an EHR would send for a native record (as far as FHIR can say it)."""
    patient: dict[str, Any] = {"resourceType": "Patient", "id": record["id"]}
    if record.get("birth_date"):
        patient["birthDate"] = record["birth_date"]
    if record.get("sex"):
        patient["gender"] = record["sex"]
    out: list[dict[str, Any]] = []
    for field in ("pain_conditions", "conditions", "psychiatric_history", "substance_use_history"):
        for dx in record.get(field) or []:
            system = SNOMED if dx.get("system") == "snomed" else ICD10
            res = condition(
                dx["code"], system, _STATUS[dx.get("status", "active")], display=dx.get("display")
            )
            if dx.get("onset"):
                res["onsetDateTime"] = dx["onset"]
            if dx.get("last_active"):
                res["abatementDateTime"] = dx["last_active"]
            out.append(res)
    for bp in record.get("blood_pressure", []):
        out.append(bp_panel(bp["systolic"], bp["diastolic"], bp["date"]))
    for score in record.get("pain_scores", []):
        out.append(observation("72514-3", score["date"], **quantity(score["score"])))
    for phq in record.get("phq9", []):
        if phq.get("item9") is not None:
            out.append(observation("44260-8", phq["date"], valueInteger=phq["item9"]))
        if phq.get("total") is not None:
            out.append(observation("44261-6", phq["date"], valueInteger=phq["total"]))
    for lab in record.get("labs", []):
        res = observation(lab["code"], lab["date"], **quantity(lab["value"], lab.get("unit")))
        if lab.get("upper_limit"):
            res["referenceRange"] = [{"high": {"value": lab["upper_limit"]}}]
        out.append(res)
    for status in record.get("pregnancy_status", []):
        answer = "77386006" if status["status"] == "pregnant" else "60001007"
        out.append(observation("82810-3", status["date"], valueCodeableConcept=cc(SNOMED, answer)))
    if record.get("weight_kg"):
        out.append(observation("29463-7", "2026-11-01", **quantity(record["weight_kg"], "kg")))
    for med in record.get("medications", []):
        drug = cc(RXNORM, med["code"], med["name"]) if med.get("code") else {"text": med["name"]}
        out.append(
            {"resourceType": "MedicationStatement", "status": "active", "medicationCodeableConcept": drug}
        )
    for trial in record.get("treatments") or []:
        out.append(_trial(trial))
    for allergy in record.get("allergies", []):
        code = (
            cc(RXNORM, allergy["code"], allergy["substance"])
            if allergy.get("code")
            else {"text": allergy["substance"]}
        )
        out.append({"resourceType": "AllergyIntolerance", "code": code})
    return bundle(*out, patient=patient)


def _trial(trial: dict[str, Any]) -> dict[str, Any]:
    outcome = trial.get("outcome", "unknown")
    if trial.get("treatment_class") in _PROCEDURE_CLASSES:
        res: dict[str, Any] = {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"text": trial["name"]},
        }
        if outcome in _PROCEDURE_OUTCOME:
            res["outcome"] = cc(SNOMED, _PROCEDURE_OUTCOME[outcome])
        elif outcome == "not_tolerated":
            res["statusReason"] = {"text": "side effects"}
        return res
    drug = cc(RXNORM, trial["code"], trial["name"]) if trial.get("code") else {"text": trial["name"]}
    res = {"resourceType": "MedicationStatement", "status": "completed", "medicationCodeableConcept": drug}
    if _MED_REASON.get(outcome):
        res["statusReason"] = [{"text": _MED_REASON[outcome]}]
    assert outcome in ("ineffective", "not_tolerated", "unknown"), "FHIR cannot say this for a drug"
    return res


def _comparable(record: dict[str, Any]) -> bool:
    """Records whose content FHIR can carry: explicit histories, no drug 'effective' outcome."""
    return (
        record.get("psychiatric_history") is not None
        and record.get("substance_use_history") is not None
        and all(
            t.get("outcome", "unknown") in ("ineffective", "not_tolerated", "unknown")
            or t.get("treatment_class") in _PROCEDURE_CLASSES
            for t in record.get("treatments") or []
        )
    )


NATIVE_CASES = {p.stem: json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))}
NATIVE_CASES |= {
    "base_eligible": eligible_record(),
    "bp_exclusion": eligible_record(
        id="bp", blood_pressure=[{"systolic": 186, "diastolic": 104, "date": "2026-11-10"}]
    ),
    "no_treatment_history": eligible_record(id="nt", treatments=None),
    "psychosis": eligible_record(
        id="psy",
        psychiatric_history=[
            {"code": "F20.0", "status": "remission", "onset": "2010-01-01", "last_active": "2015-01-01"}
        ],
    ),
    "ketamine_allergy": eligible_record(id="allergy", allergies=[{"substance": "ketamine", "code": "6130"}]),
}


@pytest.mark.parametrize("name", sorted(n for n, r in NATIVE_CASES.items() if _comparable(r)))
def test_same_patient_native_and_fhir_gets_the_same_decision(screener: Screener, name: str) -> None:
    native = NATIVE_CASES[name]
    expected = screener.screen(native, AS_OF)
    [got] = screener.screen_fhir(to_bundle(native), AS_OF)
    assert isinstance(got, Decision)
    assert got.outcome == expected.outcome
    assert got.statuses == expected.statuses
    # FHIR cannot mark a primary pain condition: with several, the longest one dates the pain.
    primary = len(native["pain_conditions"]) > 1 and any(c.get("primary") for c in native["pain_conditions"])
    for result in got.criteria:
        wanted = expected.criterion(result.id)
        numbers = {
            k: v
            for k, v in wanted.facts.items()
            if isinstance(v, (int, float))
            and not isinstance(v, bool)
            and not (primary and k == "pain_months")
        }
        assert {k: result.facts[k] for k in numbers} == pytest.approx(numbers), result.id


def test_the_equivalence_cases_cover_every_outcome(screener: Screener) -> None:
    outcomes = {screener.screen(r, AS_OF).outcome.value for r in NATIVE_CASES.values() if _comparable(r)}
    assert outcomes == {
        "ineligible",
        "needs_information",
        "needs_review",
        "eligible_with_cautions",
        "eligible",
    }


def test_a_record_read_from_fhir_is_a_valid_native_record(screener: Screener) -> None:
    native = NATIVE_CASES["eligible"]
    record = one(to_bundle(native), screener)
    assert screener.screen(json.dumps(record), AS_OF).outcome == screener.screen(native, AS_OF).outcome


# -- every fixture file --------------------------------------------------------------------


@pytest.mark.parametrize("path", FHIR_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fixture_is_read_or_refused_clearly(screener: Screener, path: Path) -> None:
    data = load_json(path.read_bytes(), source=str(path))
    assert is_fhir(data)
    try:
        results = screener.screen_fhir(data, AS_OF, source=path.name)
    except InputError as error:
        # Only a resource that is about no patient at all (a Medication, a Bundle of them).
        assert path.name in str(error) and "no Patient" in str(error)
        assert '"Patient/' not in path.read_text(), "a resource about a patient must be screened"
        return
    for result in results:
        assert isinstance(result, (Decision, NotScreened))
        if isinstance(result, Decision):
            for criterion in result.criteria:
                for item in criterion.evidence:  # every fact names the resource it came from
                    assert "source" in item, (criterion.id, item)
                    assert "/" in item["source"] or item["source"].startswith("urn:")


@pytest.mark.parametrize("path", sorted(SYNTHEA.glob("*.json")), ids=lambda p: p.name[:20])
def test_synthea_items_name_their_resource(screener: Screener, path: Path) -> None:
    [record] = bundle_records(json.loads(path.read_bytes()), screener.ruleset, path.name)
    resources = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in json.loads(path.read_bytes())["entry"]
    }
    assert record["id"] in {r.split("/", 1)[1] for r in resources if r.startswith("Patient/")}
    assert record["psychiatric_history"] == [] and record["substance_use_history"] == []
    items = [i for key, value in record.items() if isinstance(value, list) for i in value]
    assert items
    for item in items:
        for part in item["source"].split(" + "):
            assert part in resources
    assert record["blood_pressure"], "Synthea's 55284-4 panels are read"
    assert all(isinstance(bp["systolic"], float) for bp in record["blood_pressure"])


def test_synthea_chronic_pain_patient(screener: Screener) -> None:
    [path] = SYNTHEA.glob("Jacki_Feil_*.json")
    [record] = bundle_records(json.loads(path.read_bytes()), screener.ruleset)
    assert [c["display"] for c in record["pain_conditions"]] == ["Chronic pain"]
    assert record["pain_conditions"][0]["onset"] == "2011-12-19"
    oxycodone = next(t for t in record["treatments"] if "Oxycodone" in t["name"])
    assert oxycodone["code"] == "1860154" and oxycodone["outcome"] == "unknown"
    [decision] = screener.screen_fhir(json.loads(path.read_bytes()), "2020-08-20")
    assert isinstance(decision, Decision)
    refractory = decision.criterion("INC-REFRACTORY")
    assert "opioid" in refractory.reason and refractory.status == "unknown"


def test_stale_data_is_read_as_recorded(screener: Screener) -> None:
    [path] = SYNTHEA.glob("Willia_*.json")
    [record] = bundle_records(json.loads(path.read_bytes()), screener.ruleset)
    tubal = next(c for c in record["conditions"] if c["display"] == "Tubal pregnancy")
    assert tubal["status"] == "active" and tubal["onset"] == "1972-06-05"
    [decision] = screener.screen_fhir(json.loads(path.read_bytes()), "2021-01-01")
    assert isinstance(decision, Decision)
    assert decision.criterion("INC-ADULT").facts["age"] == 98


def test_multi_patient_bundles_give_one_record_per_patient(screener: Screener) -> None:
    data = json.loads((FIXTURES / "fhir-r4-examples" / "patient-examples-general.json").read_bytes())
    records = bundle_records(data, screener.ruleset)
    assert len(records) == len(data["entry"]) == len({r["id"] for r in records})
    transaction = json.loads((FIXTURES / "fhir-r4-examples" / "bundle-transaction.json").read_bytes())
    assert len(bundle_records(transaction, screener.ruleset)) >= 1


# -- the mapping rules, one by one ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fhir_status", "status"),
    [
        ("active", "active"),
        ("recurrence", "active"),
        ("relapse", "active"),
        ("remission", "remission"),
        ("inactive", "resolved"),
        ("resolved", "resolved"),
    ],
)
def test_condition_clinical_status(screener: Screener, fhir_status: str, status: str) -> None:
    res = condition(
        "F20.0", ICD10, fhir_status, onsetDateTime="2001-02-03", abatementDateTime="2005-06-07T10:00:00Z"
    )
    [dx] = one(bundle(res), screener)["conditions"]
    assert dx["status"] == status and dx["onset"] == "2001-02-03" and dx["source"] == "Condition/r0"
    assert dx.get("last_active") == (None if status == "active" else "2005-06-07")


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_and_entered_in_error_conditions_are_ignored(screener: Screener, verification: str) -> None:
    status = cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification)
    record = one(bundle(condition("F20.0", ICD10, verificationStatus=status)), screener)
    assert record["conditions"] == []


def test_a_fhir_record_is_a_problem_list(screener: Screener) -> None:
    record = one(bundle(), screener)
    assert record["psychiatric_history"] == [] and record["substance_use_history"] == []
    assert "treatments" not in record, "no medication or procedure data: the history is unknown"
    decision = screener.screen_fhir(bundle(condition("F20.0", ICD10)), AS_OF)[0]
    assert isinstance(decision, Decision) and decision.criterion("EXC-PSYCHOSIS").status == "met"
    assert decision.criterion("EXC-PSYCHOSIS").evidence[0]["source"] == "Condition/r0"


def test_conditions_by_snomed_and_pain_conditions_apart(screener: Screener) -> None:
    record = one(
        bundle(
            condition("82423001", display="Chronic pain", onsetDateTime="2015-01-01"),
            condition("G90.512", ICD10, "resolved", onsetDateTime="2010-01-01"),
            condition("38341003", display="Hypertension"),
        ),
        screener,
    )
    assert [c["code"] for c in record["pain_conditions"]] == ["82423001"]
    assert {c["code"] for c in record["conditions"]} == {"G90.512", "38341003"}


def test_dual_coded_condition_is_one_diagnosis(screener: Screener) -> None:
    res = condition("F20.0", ICD10)
    res["code"]["coding"].append({"system": SNOMED, "code": "58214004", "display": "Schizophrenia"})
    record = one(bundle(res), screener)
    assert len(record["conditions"]) == 1


def test_uncoded_condition_is_noted(screener: Screener) -> None:
    [found] = read_bundle(bundle({"resourceType": "Condition", "code": {"text": "Asthma"}}), screener.ruleset)
    assert found.record["conditions"] == []
    assert any("Asthma" in n and "no ICD-10-CM or SNOMED CT code" in n for n in found.notes)


@pytest.mark.parametrize("code", ["85354-9", "55284-4"])
def test_blood_pressure_panels(screener: Screener, code: str) -> None:
    # Read as recorded, never rounded (Synthea gives 129.7397...).
    record = one(bundle(bp_panel(129.73979437732424, 81.2, "2026-11-01T10:00:00+01:00", code)), screener)
    assert record["blood_pressure"] == [
        {"systolic": 129.73979437732424, "diastolic": 81.2, "date": "2026-11-01", "source": "Observation/r0"}
    ]


def test_standalone_systolic_and_diastolic_pair_on_their_effective_time(screener: Screener) -> None:
    at, same_instant = "2026-11-01T10:00:00Z", "2026-11-01T11:00:00+01:00"
    record = one(
        bundle(
            observation("8480-6", at, **quantity(150)), observation("8462-4", same_instant, **quantity(95))
        ),
        screener,
    )
    assert record["blood_pressure"] == [
        {"systolic": 150, "diastolic": 95, "date": "2026-11-01", "source": "Observation/r0 + Observation/r1"}
    ]


@pytest.mark.parametrize("status", ["preliminary", "registered", "cancelled", "entered-in-error"])
def test_only_final_amended_corrected_observations(screener: Screener, status: str) -> None:
    assert one(bundle(observation("72514-3", status=status, valueInteger=7)), screener)["pain_scores"] == []
    for valid in ("final", "amended", "corrected"):
        assert one(bundle(observation("72514-3", status=valid, valueInteger=7)), screener)["pain_scores"]


def test_data_absent_reason_means_no_value(screener: Screener) -> None:
    absent = {
        "dataAbsentReason": cc("http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-performed")
    }
    bp = bp_panel(120, 80)
    bp["component"][1] = {"code": cc(LOINC, "8462-4"), **absent}
    record = one(bundle(observation("72514-3", **absent), bp), screener)
    assert record["pain_scores"] == [] and record["blood_pressure"] == []


@pytest.mark.parametrize(
    "value",
    [quantity(6.2), {"valueInteger": 6}, {"valueCodeableConcept": cc(LOINC, "LA10138-8", "6")}],
    ids=["quantity", "integer", "answer-code"],
)
def test_pain_score_values(screener: Screener, value: dict[str, Any]) -> None:
    [score] = one(bundle(observation("72514-3", **value)), screener)["pain_scores"]
    assert round(score["score"]) == 6


def test_phq9_item9_labs_pregnancy_weight(screener: Screener) -> None:
    record = one(
        bundle(
            observation("44260-8", valueCodeableConcept=cc(LOINC, "LA6570-1", "More than half the days")),
            observation("44261-6", valueString="12"),
            observation("1742-6", **quantity(130, "U/L"), referenceRange=[{"high": {"value": 41}}]),
            observation("82810-3", valueCodeableConcept=cc(SNOMED, "60001007", "Not pregnant")),
            observation("29463-7", **quantity(176, "[lb_av]")),
            observation("8867-4", **quantity(72, "/min")),
        ),
        screener,
    )
    assert [(p.get("item9"), p.get("total")) for p in record["phq9"]] == [(2, None), (None, 12)]
    [alt] = record["labs"]
    assert (alt["test"], alt["value"], alt["upper_limit"], alt["code"]) == ("ALT", 130, 41, "1742-6")
    assert record["pregnancy_status"][0]["status"] == "not_pregnant"
    assert record["weight_kg"] == pytest.approx(176 * 0.45359237)
    assert record["heart_rate"][0]["bpm"] == 72


def test_implausible_values_are_left_out_with_a_note(screener: Screener) -> None:
    [found] = read_bundle(bundle(bp_panel(80, 120)), screener.ruleset)
    assert found.record["blood_pressure"] == []
    assert any("Observation/r0" in n and "not below systolic" in n for n in found.notes)


def _med(resource: str, status: str, code: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": resource,
        "status": status,
        "medicationCodeableConcept": cc(RXNORM, code, name),
        **extra,
    }


def test_medications_current_and_past(screener: Screener) -> None:
    record = one(
        bundle(
            _med("MedicationStatement", "active", "6470", "lorazepam 1 MG"),
            _med("MedicationRequest", "stopped", "25480", "gabapentin 300 MG", authoredOn="2024-01-01"),
            _med("MedicationStatement", "entered-in-error", "72625", "duloxetine"),
        ),
        screener,
    )
    assert [m["name"] for m in record["medications"]] == ["lorazepam 1 MG"]
    assert [(t["name"], t["outcome"]) for t in record["treatments"]] == [("gabapentin 300 MG", "unknown")]


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ({"statusReason": [cc(SNOMED, "182864000", "Drug not taken - side-effects")]}, "not_tolerated"),
        ({"statusReason": [{"text": "Not effective for the pain"}]}, "ineffective"),
        ({"reasonCode": [{"text": "no relief"}]}, "ineffective"),
        ({"note": [{"text": "stopped because of intolerance (nausea)"}]}, "not_tolerated"),
        ({}, "unknown"),
    ],
)
def test_failed_trial_reasons(screener: Screener, reason: dict[str, Any], outcome: str) -> None:
    res = _med("MedicationStatement", "stopped", "72625", "duloxetine 60 MG", **reason)
    [trial] = one(bundle(res), screener)["treatments"]
    assert trial["outcome"] == outcome and not trial.get("inferred")


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("1049221", "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet"),  # listed
        (
            "0000000",
            "Acetaminophen 325 MG / Oxycodone Hydrochloride 7.5 MG Oral Tablet",
        ),  # by ingredient name
    ],
)
def test_clinical_drug_codes_resolve_to_their_class(screener: Screener, code: str, name: str) -> None:
    res = _med("MedicationStatement", "stopped", code, name)
    res["statusReason"] = [{"text": "ineffective"}]
    [decision] = screener.screen_fhir(bundle(res), AS_OF)
    assert isinstance(decision, Decision)
    [evidence] = decision.criterion("INC-REFRACTORY").evidence
    assert (
        evidence["what"].endswith("ineffective [opioid]") and evidence["source"] == "MedicationStatement/r0"
    )


def test_inferred_failure_is_labelled_and_uses_the_rule_set_parameters(
    screener: Screener, tmp_path: Path
) -> None:
    orders = [
        _med("MedicationRequest", "stopped", "25480", "gabapentin 300 MG", authoredOn=day)
        for day in ("2025-01-01", "2025-01-20", "2025-02-10")  # 40 days of orders
    ]
    pain_after = observation("72514-3", "2025-03-01", valueInteger=6)
    [trial] = one(bundle(*orders, pain_after), screener)["treatments"]
    assert trial == {
        "name": "gabapentin 300 MG",
        "code": "25480",
        "start": "2025-01-01",
        "end": "2025-02-10",
        "outcome": "ineffective",
        "inferred": True,
        "source": "MedicationRequest/r2",
    }
    [decision] = screener.screen_fhir(bundle(*orders, pain_after), AS_OF)
    assert isinstance(decision, Decision)
    evidence = decision.criterion("INC-REFRACTORY").evidence
    assert any("(inferred)" in e["what"] for e in evidence)
    low_pain = observation("72514-3", "2025-03-01", valueInteger=3)
    assert one(bundle(*orders, low_pain), screener)["treatments"][0]["outcome"] == "unknown"
    short = one(bundle(*orders[:2], pain_after), screener)["treatments"][0]  # 19 days
    assert short["outcome"] == "unknown"
    (tmp_path / "site.yaml").write_text("parameters:\n  fhir_infer_failed_trials: false\n")
    strict = Screener(screener.ruleset.directory, tmp_path / "site.yaml")
    assert one(bundle(*orders, pain_after), strict)["treatments"][0]["outcome"] == "unknown"


@pytest.mark.parametrize(
    ("code", "outcome"),
    [("385671000", "ineffective"), ("385670004", "partial_response"), ("385669000", "effective")],
)
def test_procedure_outcomes(screener: Screener, code: str, outcome: str) -> None:
    res = {
        "resourceType": "Procedure",
        "status": "completed",
        "code": cc(SNOMED, "91251008", "Physical therapy procedure"),
        "performedPeriod": {"start": "2024-01-01", "end": "2024-03-01"},
        "outcome": cc(SNOMED, code),
    }
    [trial] = one(bundle(res), screener)["treatments"]
    assert trial["outcome"] == outcome and trial["start"] == "2024-01-01" and trial["end"] == "2024-03-01"


def test_procedures_that_are_not_treatments_are_not_trials(screener: Screener) -> None:
    res = {"resourceType": "Procedure", "status": "completed", "code": cc(SNOMED, "399208008", "Chest X-ray")}
    assert one(bundle(res), screener)["treatments"] == []


def test_allergy_to_ketamine_excludes(screener: Screener) -> None:
    allergy = {"resourceType": "AllergyIntolerance", "code": cc(RXNORM, "6130", "ketamine")}
    record = one(bundle(allergy), screener)
    assert record["allergies"] == [
        {"substance": "ketamine", "code": "6130", "source": "AllergyIntolerance/r0"}
    ]
    [decision] = screener.screen_fhir(bundle(allergy), AS_OF)
    assert isinstance(decision, Decision) and decision.criterion("EXC-HYPERSENSITIVITY").status == "met"


def test_patient_sex_from_the_us_core_individual_sex_extension(screener: Screener) -> None:
    patient = json.loads((FIXTURES / "us-core-examples" / "patient-example.json").read_bytes())
    assert "gender" not in patient
    record = one(bundle(patient=patient), screener)
    assert record["sex"] == "female" and record["birth_date"] == "1987-02-20"


@pytest.mark.parametrize("deceased", [{"deceasedBoolean": True}, {"deceasedDateTime": "2020-01-01"}])
def test_deceased_patient_is_not_screened(screener: Screener, deceased: dict[str, Any]) -> None:
    patient = {"resourceType": "Patient", "id": "gone", "birthDate": "1950-01-01", **deceased}
    assert one(bundle(patient=patient), screener)["deceased"] is True
    [result] = screener.screen_fhir(bundle(patient=patient), AS_OF)
    assert isinstance(result, NotScreened) and result.record_id == "gone"


def test_dates_after_the_screening_date_are_left_out_and_noted(screener: Screener) -> None:
    data = bundle(
        observation("72514-3", "2026-12-01", valueInteger=8),
        observation("72514-3", "2026-11-01", valueInteger=5),
        condition("F20.0", ICD10, onsetDateTime="2027-01-01"),
        condition("F10.20", ICD10, "resolved", onsetDateTime="2010-01-01", abatementDateTime="2026-12-24"),
    )
    [decision] = screener.screen_fhir(data, AS_OF)
    assert isinstance(decision, Decision)
    assert decision.criterion("INC-SEVERITY").facts["pain_score"] == 5
    assert decision.criterion("EXC-PSYCHOSIS").status == "not_met"
    assert decision.criterion("EXC-SUD-ACTIVE").status == "met", "abated only after the screening date"
    assert any("after the screening date" in n for n in decision.extra["input_notes"])


def test_a_patient_born_after_the_screening_date_is_an_invalid_record(screener: Screener) -> None:
    patient = {"resourceType": "Patient", "id": "future", "birthDate": "2030-01-01"}
    [result] = screener.screen_fhir(bundle(patient=patient), AS_OF)
    assert isinstance(result, RecordError) and result.problems[0].field == "birth_date"


# -- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "position"),
    [
        ({"resourceType": "Bundle", "entry": {"resource": {}}}, "entry"),
        (
            {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "a"}}, "x"]},
            "entry[1]",
        ),
        ({"resourceType": "Bundle", "entry": [{"resource": {"id": "no-type"}}]}, "entry[0].resource"),
        (bundle({"resourceType": "Condition", "code": {"coding": "F20"}}), "entry[1].resource.code.coding"),
        (
            bundle({"resourceType": "Condition", "code": {"coding": [{"code": 20}]}}),
            "entry[1].resource.code.coding[0].code",
        ),
        (bundle(observation("72514-3", when="yesterday")), "entry[1].resource.effectiveDateTime"),
    ],
)
def test_malformed_input_names_the_source_and_position(screener: Screener, data: Any, position: str) -> None:
    with pytest.raises(InputError) as caught:
        bundle_records(data, screener.ruleset, source="upload.json")
    assert caught.value.source == "upload.json" and caught.value.position == position
    assert str(caught.value).startswith(f"upload.json:{position}: ")


def test_resources_without_their_patient_screen_the_patient_they_refer_to(screener: Screener) -> None:
    bp = {
        "resourceType": "Observation",
        "id": "bp1",
        "status": "final",
        "code": cc(LOINC, "85354-9"),
        "subject": {"reference": "Patient/lonely"},
        "effectiveDateTime": "2026-11-20",
        "component": [
            {"code": cc(LOINC, "8480-6"), **quantity(190, "mm[Hg]")},
            {"code": cc(LOINC, "8462-4"), **quantity(95, "mm[Hg]")},
        ],
    }
    [decision] = screener.screen_fhir(bp, AS_OF)
    assert isinstance(decision, Decision) and decision.record_id == "lonely"
    assert decision.outcome == "ineligible"  # the reading it has is enough to exclude
    assert decision.criterion("EXC-BP-UNCONTROLLED").status == "met"
    # A fragment is not a chart: no list in it is taken as complete, nothing as "none".
    for criterion in ("EXC-PSYCHOSIS", "EXC-HYPERSENSITIVITY", "INC-REFRACTORY", "EXC-CV-UNSTABLE"):
        assert decision.criterion(criterion).status == "unknown", criterion
    assert any("no Patient resource for Patient/lonely" in n for n in decision.extra["input_notes"])


def test_a_bulk_export_without_a_resource_type_leaves_its_criteria_unknown(
    screener: Screener, tmp_path: Path
) -> None:
    import shutil

    export = tmp_path / "export"
    shutil.copytree(FIXTURES / "synthea-bulk-ndjson", export)
    for path in export.glob("AllergyIntolerance*.ndjson"):
        path.unlink()
    screened = 0
    for record in bulk_records(export, screener.ruleset):
        assert record["allergies"] is None
        if record.get("deceased"):
            continue
        decision = screener.screen_fhir_record(record, AS_OF)
        assert decision.criterion("EXC-HYPERSENSITIVITY").status == "unknown"
        screened += 1
    assert screened >= 3


def test_not_fhir_at_all(screener: Screener) -> None:
    assert not is_fhir({"id": "native"}) and not is_fhir([]) and is_fhir({"resourceType": "Patient"})
    with pytest.raises(InputError, match="no Patient"):
        screener.screen_fhir({"resourceType": "Observation", "status": "final"}, AS_OF)


# -- Bulk Data -----------------------------------------------------------------------------


def test_bulk_export_gives_one_record_per_patient(screener: Screener) -> None:
    records = list(bulk_records(BULK, screener.ruleset))
    patients = [json.loads(line)["id"] for line in (BULK / "Patient.000.ndjson").read_text().splitlines()]
    assert [r["id"] for r in records] == patients
    by_id = {r["id"][:8]: r for r in records}
    assert by_id["3af3708d"]["deceased"] is True
    assert {c["display"] for c in by_id["ca15b832"]["pain_conditions"]} >= {"Chronic low back pain (finding)"}
    for record in records:
        for dx in record["conditions"] + record["pain_conditions"]:
            assert dx["source"].startswith("Condition/")
    assert by_id["cbc86e51"]["allergies"], "AllergyIntolerance joined on patient"


def test_bulk_spilling_to_disk_gives_the_same_records(screener: Screener) -> None:
    in_memory = sorted(
        (r.record["id"], json.dumps(r.record, sort_keys=True)) for r in read_bulk(BULK, screener.ruleset)
    )
    spilled = sorted(
        (r.record["id"], json.dumps(r.record, sort_keys=True))
        for r in read_bulk(BULK, screener.ruleset, bucket_bytes=10_000)
    )
    assert spilled == in_memory


def test_bulk_records_are_screened(screener: Screener) -> None:
    outcomes = []
    for record in bulk_records(BULK, screener.ruleset):
        result = screener.screen_fhir_record(record, AS_OF)
        outcomes.append("not_screened" if isinstance(result, NotScreened) else result.outcome.value)
    assert "not_screened" in outcomes and len(outcomes) == 5


def test_bulk_errors_name_the_file_and_line(screener: Screener, tmp_path: Path) -> None:
    (tmp_path / "Patient.000.ndjson").write_text('{"resourceType": "Patient", "id": "a"}\n')
    (tmp_path / "Condition.000.ndjson").write_text(
        '\n{"resourceType": "Condition", "subject": {"reference": "Patient/a"}}\n{oops\n'
    )
    with pytest.raises(InputError) as caught:
        list(bulk_records(tmp_path, screener.ruleset))
    assert caught.value.source is not None and caught.value.source.endswith("Condition.000.ndjson")
    assert caught.value.position == "3:2"
    (tmp_path / "Patient.000.ndjson").unlink()
    with pytest.raises(InputError, match="no Patient NDJSON"):
        list(bulk_records(tmp_path, screener.ruleset))
    with pytest.raises(InputError, match="must be a directory"):
        list(bulk_records(tmp_path / "Condition.000.ndjson", screener.ruleset))


# -- the command line ----------------------------------------------------------------------


def test_check_command_screens_each_patient_of_a_bundle() -> None:
    from click.testing import CliRunner

    from screening.cli import main

    from .conftest import RULES

    [path] = SYNTHEA.glob("Morris_*.json")
    runner = CliRunner()
    text = runner.invoke(main, ["check", str(path), "--as-of", "2021-01-01", "--rules", str(RULES)])
    assert text.exit_code == 0, text.output
    assert "record cd9e9826" not in text.output and "INELIGIBLE" in text.output
    as_json = runner.invoke(
        main, ["check", str(path), "--as-of", "2021-01-01", "--format", "json", "--rules", str(RULES)]
    )
    [decision] = json.loads(as_json.output)
    assert decision["outcome"] == "ineligible" and decision["input_notes"] == []
    broken = (
        FIXTURES
        / "cds-hooks-opioid-cds"
        / "head"
        / "request-example-rec-12-patient-view-out-opioid-misuse.json"
    )
    failed = runner.invoke(main, ["check", str(broken), "--rules", str(RULES)])
    assert failed.exit_code == 1
    assert f"{broken}:94:6: not valid JSON" in failed.output
