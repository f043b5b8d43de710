"""The decision: an outcome, every criterion's result with its reasons, and what to do next.

Outcome precedence is exactly that of ``criteria.md``:

1. ``ineligible``: an ``exclude`` criterion is met, or a ``require`` criterion is not met;
2. ``needs_information``: a ``require``, ``exclude``, ``review`` or ``indication``
   criterion is unknown;
3. ``needs_review``: a ``review`` criterion is met, or the ``indication`` is not met;
4. ``eligible_with_cautions``: a ``caution`` criterion is met;
5. ``eligible``.

Every decision lists the findings of all levels, not only the decisive one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

import orjson

from .aggregates import FactValue
from .conditions import kleene
from .facts import FactSheet
from .record import Record
from .ruleset import Criterion, RuleSet


class Outcome(StrEnum):
    ineligible = "ineligible"
    needs_information = "needs_information"
    needs_review = "needs_review"
    eligible_with_cautions = "eligible_with_cautions"
    eligible = "eligible"


OUTCOME_ORDER = tuple(Outcome)

# What each (effect, status) contributes to the outcome; absent pairs contribute nothing.
_LEVEL: dict[tuple[str, str], Outcome] = {
    ("require", "not_met"): Outcome.ineligible,
    ("exclude", "met"): Outcome.ineligible,
    ("require", "unknown"): Outcome.needs_information,
    ("exclude", "unknown"): Outcome.needs_information,
    ("review", "unknown"): Outcome.needs_information,
    ("indication", "unknown"): Outcome.needs_information,
    ("review", "met"): Outcome.needs_review,
    ("indication", "not_met"): Outcome.needs_review,
    ("caution", "met"): Outcome.eligible_with_cautions,
}

_NEXT_STEP = {
    Outcome.ineligible: "Not eligible under the documented criteria; see the exclusions above.",
    Outcome.needs_information: "Obtain the missing information listed and screen again.",
    Outcome.needs_review: "Refer for clinician review of the findings listed before any decision.",
    Outcome.eligible_with_cautions: "Meets the documented criteria; address the cautions before infusion.",
    Outcome.eligible: "Meets the documented criteria for clinician assessment for IV ketamine.",
}


def level(effect: str, status: str) -> Outcome | None:
    return _LEVEL.get((effect, status))


@dataclass(frozen=True, slots=True)
class CriterionResult:
    id: str
    title: str
    effect: str
    status: str
    reason: str
    decisive: bool
    urgent: bool
    facts: dict[str, FactValue]
    evidence: list[dict[str, str]]
    parameters: dict[str, Any]
    missing: list[str]
    not_checked: list[str]
    sources: list[dict[str, str]]
    recommendation: str | None

    @property
    def level(self) -> Outcome | None:
        return level(self.effect, self.status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "effect": self.effect,
            "status": self.status,
            "reason": self.reason,
            "decisive": self.decisive,
            "urgent": self.urgent,
            "facts": self.facts,
            "evidence": self.evidence,
            "parameters": self.parameters,
            "missing": self.missing,
            "not_checked": self.not_checked,
            "sources": self.sources,
            "recommendation": self.recommendation,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The screening decision for one record."""

    record_id: str
    outcome: Outcome
    as_of: date
    summary: str
    criteria: tuple[CriterionResult, ...]
    recommendations: list[str]
    missing_information: list[str]
    not_checked: list[str]
    ruleset: dict[str, Any]
    dosing: dict[str, Any] | None = None
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def criterion(self, criterion_id: str) -> CriterionResult:
        return next(c for c in self.criteria if c.id == criterion_id)

    @property
    def statuses(self) -> dict[str, str]:
        return {c.id: c.status for c in self.criteria}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "record_id": self.record_id,
            "outcome": self.outcome.value,
            "as_of": self.as_of.isoformat(),
            "summary": self.summary,
            "criteria": [c.as_dict() for c in self.criteria],
            "recommendations": self.recommendations,
            "missing_information": self.missing_information,
            "not_checked": self.not_checked,
            "ruleset": self.ruleset,
            "dosing": self.dosing,
            "sources": self.sources,
        }
        out.update(self.extra)
        return out

    def to_json(self, indent: bool = False) -> bytes:
        return orjson.dumps(self.as_dict(), option=orjson.OPT_INDENT_2 if indent else 0)


