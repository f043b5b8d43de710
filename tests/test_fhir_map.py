"""Treatment trials and pregnancy from FHIR resources, as docs/reading-rules.md reads them.

Each case screens through the real rule set and durable-rules.
"""

from __future__ import annotations

from typing import Any

import pytest

from screening import Screener
from screening.decision import Decision

from .conftest import AS_OF
from .test_fhir import ICD10, SNOMED, _med, bundle, cc, condition, observation, one

ORDERS = ("2025-01-01", "2025-01-20", "2025-02-10")  # 40 days of gabapentin orders
PAIN_AFTER = observation("72514-3", "2025-03-01", valueInteger=6)


def _stopped(**extra: Any) -> list[dict[str, Any]]:
    return [
        _med("MedicationStatement", "stopped", "25480", "gabapentin 300 MG", **extra)
        | {"effectivePeriod": {"start": start, "end": start}}
        for start in ORDERS
    ]


@pytest.mark.parametrize(
    "reason",
    [
        {"statusReason": [{"text": "cost"}]},
        {"statusReason": [{"text": "Course completed"}]},
        {"statusReason": [cc(SNOMED, "410546004", "Discontinued")]},
    ],
)
def test_a_trial_stopped_for_a_reason_that_is_not_a_failure_is_unknown_not_inferred(
    screener: Screener, reason: dict[str, Any]
) -> None:
    [trial] = one(bundle(*_stopped(**reason), PAIN_AFTER), screener)["treatments"]
    assert trial["outcome"] == "unknown" and not trial.get("inferred")


def test_a_trial_stopped_with_no_reason_may_still_be_inferred_failed(screener: Screener) -> None:
    [trial] = one(bundle(*_stopped(), PAIN_AFTER), screener)["treatments"]
    assert trial["outcome"] == "ineffective" and trial["inferred"] is True


@pytest.mark.parametrize(
    ("words", "outcome"),
    [
        ("no side effects", "unknown"),
        ("stopped without adverse events", "unknown"),
        ("course completed, no adverse effects", "unknown"),
        ("stopped: side effects (nausea)", "not_tolerated"),
        ("no relief", "ineffective"),
    ],
)
def test_negated_phrases_are_not_a_failure(screener: Screener, words: str, outcome: str) -> None:
    [trial] = one(bundle(*_stopped(statusReason=[{"text": words}])), screener)["treatments"]
    assert trial["outcome"] == outcome


def test_a_procedure_with_an_outcome_that_is_not_a_failure_is_not_inferred_failed(screener: Screener) -> None:
    res = {
        "resourceType": "Procedure",
        "status": "completed",
        "code": cc(SNOMED, "91251008", "Physical therapy procedure"),
        "performedPeriod": {"start": "2025-01-01", "end": "2025-02-15"},
        "outcome": {"text": "course completed"},
    }
    [trial] = one(bundle(res, PAIN_AFTER), screener)["treatments"]
    assert trial["outcome"] == "unknown" and not trial.get("inferred")


def _pregnancy(screener: Screener, *resources: dict[str, Any]) -> str:
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1990-01-01", "gender": "female"}
    [decision] = screener.screen_fhir(bundle(*resources, patient=patient), AS_OF)
    assert isinstance(decision, Decision), decision
    return decision.criterion("EXC-PREGNANCY").status


def test_an_active_pregnancy_condition_counts_from_its_onset(screener: Screener) -> None:
    recent = condition("72892002", onsetDateTime="2026-08-01", display="Normal pregnancy")
    assert _pregnancy(screener, recent) == "met"
    icd = condition("Z34.00", ICD10, onsetDateTime="2026-08-01")
    assert _pregnancy(screener, icd) == "met"


def test_a_pregnancy_condition_older_than_42_weeks_does_not_count(screener: Screener) -> None:
    old = condition("72892002", onsetDateTime="2025-11-01", display="Normal pregnancy")
    assert _pregnancy(screener, old) != "met"


def test_an_abated_pregnancy_condition_does_not_count_whatever_its_clinical_status(
    screener: Screener,
) -> None:
    for status in ("resolved", "active", None):
        abated = condition(
            "72892002",
            status=status,
            onsetDateTime="2026-06-01",
            abatementDateTime="2026-10-01",
            display="Normal pregnancy",
        )
        assert _pregnancy(screener, abated) != "met", status


def test_the_latest_pregnancy_evidence_wins(screener: Screener) -> None:
    pregnant = condition("72892002", onsetDateTime="2026-08-01", display="Normal pregnancy")
    later_not = observation("82810-3", "2026-11-10", valueCodeableConcept=cc(SNOMED, "60001007"))
    assert _pregnancy(screener, pregnant, later_not) != "met"
    earlier_not = observation("82810-3", "2026-07-10", valueCodeableConcept=cc(SNOMED, "60001007"))
    assert _pregnancy(screener, pregnant, earlier_not) == "met"
