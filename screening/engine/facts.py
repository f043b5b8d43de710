"""Turn a validated record into the facts its criteria are decided on.

Every fact of the rule set gets a value or ``None`` (unknown). Facts that share an
aggregate and arguments (BP systolic, diastolic and date) are computed once. A fact with
``if_absent`` takes that value when absent and records a "not checked" note, because the
clinical spec says such absence is not an unknown.

Most records have none of the diagnoses most facts look for, and leave some lists empty
(no labs, no allergies). An aggregate that reads only lists (``Aggregate.reads``) finds the
same for every record whose lists it reads are empty, given the screening date and which
of the lists that may be blank (``ANSWER_FIELDS``: histories, problem list, medications,
allergies) are ``null``. So a :class:`FactPlan` works those facts out once, and each record
starts from them and computes only the facts whose lists it has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from screening.aggregates.base import (
    ANSWER_FIELDS,
    DIAGNOSES,
    DiagnosisClassifier,
    Evidence,
    FactValue,
    Finding,
    RecordView,
)
from screening.engine.compiler import FACT_TYPE
from screening.record import Record
from screening.ruleset.model import RuleSet

_MAX_SHARED = 256
"""Shared facts kept per plan: one set per screening date and combination of blank lists
(2 ** len(ANSWER_FIELDS) = 64 combinations per date)."""


@dataclass(slots=True)
class FactSheet:
    """The facts of one record, with the evidence behind each.

    Evidence lists may be shared between facts and between records: do not mutate them.
    """

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
        evidence = self.evidence[name]
        if not evidence:
            return []
        cached = self._evidence_dicts.get(name)
        if cached is None:
            cached = self._evidence_dicts[name] = [e.as_dict() for e in evidence]
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
    reads: frozenset[str] | None
    """The record lists the aggregate reads (``Aggregate.reads``); None: more than lists."""


def _compute(sheet: FactSheet, view: RecordView, groups: Iterable[_Group]) -> None:
    """Run each group's aggregate on the record and enter the facts it finds."""
    values, evidence_of = sheet.values, sheet.evidence
    for group in groups:
        finding = group.func(view, group.args)
        found, evidence = finding.values, finding.evidence
        for out in group.outputs:
            value = found.get(out.output)
            if value is None:
                value = _absent(sheet, out, finding.blocked_by)
            values[out.name] = value
            evidence_of[out.name] = evidence


def _absent(sheet: FactSheet, out: _Output, blocked_by: str | None) -> FactValue:
    """The value of a fact its finding left unknown, with the note or blocker that says why."""
    if out.if_absent is not None:
        if out.not_checked:
            sheet.not_checked[out.name] = out.not_checked
        return out.if_absent
    if blocked_by:
        sheet.blocked_by[out.name] = blocked_by
    return None


@dataclass(frozen=True, slots=True)
class _Shared:
    """The facts of every group whose lists are empty, shared by the records that leave them so.

    ``values`` and ``evidence`` hold every fact in rule set order (placeholders for the groups
    that read more than lists); ``notes`` and ``blockers`` are (group index, fact, text).
    """

    values: dict[str, FactValue]
    evidence: dict[str, list[Evidence]]
    notes: tuple[tuple[int, str, str], ...]
    blockers: tuple[tuple[int, str, str], ...]

    def sheet(self, computed: set[int]) -> FactSheet:
        """A new sheet with these facts, without the notes of the groups the record computes."""
        sheet = FactSheet(self.values.copy(), self.evidence.copy())
        for index, name, note in self.notes:
            if index not in computed:
                sheet.not_checked[name] = note
        for index, name, answer in self.blockers:
            if index not in computed:
                sheet.blocked_by[name] = answer
        return sheet


