"""compute_facts shares and memoises work across records; it must equal running every fact.

The reference below runs each fact's aggregate on the record directly, with no shared facts,
no grouping and a fresh classifier, the way the facts are defined. ``Aggregate.reads`` that
leaves out something an aggregate reads would show up here as a difference.
"""

from __future__ import annotations

import random
from datetime import date
from types import UnionType
from typing import Any, Union, get_args, get_origin

import pytest

from screening import Screener
from screening.aggregates.base import ANSWER_FIELDS, DiagnosisClassifier, RecordView
from screening.batch.synthetic import generate_records
from screening.engine.facts import FactSheet, compute_facts
from screening.record import Record, parse_record
from screening.ruleset.model import RuleSet

LISTS = (
    "pregnancy_status",
    "pain_conditions",
    "pain_scores",
    "conditions",
    "blood_pressure",
    "labs",
    "phq9",
    "medications",
    "allergies",
)


def reference(ruleset: RuleSet, record: Record, as_of: date) -> dict[str, Any]:
    view = RecordView(record, as_of, DiagnosisClassifier(ruleset.value_sets.values()))
    values: dict[str, Any] = {}
    evidence: dict[str, list[dict[str, str]]] = {}
    not_checked: dict[str, str] = {}
    blocked_by: dict[str, str] = {}
    for name, fact in ruleset.facts.items():
        finding = fact.aggregate.func(view, fact.args)
        value = finding.values.get(fact.output)
        if value is None:
            if fact.if_absent is not None:
                value = fact.if_absent
                if fact.not_checked:
                    not_checked[name] = fact.not_checked.render(ruleset.params)
            elif finding.blocked_by:
                blocked_by[name] = finding.blocked_by
        values[name] = value
        evidence[name] = [e.as_dict() for e in finding.evidence]
    return {"values": values, "evidence": evidence, "not_checked": not_checked, "blocked_by": blocked_by}


def as_compared(sheet: FactSheet) -> dict[str, Any]:
    return {
        "values": sheet.values,
        "evidence": {name: sheet.evidence_dicts(name) for name in sheet.values},
        "not_checked": sheet.not_checked,
        "blocked_by": sheet.blocked_by,
    }


NULLABLE = frozenset(
    name
    for name, info in Record.model_fields.items()
    if get_origin(info.annotation) in (Union, UnionType)
    and any(get_origin(arg) is list for arg in get_args(info.annotation))
)
"""The record lists that may be null: every one must be an answer field, so that the
shared facts are keyed on whether it is blank."""


def test_every_list_that_may_be_null_is_an_answer_field() -> None:
    assert set(ANSWER_FIELDS) == NULLABLE
    assert {"conditions", "medications", "allergies"} <= NULLABLE


def varied(data: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Blank (null) some answer lists (histories, problem list, medications, allergies),
    empty some other lists or leave them out, to reach every shared case."""
    for name in ANSWER_FIELDS:
        if rng.random() < 0.25:
            data[name] = rng.choice([None, []])
    for name in LISTS:
        roll = rng.random()
        if roll < 0.15:
            data[name] = []
        elif roll < 0.2:
            data.pop(name, None)
    return data


@pytest.mark.parametrize(("seed", "as_of"), [(42, "2026-11-22"), (7, "2025-02-28"), (3, "2031-06-30")])
def test_compute_facts_equals_every_fact_computed_directly(screener: Screener, seed: int, as_of: str) -> None:
    day = date.fromisoformat(as_of)
    rng = random.Random(seed)
    checked = 0
    blanked: dict[str, int] = dict.fromkeys(ANSWER_FIELDS, 0)
    for data in generate_records(400, seed=seed, as_of=as_of):
        record = parse_record(varied(dict(data), rng), day)
        for name in ANSWER_FIELDS:
            blanked[name] += getattr(record, name) is None
        expected = reference(screener.ruleset, record, day)
        with_plan = compute_facts(screener.ruleset, record, day, screener._classify, screener._plan)
        without_plan = compute_facts(screener.ruleset, record, day)
        assert as_compared(with_plan) == expected, record.id
        assert list(with_plan.values) == list(expected["values"]), "facts in rule set order"
        assert as_compared(without_plan) == expected, record.id
        checked += 1
    assert checked == 400
    assert min(blanked.values()) >= 20, blanked


def test_memoised_drug_and_lab_classes_match_the_value_sets(screener: Screener) -> None:
    value_sets = list(screener.ruleset.value_sets.values())
    classify = DiagnosisClassifier(value_sets)
    day = date.fromisoformat("2026-11-22")
    for data in generate_records(300, seed=5, as_of=day):
        record = parse_record(data, day)
        drugs = [(m.code, m.name) for m in record.medications]
        drugs += [(a.code, a.substance) for a in record.allergies]
        drugs += [(t.code, t.name) for t in record.treatments or ()]
        for code, name in drugs:
            expected = {vs.id for vs in value_sets if vs.matches_drug(code, name)}
            assert classify.drug(code, name) == expected
            assert classify.drug(code, name) == expected  # from the memo
        for lab in record.labs:
            expected = {vs.id for vs in value_sets if vs.matches_lab(lab.code, lab.test)}
            assert classify.lab(lab.code, lab.test) == expected
