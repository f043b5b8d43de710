"""One criterion's condition as a tree, with each fact's value and each node's result.

``screening explain RECORD --criterion ID`` shows it, as ``opa eval --explain`` does for a
policy. The tree is evaluated with :func:`conditions.kleene` at every node, so there is one
evaluator; the criterion's status is the engine's (durable-rules), and the tree only shows
why. :func:`decisive` picks the branches that settled a node, which ``--fails``, rule
coverage and "superseded by" are all built on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from screening.ruleset.conditions import (
    AllOf,
    AnyOf,
    Compare,
    Condition,
    Not,
    Scalar,
    kleene,
    operands,
    resolve,
)
from screening.ruleset.model import Criterion, RuleSet
from screening.vocabulary import Status

SYMBOL = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": "in"}
_WORD = {True: "true", False: "false", None: "unknown"}


@dataclass(frozen=True)
class Node:
    """One node of a condition, evaluated: ``value`` is its strong-Kleene result."""

    condition: Condition
    value: bool | None
    children: tuple[Node, ...]
    facts: Mapping[str, Scalar | None]
    params: Mapping[str, Scalar]

    @property
    def kind(self) -> str:
        if isinstance(self.condition, AllOf):
            return "all"
        if isinstance(self.condition, AnyOf):
            return "any"
        return "not" if isinstance(self.condition, Not) else "compare"

    def label(self) -> str:
        """The node in words: ``bp_systolic > 180 ($bp_exclusion_systolic)   [bp_systolic: 186]``."""
        condition = self.condition
        if not isinstance(condition, Compare):
            return {"all": "all of", "any": "any of", "not": "not"}[self.kind]
        actual = self.facts.get(condition.fact)
        compared = f"{condition.fact} {SYMBOL[condition.op]} {expected(condition, self.params)}"
        return f"{compared}   [{condition.fact}: {show(actual)}]"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.kind, "result": _WORD[self.value]}
        condition = self.condition
        if isinstance(condition, Compare):
            values = [resolve(v, self.params) for v in operands(condition)]
            out.update(
                fact=condition.fact,
                value=self.facts.get(condition.fact),
                op=condition.op,
                expected=values if condition.op == "in" else values[0],
            )
            names = [v.name for v in operands(condition) if not isinstance(v, (bool, int, float, str))]
            if names:
                out["parameters"] = names
        else:
            out["items"] = [child.as_dict() for child in self.children]
        return out


def evaluate(condition: Condition, facts: Mapping[str, Scalar | None], params: Mapping[str, Scalar]) -> Node:
    """The condition as a tree of nodes, each with its :func:`kleene` value."""
    if isinstance(condition, Not):
        children: tuple[Node, ...] = (evaluate(condition.item, facts, params),)
    elif isinstance(condition, (AllOf, AnyOf)):
        children = tuple(evaluate(item, facts, params) for item in condition.items)
    else:
        children = ()
    return Node(condition, kleene(condition, facts, params), children, facts, params)


def decisive(node: Node) -> tuple[Node, ...]:
    """The children that settle a node's value: for ``all``, the false ones when it is false
    and the unknown ones when it is unknown; for ``any``, the true ones when it is true and
    the unknown ones when it is unknown; every child otherwise (each one counted)."""
    if node.kind == "not":
        return node.children
    if node.kind == "compare":
        return ()
    if node.value is None or (node.kind == "all") != bool(node.value):
        # all false / any true / either unknown: only the children with the node's value.
        return tuple(child for child in node.children if child.value == node.value)
    return node.children


def pruned(node: Node) -> Node:
    """The tree keeping only the decisive branches (``--fails``)."""
    return Node(node.condition, node.value, tuple(pruned(c) for c in decisive(node)), node.facts, node.params)


def decisive_comparisons(node: Node) -> Iterator[Node]:
    """The comparisons on the decisive branches."""
    if node.kind == "compare":
        yield node
    for child in decisive(node):
        yield from decisive_comparisons(child)


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def show(value: Scalar | None) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def expected(compare: Compare, params: Mapping[str, Scalar]) -> str:
    """The operand with each parameter resolved: ``180 (bp_exclusion_systolic)``."""
    words = []
    for value in operands(compare):
        if isinstance(value, (bool, int, float, str)):
            words.append(show(value))
        else:
            words.append(f"{show(params[value.name])} (${value.name})")
    return f"[{', '.join(words)}]" if compare.op == "in" else words[0]


def condition_text(condition: Condition, params: Mapping[str, Scalar], indent: str = "") -> list[str]:
    """A condition as indented lines, parameters resolved (``rules show``)."""
    if isinstance(condition, Compare):
        return [f"{indent}{condition.fact} {SYMBOL[condition.op]} {expected(condition, params)}"]
    if isinstance(condition, Not):
        return [f"{indent}not", *condition_text(condition.item, params, indent + "  ")]
    head = "all of" if isinstance(condition, AllOf) else "any of"
    return [f"{indent}{head}"] + [
        line for item in condition.items for line in condition_text(item, params, indent + "  ")
    ]


@dataclass(frozen=True)
class Explanation:
    """One criterion for one record: the engine's status and the evaluated conditions."""

    record_id: str
    as_of: date
    criterion: Criterion
    status: str
    when: Node
    not_met_when: Node | None
    reason: str
    superseded_by: str | None = None

    @property
    def tree_status(self) -> str:
        """The status the trees give (it must be the engine's; the tests check it)."""
        if self.when.value is True:
            return Status.met
        if self.not_met_when is None:
            return Status.unknown if self.when.value is None else Status.not_met
        return Status.not_met if self.not_met_when.value is True else Status.unknown

    def as_dict(self, fails: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "record_id": self.record_id,
            "as_of": self.as_of.isoformat(),
            "criterion": self.criterion.id,
            "effect": self.criterion.effect,
            "status": self.status,
            "reason": self.reason,
            "superseded_by": self.superseded_by,
            "when": (pruned(self.when) if fails else self.when).as_dict(),
        }
        if self.not_met_when is not None:
            out["not_met_when"] = (pruned(self.not_met_when) if fails else self.not_met_when).as_dict()
        return out

    def text(self, fails: bool = False) -> list[str]:
        c = self.criterion
        lines = [
            f"{c.id} {c.title} ({c.effect}): {self.status.replace('_', ' ')}",
            f"record {self.record_id}, as of {self.as_of}",
            f"reason: {self.reason}",
        ]
        if self.superseded_by:
            lines.append(f"superseded by {self.superseded_by}: it decides on the same facts")
        lines += ["", "met when:"]
        lines += _tree(pruned(self.when) if fails else self.when, "  ")
        if self.not_met_when is not None:
            lines += ["not met when:"]
            lines += _tree(pruned(self.not_met_when) if fails else self.not_met_when, "  ")
        return lines


