"""Strict types at the door, plain-word errors, and bounded work for hostile records.

A boolean is never a number, text is never a number or a flag, a date is ``YYYY-MM-DD``;
the same whether a record comes as a dict (Python callers, the batch worker after orjson)
or as JSON bytes. Errors name the record and the field without pydantic's words.
"""

from __future__ import annotations

import copy
import os
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening import InputError, RecordError, Screener, ScreeningError
from screening.batch.csv_layout import CSV_COLUMNS, CsvRow
from screening.batch.worker import screen_result
from screening.decision import Decision
from screening.errors import MAX_PROBLEMS
from screening.present.report import Summary
from screening.record import MAX_LIST_ITEMS, MAX_TEXT_LENGTH, Record, parse_record

from .conftest import AS_OF, eligible_record

DAY = date.fromisoformat(AS_OF)
PYDANTIC_WORDS = ("Input should", "int_", "float_", "bool_", "greater_than", "less_than", "literal_error",
                  "extra_forbidden", "value_error", "Field required", "Value error", "string_type",
                  "model_type", "too_long", "pydantic")  # fmt: skip


def refused(screener: Screener, record: dict[str, Any], as_bytes: bool) -> RecordError:
    """The RecordError for a record, screened as a dict or as JSON bytes (both must refuse)."""
    with pytest.raises(RecordError) as caught:
        screener.screen(orjson.dumps(record) if as_bytes else record, as_of=AS_OF)
    error = caught.value
    text = str(error)
    assert not any(word in text for word in PYDANTIC_WORDS), text
    assert all(p.code.isidentifier() and p.code not in PYDANTIC_WORDS for p in error.problems)
    return error


def problem(error: RecordError, field: str) -> str:
    messages = [p.message for p in error.problems if p.field == field]
    assert messages, f"no problem for {field}: {error}"
    return messages[0]


# -- the issue's three examples: each was read as the number 1 ------------------------------


@pytest.mark.parametrize("as_bytes", [False, True], ids=["dict", "bytes"])
def test_age_true_is_not_age_one(screener: Screener, as_bytes: bool) -> None:
    error = refused(screener, eligible_record(id="t", birth_date=None, age=True), as_bytes)
    assert str(error) == "record 't': age: must be a whole number, not true"


@pytest.mark.parametrize("as_bytes", [False, True], ids=["dict", "bytes"])
def test_pain_score_true_is_not_a_score_of_one(screener: Screener, as_bytes: bool) -> None:
    record = eligible_record(pain_scores=[{"score": True, "date": "2026-11-01"}])
    error = refused(screener, record, as_bytes)
    assert problem(error, "pain_scores[0].score") == "must be a number, not true"


@pytest.mark.parametrize("as_bytes", [False, True], ids=["dict", "bytes"])
def test_phq9_item9_true_is_not_one(screener: Screener, as_bytes: bool) -> None:
    record = eligible_record(phq9=[{"item9": True, "date": "2026-11-01"}])
    error = refused(screener, record, as_bytes)
    assert problem(error, "phq9[0].item9") == "must be a whole number, not true"


# -- every number and every flag of the model, at the top and in the items ------------------

# (path to the list or None, the item that holds the field, the field)
NUMBER_FIELDS: list[tuple[str | None, dict[str, Any], str]] = [
    (None, {}, "age"),
    (None, {}, "weight_kg"),
    ("pain_conditions", {"code": "G90.512"}, "duration_months"),
    ("pain_scores", {"score": 5, "date": "2026-11-01"}, "score"),
    ("blood_pressure", {"systolic": 130, "diastolic": 80, "date": "2026-11-01"}, "systolic"),
    ("blood_pressure", {"systolic": 130, "diastolic": 80, "date": "2026-11-01"}, "diastolic"),
    ("heart_rate", {"bpm": 70, "date": "2026-11-01"}, "bpm"),
    ("labs", {"test": "ALT", "value": 30, "date": "2026-11-01"}, "value"),
    ("labs", {"test": "ALT", "value": 30, "upper_limit": 40, "date": "2026-11-01"}, "upper_limit"),
    ("phq9", {"item9": 0, "date": "2026-11-01"}, "item9"),
    ("phq9", {"total": 3, "date": "2026-11-01"}, "total"),
    ("medications", {"name": "gabapentin", "daily_dose_mg": 900}, "daily_dose_mg"),
]
FLAG_FIELDS: list[tuple[str | None, dict[str, Any], str]] = [
    (None, {}, "deceased"),
    (None, {}, "breastfeeding"),
    ("pain_conditions", {"code": "G90.512"}, "primary"),
    ("treatments", {"name": "gabapentin"}, "inferred"),
]


