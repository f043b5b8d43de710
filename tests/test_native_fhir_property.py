"""Property: the same patient, as a native record and as a FHIR R4 Bundle, gets the same decision.

Each example starts from the eligible base record and moves values to both sides of every
threshold (BP 140/160/180 and 90/100, pain score 4, ALT/AST at 1x and 3x the upper limit,
PHQ-9 item 9) and dates to both sides of every window edge, counted back from the
screening date (BP, PHQ-9, pregnancy 30 days; pain score and labs 90 days; pain onset 3
calendar months; substance use 6 and 12 calendar months; MI 6 months; birthdays at 18, 55
and 65), with screening dates at month ends and on a leap day. Readings may share a day.
The Bundle is made by ``to_bundle`` of test_fhir.py, so only what it can say is generated:
one pain condition (FHIR has no primary flag), explicit histories, no drug with an
"effective" outcome, no medication doses.

``SCREENING_PROPERTY_EXAMPLES=1000`` runs more examples than CI does.
"""

from __future__ import annotations

import copy
import os
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from screening import Screener
from screening.decision import Decision
from screening.windows import add_months

from .conftest import eligible_record
from .test_fhir import _comparable, to_bundle

EXAMPLES = int(os.environ.get("SCREENING_PROPERTY_EXAMPLES", "200"))

# Month ends and a leap day, so calendar-month windows clamp.
AS_OF_DATES = [date(2026, 11, 22), date(2026, 3, 31), date(2025, 2, 28), date(2024, 2, 29), date(2026, 8, 31)]

SYSTOLIC = [128, 139.6, 140, 140.4, 141, 159.6, 160, 160.4, 161, 179.6, 180, 180.4, 181, 186]
DIASTOLIC = [78, 89.6, 90, 90.4, 91, 99.6, 100, 100.4, 101, 104]
PAIN = [0, 3, 3.96, 4, 4.04, 5, 7, 10]
ENZYME_RATIO = [0.5, 0.99, 1, 1.01, 2.99, 3, 3.01, 4]
ENZYME_VALUE = [24, 39.9, 40, 40.1, 119.9, 120, 120.1, 130]


def _day(as_of: date, days: int) -> str:
    return (as_of - timedelta(days=days)).isoformat()


def _months(as_of: date, months: int, days: int = 0) -> str:
    """``months`` calendar months before ``as_of``, then ``days`` more days back (negative: later)."""
    return (add_months(as_of, -months) - timedelta(days=days)).isoformat()


def _days_back(offsets: list[int]) -> st.SearchStrategy[list[int]]:
    # Up to three readings, some on the same day (the engine must not depend on their order).
    return st.lists(st.sampled_from(offsets), max_size=3)