def _tree(node: Node, indent: str) -> list[str]:
    lines = [f"{indent}{_WORD[node.value]:<8} {node.label()}"]
    for child in node.children:
        lines += _tree(child, indent + "  ")
    return lines


def explain(
    ruleset: RuleSet,
    criterion: Criterion,
    facts: Mapping[str, Scalar | None],
    status: str,
    record_id: str,
    as_of: date,
    reason: str,
    superseded_by: str | None = None,
) -> Explanation:
    params = ruleset.params
    return Explanation(
        record_id,
        as_of,
        criterion,
        status,
        evaluate(criterion.when, facts, params),
        evaluate(criterion.not_met_when, facts, params) if criterion.not_met_when else None,
        reason,
        superseded_by,
    )


def explain_decision(ruleset: RuleSet, decision: Any, criterion_id: str) -> Explanation:
    """Explain one criterion of a decision: the status is the engine's, the facts are the
    ones the decision recorded for the criterion (the values its condition reads)."""
    from screening.errors import InputError

    result = next((c for c in decision.criteria if c.id == criterion_id), None)
    criterion = next((c for c in ruleset.criteria if c.id == criterion_id), None)
    if result is None or criterion is None:
        known = ", ".join(c.id for c in ruleset.criteria)
        raise InputError(f"no criterion {criterion_id!r} in rule set {ruleset.id}; it has {known}")
    return explain(
        ruleset,
        criterion,
        result.facts,
        result.status,
        decision.record_id,
        decision.as_of,
        result.reason,
        result.superseded_by,
    )
