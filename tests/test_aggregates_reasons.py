"""Reasons say what decided a criterion, and never contradict its status."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from screening import Screener
from screening.engine.facts import FactSheet, compute_facts
from screening.record import parse_record

from .conftest import AS_OF, eligible_record


def reason(screener: Screener, criterion: str, **changes: Any) -> tuple[str, str]:
    decision = screener.screen(eligible_record(**changes), as_of=AS_OF)
    result = decision.criterion(criterion)
    return result.status, result.reason


def test_chronic_pain_text_cannot_read_as_reaching_the_threshold(screener: Screener) -> None:
    pain = [{"code": "G90.512", "display": "CRPS I", "onset": "2026-08-24", "primary": True}]
    status, text = reason(screener, "INC-CHRONIC", pain_conditions=pain)
    assert status == "not_met"
    assert "2 months 29 days (90 days)" in text
    assert "present for 3 months" not in text


def test_no_treatment_history_says_so(screener: Screener) -> None:
    status, text = reason(screener, "INC-REFRACTORY", treatments=None)
    assert status == "unknown"
    assert "no treatment history recorded" in text
    assert "unknown" not in text


def test_refractory_reasons_use_class_labels_and_singular(screener: Screener) -> None:
    trials = [{"name": "gabapentin", "outcome": "ineffective"}, {"name": "Zorbexa", "outcome": "ineffective"}]
    status, text = reason(screener, "INC-REFRACTORY", treatments=trials)
    assert status == "unknown"
    assert "1 treatment class (gabapentinoid/anticonvulsant)" in text
    assert "treatment class not recognised for: Zorbexa" in text
    assert "gabapentinoid_anticonvulsant" not in text
    assert "classes (" not in text.split(";")[0]


def test_an_ongoing_trial_is_an_open_class_not_ignored(screener: Screener) -> None:
    trials = [
        {"name": "gabapentin", "outcome": "ineffective"},
        {"name": "CBT", "treatment_class": "psychological", "outcome": "ongoing"},
    ]
    decision = screener.screen(eligible_record(treatments=trials), as_of=AS_OF)
    result = decision.criterion("INC-REFRACTORY")
    assert result.status == "unknown"
    assert "outcome not known yet in 1 treatment class (psychological therapy)" in result.reason
    assert any("the outcome of CBT (psychological therapy)" in m for m in decision.missing_information)


def test_hepatic_review_by_diagnosis_does_not_cite_a_normal_alt_as_its_reason(screener: Screener) -> None:
    status, text = reason(
        screener,
        "REV-HEPATIC-MODERATE",
        conditions=[{"code": "K74.60", "display": "Unspecified cirrhosis of liver"}],
        labs=[{"test": "ALT", "value": 24, "unit": "U/L", "upper_limit": 41, "date": "2026-11-01"}],
    )
    assert status == "met"
    assert "moderate hepatic disease: Unspecified cirrhosis of liver" in text
    assert "ALT 24 U/L (upper limit 41 U/L) = 0.59x the upper limit" in text
    assert "(review above 3x)" in text


def test_suicidality_by_diagnosis_labels_the_phq9_instead_of_listing_it_as_evidence(
    screener: Screener,
) -> None:
    status, text = reason(
        screener,
        "REV-SUICIDALITY",
        psychiatric_history=[{"code": "R45.851", "display": "Suicidal ideations"}],
        phq9=[{"item9": 0, "date": "2026-11-01"}],
    )
    assert status == "met"
    assert "Diagnosis: Suicidal ideations" in text
    assert "PHQ-9 item 9: 0 on 2026-11-01 (ideation from 1)" in text
    _, without = reason(
        screener,
        "REV-SUICIDALITY",
        psychiatric_history=[{"code": "R45.851", "display": "Suicidal ideations"}],
    )
    assert "PHQ-9 item 9: none in the last 30 days" in without


def test_breastfeeding_not_recorded_is_said_and_not_noted_for_men(screener: Screener) -> None:
    decision = screener.screen(eligible_record(breastfeeding=None), as_of=AS_OF)
    result = decision.criterion("REV-BREASTFEEDING")
    assert result.status == "not_met"
    assert result.reason == "not applicable (sex male)"
    assert not any("breastfeeding" in note for note in decision.not_checked)
    woman = eligible_record(breastfeeding=None, sex="female", birth_date="1990-06-21")
    woman["pregnancy_status"] = [{"status": "not_pregnant", "date": "2026-11-12"}]
    decision = screener.screen(woman, as_of=AS_OF)
    result = decision.criterion("REV-BREASTFEEDING")
    assert result.status == "not_met"
    assert "not recorded" in result.reason
    assert any("breastfeeding status was not recorded" in note for note in decision.not_checked)


@pytest.mark.parametrize(
    ("bp", "criterion", "status", "words"),
    [
        ((186, 104), "CAU-BP-STAGE2", "not_met", "above the exclusion limit of 180/100 mmHg"),
        ((186, 104), "REV-BP-ELEVATED", "not_met", "above the exclusion limit of 180/100 mmHg"),
        ((150, 101), "EXC-BP-UNCONTROLLED", "met", "(diastolic 101 > 100)"),
        (
            (165, 90),
            "REV-BP-ELEVATED",
            "met",
            "above the review limit of 160 mmHg systolic (systolic 165 > 160)",
        ),
        ((165, 90), "CAU-BP-STAGE2", "not_met", "above the review limit"),
        ((120, 80), "CAU-BP-STAGE2", "not_met", "at or below the caution limit of 140/90 mmHg"),
    ],
)
def test_bp_reasons_say_which_limit_and_value(
    screener: Screener, bp: tuple[int, int], criterion: str, status: str, words: str
) -> None:
    reading = [{"systolic": bp[0], "diastolic": bp[1], "date": "2026-11-20"}]
    got, text = reason(screener, criterion, blood_pressure=reading)
    assert got == status
    assert words in text
    assert ", or above" not in text


def test_same_day_bp_lists_every_reading_of_that_day(screener: Screener) -> None:
    readings = [
        {"systolic": 120, "diastolic": 105, "date": "2026-11-21"},
        {"systolic": 130, "diastolic": 80, "date": "2026-11-21"},
        {"systolic": 190, "diastolic": 80, "date": "2026-11-01"},
    ]
    decision = screener.screen(eligible_record(blood_pressure=readings), as_of=AS_OF)
    result = decision.criterion("EXC-BP-UNCONTROLLED")
    assert result.status == "met"
    assert result.facts["bp_systolic"] == 130 and result.facts["bp_diastolic"] == 105
    whats = [e["what"] for e in result.evidence]
    assert whats == [
        "BP 120/105 mmHg (one of 2 readings that day)",
        "BP 130/80 mmHg (one of 2 readings that day)",
    ]


def test_early_remission_review_says_which_branch(screener: Screener) -> None:
    f16 = [
        {
            "code": "F16.21",
            "display": "Hallucinogen dependence, in remission",
            "status": "remission",
            "last_active": "2015-01-01",
        }
    ]
    status, text = reason(screener, "REV-SUD-EARLY-REMISSION", substance_use_history=f16)
    assert status == "met"
    assert "hallucinogen use disorder (reviewed at any time): Hallucinogen dependence, in remission" in text
    assert "early remission" not in text
    f11 = [
        {
            "code": "F11.21",
            "display": "Opioid dependence, in remission",
            "status": "remission",
            "last_active": "2026-02-01",
        }
    ]
    status, text = reason(screener, "REV-SUD-EARLY-REMISSION", substance_use_history=f11)
    assert status == "met"
    assert "hallucinogen use disorder (reviewed at any time): none" in text
    assert "in early remission: the last problematic use was more than 6 and at most 12 months ago" in text


def test_dosing_rate_is_labelled_per_hour(screener: Screener) -> None:
    decision = screener.screen(eligible_record(), as_of=AS_OF)
    assert decision.dosing is not None
    labels = [r["label"] for r in decision.dosing["ranges"]]
    assert "Amount infused per hour (mg/h)" in labels


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"code": "XXX"}, "not a well-formed ICD-10-CM code"),
        ({"code": "F20", "system": "snomed"}, "not a SNOMED CT concept id"),
    ],
)
def test_malformed_diagnosis_codes_are_rejected_naming_the_field(item: dict[str, str], words: str) -> None:
    from screening import RecordError

    with pytest.raises(RecordError) as raised:
        parse_record(eligible_record(psychiatric_history=[item]), date(2026, 11, 22))
    assert "psychiatric_history[0].code" in str(raised.value)
    assert words in str(raised.value)


def facts_of(screener: Screener, **changes: Any) -> FactSheet:
    record = parse_record(eligible_record(**changes), date.fromisoformat(AS_OF))
    return compute_facts(screener.ruleset, record, date.fromisoformat(AS_OF))


@pytest.mark.parametrize(
    ("field", "facts"),
    [
        (
            "conditions",
            ["hepatic_severe", "hyperthyroid", "cv_event_recent", "seizure_disorder", "hypertension_dx"],
        ),
        ("medications", ["benzodiazepine", "benzodiazepine_dose", "lamotrigine", "opioid_therapy"]),
        ("allergies", ["ketamine_allergy"]),
    ],
)
def test_a_list_not_available_leaves_its_facts_unknown_and_asks_for_it(
    screener: Screener, field: str, facts: list[str]
) -> None:
    unavailable = facts_of(screener, **{field: None})
    empty = facts_of(screener, **{field: []})
    for name in facts:
        assert unavailable.values[name] is None, name
        assert unavailable.blocked_by[name] == field, name
        assert empty.values[name] in (False, 0), name
        assert name not in empty.blocked_by
    # Only the facts of that list: the psychiatric history is still answered.
    assert unavailable.values["psychotic_disorder"] is False


def test_a_match_in_another_list_settles_a_problem_list_fact_without_the_problem_list(
    screener: Screener,
) -> None:
    pain = [
        {"code": "G90.512", "display": "CRPS I", "onset": "2023-05-10", "primary": True},
        {"code": "H40.9", "display": "Unspecified glaucoma", "onset": "2024-01-01"},
    ]
    sheet = facts_of(screener, conditions=None, pain_conditions=pain)
    assert sheet.values["raised_icp_iop"] is True
    assert "raised_icp_iop" not in sheet.blocked_by
    assert sheet.values["seizure_disorder"] is None
    # A recent stroke behind a central post-stroke pain: met in its onset window, while
    # an older event could still be on the missing problem list.
    stroke = {"code": "I63.9", "display": "Cerebral infarction", "onset": "2026-09-01"}
    sheet = facts_of(screener, conditions=None, pain_conditions=[pain[0], stroke])
    assert sheet.values["cv_event_recent"] is True
    assert sheet.values["cv_event_past"] is None
    assert sheet.blocked_by["cv_event_past"] == "conditions"


def test_reasons_say_the_medication_or_allergy_list_is_not_available(
    screener: Screener,
) -> None:
    status, text = reason(screener, "CAU-OPIOID-THERAPY", medications=None)
    assert (status, text) == ("unknown", "the medication list is not available")
    status, text = reason(screener, "EXC-HYPERSENSITIVITY", allergies=None)
    assert status == "unknown"
    assert "allergy list is not available" in text
    status, text = reason(
        screener, "EXC-HYPERSENSITIVITY", allergies=[{"substance": "ketamine", "code": "6130"}]
    )
    assert status == "met"


def test_a_positive_phq9_item9_in_the_window_is_reported_even_after_a_later_zero(screener: Screener) -> None:
    phq9 = [{"item9": 2, "total": 15, "date": "2026-11-02"}, {"item9": 0, "total": 5, "date": "2026-11-19"}]
    status, text = reason(screener, "REV-SUICIDALITY", phq9=phq9)
    assert status == "met"
    assert "PHQ-9 item 9: 2 on 2026-11-02 (the highest in the last 30 days; 0 on 2026-11-19)" in text


def test_a_liver_result_without_a_reference_range_says_it_used_the_default(screener: Screener) -> None:
    labs = [{"test": "ALT", "code": "1742-6", "value": 130, "unit": "U/L", "date": "2026-11-01"}]
    status, text = reason(screener, "REV-HEPATIC-MODERATE", labs=labs)
    assert status == "met"
    assert "no reference range reported, so the default upper limit 40 U/L" in text
    assert "3.25x the upper limit" in text


def test_a_ratio_just_above_a_whole_multiple_never_reads_as_that_multiple(screener: Screener) -> None:
    labs = [
        {
            "test": "ALT",
            "code": "1742-6",
            "value": 120.1,
            "unit": "U/L",
            "upper_limit": 40,
            "date": "2026-11-01",
        }
    ]
    status, text = reason(screener, "REV-HEPATIC-MODERATE", labs=labs)
    assert status == "met"
    assert "3.0025x the upper limit" in text


@pytest.mark.parametrize(("dose", "emphasised"), [(0.8, False), (0.804, True)])
def test_benzodiazepine_dose_is_compared_unrounded(screener: Screener, dose: float, emphasised: bool) -> None:
    # lorazepam x 10 = diazepam-equivalent mg: 8 is at the limit, 8.04 above it.
    meds = [{"name": "lorazepam", "code": "6470", "daily_dose_mg": dose}]
    status, text = reason(screener, "CAU-BENZODIAZEPINE", medications=meds)
    assert status == "met"
    assert ("may blunt the response" in text) is emphasised
