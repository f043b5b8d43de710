"""Criterion conditions: parsed from YAML, negated, and evaluated in three-valued logic.

A condition is written in a rule file as::

    any:
      - {fact: bp_systolic, gt: $bp_exclusion_systolic}
      - {fact: bp_diastolic, gt: $bp_exclusion_diastolic}

``all``, ``any`` and ``not`` combine comparisons; a comparison names a fact and one
operator (``eq ne lt le gt ge in``) with a literal or a ``$parameter``. Facts can be
unknown. :func:`kleene` gives the strong-Kleene value (True, False or None) and
:func:`negate` pushes a negation down to the comparisons, which is how the compiler builds
each criterion's *not met* rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from screening.ruleset.yamlsource import PathKey

Scalar = bool | int | float | str
OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "in")
_NEGATED = {"eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "gt": "le", "le": "gt"}


@dataclass(frozen=True)
class ParamRef:
    """A reference to a named parameter, written ``$name``."""

    name: str


Operand = Scalar | ParamRef | tuple[Scalar | ParamRef, ...]


@dataclass(frozen=True)
class Compare:
    fact: str
    op: str
    value: Operand
    path: PathKey = ()


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Compare | AllOf | AnyOf | Not


@dataclass(frozen=True)
class SyntaxProblem:
    path: PathKey
    code: str
    message: str


def parse_condition(data: Any, path: PathKey, problems: list[SyntaxProblem]) -> Condition | None:
    """Parse a condition; append every problem found instead of stopping at the first."""
    if not isinstance(data, dict):
        problems.append(SyntaxProblem(path, "invalid_condition", "a condition must be a mapping"))
        return None
    combinators = [key for key in ("all", "any", "not") if key in data]
    if combinators:
        key = combinators[0]
        extra = sorted(set(data) - {key})
        if extra:
            problems.append(
                SyntaxProblem(path, "invalid_condition", f"{key!r} cannot be combined with {extra}")
            )
            return None
        if key == "not":
            inner = parse_condition(data["not"], (*path, "not"), problems)
            return Not(inner) if inner else None
        items = data[key]
        if not isinstance(items, list) or not items:
            problems.append(
                SyntaxProblem((*path, key), "invalid_condition", f"{key!r} needs a non-empty list")
            )
            return None
        parsed = [parse_condition(item, (*path, key, i), problems) for i, item in enumerate(items)]
        if any(p is None for p in parsed):
            return None
        kept = tuple(p for p in parsed if p is not None)
        return AllOf(kept) if key == "all" else AnyOf(kept)
    return _parse_compare(data, path, problems)


def _parse_compare(data: dict[str, Any], path: PathKey, problems: list[SyntaxProblem]) -> Compare | None:
    fact = data.get("fact")
    ops = [key for key in data if key in OPERATORS]
    unknown = sorted(set(data) - {"fact", *OPERATORS})
    ok = True
    if unknown:
        problems.append(
            SyntaxProblem(
                path,
                "unknown_key",
                f"unknown key(s) {unknown} in a comparison; "
                f"expected 'fact' and one of {list(OPERATORS)}, or all/any/not",
            )
        )
        ok = False
    if not isinstance(fact, str):
        problems.append(SyntaxProblem(path, "invalid_condition", "a comparison needs 'fact: NAME'"))
        ok = False
    if len(ops) != 1:
        problems.append(
            SyntaxProblem(
                path, "invalid_condition", f"a comparison needs exactly one of {', '.join(OPERATORS)}"
            )
        )
        ok = False
    if not ok or not isinstance(fact, str):
        return None
    op = ops[0]
    raw = data[op]
    if op == "in":
        if not isinstance(raw, list) or not raw:
            problems.append(SyntaxProblem((*path, op), "invalid_condition", "'in' needs a list"))
            return None
        values = tuple(_operand(v, (*path, op, i), problems) for i, v in enumerate(raw))
        if any(v is None for v in values):
            return None
        return Compare(fact, op, tuple(v for v in values if v is not None), (*path, op))
    value = _operand(raw, (*path, op), problems)
    return None if value is None else Compare(fact, op, value, (*path, op))


def _operand(raw: Any, path: PathKey, problems: list[SyntaxProblem]) -> Scalar | ParamRef | None:
    if isinstance(raw, str) and raw.startswith("$"):
        return ParamRef(raw[1:])
    if isinstance(raw, (bool, int, float, str)):
        return raw
    problems.append(
        SyntaxProblem(path, "invalid_value", f"expected a number, boolean, string or $param, got {raw!r}")
    )
    return None


def negate(condition: Condition) -> Condition:
    """The negation of a condition in negation normal form (no ``Not`` left)."""
    if isinstance(condition, Not):
        return normalize(condition.item)
    if isinstance(condition, AllOf):
        return AnyOf(tuple(negate(item) for item in condition.items))
    if isinstance(condition, AnyOf):
        return AllOf(tuple(negate(item) for item in condition.items))
    if condition.op == "in":
        assert isinstance(condition.value, tuple)
        return AllOf(tuple(Compare(condition.fact, "ne", v, condition.path) for v in condition.value))
    return Compare(condition.fact, _NEGATED[condition.op], condition.value, condition.path)


def normalize(condition: Condition) -> Condition:
    """The same condition in negation normal form."""
    if isinstance(condition, Not):
        return negate(condition.item)
    if isinstance(condition, AllOf):
        return AllOf(tuple(normalize(item) for item in condition.items))
    if isinstance(condition, AnyOf):
        return AnyOf(tuple(normalize(item) for item in condition.items))
    return condition


def comparisons(condition: Condition) -> Iterator[Compare]:
    """Every comparison inside a condition, in order."""
    if isinstance(condition, Compare):
        yield condition
    elif isinstance(condition, Not):
        yield from comparisons(condition.item)
    else:
        for item in condition.items:
            yield from comparisons(item)


def operands(compare: Compare) -> tuple[Scalar | ParamRef, ...]:
    value = compare.value
    return value if isinstance(value, tuple) else (value,)


def resolve(value: Scalar | ParamRef, params: Mapping[str, Scalar]) -> Scalar:
    return params[value.name] if isinstance(value, ParamRef) else value


def kleene(
    condition: Condition, facts: Mapping[str, Scalar | None], params: Mapping[str, Scalar]
) -> bool | None:
    """Strong-Kleene value of a condition: True, False, or None when facts leave it open.

    This is what a SOURCE condition means, and the definition the engines are checked
    against: ``tests/engine/test_compiler.py`` reads each criterion's status from what
    durable-rules (and the reference engine) fired for the compiled rules, and compares it
    with this value. ``explain`` and the decision's emphasis use it directly.
    """
    if isinstance(condition, Not):
        inner = kleene(condition.item, facts, params)
        return None if inner is None else not inner
    if isinstance(condition, AllOf):
        results = [kleene(item, facts, params) for item in condition.items]
        if False in results:
            return False
        return None if None in results else True
    if isinstance(condition, AnyOf):
        results = [kleene(item, facts, params) for item in condition.items]
        if True in results:
            return True
        return None if None in results else False
    actual = facts.get(condition.fact)
    if actual is None:
        return None
    expected = [resolve(v, params) for v in operands(condition)]
    return _compare(actual, condition.op, expected)


def _compare(actual: Scalar, op: str, expected: list[Scalar]) -> bool:
    target = expected[0]
    if op == "in":
        return actual in expected
    if op == "eq":
        return actual == target
    if op == "ne":
        return actual != target
    if op == "lt":
        return actual < target  # type: ignore[operator]
    if op == "le":
        return actual <= target  # type: ignore[operator]
    if op == "gt":
        return actual > target  # type: ignore[operator]
    return actual >= target  # type: ignore[operator]
