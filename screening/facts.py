"""Turn a validated record into the facts its criteria are decided on.

Every fact of the rule set gets a value or ``None`` (unknown). Facts that share an
aggregate and arguments (BP systolic, diastolic and date) are computed once. A fact with
``if_absent`` takes that value when absent and records a "not checked" note, because the
clinical spec says such absence is not an unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .aggregates import Evidence, FactValue, Finding
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

    def known(self) -> dict[str, Any]:
        """The fact asserted into the engine: known values only, plus our type tag."""
        out: dict[str, Any] = {name: value for name, value in self.values.items() if value is not None}
        out["t"] = FACT_TYPE
        return out


def compute_facts(ruleset: RuleSet, record: Record, as_of: date) -> FactSheet:
    findings: dict[tuple[str, str], Finding] = {}
    sheet = FactSheet({}, {})
    params = ruleset.params
    for name, fact in ruleset.facts.items():
        finding = findings.get(fact.group)
        if finding is None:
            finding = fact.aggregate.func(record, as_of, fact.args)
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