def with_value(
    where: str | None, item: dict[str, Any], field: str, value: object
) -> tuple[dict[str, Any], str]:
    if where is None:
        return eligible_record(id="typed", **{field: value}), field
    return eligible_record(id="typed", **{where: [{**item, field: value}]}), f"{where}[0].{field}"


def test_the_tables_cover_every_number_and_flag_of_the_model() -> None:
    """A numeric or boolean field added to the model must be added to these tables."""
    schema = Record.model_json_schema()
    found: dict[str, set[str]] = {"number": set(), "integer": set(), "boolean": set()}
    for properties in [
        schema["properties"],
        *(d["properties"] for d in schema["$defs"].values() if "properties" in d),
    ]:
        for name, prop in properties.items():
            for kind in [prop.get("type"), *(option.get("type") for option in prop.get("anyOf", []))]:
                if kind in found:
                    found[kind].add(name)
    assert found["number"] | found["integer"] == {field for _, _, field in NUMBER_FIELDS}
    assert found["boolean"] == {field for _, _, field in FLAG_FIELDS}


@pytest.mark.parametrize(("where", "item", "field"), NUMBER_FIELDS, ids=[f[2] for f in NUMBER_FIELDS])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["dict", "bytes"])
def test_a_number_field_refuses_a_boolean_and_text(
    screener: Screener, where: str | None, item: dict[str, Any], field: str, as_bytes: bool
) -> None:
    for value, shown in ((True, "true"), (False, "false"), ("7", 'the text "7"'), ("", "empty text")):
        record, path = with_value(where, item, field, value)
        message = problem(refused(screener, record, as_bytes), path)
        assert message.startswith("must be a") and message.endswith(f"number, not {shown}"), message


@pytest.mark.parametrize(("where", "item", "field"), FLAG_FIELDS, ids=[f[2] for f in FLAG_FIELDS])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["dict", "bytes"])
def test_a_flag_refuses_numbers_and_text(
    screener: Screener, where: str | None, item: dict[str, Any], field: str, as_bytes: bool
) -> None:
    for value, shown in ((1, "1"), (0, "0"), ("true", 'the text "true"')):
        record, path = with_value(where, item, field, value)
        assert problem(refused(screener, record, as_bytes), path) == f"must be true or false, not {shown}"


def test_systolic_as_text_names_the_field_and_the_text(screener: Screener) -> None:
    record = eligible_record(
        id="bp", blood_pressure=[{"systolic": "180", "diastolic": 80, "date": "2026-11-01"}]
    )
    error = refused(screener, record, as_bytes=True)
    assert str(error) == """record 'bp': blood_pressure[0].systolic: must be a number, not the text "180\""""


def test_numbers_and_flags_of_the_right_type_still_screen(screener: Screener) -> None:
    record = eligible_record(
        weight_kg=82.5,
        deceased=False,
        breastfeeding=None,
        phq9=[{"item9": 0, "total": 4, "date": "2026-11-01"}],
        labs=[{"test": "ALT", "value": 30.5, "upper_limit": 40, "date": "2026-11-01"}],
    )
    assert isinstance(screener.screen(record, as_of=AS_OF), Decision)
    assert isinstance(screener.screen(orjson.dumps(record), as_of=AS_OF), Decision)


def test_a_whole_number_field_refuses_a_fraction(screener: Screener) -> None:
    error = refused(screener, eligible_record(birth_date=None, age=50.5), as_bytes=True)
    assert problem(error, "age") == "must be a whole number, not 50.5"


