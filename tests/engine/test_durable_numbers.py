"""Every value handed to durable-rules is read as the value Python holds, and compares the same.

durable-rules' JSON parser rejects ``1e-7`` (an exponent without a decimal point, which
orjson writes for very small and very large floats) and saturates integers outside 64
bits; :func:`screening.engine.durable.engine_json` writes a form it reads right.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screening import Screener
from screening.decision import Decision
from screening.engine.compiler import FACT_TYPE
from screening.engine.durable import DurableEngine, engine_json
from screening.engine.reference import ReferenceEngine
from screening.errors import EngineError

from ..conftest import AS_OF, eligible_record
from ..test_ruleset import MINIMAL, problems_of, write

# Rule set numbers stay within 2**53 (the loader refuses others): these are the thresholds.
THRESHOLDS: list[int | float] = [
    0,
    1,
    -1,
    5,
    10,
    4.5,
    0.1,
    0.30000000000000004,
    1e-7,
    1.0000000000000002e-7,
    -1e-7,
    5e-324,
    -5e-324,
    1e-300,
    1e15,
    2**53 - 1,
    -(2**53) + 1,
    float(2**53 - 1),
]
OPS = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte", "ne": "$neq"}
EXTREMES: list[int | float] = [
    1e-7,
    -1e-7,
    1e16,
    1e300,
    -1e300,
    -0.0,
    0.0,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**400,
    -(10**400),
]


def _rule(condition: dict[str, Any]) -> dict[str, Any]:
    return {"all": [{"m": {"$and": [{"t": FACT_TYPE}, condition]}}]}


def _definition() -> dict[str, Any]:
    rules = {}
    for index, threshold in enumerate(THRESHOLDS):
        rules[f"eq:{index}"] = _rule({"x": threshold})
        for name, op in OPS.items():
            rules[f"{name}:{index}"] = _rule({op: {"x": threshold}})
    return rules


DEFINITION = _definition()
REFERENCE = ReferenceEngine(DEFINITION)


@pytest.fixture(scope="module")
def numbers_engine() -> DurableEngine:
    # Built from thresholds such as 1e-7: creating the ruleset failed (code 204) before.
    return DurableEngine(DEFINITION, label="numbers")


def _fired(engine: DurableEngine, value: Any) -> frozenset[str]:
    return engine.fired({"t": FACT_TYPE, "x": value})


def _reference(value: Any) -> frozenset[str]:
    return REFERENCE.fired({"t": FACT_TYPE, "x": value})


@pytest.mark.parametrize("value", EXTREMES, ids=repr)
def test_extreme_numbers_compare_in_the_engine_as_in_python(
    numbers_engine: DurableEngine, value: Any
) -> None:
    assert _fired(numbers_engine, value) == _reference(value)


@pytest.mark.parametrize("threshold", THRESHOLDS, ids=repr)
def test_numbers_next_to_each_threshold_fall_on_the_right_side(
    numbers_engine: DurableEngine, threshold: int | float
) -> None:
    for value in (
        threshold,
        math.nextafter(threshold, -math.inf),
        math.nextafter(threshold, math.inf),
        threshold - 1,
        threshold + 1,
    ):
        assert _fired(numbers_engine, value) == _reference(value), value


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from(EXTREMES),
    )
)
def test_any_finite_number_compares_in_the_engine_as_in_python(
    numbers_engine: DurableEngine, value: Any
) -> None:
    assert _fired(numbers_engine, value) == _reference(value)


_ENGINES: dict[str, tuple[DurableEngine, ReferenceEngine]] = {}
STRINGS = ["female", "", 'a"b', "a\\b", "é", "日本", "\x00", "\n", "1e-7", "x" * 3000]


def _typed_engines(kind: str, values: list[Any]) -> tuple[DurableEngine, ReferenceEngine]:
    definition = {}
    for index, expected in enumerate(values):
        definition[f"eq:{index}"] = _rule({"x": expected})
        definition[f"ne:{index}"] = _rule({"$neq": {"x": expected}})
    if kind not in _ENGINES:
        _ENGINES[kind] = DurableEngine(definition, label=kind), ReferenceEngine(definition)
    return _ENGINES[kind]


# durable-rules takes "true" and 1 to equal true; the loader compares a fact only with
# values of its own type (type_mismatch otherwise), so each type is checked on its own.
@settings(max_examples=100, deadline=None)
@given(value=st.one_of(st.text(), st.sampled_from(STRINGS)))
def test_strings_compare_in_the_engine_as_in_python(value: str) -> None:
    engine, reference = _typed_engines("text", STRINGS)
    fact = {"t": FACT_TYPE, "x": value}
    assert engine.fired(fact) == reference.fired(fact)


@pytest.mark.parametrize("value", [True, False])
def test_booleans_compare_in_the_engine_as_in_python(value: bool) -> None:
    engine, reference = _typed_engines("boolean", [True, False])
    fact = {"t": FACT_TYPE, "x": value}
    assert engine.fired(fact) == reference.fired(fact)


@pytest.mark.parametrize(
    "value, text",
    [
        (1e-7, "1.0e-7"),
        (1e16, "1.0e+16"),
        (-0.0, "-0.0"),
        (5e-324, "5.0e-324"),
        (2**63, "9.223372036854776e+18"),
        (10**400, "1.7976931348623157e+308"),
        (2**53 + 1, "9007199254740993"),
    ],
)
def test_numbers_are_written_with_a_decimal_point_before_the_exponent(value: Any, text: str) -> None:
    assert engine_json(value) == text
    assert orjson.loads(engine_json({"a": [value]})) == {"a": [orjson.loads(text)]}


def test_a_number_that_is_not_finite_is_an_engine_error_not_a_null() -> None:
    with pytest.raises(EngineError, match="not finite"):
        engine_json({"x": math.inf})


@pytest.mark.parametrize("score", [1e-7, 5e-324, 9.99999999999999e-5])
def test_a_tiny_pain_score_is_screened(screener: Screener, score: float) -> None:
    record = eligible_record(pain_scores=[{"score": score, "date": "2026-11-01"}])
    decision = screener.screen(record, AS_OF)
    assert isinstance(decision, Decision)
    severity = next(c for c in decision.criteria if c.id == "INC-SEVERITY")
    assert severity.status == "not_met"


def test_rule_set_numbers_beyond_2_to_the_53_are_refused_with_their_lines(tmp_path: Path) -> None:
    text = MINIMAL.replace("when: {fact: age, ge: $limit}", "when: {fact: age, ge: 9007199254740993}")
    text = text.replace("limit: {default: 10,", "limit: {default: 1.0e+300,")
    write(tmp_path, "rules.yaml", text)
    found = problems_of(tmp_path)
    assert any(":5:" in p and "'limit' must be between" in p for p in found), found
    assert any(":15:" in p and "must be between -9007199254740992 and" in p for p in found), found
