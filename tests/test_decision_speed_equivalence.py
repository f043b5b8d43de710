"""The fast paths of decide() and Template give what the straightforward code gave."""

from __future__ import annotations

import gc
from collections.abc import Mapping
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from screening import Screener
from screening.aggregates.base import Evidence
from screening.decision import _PLANS, CriterionResult, _evidence, _plan_for, _unique_dicts
from screening.engine.facts import FactSheet
from screening.ruleset.loading import load_ruleset
from screening.ruleset.templates import Template

from .conftest import AS_OF, RULES, eligible_record

TEXTS = [
    "plain text",
    "",
    "{a}",
    "age {a} below {b}",
    "{a}{b}{c} and {{braces}} {a:.1f} {b:>5} {c:d}",
    "tail only {a} ",
]
VALUES: list[dict[str, Any]] = [
    {},
    {"a": None, "b": None, "c": None},
    {"a": 1.5, "b": 2.0, "c": 7},
    {"a": "x", "b": True, "c": "not an int"},
    {"a": 10, "b": 1e-7, "c": 3},
    {"a": [1, 2], "b": {"k": 1}, "c": 2.25},
]


def reference_render(template: Template, values: Mapping[str, Any]) -> str:
    """Template.render as it was: one pass over the parsed parts."""
    out = []
    for literal, name, spec in template.parts:
        out.append(literal)
        if name:
            value = values.get(name)
            if value is None:
                out.append("unknown")
            elif spec:
                try:
                    out.append(format(value, spec))
                except (TypeError, ValueError):
                    out.append(str(value))
            elif isinstance(value, float):
                out.append(f"{value:g}")
            else:
                out.append(str(value))
    return "".join(out)


@pytest.mark.parametrize("text", TEXTS)
def test_templates_render_as_before(text: str) -> None:
    template = Template.parse(text)
    for values in VALUES:
        assert template.render(values) == reference_render(template, values)


@pytest.mark.parametrize("text", TEXTS)
def test_a_bound_template_renders_as_the_template_with_the_constants(text: str) -> None:
    template = Template.parse(text)
    for constants in VALUES:
        bound = template.bind(constants)
        assert set(bound.names) == set(template.names) - set(constants)
        for values in VALUES:
            agreeing = {**values, **constants}
            assert bound.render(agreeing) == reference_render(template, agreeing)


def _sheet(evidence: dict[str, list[Evidence]]) -> FactSheet:
    return FactSheet(dict.fromkeys(evidence, True), evidence)


def test_evidence_is_each_item_once_in_fact_order() -> None:
    shared = [Evidence("BP 150/90", "2026-11-01", "blood_pressure[0]")]
    duplicated = [Evidence("psychosis"), Evidence("mania"), Evidence("psychosis")]
    equal_to_shared = [Evidence("BP 150/90", "2026-11-01", "blood_pressure[0]"), Evidence("other")]
    no_date = [Evidence("x", None, "s"), Evidence("x", "", "s")]  # equal as dicts
    sheet = _sheet(
        {
            "none": [],
            "systolic": shared,
            "diastolic": shared,
            "duplicated": duplicated,
            "equal": equal_to_shared,
            "no_date": no_date,
        }
    )
    cases = [
        ("none",),
        ("systolic",),
        ("systolic", "diastolic"),
        ("none", "diastolic", "systolic", "none"),
        ("duplicated",),
        ("systolic", "equal"),
        ("equal", "duplicated", "systolic"),
        ("no_date",),
    ]
    for facts in cases:
        expected = _unique_dicts(e for name in facts for e in sheet.evidence_dicts(name))
        got = _evidence(sheet, facts)
        assert got == expected, facts
        got.append({"what": "mutated"})  # a new list each time: the sheet's are untouched
        assert _evidence(sheet, facts) == expected


def test_a_plan_is_built_once_per_rule_set_and_dropped_with_it() -> None:
    ruleset = load_ruleset(RULES)
    assert _plan_for(ruleset) is _plan_for(ruleset)
    other = load_ruleset(RULES)
    assert _plan_for(other) is not _plan_for(ruleset)
    key = id(ruleset)
    del ruleset
    gc.collect()
    assert key not in _PLANS


def test_site_parameters_are_rendered_from_their_own_rule_set(tmp_path: Any) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("parameters:\n  bp_exclusion_systolic: 170\n")
    record = eligible_record(blood_pressure=[{"systolic": 175, "diastolic": 80, "date": "2026-11-10"}])
    default = Screener(RULES).screen(record, as_of=AS_OF).criterion("EXC-BP-UNCONTROLLED")
    strict = Screener(RULES, site).screen(record, as_of=AS_OF).criterion("EXC-BP-UNCONTROLLED")
    assert "within the 180/100 mmHg limit" in default.reason
    assert "above the 170/100 mmHg limit" in strict.reason
    assert strict.recommendation is not None and "at or below 170/100 mmHg" in strict.recommendation


def test_results_compare_and_read_as_before(screener: Screener) -> None:
    first = screener.screen(eligible_record(), as_of=AS_OF)
    again = screener.screen(eligible_record(), as_of=AS_OF)
    assert first == again
    result = first.criterion("INC-ADULT")
    assert isinstance(result, CriterionResult)
    json_fields = [name for name in CriterionResult._fields if name != "source_ids"]
    assert list(result.as_dict()) == json_fields
    expected = {name: getattr(result, name) for name in json_fields}
    expected["sources"] = [source["id"] for source in result.sources]
    assert result.as_dict() == expected
    assert result.as_dict() is not result.as_dict()
    with pytest.raises((AttributeError, FrozenInstanceError)):
        result.status = "met"  # type: ignore[misc]
