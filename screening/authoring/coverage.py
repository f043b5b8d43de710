"""Coverage of the rule tests: did the ``*_test.yaml`` cases exercise every criterion every
way it can go, and every branch of its conditions?

For each criterion, from the decisions the cases produced (the engine's statuses):

* ``met``, ``not_met``, ``unknown``: some case gave the criterion that status. ``unknown``
  counts only for criteria that can be unknown (a fact they read can be);
* ``decisive``: some case's outcome was set by it;
* branches: each item of each ``any`` was once the item that made it true, and each item
  of each ``all`` was once the item that made it false (``explain.decisive``), in the
  condition and in an explicit ``not_met_when``.

The percentage is what was covered of what can be. Like ``opa test --coverage``, it
counts what the cases exercised, whether or not a case asserts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from screening.engine.explain import SYMBOL, Node, evaluate, expected
from screening.ruleset.conditions import AllOf, AnyOf, Condition, Not
from screening.ruleset.model import Criterion, RuleSet
from screening.vocabulary import STATUSES, Status


@dataclass
class Branch:
    """One item of an ``any`` or ``all``: ``where`` is its path, e.g. ``when.any[1]``."""

    where: str
    text: str
    wanted: bool
    """The value that makes the item decide its parent: true in an ``any``, false in an ``all``."""
    taken: int = 0


@dataclass
class CriterionCoverage:
    id: str
    effect: str
    can_be_unknown: bool
    counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in (*STATUSES, "decisive")})
    branches: list[Branch] = field(default_factory=list)

    @property
    def goals(self) -> list[str]:
        return [Status.met, Status.not_met, *([Status.unknown] if self.can_be_unknown else []), "decisive"]

    @property
    def missing(self) -> list[str]:
        """What no case exercised, in words."""
        out = [goal.replace("_", " ") for goal in self.goals if not self.counts[goal]]
        out += [
            f"branch {b.where} ({b.text}) never {'true' if b.wanted else 'false'}"
            for b in self.branches
            if not b.taken
        ]
        return out

    @property
    def covered(self) -> int:
        return sum(1 for goal in self.goals if self.counts[goal]) + sum(1 for b in self.branches if b.taken)

    @property
    def total(self) -> int:
        return len(self.goals) + len(self.branches)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "effect": self.effect,
            "counts": self.counts,
            "can_be_unknown": self.can_be_unknown,
            "branches": [
                {"where": b.where, "condition": b.text, "decides_when": b.wanted, "taken": b.taken}
                for b in self.branches
            ],
            "covered": self.covered,
            "total": self.total,
            "missing": self.missing,
        }


@dataclass
class Coverage:
    criteria: list[CriterionCoverage]
    cases: int

    @property
    def percent(self) -> float:
        total = sum(c.total for c in self.criteria)
        return 100.0 * sum(c.covered for c in self.criteria) / total if total else 100.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "percent": round(self.percent, 2),
            "criteria": [c.as_dict() for c in self.criteria],
        }

    def table(self) -> list[str]:
        """One row per criterion: how many cases gave each status, branches taken, gaps."""
        head = f"{'criterion':<26} {'met':>4} {'not':>4} {'unk':>4} {'dec':>4} {'branches':>9}  missing"
        lines = [head, "-" * len(head)]
        for c in self.criteria:
            taken = sum(1 for b in c.branches if b.taken)
            unknown = str(c.counts[Status.unknown]) if c.can_be_unknown else "-"
            branches = f"{taken}/{len(c.branches)}" if c.branches else "-"
            gaps = "; ".join(c.missing) or "none"
            lines.append(
                f"{c.id:<26} {c.counts['met']:>4} {c.counts['not_met']:>4} {unknown:>4} "
                f"{c.counts['decisive']:>4} {branches:>9}  {gaps}"
            )
        lines.append(
            f"coverage {self.percent:.1f}% of {sum(c.total for c in self.criteria)} goals "
            f"over {len(self.criteria)} criteria, from {self.cases} cases"
        )
        return lines


def measure(ruleset: RuleSet, decisions: Iterable[Any]) -> Coverage:
    """Coverage of ``ruleset`` by the decisions the test cases produced."""
    params = ruleset.params
    found = {c.id: _empty(ruleset, c) for c in ruleset.criteria}
    cases = 0
    for decision in decisions:
        cases += 1
        for result in decision.criteria:
            cov = found.get(result.id)
            if cov is None:
                continue
            cov.counts[result.status] += 1
            if result.decisive:
                cov.counts["decisive"] += 1
            criterion = _criterion(ruleset, result.id)
            trees = [evaluate(criterion.when, result.facts, params)]
            if criterion.not_met_when is not None:
                trees.append(evaluate(criterion.not_met_when, result.facts, params))
            branches = iter(cov.branches)
            for tree in trees:
                for node in _combinators(tree):
                    for child in node.children:
                        branch = next(branches)
                        if child.value is branch.wanted:
                            branch.taken += 1
    return Coverage(list(found.values()), cases)


def _criterion(ruleset: RuleSet, criterion_id: str) -> Criterion:
    return next(c for c in ruleset.criteria if c.id == criterion_id)


def _empty(ruleset: RuleSet, criterion: Criterion) -> CriterionCoverage:
    cov = CriterionCoverage(criterion.id, criterion.effect, ruleset.may_be_unknown(criterion))
    params = ruleset.params
    parts = [("when", criterion.when)]
    if criterion.not_met_when is not None:
        parts.append(("not_met_when", criterion.not_met_when))
    for name, condition in parts:
        for where, item, wanted in _items(condition, name):
            cov.branches.append(Branch(where, _short(item, params), wanted))
    return cov


def _items(condition: Condition, where: str) -> Iterator[tuple[str, Condition, bool]]:
    """Each item of each any/all, depth first, in the order :func:`_combinators` visits."""
    if isinstance(condition, Not):
        yield from _items(condition.item, f"{where}.not")
    elif isinstance(condition, (AllOf, AnyOf)):
        kind = "any" if isinstance(condition, AnyOf) else "all"
        for index, item in enumerate(condition.items):
            yield f"{where}.{kind}[{index}]", item, kind == "any"
        for index, item in enumerate(condition.items):
            yield from _items(item, f"{where}.{kind}[{index}]")


def _combinators(node: Node) -> Iterator[Node]:
    """The any/all nodes of a tree, in the order :func:`_items` lists their items."""
    if node.kind == "not":
        yield from _combinators(node.children[0])
    elif node.kind in ("all", "any"):
        yield node
        for child in node.children:
            yield from _combinators(child)


def _short(condition: Condition, params: dict[str, Any]) -> str:
    if isinstance(condition, AllOf):
        return "all of ..."
    if isinstance(condition, AnyOf):
        return "any of ..."
    if isinstance(condition, Not):
        return "not ..."
    return f"{condition.fact} {SYMBOL[condition.op]} {expected(condition, params)}"


def junit_xml(results: Iterable[Any]) -> bytes:
    """The case results as JUnit XML, one testcase per case, for CI systems."""
    from xml.etree import ElementTree as ET

    cases = list(results)
    suite = ET.Element(
        "testsuite",
        name="screening rules test",
        tests=str(len(cases)),
        failures=str(sum(1 for r in cases if not r.passed)),
    )
    for result in cases:
        case = ET.SubElement(
            suite, "testcase", classname=result.file, name=f"{result.name} (line {result.line})"
        )
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.failures[0])
            failure.text = "\n".join(result.failures)
    text: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return text
