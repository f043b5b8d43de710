"""Outcome precedence and the decision's contents."""

from __future__ import annotations

import json

from screening import Screener
from screening.decision import Outcome, level

from .conftest import AS_OF, eligible_record

HIGH_BP = [{"systolic": 186, "diastolic": 104, "date": "2026-10-25"}]


def test_effect_status_levels_follow_the_spec() -> None:
    assert level("exclude", "met") is Outcome.ineligible
    assert level("require", "not_met") is Outcome.ineligible
    assert level("caution", "unknown") is None
    assert level("indication", "not_met") is Outcome.needs_review
    assert level("review", "unknown") is Outcome.needs_information


def test_a_known_exclusion_wins_over_unknowns(screener: Screener) -> None:
    decision = screener.screen(eligible_record(blood_pressure=HIGH_BP, psychiatric_history=None), as_of=AS_OF)
    assert decision.outcome is Outcome.ineligible
    assert decision.summary.startswith("EXC-BP-UNCONTROLLED: BP 186/104 mmHg measured 2026-10-25")
    assert any("psychiatric history" in item for item in decision.missing_information)
    assert "re-screen once BP is at or below 180/100 mmHg" in decision.recommendations[0]


def test_the_decision_json_has_everything(screener: Screener) -> None:
    data = json.loads(screener.screen(eligible_record(blood_pressure=HIGH_BP), as_of=AS_OF).to_json())
    assert {
        "record_id",
        "outcome",
        "as_of",
        "criteria",
        "recommendations",
        "missing_information",
        "ruleset",
    } <= set(data)
    assert data["ruleset"]["id"] == "ketamine-chronic-pain" and len(data["ruleset"]["sha256"]) == 64
    bp = next(c for c in data["criteria"] if c["id"] == "EXC-BP-UNCONTROLLED")
    assert bp["status"] == "met" and bp["effect"] == "exclude" and bp["decisive"]
    assert bp["facts"] == {"bp_systolic": 186, "bp_diastolic": 104}
    assert bp["parameters"] == {
        "bp_exclusion_systolic": 180,
        "bp_exclusion_diastolic": 100,
        "bp_window_days": 30,
    }
    assert bp["sources"][0] == "ketamine_smpc"  # an id of the decision's sources table
    assert data["sources"]["ketamine_smpc"]["label"]
    assert {sid for c in data["criteria"] for sid in c["sources"]} <= set(data["sources"])
    assert bp["evidence"][0]["date"] == "2026-10-25"


def test_eligible_patients_get_reference_dosing(screener: Screener) -> None:
    decision = screener.screen(eligible_record(), as_of=AS_OF)
    assert decision.outcome is Outcome.eligible
    assert decision.dosing is not None
    first = decision.dosing["ranges"][0]
    assert first["mg"] == [8.2, 24.6]


def test_site_parameters_change_the_decision_and_are_echoed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from .conftest import RULES

    site = tmp_path / "site.yaml"
    site.write_text("parameters:\n  bp_exclusion_systolic: 170\n")
    strict = Screener(RULES, site)
    record = eligible_record(blood_pressure=[{"systolic": 175, "diastolic": 80, "date": "2026-11-10"}])
    decision = strict.screen(record, as_of=AS_OF)
    assert decision.outcome is Outcome.ineligible
    assert decision.ruleset["overrides"] == {"bp_exclusion_systolic": 170}
    assert decision.criterion("EXC-BP-UNCONTROLLED").parameters["bp_exclusion_systolic"] == 170
