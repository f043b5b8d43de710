"""The compiler and both engines, checked against each other and against three-valued logic.

Hypothesis draws facts (some unknown, values on and around every threshold) and checks
that (1) durable-rules fires exactly the rules the reference engine fires for the same
compiled definition, gates and all, and (2) with either engine, the status read from what
fired is the criterion's strong-Kleene value (``conditions.kleene`` of the source
condition): met when true, not met when false, unknown when neither.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening import Screener
from screening.engine.base import RuleEngine
from screening.engine.compiler import (
    FACT_TYPE,
    MET,
    NOT_MET,
    PRIMARY_STATUS,
    UNKNOWN,
    StatusReader,
    compile_condition,
    gate_name,
    rule_name,
)
from screening.engine.durable import DurableEngine
from screening.engine.reference import ReferenceEngine
from screening.errors import EngineError
from screening.ruleset.conditions import (
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

from ..conftest import RULES

SCREENER = Screener(RULES)
RULESET = SCREENER.ruleset
PARAMS = RULESET.params
READER = StatusReader(RULESET)
REFERENCE = ReferenceEngine(SCREENER.definition)
ENGINES: dict[str, RuleEngine] = {"durable-rules": SCREENER.engine, "reference": REFERENCE}
KLEENE = {True: MET, False: NOT_MET, None: UNKNOWN}


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


@st.composite
def facts_with_any_gates(draw: st.DrawFn) -> dict[str, Any]:
    """Facts with gates set at random, whether or not the facts are known."""
    fact = draw(facts())
    for criterion in RULESET.criteria:
        if draw(st.booleans()):
            fact[gate_name(criterion.id)] = True
    return fact


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts_with_any_gates())
def test_durable_rules_fires_what_the_reference_engine_fires(fact: dict[str, Any]) -> None:
    assert SCREENER.engine.fired(fact) == REFERENCE.fired(fact)


@settings(max_examples=400, deadline=None)
@given(facts())
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_statuses_follow_kleene_logic(engine: str, drawn: dict[str, Any]) -> None:
    values = {name: drawn.get(name) for name in RULESET.facts}
    fact = READER.fact(values)
    statuses = READER.statuses(fact, ENGINES[engine].fired(fact))
    for criterion in RULESET.criteria:
        met = kleene(criterion.when, values, PARAMS)
        if criterion.not_met_when is None:
            assert statuses[criterion.id] == KLEENE[met], criterion.id
        else:
            not_met = kleene(criterion.not_met_when, values, PARAMS)
            expected = MET if met is True else NOT_MET if not_met is True else UNKNOWN
            assert statuses[criterion.id] == expected, criterion.id


@settings(max_examples=400, deadline=None)
@given(facts())
def test_met_and_not_met_never_both_fire(drawn: dict[str, Any]) -> None:
    fact = READER.fact({name: drawn.get(name) for name in RULESET.facts})
    fired = SCREENER.engine.fired(fact)
    both = [c.id for c in RULESET.criteria if {rule_name(c.id, MET), rule_name(c.id, NOT_MET)} <= fired]
    assert both == []


def test_a_record_with_every_fact_known_fires_only_primary_rules() -> None:
    """The gate's point: the opposite rules stay silent when nothing is unknown."""
    values = {name: options[0] for name, options in VALUES.items()}
    fact = READER.fact(values)
    assert not any(key.startswith("?") for key in fact)
    fired = SCREENER.engine.fired(fact)
    primary = {rule_name(c.id, PRIMARY_STATUS[c.effect]) for c in RULESET.criteria}
    explicit = {rule_name(c.id, s) for c in RULESET.criteria if c.not_met_when for s in (MET, NOT_MET)}
    assert fired <= primary | explicit
    assert UNKNOWN not in {
        status
        for c, status in zip(RULESET.criteria, READER.statuses(fact, fired).values(), strict=True)
        if not c.not_met_when
    }


def test_impossible_firings_are_engine_errors() -> None:
    criterion = next(c for c in RULESET.criteria if c.not_met_when is None and RULESET.may_be_unknown(c))
    values = {name: options[0] for name, options in VALUES.items()}
    fact = READER.fact(values)
    both = {rule_name(criterion.id, MET), rule_name(criterion.id, NOT_MET)}
    with pytest.raises(EngineError, match="both"):
        READER.statuses({**fact, gate_name(criterion.id): True}, both)
    other = NOT_MET if PRIMARY_STATUS[criterion.effect] == MET else MET
    with pytest.raises(EngineError, match="without its gate"):
        READER.statuses(fact, {rule_name(criterion.id, other)})


def test_negation_covers_every_operator() -> None:
    compare = Compare("x", "in", (1, 2))
    assert negate(compare) == AllOf((Compare("x", "ne", 1), Compare("x", "ne", 2)))
    assert negate(Not(Compare("x", "gt", 1))) == Compare("x", "gt", 1)
    assert negate(AnyOf((Compare("x", "lt", 1), Compare("y", "eq", True)))) == AllOf(
        (Compare("x", "ge", 1), Compare("y", "ne", True))
    )


def test_compiled_comparisons_on_absent_fields_never_match() -> None:
    definition = {
        op: {
            "all": [
                {
                    "m": {
                        "$and": [
                            {"t": FACT_TYPE},
                            compile_condition(Compare("x", op, ParamRef("p")), {"p": 3}),
                        ]
                    }
                }
            ]
        }
        for op in ("eq", "ne", "lt", "le", "gt", "ge")
    }
    durable = DurableEngine(definition, label="absent")
    try:
        for engine in (durable, ReferenceEngine(definition)):
            assert engine.fired({"t": FACT_TYPE}) == frozenset()
            assert engine.fired({"t": FACT_TYPE, "x": 3}) == {"eq", "le", "ge"}
    finally:
        durable.close()


def test_the_compiled_definition_is_plain_json() -> None:
    import json

    definition = SCREENER.definition
    assert json.loads(json.dumps(definition)) == definition
    assert len(definition) == 2 * len(RULESET.criteria)
    for criterion in RULESET.criteria:
        other = NOT_MET if PRIMARY_STATUS[criterion.effect] == MET else MET
        gated = {gate_name(criterion.id): True} in definition[rule_name(criterion.id, other)]["all"][0]["m"][
            "$and"
        ]
        assert gated == (criterion.not_met_when is None), criterion.id
