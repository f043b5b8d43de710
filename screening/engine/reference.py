"""The reference engine: compiled rule definitions evaluated in plain Python.

It reads the same definitions durable-rules is given (:mod:`screening.engine.compiler`),
compiles each rule's condition once into a closure, and fires what durable-rules fires:
the property tests (``tests/engine/``) compare the two fact by fact, and ``bench/bench.py``
measures durable-rules against it. It is for tests and benchmarks; durable-rules
(:class:`screening.engine.durable.DurableEngine`) stays the production engine.

Its comparisons are durable-rules', not Python's where they differ: a comparison on a field
the fact does not have is false (``$neq`` included), and a boolean equals only a boolean
(durable-rules takes ``1 == true``; the rule set loader never compares a fact with a value
of another type, so such a rule never reaches an engine).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from screening.errors import EngineError

Test = Callable[[Mapping[str, Any]], bool]
_ABSENT = object()
_OPERATORS = {
    "$neq": operator.ne,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
}


class ReferenceEngine:
    """A compiled definition (rule name -> ``{"all": [{"m": condition}]}``) as closures."""

    def __init__(self, definition: Mapping[str, Any]) -> None:
        self._tests = tuple((name, _closure(_condition(name, rule))) for name, rule in definition.items())

    def fired(self, fact: Mapping[str, Any]) -> frozenset[str]:
        """The names of the rules whose condition holds for ``fact``."""
        return frozenset([name for name, test in self._tests if test(fact)])

    def close(self) -> None:
        """Nothing to release: the closures go with the engine."""


def _condition(name: str, rule: Any) -> Mapping[str, Any]:
    # The compiler writes every rule as one fact pattern; refuse anything else rather than
    # evaluate it differently from durable-rules.
    match rule:
        case {"all": [{"m": dict() as condition}]} if len(rule) == 1:
            return condition
    raise EngineError(f"the reference engine cannot evaluate rule {name!r}: not one fact pattern")


def _closure(expression: Mapping[str, Any]) -> Test:
    if not isinstance(expression, Mapping) or len(expression) != 1:
        raise EngineError(f"the reference engine cannot evaluate {expression!r}: not one test")
    ((key, value),) = expression.items()
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise EngineError(f"the reference engine cannot evaluate {key} over {value!r}")
        parts = tuple(_closure(item) for item in value)
        if key == "$and":
            return lambda fact: all(part(fact) for part in parts)
        return lambda fact: any(part(fact) for part in parts)
    if key in _OPERATORS:
        if not isinstance(value, Mapping) or len(value) != 1:
            raise EngineError(f"the reference engine cannot evaluate {key} over {value!r}")
        ((field, expected),) = value.items()
        compare = _OPERATORS[key]

        def check(fact: Mapping[str, Any]) -> bool:
            actual = fact.get(field, _ABSENT)
            return actual is not _ABSENT and bool(compare(actual, expected))

        return check
    if key.startswith("$"):
        raise EngineError(
            f"the reference engine cannot evaluate operator {key}: the compiler never writes it"
        )
    if isinstance(value, bool):
        return lambda fact: fact.get(key, _ABSENT) is value

    def equals(fact: Mapping[str, Any]) -> bool:
        actual = fact.get(key, _ABSENT)
        return actual is not _ABSENT and not isinstance(actual, bool) and bool(actual == value)

    return equals