# -- dates, enums, text, unknown fields, missing fields, ranges -----------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (20200101, "must be a date as YYYY-MM-DD, not 20200101"),  # pydantic read it as seconds
        (86400, "must be a date as YYYY-MM-DD, not 86400"),  # which pydantic took as 1970-01-02
        ("2020-01-01T00:00:00", 'must be a date as YYYY-MM-DD, not the text "2020-01-01T00:00:00"'),
        ("2020-1-1", 'must be a date as YYYY-MM-DD, not the text "2020-1-1"'),
        ("2020-02-30", 'the text "2020-02-30" is not a real date'),
        (True, "must be a date as YYYY-MM-DD, not true"),
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["dict", "bytes"])
def test_dates_are_yyyy_mm_dd_text(screener: Screener, value: object, message: str, as_bytes: bool) -> None:
    assert problem(refused(screener, eligible_record(birth_date=value), as_bytes), "birth_date") == message
    record = eligible_record(pain_scores=[{"score": 5, "date": value}])
    assert problem(refused(screener, record, as_bytes), "pain_scores[0].date") == message


def test_python_callers_may_pass_dates_and_enums_as_python_objects(screener: Screener) -> None:
    """Python mode takes date objects and enum members, as well as their JSON text."""
    from screening.record import TreatmentClass, TrialOutcome

    record = eligible_record(
        birth_date=date(1975, 3, 2),
        pain_scores=[{"score": 7, "date": date(2026, 11, 1)}],
        treatments=[
            {
                "name": "gabapentin",
                "treatment_class": TreatmentClass.snri_tca,
                "outcome": TrialOutcome.ineffective,
            },
            {
                "name": "duloxetine",
                "treatment_class": "gabapentinoid_anticonvulsant",
                "outcome": "not_tolerated",
            },
        ],
    )
    by_objects = screener.screen(record, as_of=AS_OF)
    by_text = screener.screen(orjson.dumps(record), as_of=AS_OF)
    assert by_objects.outcome == by_text.outcome == "eligible"
    assert screener.screen(Record.model_validate(record), as_of=AS_OF).outcome == "eligible"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"sex": "M"}, "sex", "'M' is not allowed; use 'female', 'male' or 'other'"),
        ({"sex": True}, "sex", "true is not allowed; use 'female', 'male' or 'other'"),
        (
            {"treatments": [{"name": "x", "outcome": "meh"}]},
            "treatments[0].outcome",
            "'meh' is not allowed; use 'ineffective', 'partial_response', 'not_tolerated', 'effective', "
            "'ongoing' or 'unknown'",
        ),
        (
            {"treatments": [{"name": "x", "treatment_class": "magic"}]},
            "treatments[0].treatment_class",
            "'magic' is not allowed; use 'gabapentinoid_anticonvulsant', 'snri_tca', 'nsaid_nonopioid', "
            "'opioid', 'topical', 'physical_therapy', 'interventional' or 'psychological'",
        ),
        (
            {"psychiatric_history": [{"code": "F20.9", "status": "maybe"}]},
            "psychiatric_history[0].status",
            "'maybe' is not allowed; use 'active', 'remission' or 'resolved'",
        ),
        (
            {"conditions": [{"code": "F20.9", "system": "loinc"}]},
            "conditions[0].system",
            "'loinc' is not allowed; use 'icd-10-cm' or 'snomed'",
        ),
        (
            {"medications": [{"name": "x", "status": "sometimes"}]},
            "medications[0].status",
            "'sometimes' is not allowed; use 'current' or 'past'",
        ),
        (
            {"pregnancy_status": [{"status": "yes", "date": "2026-11-01"}]},
            "pregnancy_status[0].status",
            "'yes' is not allowed; use 'pregnant' or 'not_pregnant'",
        ),
        (
            {"sources": {"colour": "Patient/1"}},
            "sources.colour",
            "'colour' is not allowed; use 'birth_date', 'age', 'sex', 'weight_kg', 'breastfeeding' or 'deceased'",
        ),
        ({"id": 7}, "id", "must be text, not 7"),
        ({"id": ""}, "id", "must not be empty"),
        ({"medications": [{"name": 5}]}, "medications[0].name", "must be text, not 5"),
        (
            {"conditions": [{"code": "F20.9", "display": False}]},
            "conditions[0].display",
            "must be text, not false",
        ),
        ({"colour": "blue"}, "colour", "unknown field"),
        ({"pain_scores": [{"date": "2026-11-01"}]}, "pain_scores[0].score", "is required"),
        ({"pain_scores": [5]}, "pain_scores[0]", "must be an object, not 5"),
        ({"pain_scores": {"score": 5}}, "pain_scores", "must be a list, not an object"),
        ({"conditions": "none"}, "conditions", 'must be a list, not the text "none"'),
        ({"sources": []}, "sources", "must be an object, not a list of 0 items"),
        ({"birth_date": None, "age": 200}, "age", "must be at most 130, not 200"),
        ({"weight_kg": 1}, "weight_kg", "must be more than 1, not 1"),
        (
            {"pain_scores": [{"score": -1, "date": "2026-11-01"}]},
            "pain_scores[0].score",
            "must be at least 0, not -1",
        ),
        ({"phq9": [{"total": 28, "date": "2026-11-01"}]}, "phq9[0].total", "must be at most 27, not 28"),
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["dict", "bytes"])
def test_each_kind_of_problem_reads_well(
    screener: Screener, changes: dict[str, Any], field: str, message: str, as_bytes: bool
) -> None:
    error = refused(screener, {**eligible_record(id="plain"), **changes}, as_bytes)
    assert error.record_id == ("7" if changes.get("id") == 7 else changes.get("id", "plain"))
    assert problem(error, field) == message


