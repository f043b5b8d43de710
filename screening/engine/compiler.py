"""Compile a rule set into durable-rules ruleset definitions (plain JSON-able data).

Each criterion has a *primary* status, the one that moves the outcome: ``not_met`` for
``require`` and ``indication``, ``met`` for ``exclude``, ``review`` and ``caution``. It
compiles to two rules over the record's one fact, ``<ID>:met`` and ``<ID>:not_met``:
its condition (``when``), and the negation of it in negation normal form (or the explicit
``not_met_when``). The rule for the primary status is always live; the other one is gated.

durable-rules never matches a comparison on an absent field. So three-valued logic works
out like this (:class:`StatusReader`):

* Every fact the criterion reads is known: its condition is two-valued, and the primary
  rule alone settles it. It fires, or the criterion has the other status.
* Some fact is unknown: the record's fact carries the criterion's gate ``?<ID>``, which the
  other rule requires (no gate, no firing). Exactly one of the two rules fires when the
  known facts settle the criterion (strong-Kleene logic), and neither when they do not:
  unknown.
* A criterion with an explicit ``not_met_when`` can be neither met nor not met with every
  fact known, so both its rules are always live and unknown is whatever fires neither.

The gate exists because every rule that fires costs an action round trip through the
engine. Without it every settled criterion fires a rule, 33 per record; with it about 5,
which halves the engine's time per record (``bench/bench.py``).

This module only compiles and reads; the engines (:mod:`screening.engine.base`) evaluate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from screening.errors import EngineError
from screening.ruleset.conditions import (
    AllOf,
    AnyOf,
    Compare,
    Condition,
    Not,
    Scalar,
    negate,
    normalize,
    resolve,
)
from screening.ruleset.model import Criterion, RuleSet
from screening.vocabulary import STATUSES, Effect

FACT_TYPE = "screening"
MET, NOT_MET, UNKNOWN = STATUSES
_OPS = {"ne": "$neq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}


PRIMARY_STATUS: dict[str, str] = {
    Effect.require: NOT_MET,
    Effect.indication: NOT_MET,
    Effect.exclude: MET,
    Effect.review: MET,
    Effect.caution: MET,
}


def rule_name(criterion_id: str, status: str) -> str:
    return f"{criterion_id}:{status}"


def gate_name(criterion_id: str) -> str:
    """The fact field that marks a criterion as reading some unknown fact (never a fact name)."""
    return f"?{criterion_id}"


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
    """The criterion's primary rule, and its other rule, gated unless ``not_met_when`` is explicit."""
    conditions = {
        MET: normalize(criterion.when),
        NOT_MET: normalize(criterion.not_met_when) if criterion.not_met_when else negate(criterion.when),
    }
    primary = PRIMARY_STATUS[criterion.effect]
    other = NOT_MET if primary == MET else MET
    gate = [] if criterion.not_met_when else [{gate_name(criterion.id): True}]
    return {
        rule_name(criterion.id, primary): _rule([compile_condition(conditions[primary], params)]),
        rule_name(criterion.id, other): _rule([*gate, compile_condition(conditions[other], params)]),
    }


def _rule(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"all": [{"m": {"$and": [{"t": FACT_TYPE}, *conditions]}}]}


def compile_ruleset(ruleset: RuleSet) -> dict[str, Any]:
    """The durable-rules definition of a whole rule set: rule name -> rule."""
    params = ruleset.params
    definition: dict[str, Any] = {}
    for criterion in ruleset.criteria:
        definition.update(criterion_rules(criterion, params))
    return definition


@dataclass(frozen=True, slots=True)
class _Reading:
    criterion_id: str
    facts: tuple[str, ...]
    primary: str
    primary_rule: str
    other: str
    other_rule: str
    gate: str
    two_valued_when_known: bool  # no explicit not_met_when: every fact known settles it


class StatusReader:
    """Builds the fact the engine sees, and reads each criterion's status from what fired."""

    def __init__(self, ruleset: RuleSet) -> None:
        readings = []
        for criterion in ruleset.criteria:
            primary = PRIMARY_STATUS[criterion.effect]
            other = NOT_MET if primary == MET else MET
            readings.append(
                _Reading(
                    criterion.id,
                    criterion.facts,
                    primary,
                    rule_name(criterion.id, primary),
                    other,
                    rule_name(criterion.id, other),
                    gate_name(criterion.id),
                    criterion.not_met_when is None,
                )
            )
        self._readings = tuple(readings)
        # Only facts that some condition compares go into the engine; the rest are for reasons.
        self._engine_facts = tuple(dict.fromkeys(f for c in ruleset.criteria for f in c.facts))

    def fact(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The record's one engine fact: its known values, and the gate of each criterion
        that reads an unknown value."""
        fact = {name: values[name] for name in self._engine_facts if values[name] is not None}
        if len(fact) < len(self._engine_facts):
            unknown = {name for name in self._engine_facts if values[name] is None}
            for reading in self._readings:
                if not unknown.isdisjoint(reading.facts):
                    fact[reading.gate] = True
        fact["t"] = FACT_TYPE
        return fact

    def statuses(self, fact: Mapping[str, Any], fired: Collection[str]) -> dict[str, str]:
        """Each criterion's status from the rules that fired for ``fact`` (see the module doc).

        Raises EngineError when what fired is impossible: both of a criterion's rules, or a
        gated rule without its gate.
        """
        out = {}
        for reading in self._readings:
            primary = reading.primary_rule in fired
            other = reading.other_rule in fired
            gated = reading.gate in fact
            if primary and other:
                raise EngineError(f"{reading.criterion_id}: both its met and not-met rules fired")
            if other and not gated and reading.two_valued_when_known:
                raise EngineError(f"{reading.criterion_id}: its gated rule fired without its gate")
            if primary:
                out[reading.criterion_id] = reading.primary
            elif other or (not gated and reading.two_valued_when_known):
                out[reading.criterion_id] = reading.other
            else:
                out[reading.criterion_id] = UNKNOWN
        return out
