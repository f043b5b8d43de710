"""The compiler, checked against durable-rules and against three-valued logic.

Hypothesis draws facts (some unknown, values on and around every threshold) and checks
that (1) durable-rules fires exactly the rules a direct evaluation of the same compiled
conditions says it should, and (2) a criterion's met / not-met rule fires exactly when
its condition is true / false in strong-Kleene logic.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening import Screener
from screening.compiler import FACT_TYPE, MET, NOT_MET, compile_condition, fired_directly, matches, rule_name
from screening.conditions import (
    AllOf,
    AnyOf,
    Compare,
    Not,
    ParamRef,
    comparisons,
    kleene,
    negate,
    operands,
    resolve,
)

from .conftest import RULES

SCREENER = Screener(RULES)
RULESET = SCREENER.ruleset
PARAMS = RULESET.params


def _interesting_values() -> dict[str, list[Any]]:
    values: dict[str, set[Any]] = {name: set() for name in RULESET.facts}
    for criterion in RULESET.criteria:
        conditions = [criterion.when] + ([criterion.not_met_when] if criterion.not_met_when else [])
        for condition in conditions:
            for compare in comparisons(condition):
                for operand in operands(compare):
                    value = resolve(operand, PARAMS)
                    values[compare.fact].add(value)
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        values[compare.fact].update({value - 1, value + 0.5, value + 1})
    out: dict[str, list[Any]] = {}
    for name, fact in RULESET.facts.items():
        if fact.type == "boolean":
            out[name] = [True, False]
        elif fact.type == "number":
            out[name] = sorted(values[name] | {0, 1, 3.5, 250})
        else:
            out[name] = sorted(str(v) for v in values[name] | {"other"})
    return out


VALUES = _interesting_values()


@st.composite
def facts(draw: st.DrawFn) -> dict[str, Any]:
    fact: dict[str, Any] = {"t": FACT_TYPE}
    for name, options in VALUES.items():
        if draw(st.booleans()):
            fact[name] = draw(st.sampled_from(options))
    return fact


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts())
def test_durable_rules_fires_what_direct_evaluation_says(fact: dict[str, Any]) -> None:
    assert SCREENER.engine.fired(fact) == fired_directly(SCREENER.definition, fact)


@settings(max_examples=400, deadline=None)
@given(facts())
def test_met_and_not_met_rules_follow_kleene_logic(fact: dict[str, Any]) -> None:
    fired = SCREENER.engine.fired(fact)
    known = {name: fact.get(name) for name in RULESET.facts}
    for criterion in RULESET.criteria:
        if criterion.not_met_when is not None:
            continue
        value = kleene(criterion.when, known, PARAMS)
        assert (rule_name(criterion.id, MET) in fired) == (value is True), criterion.id
        assert (rule_name(criterion.id, NOT_MET) in fired) == (value is False), criterion.id


@settings(max_examples=400, deadline=None)
@given(facts())
def test_met_and_not_met_never_both_fire(fact: dict[str, Any]) -> None:
    fired = SCREENER.engine.fired(fact)
    both = [c.id for c in RULESET.criteria if {rule_name(c.id, MET), rule_name(c.id, NOT_MET)} <= fired]
    assert both == []


def test_negation_covers_every_operator() -> None:
    compare = Compare("x", "in", (1, 2))
    assert negate(compare) == AllOf((Compare("x", "ne", 1), Compare("x", "ne", 2)))
    assert negate(Not(Compare("x", "gt", 1))) == Compare("x", "gt", 1)
    assert negate(AnyOf((Compare("x", "lt", 1), Compare("y", "eq", True)))) == AllOf(
        (Compare("x", "ge", 1), Compare("y", "ne", True))
    )


def test_compiled_comparisons_on_absent_fields_never_match() -> None:
    for op in ("eq", "ne", "lt", "le", "gt", "ge"):
        expression = compile_condition(Compare("x", op, ParamRef("p")), {"p": 3})
        assert not matches(expression, {"t": FACT_TYPE})


def test_the_compiled_definition_is_plain_json() -> None:
    import json

    definition = SCREENER.definition
    assert json.loads(json.dumps(definition)) == definition
    assert len(definition) == 2 * len(RULESET.criteria)
