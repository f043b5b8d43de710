"""Turn a validated record into the facts its criteria are decided on.

Every fact of the rule set gets a value or ``None`` (unknown). Facts that share an
aggregate and arguments (BP systolic, diastolic and date) are computed once. A fact with
``if_absent`` takes that value when absent and records a "not checked" note, because the
clinical spec says such absence is not an unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def compute_facts(
    ruleset: RuleSet, record: Record, as_of: date, classify: DiagnosisClassifier | None = None
) -> FactSheet:
    """Every fact of the rule set for one record. Pass a long-lived ``classify`` to reuse its cache."""
    view = RecordView(record, as_of, classify or DiagnosisClassifier(ruleset.value_sets.values()))
    findings: dict[tuple[str, str], Finding] = {}
    sheet = FactSheet({}, {})
    params = ruleset.params
    for name, fact in ruleset.facts.items():
        finding = findings.get(fact.group)
        if finding is None:
            finding = fact.aggregate.func(view, fact.args)
            findings[fact.group] = finding
        value = finding.values.get(fact.output)
        if value is None and fact.if_absent is not None:
            value = fact.if_absent
            if fact.not_checked:
                sheet.not_checked[name] = fact.not_checked.render(params)
        elif value is None and finding.blocked_by:
            sheet.blocked_by[name] = finding.blocked_by
        sheet.values[name] = value
        sheet.evidence[name] = finding.evidence
    return sheet