def test_problem_codes_are_the_packages_own() -> None:
    record = eligible_record(
        id="codes",
        age=True,
        sex="M",
        colour=1,
        weight_kg=500,
        pain_scores=[{"date": "2026-11-01"}],
        birth_date="yesterday",
        labs=[{"test": "x" * (MAX_TEXT_LENGTH + 1), "value": 1, "date": "2026-11-01"}],
    )
    with pytest.raises(RecordError) as caught:
        parse_record(record, DAY)
    codes = {p.field: p.code for p in caught.value.problems}
    assert codes == {
        "age": "wrong_type",
        "sex": "not_allowed",
        "colour": "unknown_field",
        "weight_kg": "out_of_range",
        "pain_scores[0].score": "missing",
        "birth_date": "bad_date",
        "labs[0].test": "text_too_long",
    }


def test_parse_record_reads_json_text_with_the_same_rules() -> None:
    record = eligible_record(age=True)
    for passed in (record, orjson.dumps(record), orjson.dumps(record).decode()):
        with pytest.raises(RecordError, match="age: must be a whole number, not true"):
            parse_record(passed, DAY)
    with pytest.raises(InputError, match="not valid JSON"):
        parse_record(b"{not json", DAY)
    with pytest.raises(InputError, match="JSON object"):
        parse_record(b"[]", DAY)


# -- bounded work: list limit, problem cap, no echo of huge values --------------------------


def test_a_list_over_the_limit_is_refused_whole() -> None:
    record = {"id": "k", "conditions": [{}] * (MAX_LIST_ITEMS + 1)}
    with pytest.raises(RecordError) as caught:
        parse_record(record, DAY)
    assert str(caught.value) == "record 'k': conditions: has 10,001 items; at most 10,000 are allowed"
    at_limit = {"id": "k", "heart_rate": [{"bpm": 70, "date": "2026-11-01"}] * MAX_LIST_ITEMS}
    assert len(parse_record(at_limit, DAY).heart_rate) == MAX_LIST_ITEMS


def test_the_schema_states_the_list_and_text_limits() -> None:
    schema = Record.model_json_schema()
    conditions = schema["properties"]["conditions"]["anyOf"][0]
    assert conditions["maxItems"] == MAX_LIST_ITEMS
    assert schema["properties"]["blood_pressure"]["maxItems"] == MAX_LIST_ITEMS
    assert schema["$defs"]["Diagnosis"]["properties"]["code"]["maxLength"] == MAX_TEXT_LENGTH


def test_the_issue_body_is_refused_in_one_problem() -> None:
    """2,500,000 empty items took about 30 s and a 330 MB error; the list limit stops it."""
    body = b'{"id":"k","conditions":[' + b",".join([b"{}"] * 2_500_000) + b"]}"
    with pytest.raises(RecordError) as caught:
        parse_record(body, DAY)
    error = caught.value
    assert [p.as_dict() for p in error.problems] == [
        {
            "field": "conditions",
            "code": "too_many_items",
            "message": "has 2,500,000 items; at most 10,000 are allowed",
        }
    ]
    assert len(orjson.dumps(error.as_dict())) < 1_000


