"""Turn a validated record into the facts its criteria are decided on.

Every fact of the rule set gets a value or ``None`` (unknown). Facts that share an
aggregate and arguments (BP systolic, diastolic and date) are computed once. A fact with
``if_absent`` takes that value when absent and records a "not checked" note, because the
clinical spec says such absence is not an unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .aggregates import DiagnosisClassifier, Evidence, FactValue, Finding, RecordView
from .compiler import FACT_TYPE
from .record import Record
from .ruleset import RuleSet


@dataclass(slots=True)
class FactSheet:
    """The facts of one record, with the evidence behind each."""

    values: dict[str, FactValue]
    evidence: dict[str, list[Evidence]]
    not_checked: dict[str, str] = field(default_factory=dict)
    blocked_by: dict[str, str] = field(default_factory=dict)
    _evidence_dicts: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def known(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The fact asserted into the engine: known values of ``names`` (default all), tagged."""
        values = self.values
        chosen = values if names is None else names
        out: dict[str, Any] = {name: values[name] for name in chosen if values[name] is not None}
        out["t"] = FACT_TYPE
        return out

    def evidence_dicts(self, name: str) -> list[dict[str, str]]:
        """The evidence of one fact as dicts, built once per record."""
        cached = self._evidence_dicts.get(name)
        if cached is None:
            cached = self._evidence_dicts[name] = [e.as_dict() for e in self.evidence[name]]
        return cached


@dataclass(frozen=True, slots=True)
class _Output:
    name: str
    output: str
    if_absent: FactValue
    not_checked: str | None


@dataclass(frozen=True, slots=True)
class _Group:
    func: Callable[[RecordView, Mapping[str, Any]], Finding]
    args: Mapping[str, Any]
    outputs: tuple[_Output, ...]


def plan(ruleset: RuleSet) -> tuple[_Group, ...]:
    """Each aggregate computation once, with the facts it feeds; notes rendered up front."""
    params = ruleset.params
    groups: dict[tuple[str, str], list[Any]] = {}
    for name, fact in ruleset.facts.items():
        entry = groups.setdefault(fact.group, [fact.aggregate.func, fact.args, []])
        note = fact.not_checked.render(params) if fact.not_checked else None
        entry[2].append(_Output(name, fact.output, fact.if_absent, note))
    return tuple(_Group(func, args, tuple(outputs)) for func, args, outputs in groups.values())


def compute_facts(
    ruleset: RuleSet,
    record: Record,
    as_of: date,
    classify: DiagnosisClassifier | None = None,
    groups: tuple[_Group, ...] | None = None,
) -> FactSheet:
    """Every fact of the rule set for one record.

    A long-lived caller passes ``classify`` and ``groups`` (from :func:`plan`) to reuse them.
    """
    view = RecordView(record, as_of, classify or DiagnosisClassifier(ruleset.value_sets.values()))
    sheet = FactSheet({}, {})
    values, evidence = sheet.values, sheet.evidence
    for group in groups or plan(ruleset):
        finding = group.func(view, group.args)
        found = finding.values
        for out in group.outputs:
            value = found.get(out.output)
            if value is None:
                if out.if_absent is not None:
                    value = out.if_absent
                    if out.not_checked:
                        sheet.not_checked[out.name] = out.not_checked
                elif finding.blocked_by:
                    sheet.blocked_by[out.name] = finding.blocked_by
            values[out.name] = value
            evidence[out.name] = finding.evidence
    return sheet