def decide(
    ruleset: RuleSet, record: Record, as_of: date, sheet: FactSheet, statuses: Mapping[str, str]
) -> Decision:
    """Assemble the decision from each criterion's status."""
    values: dict[str, Any] = ruleset.params
    values.update(sheet.values)
    levels = [level(c.effect, statuses[c.id]) for c in ruleset.criteria]
    outcome = min((lv for lv in levels if lv), key=OUTCOME_ORDER.index, default=Outcome.eligible)
    results = tuple(
        _result(ruleset, criterion, statuses[criterion.id], lv == outcome, values, sheet)
        for criterion, lv in zip(ruleset.criteria, levels, strict=True)
    )
    decisive = [r for r in results if r.decisive]
    missing = _unique(
        item for r in results if r.status == "unknown" and r.effect != "caution" for item in r.missing
    )
    not_checked = _unique(
        [
            f"{r.id} ({r.title}): not checked; {r.reason}"
            for r in results
            if r.effect == "caution" and r.status == "unknown"
        ]
        + [note for r in results for note in r.not_checked]
    )
    recommendations = _unique(
        [
            f"{'URGENT: ' if r.urgent else ''}{r.recommendation}"
            for r in _by_priority(results)
            if r.recommendation
        ]
        + [_NEXT_STEP[outcome]]
    )
    summary = _NEXT_STEP[outcome] if not decisive else f"{decisive[0].id}: {decisive[0].reason}"
    return Decision(
        record_id=record.id,
        outcome=outcome,
        as_of=as_of,
        summary=summary,
        criteria=results,
        recommendations=recommendations,
        missing_information=missing,
        not_checked=not_checked,
        ruleset={**ruleset.summary(), "overrides": dict(ruleset.overrides)},
        dosing=_dosing(ruleset, record)
        if outcome in (Outcome.eligible, Outcome.eligible_with_cautions)
        else None,
        sources=ruleset.cited_sources,
    )


def _result(
    ruleset: RuleSet,
    criterion: Criterion,
    status: str,
    decisive: bool,
    values: dict[str, Any],
    sheet: FactSheet,
) -> CriterionResult:
    evidence = _unique_dicts(e for name in criterion.facts for e in sheet.evidence_dicts(name))
    template = criterion.reason[status]
    if "evidence" in template.names:
        values["evidence"] = "; ".join(e["what"] for e in evidence) or "none"
    reason = template.render(values)
    if status == "met" and criterion.emphasis and kleene(criterion.emphasis[0], sheet.values, ruleset.params):
        reason = f"{reason}; {criterion.emphasis[1].render(values)}"
    missing: list[str] = []
    if status == "unknown":
        for name in criterion.facts:
            if sheet.values[name] is None:
                blocker = sheet.blocked_by.get(name)
                ask = ruleset.facts[name].ask
                if blocker and blocker in ruleset.answers:
                    missing.append(ruleset.answers[blocker])
                elif ask:
                    missing.append(ask.render(values))
                else:
                    missing.append(ruleset.facts[name].description)
        # The criterion's own ask applies when it can be said: every placeholder known.
        if criterion.ask and all(values.get(name) is not None for name in criterion.ask.names):
            missing.append(criterion.ask.render(values))
    recommendation = criterion.recommendation.get(status)
    return CriterionResult(
        id=criterion.id,
        title=criterion.title,
        effect=criterion.effect,
        status=status,
        reason=reason,
        decisive=decisive,
        urgent=criterion.urgent and status == "met",
        facts={name: sheet.values[name] for name in criterion.facts},
        evidence=evidence,
        parameters=ruleset.criterion_parameters[criterion.id],
        missing=_unique(missing),
        not_checked=[sheet.not_checked[n] for n in criterion.facts if n in sheet.not_checked]
        if sheet.not_checked
        else [],
        sources=list(criterion.source_dicts),
        recommendation=recommendation.render(values) if recommendation else None,
    )


def _by_priority(results: tuple[CriterionResult, ...]) -> list[CriterionResult]:
    """Urgent first, then by the outcome level each result contributes."""
    ranked = [r for r in results if r.level is not None or r.recommendation]
    return sorted(
        ranked, key=lambda r: (not r.urgent, OUTCOME_ORDER.index(r.level) if r.level else len(OUTCOME_ORDER))
    )


def _dosing(ruleset: RuleSet, record: Record) -> dict[str, Any] | None:
    if ruleset.dosing is None or record.weight_kg is None:
        return None
    weight = record.weight_kg
    return {
        "note": ruleset.dosing.note,
        "weight_kg": weight,
        "ranges": [
            {
                "label": r.label,
                "mg_per_kg": [r.low_mg_per_kg, r.high_mg_per_kg],
                "mg": [round(r.low_mg_per_kg * weight, 1), round(r.high_mg_per_kg * weight, 1)],
                "detail": r.detail,
                "source": r.source,
            }
            for r in ruleset.dosing.ranges
        ],
    }


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))


def _unique_dicts(items: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """Drop repeated evidence: the same dict object, or an equal one."""
    out: list[dict[str, str]] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out
