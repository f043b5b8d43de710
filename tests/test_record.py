"""Bad input gets a precise error naming the record and the field, never a traceback."""

from __future__ import annotations

from datetime import date

import pytest

from screening import InputError, RecordError, Screener
from screening.record import Record, parse_record

from .conftest import AS_OF, eligible_record


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        (
            {"blood_pressure": [{"systolic": 40000, "diastolic": 80, "date": "2026-11-01"}]},
            "blood_pressure[0].systolic",
            "300",
        ),
        (
            {"blood_pressure": [{"systolic": 120, "diastolic": 130, "date": "2026-11-01"}]},
            "blood_pressure[0]",
            "not below systolic",
        ),
        (
            {"pain_scores": [{"score": 6, "date": "2027-01-01"}]},
            "pain_scores[0].date",
            "after the screening date",
        ),
        ({"birth_date": None, "age": 200}, "age", "130"),
        (
            {"treatments": [{"name": "gabapentin", "outcome": "meh"}]},
            "treatments[0].outcome",
            "'meh' is not allowed",
        ),
        ({"birth_date": "1800-01-01"}, "birth_date", "over 130"),
        ({"colour": "blue"}, "colour", "unknown field"),
        (
            {"psychiatric_history": [{"code": "F20.9", "status": "maybe"}]},
            "psychiatric_history[0].status",
            "'maybe'",
        ),
    ],
)
def test_bad_fields_are_named(screener: Screener, changes: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(RecordError) as caught:
        screener.screen(eligible_record(id="bad-1", **changes), as_of=AS_OF)
    error = caught.value
    assert error.record_id == "bad-1"
    assert "record 'bad-1'" in str(error)
    problem = next(p for p in error.problems if p.field == field)
    assert words in problem.message


def test_not_json_is_an_input_error(screener: Screener) -> None:
    with pytest.raises(InputError, match="not valid JSON"):
        screener.screen(b"{not json", as_of=AS_OF)
    with pytest.raises(InputError, match="JSON object"):
        screener.screen(b"[1, 2]", as_of=AS_OF)


def test_a_bad_screening_date_is_an_input_error(screener: Screener) -> None:
    with pytest.raises(InputError, match="as_of"):
        screener.screen(eligible_record(), as_of="22/11/2026")


def test_blank_history_is_unknown_but_empty_history_is_none(screener: Screener) -> None:
    blank = screener.screen(eligible_record(psychiatric_history=None), as_of=AS_OF)
    empty = screener.screen(eligible_record(psychiatric_history=[]), as_of=AS_OF)
    assert blank.criterion("EXC-PSYCHOSIS").status == "unknown"
    assert blank.outcome.value == "needs_information"
    assert any("psychiatric history" in item for item in blank.missing_information)
    assert empty.criterion("EXC-PSYCHOSIS").status == "not_met"
    assert empty.outcome.value == "eligible"


def test_same_record_and_date_give_the_same_decision(screener: Screener) -> None:
    first = screener.screen(eligible_record(), as_of=AS_OF).to_json()
    second = screener.screen(eligible_record(), as_of=AS_OF).to_json()
    assert first == second


@pytest.mark.parametrize(
    ("field", "criterion", "outcome", "asked"),
    [
        ("conditions", "EXC-HEPATIC-SEVERE", "needs_information", "the problem list"),
        ("allergies", "EXC-HYPERSENSITIVITY", "needs_information", "the allergy list"),
        # An unknown caution is listed as not checked and leaves the outcome as it was.
        ("medications", "CAU-BENZODIAZEPINE", "eligible", None),
    ],
)
def test_problem_list_medications_and_allergies_left_out_are_none_but_null_is_not_available(
    screener: Screener, field: str, criterion: str, outcome: str, asked: str | None
) -> None:
    left_out = eligible_record()
    del left_out[field]
    assert parse_record(left_out, date.fromisoformat(AS_OF)).model_dump()[field] == []
    assert (
        parse_record(eligible_record(**{field: None}), date.fromisoformat(AS_OF)).model_dump()[field] is None
    )

    none = screener.screen(left_out, as_of=AS_OF)
    assert none.criterion(criterion).status == "not_met"
    assert none.outcome.value == "eligible"
    assert none.to_json() == screener.screen(eligible_record(**{field: []}), as_of=AS_OF).to_json()

    unavailable = screener.screen(eligible_record(**{field: None}), as_of=AS_OF)
    assert unavailable.criterion(criterion).status == "unknown"
    assert "not available" in unavailable.criterion(criterion).reason
    assert unavailable.outcome.value == outcome
    if asked:
        assert any(item.startswith(asked) for item in unavailable.missing_information)
    else:
        assert any(note.startswith(f"{criterion} ") for note in unavailable.not_checked)


def test_the_schema_says_null_is_not_available_and_left_out_is_none() -> None:
    properties = Record.model_json_schema()["properties"]
    for field in ("conditions", "medications", "allergies"):
        assert properties[field]["default"] == []
        assert "null" in properties[field]["description"]
        assert "not available" in properties[field]["description"]


def test_plain_fields_name_their_source_in_the_evidence(screener: Screener) -> None:
    record = eligible_record(sources={"birth_date": "Patient/p1", "sex": "Patient/p1"})
    decision = screener.screen(record, as_of=AS_OF)
    assert decision.criterion("INC-ADULT").evidence == [{"what": "born 1975-03-02", "source": "Patient/p1"}]
    assert {"what": "sex: male", "source": "Patient/p1"} in decision.criterion("EXC-PREGNANCY").evidence


def test_sources_name_only_plain_fields(screener: Screener) -> None:
    with pytest.raises(RecordError) as raised:
        screener.screen(eligible_record(sources={"blood_pressure": "x"}), as_of=AS_OF)
    assert [p.field for p in raised.value.problems] == ["sources.blood_pressure"]