def test_problems_are_capped_with_a_count_of_the_rest() -> None:
    record = {"id": "k", "conditions": [{}] * 5_000, "pain_scores": [{}] * 5_000}
    with pytest.raises(RecordError) as caught:
        parse_record(record, DAY)
    error = caught.value
    assert len(error.problems) == MAX_PROBLEMS
    # in the model's field order: pain scores (two missing fields each) before conditions
    assert [p.field for p in error.problems[:2]] == ["pain_scores[0].score", "pain_scores[0].date"]
    assert error.problems[-1].field == "pain_scores[9].date"
    assert error.more_problems == 5_000 + 2 * 5_000 - MAX_PROBLEMS  # a pain score misses two fields
    assert str(error).endswith("; and 14,980 more problems")
    assert error.as_dict()["more_problems"] == 14_980
    assert len(orjson.dumps(error.as_dict())) < 5_000


def test_the_cap_counts_problems_that_come_after_many_good_items() -> None:
    good = {"bpm": 70, "date": "2026-11-01"}
    record = {"id": "k", "heart_rate": [good] * 100 + [{}] * 30}
    with pytest.raises(RecordError) as caught:
        parse_record(record, DAY)
    assert len(caught.value.problems) == MAX_PROBLEMS and caught.value.more_problems == 60 - MAX_PROBLEMS
    assert caught.value.problems[0].field == "heart_rate[100].bpm"