class FactPlan:
    """A rule set's fact computations, prepared once and reused for every record."""

    def __init__(self, groups: tuple[_Group, ...], classify: DiagnosisClassifier) -> None:
        self.groups = groups
        self.classify = classify
        """The classifier for callers that bring none."""
        self._always = frozenset(i for i, group in enumerate(groups) if group.reads is None)
        by_list: dict[str, list[int]] = {}
        by_value_set: dict[str, list[int]] = {}
        for index, group in enumerate(groups):
            for name in group.reads or ():
                if name != DIAGNOSES:
                    by_list.setdefault(name, []).append(index)
                    continue
                for value_set in group.args["value_sets"]:
                    by_value_set.setdefault(value_set.id, []).append(index)
        self._by_list = tuple((name, tuple(indexes)) for name, indexes in by_list.items())
        self._by_value_set = {vs_id: tuple(indexes) for vs_id, indexes in by_value_set.items()}
        self._shared: dict[tuple[date, tuple[bool, ...]], _Shared] = {}

    def to_compute(self, view: RecordView) -> set[int]:
        """The groups (by index) a record computes: those that read more, or a list it has."""
        record = view.record
        computed = set(self._always)
        for name, indexes in self._by_list:
            if getattr(record, name):
                computed.update(indexes)
        by_value_set = self._by_value_set
        for value_set_id in view.value_set_ids():
            computed.update(by_value_set.get(value_set_id, ()))
        return computed

    def shared(self, record: Record, as_of: date) -> _Shared:
        """The shared facts for the record's screening date and blank (``null``) answer lists."""
        key = (as_of, tuple(getattr(record, name) is None for name in ANSWER_FIELDS))
        shared = self._shared.get(key)
        if shared is None:
            if len(self._shared) >= _MAX_SHARED:
                self._shared.clear()
            shared = self._shared[key] = self._with_empty_lists(*key)
        return shared

    def _with_empty_lists(self, as_of: date, blank: tuple[bool, ...]) -> _Shared:
        """The facts of each group that reads only lists, for a record with all lists empty."""
        lists: dict[str, Any] = {
            name: None if is_blank else [] for name, is_blank in zip(ANSWER_FIELDS, blank, strict=True)
        }
        view = RecordView(Record.model_construct(id="", **lists), as_of, DiagnosisClassifier(()))
        group_of = {out.name: index for index, group in enumerate(self.groups) for out in group.outputs}
        no_evidence: list[Evidence] = []
        sheet = FactSheet(dict.fromkeys(group_of), dict.fromkeys(group_of, no_evidence))
        _compute(sheet, view, (group for group in self.groups if group.reads is not None))
        return _Shared(
            sheet.values,
            sheet.evidence,
            tuple((group_of[name], name, note) for name, note in sheet.not_checked.items()),
            tuple((group_of[name], name, answer) for name, answer in sheet.blocked_by.items()),
        )


def plan(ruleset: RuleSet) -> FactPlan:
    """Each aggregate computation once, with the facts it feeds; notes rendered up front."""
    params = ruleset.params
    groups: dict[tuple[str, str], list[Any]] = {}
    for name, fact in ruleset.facts.items():
        entry = groups.setdefault(fact.group, [fact, []])
        note = fact.not_checked.render(params) if fact.not_checked else None
        entry[1].append(_Output(name, fact.output, fact.if_absent, note))
    return FactPlan(
        tuple(
            _Group(fact.aggregate.func, fact.args, tuple(outputs), fact.aggregate.reads)
            for fact, outputs in groups.values()
        ),
        DiagnosisClassifier(ruleset.value_sets.values()),
    )


_PLANS: dict[int, tuple[RuleSet, FactPlan]] = {}
"""The plans of the rule sets used last by callers that pass none, by rule set id."""


def _plan_of(ruleset: RuleSet) -> FactPlan:
    kept = _PLANS.get(id(ruleset))
    if kept is None or kept[0] is not ruleset:
        if len(_PLANS) >= 8:
            _PLANS.clear()
        kept = _PLANS[id(ruleset)] = (ruleset, plan(ruleset))
    return kept[1]


def compute_facts(
    ruleset: RuleSet,
    record: Record,
    as_of: date,
    classify: DiagnosisClassifier | None = None,
    groups: FactPlan | None = None,
) -> FactSheet:
    """Every fact of the rule set for one record.

    A long-lived caller passes ``classify`` and ``groups`` (from :func:`plan`) to reuse them;
    without them, those of the last few rule sets are kept.
    """
    facts = groups if groups is not None else _plan_of(ruleset)
    view = RecordView(record, as_of, classify or facts.classify)
    computed = facts.to_compute(view)
    sheet = facts.shared(record, as_of).sheet(computed)
    _compute(sheet, view, [facts.groups[index] for index in sorted(computed)])
    return sheet