@st.composite
def patients(draw: st.DrawFn) -> tuple[dict[str, Any], date]:
    as_of = draw(st.sampled_from(AS_OF_DATES))
    vary = st.booleans()  # each part either stays as in the eligible base or is moved around
    record: dict[str, Any] = eligible_record(id="prop")
    record["sex"] = draw(st.sampled_from(["male", "female"]))
    if draw(vary):  # birthdays at the adult (18), pregnancy (55) and CV-risk (65) ages, and a day later
        years, later = draw(st.sampled_from([18, 55, 56, 65])), draw(st.sampled_from([0, 1]))
        record["birth_date"] = _months(as_of, 12 * years, days=-later)

    systolic = st.sampled_from(SYSTOLIC) | st.floats(120, 200, allow_nan=False)
    diastolic = st.sampled_from(DIASTOLIC) | st.floats(50, 115, allow_nan=False)
    if draw(vary):
        record["blood_pressure"] = [
            {"systolic": draw(systolic), "diastolic": draw(diastolic), "date": _day(as_of, d)}
            for d in draw(_days_back([0, 1, 29, 30, 31, 45]))
        ]
    else:
        record["blood_pressure"] = [{"systolic": 128, "diastolic": 78, "date": _day(as_of, 5)}]

    score = st.sampled_from(PAIN) | st.floats(0, 10, allow_nan=False)
    if draw(vary):
        record["pain_scores"] = [
            {"score": draw(score), "date": _day(as_of, d)} for d in draw(_days_back([0, 1, 89, 90, 91, 200]))
        ]
    else:
        record["pain_scores"] = [{"score": 7, "date": _day(as_of, 10)}]

    onset = _months(as_of, 40)
    if draw(vary):
        onset = draw(
            st.sampled_from(
                [
                    _months(as_of, 3),
                    _months(as_of, 3, days=-1),
                    _months(as_of, 3, days=1),
                    _months(as_of, 40),
                    None,
                ]
            )
        )
    pain = dict(record["pain_conditions"][0])
    if onset is None:
        pain.pop("onset")
    else:
        pain["onset"] = onset
    record["pain_conditions"] = [pain]

    labs = []
    for d in draw(st.lists(st.sampled_from([0, 1, 89, 90, 91]), max_size=3)) if draw(vary) else []:
        test, code = draw(st.sampled_from([("ALT", "1742-6"), ("AST", "1920-8")]))
        uln = draw(st.sampled_from([None, 40, 41, 33.5]))
        if uln is None:
            value = draw(st.sampled_from(ENZYME_VALUE))
        else:
            value = draw(st.sampled_from(ENZYME_RATIO)) * uln
        lab = {"test": test, "code": code, "value": value, "unit": "U/L", "date": _day(as_of, d)}
        if uln is not None:
            lab["upper_limit"] = uln
        labs.append(lab)
    record["labs"] = labs

    record["phq9"] = [
        {"item9": draw(st.integers(0, 3)), "date": _day(as_of, d)}
        | ({"total": t} if (t := draw(st.none() | st.integers(0, 27))) is not None else {})
        for d in (draw(_days_back([0, 1, 29, 30, 31, 60])) if draw(vary) else [])
    ]

    if record["sex"] == "female":
        status = st.sampled_from(["pregnant", "not_pregnant"])
        record["pregnancy_status"] = (
            [{"status": draw(status), "date": _day(as_of, d)} for d in draw(_days_back([0, 1, 30, 31, 60]))]
            if draw(vary)
            else [{"status": "not_pregnant", "date": _day(as_of, 5)}]
        )

    sud = None
    if draw(vary):
        sud = draw(
            st.sampled_from(
                [
                    None,
                    ("active", None),
                    *(
                        (status, last)
                        for status in ("remission", "resolved")
                        for last in (
                            _months(as_of, 6),
                            _months(as_of, 6, days=1),
                            _months(as_of, 12),
                            _months(as_of, 12, days=1),
                            _months(as_of, 3),
                        )
                    ),
                ]
            )
        )
    record["substance_use_history"] = (
        []
        if sud is None
        else [
            {"code": "F11.20", "display": "Opioid dependence", "status": sud[0], "onset": _months(as_of, 60)}
            | ({"last_active": sud[1]} if sud[1] else {})
        ]
    )

    mi = None
    if draw(vary):
        mi = draw(
            st.sampled_from(
                [
                    None,
                    _months(as_of, 6),
                    _months(as_of, 6, days=1),
                    _months(as_of, 6, days=-1),
                    _months(as_of, 30),
                ]
            )
        )
    hypertension = {"code": "I10", "display": "Essential (primary) hypertension", "status": "active"}
    record["conditions"] = ([hypertension] if draw(vary) and draw(vary) else []) + (
        []
        if mi is None
        else [
            {
                "code": "I21.4",
                "display": "Non-ST elevation myocardial infarction",
                "status": draw(st.sampled_from(["active", "resolved"])),
                "onset": mi,
            }
        ]
    )
    assert _comparable(record)
    return record, as_of


def _fhir(record: dict[str, Any], as_of: date) -> dict[str, Any]:
    data = to_bundle(copy.deepcopy(record))
    for entry in data["entry"]:  # to_bundle dates the weight 2026-11-01; date it on the screening day
        resource = entry["resource"]
        if resource["resourceType"] == "Observation" and resource["code"]["coding"][0]["code"] == "29463-7":
            resource["effectiveDateTime"] = as_of.isoformat()
    return data


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(patients())
def test_native_and_fhir_give_the_same_decision(
    screener: Screener, patient: tuple[dict[str, Any], date]
) -> None:
    record, as_of = patient
    expected = screener.screen(copy.deepcopy(record), as_of=as_of.isoformat())
    [got] = screener.screen_fhir(_fhir(record, as_of), as_of=as_of.isoformat())
    assert isinstance(got, Decision), got
    event(f"outcome {expected.outcome.value}")
    assert got.outcome == expected.outcome
    assert got.statuses == expected.statuses
    assert [r.id for r in got.criteria if r.decisive] == [r.id for r in expected.criteria if r.decisive]