def test_the_cli_says_how_many_problems_there_were(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from screening.cli import main

    path = tmp_path / "many.json"
    path.write_bytes(orjson.dumps({"id": "i" * 500, "pain_scores": [{}] * 30}))
    result = CliRunner().invoke(main, ["check", str(path), "--as-of", AS_OF])
    lines = result.stderr.splitlines()
    assert result.exit_code == 1
    assert lines[0] == f"error: {path}: invalid_record: record '{'i' * 79}…' has 61 invalid fields:"
    assert len(lines) == 1 + MAX_PROBLEMS + 1 and lines[-1] == "  and 41 more"


def test_many_unknown_keys_are_one_problem() -> None:
    record = {"id": "k", **{f"k{i}": 1 for i in range(200_000)}}
    with pytest.raises(RecordError) as caught:
        parse_record(record, DAY)
    assert [str(p) for p in caught.value.problems] == [
        "(record): has 200,000 unknown fields: 'k0', 'k1', 'k2' and 199,997 more"
    ]
    item = {"code": "I10", **{f"x{i}": 1 for i in range(50)}}
    with pytest.raises(RecordError) as caught:
        parse_record({"id": "k", "conditions": [item]}, DAY)
    assert (
        str(caught.value.problems[0]) == "conditions[0]: has 50 unknown fields: 'x0', 'x1', 'x2' and 47 more"
    )
    full = {"score": 5, "date": "2026-11-01", "source": "Observation/1", "x": 1}
    with pytest.raises(RecordError) as caught:
        parse_record({"id": "k", "pain_scores": [full]}, DAY)
    assert str(caught.value) == "record 'k': pain_scores[0]: has 1 unknown field: 'x'"
    sources = {"birth_date": "Patient/1", **{f"s{i}": "x" for i in range(100_000)}}
    with pytest.raises(RecordError) as caught:
        parse_record({"id": "k", "sources": sources}, DAY)
    assert [str(p) for p in caught.value.problems] == [
        "sources: has 100,000 unknown fields: 's0', 's1', 's2' and 99,997 more"
    ]


def test_huge_values_are_not_echoed(screener: Screener) -> None:
    display = "x" * 5_000_000
    error = refused(
        screener, eligible_record(conditions=[{"code": "I10", "display": display}]), as_bytes=True
    )
    assert (
        problem(error, "conditions[0].display") == "is 5,000,000 characters long; at most 1,000 are allowed"
    )
    huge = "y" * 1_000_000
    for changes in ({"sex": huge}, {"age": huge}, {"birth_date": huge}, {"id": huge}, {huge: 1}):
        error = refused(screener, {**eligible_record(), **changes}, as_bytes=True)
        assert len(str(error)) < 600, str(error)[:600]
        assert "y" * 79 + "…" in str(error)


def test_deep_nesting_is_refused_quickly(screener: Screener) -> None:
    deep = b'{"id":"k","conditions":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(InputError, match="not valid JSON"):
        screener.screen(deep, as_of=AS_OF)
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    error = refused(screener, {"id": "k", "conditions": nested}, as_bytes=False)
    assert str(error) == "record 'k': conditions[0]: must be an object, not a list of 1 item"


# -- CSV: cells are text; the reader converts them and errors name the column ---------------


def csv_line(screener: Screener, **cells: str) -> dict[str, Any]:
    header = tuple(CSV_COLUMNS)
    row = CsvRow(header, tuple(cells.get(name, "") for name in header))
    return screen_result(screener, DAY, 0, "registry.csv:2", row, Summary())


def test_csv_numbers_and_flags_are_converted(screener: Screener) -> None:
    line = csv_line(
        screener,
        id="c1",
        birth_date="1970-01-01",
        age="56",
        deceased="FALSE",
        breastfeeding="false",
        weight_kg="80.5",
        systolic="130",
        diastolic="80.0",
        bp_date="2026-11-01",
        pain_score="6.5",
        pain_score_date="2026-11-01",
        phq9_item9="0",
        phq9_total="4.0",
        phq9_date="2026-11-01",
        alt="30",
        alt_upper_limit="40",
        liver_tests_date="2026-11-01",
        medications="gabapentin|900",
    )
    assert "decision" in line, line
    criteria = {c["id"]: c for c in line["decision"]["criteria"]}
    assert criteria["EXC-BP-UNCONTROLLED"]["status"] == "not_met", criteria["EXC-BP-UNCONTROLLED"]


@pytest.mark.parametrize(
    ("cells", "column", "message"),
    [
        ({"age": "fifty"}, "age", 'must be a whole number, not the text "fifty"'),
        ({"age": "50.5"}, "age", "must be a whole number, not 50.5"),
        ({"weight_kg": "80kg"}, "weight_kg", 'must be a number, not the text "80kg"'),
        ({"weight_kg": "nan"}, "weight_kg", 'must be a number, not the text "nan"'),
        ({"deceased": "yes"}, "deceased", 'must be true or false, not the text "yes"'),
        ({"breastfeeding": "1"}, "breastfeeding", 'must be true or false, not the text "1"'),
        ({"systolic": "high", "diastolic": "80", "bp_date": "2026-11-01"}, "systolic", 'not the text "high"'),
        ({"systolic": "130", "bp_date": "2026-11-01"}, "diastolic", "must be a number, not empty text"),
        ({"pain_score": "6", "pain_score_date": "1/11/2026"}, "pain_score_date", "YYYY-MM-DD"),
        ({"pain_code": "G90.512", "pain_duration_months": "six"}, "pain_duration_months", '"six"'),
        (
            {"phq9_item9": "true", "phq9_date": "2026-11-01"},
            "phq9_item9",
            'whole number, not the text "true"',
        ),
        ({"alt": "x", "liver_tests_date": "2026-11-01"}, "alt", 'must be a number, not the text "x"'),
        ({"alt": "30", "alt_upper_limit": "-", "liver_tests_date": "2026-11-01"}, "alt_upper_limit", '"-"'),
        ({"medications": "gabapentin|lots"}, "medications", 'must be a number, not the text "lots"'),
        ({"sex": "F"}, "sex", "'F' is not allowed; use 'female', 'male' or 'other'"),
    ],
)
def test_csv_wrong_cells_name_the_column(
    screener: Screener, cells: dict[str, str], column: str, message: str
) -> None:
    line = csv_line(screener, id="c2", birth_date="1970-01-01", **cells)
    error = line["error"]
    assert error["code"] == "invalid_record" and line["record_id"] == "c2"
    found = [p for p in error["problems"] if p["column"] == column]
    assert found and message in found[0]["message"], error
    assert not any(word in error["message"] for word in PYDANTIC_WORDS), error["message"]


# -- fuzz: whatever comes in, a Decision or the package's own error --------------------------

FULL_RECORD: dict[str, Any] = {
    **eligible_record(id="fuzz"),
    "age": 51,
    "deceased": False,
    "breastfeeding": None,
    "pregnancy_status": [{"status": "not_pregnant", "date": "2026-11-01", "source": "Observation/p"}],
    "pain_conditions": [
        {"system": "icd-10-cm", "code": "G90.512", "display": "CRPS", "status": "active", "onset": "2023-05-10",
         "last_active": "2026-10-01", "primary": True, "duration_months": 40, "source": "Condition/c"}
    ],
    "treatments": [
        {"name": "gabapentin", "code": "25480", "treatment_class": "gabapentinoid_anticonvulsant", "start": "2024-01-01",
         "end": "2024-06-01", "outcome": "ineffective", "inferred": False, "source": "MedicationStatement/m"},
        {"name": "duloxetine", "treatment_class": "snri_tca", "outcome": "not_tolerated"},
    ],
    "psychiatric_history": [{"code": "F32.9", "status": "remission", "onset": "2020-01-01", "last_active": "2022-01-01"}],
    "heart_rate": [{"bpm": 70, "date": "2026-11-10"}],
    "labs": [{"test": "ALT", "code": "1742-6", "value": 30, "unit": "U/L", "upper_limit": 40, "date": "2026-11-01"}],
    "phq9": [{"item9": 0, "total": 4, "date": "2026-11-01"}],
    "medications": [{"name": "gabapentin", "code": "25480", "status": "current", "daily_dose_mg": 900}],
    "allergies": [{"substance": "penicillin", "code": "7980"}],
    "sources": {"birth_date": "Patient/p"},
}  # fmt: skip


def leaf_paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every place in a record a value can be replaced: fields, list items and list fields."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += leaf_paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += leaf_paths(inner, (*path, index))
    return found


PATHS = leaf_paths(FULL_RECORD)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["2026-11-01", "2026-13-01", "1e3", "true", "none", "", "active", "F20.9", "I10"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def mistyped_records(draw: st.DrawFn) -> dict[str, Any]:
    """The full record with a few values replaced by any JSON value, keys dropped or added."""
    record = copy.deepcopy(FULL_RECORD)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = record
        try:
            for step in path[:-1]:
                parent = parent[step]
            action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
            if type(path[-1]) is not (str if isinstance(parent, dict) else int):
                continue  # an earlier change made a list a dict or the reverse
            if action == "replace":
                parent[path[-1]] = draw(JSON_VALUES)
            elif action == "drop" and isinstance(parent, dict):
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or retyped the way there
    return record


PYDANTIC_PHRASES = ("Input should be", "Field required", "Value error, ", "validation error")


def fuzz_examples() -> int:
    """200 in CI; SCREENING_FUZZ_EXAMPLES=20000 or ``--hypothesis-profile=long`` for more."""
    return int(os.environ.get("SCREENING_FUZZ_EXAMPLES", 0)) or max(200, settings.default.max_examples)


@given(record=mistyped_records(), as_bytes=st.booleans())
@settings(
    max_examples=fuzz_examples(),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_record_gets_a_decision_or_a_screening_error(
    screener: Screener, record: dict[str, Any], as_bytes: bool
) -> None:
    try:
        result = screener.screen(orjson.dumps(record) if as_bytes else record, as_of=AS_OF)
    except ScreeningError as error:
        assert type(error) is not ScreeningError and str(error)  # a specific subclass, with words
        if isinstance(error, RecordError):
            assert error.problems and len(error.problems) <= MAX_PROBLEMS
            # pydantic's phrases, longer than any text the strategies make (a key may be "int_")
            assert not any(phrase in str(error) for phrase in PYDANTIC_PHRASES), str(error)
    else:
        assert isinstance(result, Decision)


def test_capped_problems_are_problems_pydantic_found_in_the_whole_record() -> None:
    """Past the cap the first problems are found again item by item: each must be one the
    whole record's validation found, in the same words, and the count must be its count."""
    from pydantic import ValidationError

    from screening.record import plain_problem

    record = {
        **eligible_record(id="many", age=True, sex="M"),
        "labs": [{"test": "ALT", "value": 1, "date": "2026-11-01"}] * 5
        + [{"test": "ALT", "value": "x"}] * 12,
        "phq9": [{"item9": True, "date": "2026-11-01"}] * 9,
        "blood_pressure": [{"systolic": 120, "diastolic": 130, "date": "2026-11-01"}, 7],
    }
    with pytest.raises(ValidationError) as whole:
        Record.model_validate(record, context={"as_of": DAY})
    expected = [plain_problem(item) for item in whole.value.errors(include_url=False)]
    with pytest.raises(RecordError) as caught:
        parse_record(record, DAY)
    error = caught.value
    assert len(error.problems) == MAX_PROBLEMS and error.more_problems == len(expected) - MAX_PROBLEMS
    assert all(problem in expected for problem in error.problems)
    assert [p.field for p in error.problems[:4]] == ["age", "sex", "blood_pressure[0]", "blood_pressure[1]"]
