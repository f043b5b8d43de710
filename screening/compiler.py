"""Compile a rule set into durable-rules ruleset definitions (plain JSON-able data).

Each criterion becomes two rules over the record's one fact:

* ``<ID>:met`` fires when the criterion's condition is true;
* ``<ID>:not_met`` fires when it is false: the negation in negation normal form, or the
  criterion's explicit ``not_met_when``.

durable-rules never matches a comparison on an absent field, so a comparison on an unknown
fact is false in both rules: exactly one fires when the known facts settle the criterion
(strong-Kleene logic), and neither when they do not. The engine module checks that outcome
against the facts the criterion needs.

:func:`matches` evaluates a compiled condition directly in Python. The property-based tests
use it to check durable-rules against the same definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .conditions import AllOf, AnyOf, Compare, Condition, Not, Scalar, negate, normalize, resolve
from .ruleset import Criterion, RuleSet

FACT_TYPE = "screening"
MET, NOT_MET, UNKNOWN = "met", "not_met", "unknown"
_OPS = {"ne": "$neq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}
_CHECKS = {
    "$neq": lambda a, b: a != b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
}


def rule_name(criterion_id: str, status: str) -> str:
    return f"{criterion_id}:{status}"


def compile_condition(condition: Condition, params: Mapping[str, Scalar]) -> dict[str, Any]:
    """A condition in negation normal form as a durable-rules expression."""
    if isinstance(condition, Not):
        return compile_condition(normalize(condition), params)
    if isinstance(condition, (AllOf, AnyOf)):
        items = [compile_condition(item, params) for item in condition.items]
        if len(items) == 1:
            return items[0]
        return {"$and" if isinstance(condition, AllOf) else "$or": items}
    return _compare(condition, params)


def _compare(compare: Compare, params: Mapping[str, Scalar]) -> dict[str, Any]:
    if compare.op == "in":
        assert isinstance(compare.value, tuple)
        options = [{compare.fact: resolve(v, params)} for v in compare.value]
        return options[0] if len(options) == 1 else {"$or": options}
    assert not isinstance(compare.value, tuple)
    value = resolve(compare.value, params)
    if compare.op == "eq":
        return {compare.fact: value}
    return {_OPS[compare.op]: {compare.fact: value}}


def criterion_rules(criterion: Criterion, params: Mapping[str, Scalar]) -> dict[str, Any]:
    met = normalize(criterion.when)
    not_met = normalize(criterion.not_met_when) if criterion.not_met_when else negate(criterion.when)
    return {
        rule_name(criterion.id, status): {
            "all": [{"m": {"$and": [{"t": FACT_TYPE}, compile_condition(condition, params)]}}]
        }
        for status, condition in ((MET, met), (NOT_MET, not_met))
    }


def compile_ruleset(ruleset: RuleSet) -> dict[str, Any]:
    """The durable-rules definition of a whole rule set: rule name -> rule."""
    params = ruleset.params
    definition: dict[str, Any] = {}
    for criterion in ruleset.criteria:
        definition.update(criterion_rules(criterion, params))
    return definition


def matches(expression: Mapping[str, Any], fact: Mapping[str, Any]) -> bool:
    """Evaluate a compiled durable-rules expression against a fact, in plain Python.

    Like durable-rules, a comparison on a field the fact does not have is false.
    """
    ((key, value),) = expression.items()
    if key == "$and":
        return all(matches(item, fact) for item in value)
    if key == "$or":
        return any(matches(item, fact) for item in value)
    if key in _CHECKS:
        ((field, expected),) = value.items()
        return field in fact and bool(_CHECKS[key](fact[field], expected))
    if key not in fact:
        return False
    actual = fact[key]
    if isinstance(actual, bool) or isinstance(value, bool):
        return type(actual) is type(value) and actual == value
    return bool(actual == value)


def fired_directly(definition: Mapping[str, Any], fact: Mapping[str, Any]) -> frozenset[str]:
    """The rules of a compiled definition whose condition the fact satisfies."""
    return frozenset(name for name, rule in definition.items() if matches(rule["all"][0]["m"], fact))
