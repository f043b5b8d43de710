"""Observation values are read as recorded, in known units (docs/reading-rules.md, "Values and units").

Every case screens through the real rule set and durable-rules, and compares the FHIR
reading of a value with the native record that holds the same value.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from screening import Screener
from screening.decision import Decision

from .conftest import AS_OF, eligible_record
from .test_fhir import LOINC, bundle, cc, observation, one, quantity, to_bundle


def _native(**changes: Any) -> dict[str, Any]:
    return eligible_record(id="p1", **changes)


def _both(screener: Screener, native: dict[str, Any]) -> tuple[Decision, Decision]:
    """The decision from the native record and from the same record sent as FHIR."""
    [from_fhir] = screener.screen_fhir(to_bundle(copy.deepcopy(native)), AS_OF)
    assert isinstance(from_fhir, Decision), from_fhir
    return screener.screen(native, AS_OF), from_fhir


def test_a_systolic_just_over_the_limit_is_over_it_from_fhir_as_from_the_native_record(
    screener: Screener,
) -> None:
    native = _native(blood_pressure=[{"systolic": 180.4, "diastolic": 90, "date": "2026-11-10"}])
    from_native, from_fhir = _both(screener, native)
    assert from_native.criterion("EXC-BP-UNCONTROLLED").status == "met"
    assert from_fhir.criterion("EXC-BP-UNCONTROLLED").status == "met"
    assert from_fhir.outcome == from_native.outcome


def test_a_pain_score_just_under_the_minimum_is_under_it_from_fhir_as_from_the_native_record(
    screener: Screener,
) -> None:
    native = _native(pain_scores=[{"score": 3.96, "date": "2026-11-01"}])
    from_native, from_fhir = _both(screener, native)
    assert from_native.criterion("INC-SEVERITY").status == "not_met"
    assert from_fhir.criterion("INC-SEVERITY").status == "not_met"
    assert from_fhir.outcome == from_native.outcome


def test_blood_pressure_in_kpa_is_converted_to_mmhg(screener: Screener) -> None:
    # 24.1 kPa is 180.77 mmHg: over the 180 limit, which 24 kPa (180.01) is also, and 23.9 is not.
    panel = observation(
        "85354-9",
        "2026-11-15",
        component=[
            {"code": cc(LOINC, "8480-6"), **quantity(24.1, "kPa")},
            {"code": cc(LOINC, "8462-4"), **quantity(12, "kPa")},
        ],
    )
    record = one(bundle(panel), screener)
    [reading] = record["blood_pressure"]
    assert reading["systolic"] == pytest.approx(24.1 * 7.50062)
    assert reading["diastolic"] == pytest.approx(12 * 7.50062)
    data = to_bundle(_native())
    data["entry"].append({"resource": {"id": "kpa", "subject": {"reference": "Patient/p1"}, **panel}})
    [decision] = screener.screen_fhir(data, AS_OF)
    assert isinstance(decision, Decision)
    assert decision.criterion("EXC-BP-UNCONTROLLED").status == "met"


def test_standalone_halves_in_kpa_are_converted(screener: Screener) -> None:
    record = one(
        bundle(
            observation("8480-6", "2026-11-01T09:00:00Z", **quantity(16, "kPa")),
            observation("8462-4", "2026-11-01T09:00:00Z", **quantity(10.5, "kPa")),
        ),
        screener,
    )
    [reading] = record["blood_pressure"]
    assert (reading["systolic"], reading["diastolic"]) == pytest.approx((16 * 7.50062, 10.5 * 7.50062))


@pytest.mark.parametrize(
    ("resource", "words"),
    [
        (observation("8480-6", **quantity(180, "cm[H2O]")), "blood pressure 180 in 'cm[H2O]'"),
        (observation("72514-3", **quantity(7, "%")), "pain score 7 in '%'"),
        (observation("1742-6", **quantity(2, "ukat/L")), "liver test 2 in 'ukat/L'"),
        (observation("1742-6", **quantity(130)), "liver test 130 has no unit"),
        (observation("29463-7", **quantity(180)), "body weight 180 has no unit"),
        (observation("29463-7", **quantity(12, "[stone_av]")), "body weight 12 in '[stone_av]'"),
    ],
)
def test_a_value_in_a_unit_the_screener_does_not_know_is_left_out_and_noted(
    screener: Screener, resource: dict[str, Any], words: str
) -> None:
    data = to_bundle(_native())
    data["entry"].append({"resource": {"id": "odd", "subject": {"reference": "Patient/p1"}, **resource}})
    [decision] = screener.screen_fhir(data, AS_OF)
    assert isinstance(decision, Decision)
    notes = decision.extra["input_notes"]
    assert any(n.startswith("Observation/odd") and words in n and "not used" in n for n in notes), notes
    # Left out: the record's own value of that kind is what the decision used.
    [plain] = screener.screen_fhir(to_bundle(_native()), AS_OF)
    assert isinstance(plain, Decision)
    assert [(c.id, c.status, c.reason) for c in decision.criteria] == [
        (c.id, c.status, c.reason) for c in plain.criteria
    ]


@pytest.mark.parametrize(
    ("code", "value", "field", "expected"),
    [
        ("8480-6", quantity(150, "mmHg"), None, None),
        ("72514-3", quantity(6.5, "/10"), "pain_scores", 6.5),
        ("72514-3", quantity(6.5, "{score}"), "pain_scores", 6.5),
        ("72514-3", quantity(6.5, "1"), "pain_scores", 6.5),
        ("72514-3", quantity(6.5), "pain_scores", 6.5),
        ("72514-3", {"valueInteger": 6}, "pain_scores", 6),
        ("1742-6", quantity(50, "U/L"), "labs", 50),
        ("1742-6", quantity(50, "[IU]/L"), "labs", 50),
        ("29463-7", quantity(82.25, "kg"), "weight_kg", 82.25),
        ("29463-7", quantity(82250, "g"), "weight_kg", 82.25),
    ],
)
def test_usual_unit_spellings_are_read(
    screener: Screener, code: str, value: dict[str, Any], field: str | None, expected: float | None
) -> None:
    record = one(bundle(observation(code, **value)), screener)
    if field is None:
        return  # a lone systolic: only that it is read without a note
    found = record[field]
    if field == "pain_scores":
        found = found[0]["score"]
    elif field == "labs":
        found = found[0]["value"]
    assert found == pytest.approx(expected)


def test_a_pain_score_as_a_loinc_answer_code_is_still_read(screener: Screener) -> None:
    answer = observation("72514-3", valueCodeableConcept=cc(LOINC, "LA6113-0", "2"))
    record = one(bundle(answer), screener)
    assert [p["score"] for p in record["pain_scores"]] == [2]


def test_a_reference_range_in_an_unknown_unit_is_noted_and_not_used(screener: Screener) -> None:
    lab = observation(
        "1742-6", **quantity(130, "U/L"), referenceRange=[{"high": {"value": 1, "code": "ukat/L"}}]
    )
    record = bundle(lab)
    [found] = screener.screen_fhir(record, AS_OF)
    assert isinstance(found, Decision)
    assert any("upper limit of normal 1 in 'ukat/L'" in n for n in found.extra["input_notes"])
