"""The decision: an outcome, every criterion's result with its reasons, and what to do next.

Outcome precedence is exactly that of the clinical specification (README, "The decision"):

1. ``ineligible``: an ``exclude`` criterion is met, or a ``require`` criterion is not met;
2. ``needs_information``: a ``require``, ``exclude``, ``review`` or ``indication``
   criterion is unknown;
3. ``needs_review``: a ``review`` criterion is met, or the ``indication`` is not met;
4. ``eligible_with_cautions``: a ``caution`` criterion is met;
5. ``eligible``.

Every decision lists the findings of all levels, not only the decisive one.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any, NamedTuple

import orjson

from screening.aggregates.base import Evidence, FactValue
from screening.engine.facts import FactSheet
from screening.record import Record
from screening.ruleset.conditions import Condition, comparisons, kleene
from screening.ruleset.model import Criterion, RuleSet
from screening.ruleset.templates import Template
from screening.vocabulary import OUTCOMES, Effect, Outcome, Status

_RANK = {outcome: rank for rank, outcome in enumerate(OUTCOMES)}

# What each (effect, status) contributes to the outcome; absent pairs contribute nothing.
_LEVEL: dict[tuple[str, str], Outcome] = {
    (Effect.require, Status.not_met): Outcome.ineligible,
    (Effect.exclude, Status.met): Outcome.ineligible,
    (Effect.require, Status.unknown): Outcome.needs_information,
    (Effect.exclude, Status.unknown): Outcome.needs_information,
    (Effect.review, Status.unknown): Outcome.needs_information,
    (Effect.indication, Status.unknown): Outcome.needs_information,
    (Effect.review, Status.met): Outcome.needs_review,
    (Effect.indication, Status.not_met): Outcome.needs_review,
    (Effect.caution, Status.met): Outcome.eligible_with_cautions,
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


class CriterionResult(NamedTuple):
    """One criterion's result (immutable). The fields are in the order of :meth:`as_dict`."""

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
    """Each source as ``{id, label, url}``; the JSON lists only the ids, which the decision's
    ``sources`` table resolves."""
    recommendation: str | None
    source_ids: list[str]
    superseded_by: str | None = None
    """A stronger criterion whose finding on the same facts is why this one did not apply
    (BP 186/104: the review band is superseded by the exclusion)."""

    @property
    def level(self) -> Outcome | None:
        return level(self.effect, self.status)

    def as_dict(self) -> dict[str, Any]:
        (
            id_,
            title,
            effect,
            status,
            reason,
            decisive,
            urgent,
            facts,
            evidence,
            parameters,
            missing,
            not_checked,
            _sources,
            recommendation,
            source_ids,
            superseded_by,
        ) = self
        return {
            "id": id_,
            "title": title,
            "effect": effect,
            "status": status,
            "reason": reason,
            "decisive": decisive,
            "urgent": urgent,
            "facts": facts,
            "evidence": evidence,
            "parameters": parameters,
            "missing": missing,
            "not_checked": not_checked,
            "sources": source_ids,
            "recommendation": recommendation,
            "superseded_by": superseded_by,
        }

    def as_compact_dict(self) -> dict[str, Any]:
        """The parts of :meth:`as_dict` that are about the record (see ``Decision.as_dict``)."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "reason": self.reason,
            "decisive": self.decisive,
            "facts": self.facts,
        }
        if self.urgent:
            out["urgent"] = True
        if self.evidence:
            out["evidence"] = self.evidence
        if self.missing:
            out["missing"] = self.missing
        if self.not_checked:
            out["not_checked"] = self.not_checked
        if self.recommendation is not None:
            out["recommendation"] = self.recommendation
        if self.superseded_by is not None:
            out["superseded_by"] = self.superseded_by
        return out


@dataclass(frozen=True, slots=True)
class Explanation:
    """The words of a decision: each criterion's reason, evidence and sources, the summary,
    the recommendations and what was not checked. Rendered from templates, so it costs
    most of :func:`decide`; a :class:`Decision` renders it on first use."""

    summary: str
    criteria: tuple[CriterionResult, ...]
    recommendations: list[str]
    not_checked: list[str]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _by_fields(self)


def _by_fields(value: Any) -> tuple[Any, tuple[Any, ...]]:
    """Pickle a frozen dataclass through its constructor: compiled by mypyc, it cannot be
    restored field by field (``FrozenInstanceError``)."""
    return type(value), tuple(getattr(value, f.name) for f in fields(value))


class _Deferred:
    """An explanation rendered on first use, then kept. Equal to another by its contents."""

    __slots__ = ("_render", "_value")

    def __init__(self, render: Callable[[], Explanation]) -> None:
        self._render: Callable[[], Explanation] | None = render
        self._value: Explanation | None = None

    def get(self) -> Explanation:
        value = self._value
        if value is None:
            render = self._render
            if render is None:  # another thread rendered it meanwhile (it sets the value first)
                assert self._value is not None
                return self._value
            value = self._value = render()
            self._render = None  # drops the fact sheet and the record it held
        return value

    def __reduce__(self) -> tuple[Any, tuple[Explanation]]:
        """Pickled (or deep-copied) rendered: a closure cannot be pickled."""
        return _rendered, (self.get(),)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Deferred) and self.get() == other.get()

    def __hash__(self) -> int:
        return hash(self.get())

    def __repr__(self) -> str:
        return repr(self.get())


def _rendered(value: Explanation) -> _Deferred:
    deferred = _Deferred(lambda: value)
    deferred.get()
    return deferred


PROFILE_FACTS = ("indication_grade", "age", "sex")
"""The facts that describe the patient population (the batch report's breakdowns)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The screening decision for one record.

    The outcome, every status, the decisive criteria and the missing items are decided
    when it is built; the explanation (``summary``, ``criteria``, ``recommendations``,
    ``not_checked``) is rendered when first asked for, so an output that needs only the
    first (``screening batch --detail outcome``, Parquet) never renders a reason."""

    record_id: str
    outcome: Outcome
    as_of: date
    statuses: dict[str, str]
    """Each criterion's status, in the rule set's order."""
    decisive: tuple[str, ...]
    """The criteria that set the outcome (none for ``eligible``), in the rule set's order."""
    missing_information: list[str]
    ruleset: dict[str, Any]
    explanation: _Deferred
    dosing: dict[str, Any] | None = None
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    """The facts of :data:`PROFILE_FACTS` (``None`` when unknown): who the patient is, for
    population breakdowns; in the outcome form as ``facts``, not in the other forms."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _by_fields(self)

    @property
    def summary(self) -> str:
        return self.explanation.get().summary

    @property
    def criteria(self) -> tuple[CriterionResult, ...]:
        return self.explanation.get().criteria

    @property
    def recommendations(self) -> list[str]:
        return self.explanation.get().recommendations

    @property
    def not_checked(self) -> list[str]:
        return self.explanation.get().not_checked

    def criterion(self, criterion_id: str) -> CriterionResult:
        return next(c for c in self.criteria if c.id == criterion_id)

    def as_dict(self, compact: bool = False) -> dict[str, Any]:
        """The decision as JSON-able data.

        ``compact`` leaves out what is the same in every decision of a rule set: each
        criterion's title, effect, parameters and sources, and the sources table (all in
        ``screening rules show``), and empty or false per-criterion fields. What is about
        the record stays: every status, reason, fact, evidence item and missing item.
        """
        out: dict[str, Any] = {
            "record_id": self.record_id,
            "outcome": self.outcome.value,
            "as_of": self.as_of.isoformat(),
            "summary": self.summary,
            "criteria": [c.as_compact_dict() if compact else c.as_dict() for c in self.criteria],
            "recommendations": self.recommendations,
            "missing_information": self.missing_information,
            "not_checked": self.not_checked,
            "ruleset": self.ruleset,
            "dosing": self.dosing,
        }
        if compact:
            out["compact"] = True
        else:
            out["sources"] = self.sources
        out.update(self.extra)
        return out

    def as_outcome_dict(self) -> dict[str, Any]:
        """The decision without its explanation (``screening batch --detail outcome``):
        the outcome, the decisive criteria, the missing items and each criterion's status
        (with ``decisive``, as in the other forms), and the run's date and rule set.
        Renders no reason."""
        decisive = set(self.decisive)
        return {
            "record_id": self.record_id,
            "outcome": self.outcome.value,
            "as_of": self.as_of.isoformat(),
            "decisive": list(self.decisive),
            "missing_information": self.missing_information,
            "criteria": [
                {"id": cid, "status": status, "decisive": cid in decisive}
                for cid, status in self.statuses.items()
            ],
            "ruleset": self.ruleset,
            "facts": self.profile,
            "detail": "outcome",
            **{key: value for key, value in self.extra.items() if key == "input_notes"},
        }

    def to_json(self, indent: bool = False) -> bytes:
        return orjson.dumps(self.as_dict(), option=orjson.OPT_INDENT_2 if indent else 0)


@dataclass(frozen=True, slots=True)
class NotScreened:
    """A valid record that must not be screened (a deceased patient): a result, with its reason,
    never an outcome and never an error."""

    record_id: str | None
    reason: str
    code = "not_screened"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _by_fields(self)

    @property
    def message(self) -> str:
        return f"record {self.record_id!r} not screened: {self.reason}"

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "record_id": self.record_id,
            "message": self.message,
            "reason": self.reason,
        }


Result = Decision | NotScreened
"""What screening one valid record gives."""


def decide(
    ruleset: RuleSet, record: Record, as_of: date, sheet: FactSheet, statuses: Mapping[str, str]
) -> Decision:
    """Decide from each criterion's status; the explanation is rendered when first used."""
    plan = _plan_for(ruleset)
    chosen = [(c, c.by_status[statuses[c.id]]) for c in plan.criteria]
    outcome = min((s.level for _, s in chosen if s.level), key=_RANK.__getitem__, default=Outcome.eligible)
    shared = _Shared(ruleset, plan.params, sheet)
    # What would settle each unknown criterion: the decision's missing items, so decided now.
    missing = [
        _missing(ruleset, c.criterion, shared.values, sheet) if s.status == Status.unknown else []
        for c, s in chosen
    ]
    missing_information = _unique(
        item
        for (c, s), items in zip(chosen, missing, strict=True)
        if c.criterion.effect != Effect.caution
        for item in items
    )

    def explain() -> Explanation:
        return _explain(plan, shared, chosen, outcome, missing)

    return Decision(
        record_id=record.id,
        outcome=outcome,
        as_of=as_of,
        statuses={c.id: s.status for c, s in chosen},
        decisive=tuple(c.id for c, s in chosen if s.level == outcome),
        missing_information=missing_information,
        ruleset={**ruleset.summary(), "overrides": dict(ruleset.overrides)},
        explanation=_Deferred(explain),
        dosing=_dosing(ruleset, record)
        if outcome in (Outcome.eligible, Outcome.eligible_with_cautions)
        else None,
        sources=ruleset.cited_sources,
        profile={name: sheet.values.get(name) for name in PROFILE_FACTS},
    )


def _explain(
    plan: _Plan,
    shared: _Shared,
    chosen: list[tuple[_CriterionPlan, _StatusPlan]],
    outcome: Outcome,
    missing: list[list[str]],
) -> Explanation:
    results = tuple(
        _result(shared, c, s, s.level == outcome, items)
        for (c, s), items in zip(chosen, missing, strict=True)
    )
    if outcome != Outcome.eligible:
        results = _mark_superseded(plan, results, shared.sheet.values)
    decisive = next((r for r in results if r.decisive), None)
    unknown = [r for r in results if r.status == Status.unknown]
    return Explanation(
        summary=f"{decisive.id}: {decisive.reason}" if decisive else _NEXT_STEP[outcome],
        criteria=results,
        recommendations=_recommendations(results, outcome),
        not_checked=_not_checked(results, unknown),
    )


@dataclass(frozen=True, slots=True)
class _StatusPlan:
    """What a criterion reports when it has one status; parameters are rendered in already."""

    status: str
    level: Outcome | None
    urgent: bool
    reason: Template
    reason_names_evidence: bool
    emphasis: tuple[Condition, Template] | None
    """Added to the reason when its condition holds (met only)."""
    recommendation: Template | None


@dataclass(frozen=True, slots=True)
class _CriterionPlan:
    """One criterion's unchanging parts, prepared once per rule set."""

    criterion: Criterion
    id: str
    facts: tuple[str, ...]
    notable: tuple[str, ...]
    """The facts that can be noted as not checked: those with a ``not_checked`` text."""
    parameters: dict[str, Any]
    """Shared by every result of the criterion; do not mutate."""
    sources: list[dict[str, str]]
    """Shared by every result of the criterion; do not mutate."""
    source_ids: list[str]
    """Shared by every result of the criterion; do not mutate."""
    by_status: Mapping[str, _StatusPlan]
    rivals: tuple[int, ...] = ()
    """The other criteria whose conditions read a fact this one's condition reads: the
    only ones that can supersede it."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """A rule set's criteria, prepared for :func:`decide`. Holds no reference to the rule set."""

    params: dict[str, Any]
    """Parameter values; shared, do not mutate."""
    criteria: tuple[_CriterionPlan, ...]


# Plans by id() of their rule set: a RuleSet is not hashable, but it is weakly referenceable.
_PLANS: dict[int, tuple[weakref.ref[RuleSet], _Plan]] = {}


def _plan_for(ruleset: RuleSet) -> _Plan:
    key = id(ruleset)
    cached = _PLANS.get(key)
    if cached is not None and cached[0]() is ruleset:
        return cached[1]
    plan = _build_plan(ruleset)

    def forget(ref: weakref.ref[RuleSet]) -> None:
        if _PLANS.get(key, (None,))[0] is ref:
            del _PLANS[key]

    _PLANS[key] = (weakref.ref(ruleset, forget), plan)
    return plan


def _build_plan(ruleset: RuleSet) -> _Plan:
    params: dict[str, Any] = ruleset.params
    # A placeholder naming a parameter (not a fact, nor {evidence}) renders the same every time.
    constants = {name: value for name, value in params.items() if name not in ruleset.facts}
    constants.pop("evidence", None)
    plans = [_criterion_plan(ruleset, c, constants) for c in ruleset.criteria]
    read = [_condition_facts(c) for c in ruleset.criteria]
    for i, planned in enumerate(plans):
        rivals = tuple(j for j, other in enumerate(read) if j != i and other & read[i])
        plans[i] = replace(planned, rivals=rivals)
    return _Plan(params, tuple(plans))


def _condition_facts(criterion: Criterion) -> frozenset[str]:
    conditions = [criterion.when] + ([criterion.not_met_when] if criterion.not_met_when else [])
    return frozenset(c.fact for condition in conditions for c in comparisons(condition))


def _criterion_plan(ruleset: RuleSet, criterion: Criterion, constants: dict[str, Any]) -> _CriterionPlan:
    by_status = {}
    for status, reason in criterion.reason.items():
        recommendation = criterion.recommendation.get(status)
        emphasis = criterion.emphasis if status == Status.met else None
        by_status[status] = _StatusPlan(
            status=status,
            level=level(criterion.effect, status),
            urgent=criterion.urgent and status == Status.met,
            reason=reason.bind(constants),
            reason_names_evidence="evidence" in reason.names,
            emphasis=(emphasis[0], emphasis[1].bind(constants)) if emphasis else None,
            recommendation=recommendation.bind(constants) if recommendation else None,
        )
    return _CriterionPlan(
        criterion=criterion,
        id=criterion.id,
        facts=criterion.facts,
        notable=tuple(name for name in criterion.facts if ruleset.facts[name].not_checked),
        parameters=ruleset.criterion_parameters[criterion.id],
        sources=list(criterion.source_dicts),
        source_ids=[source["id"] for source in criterion.source_dicts],
        by_status=by_status,
    )


class _Shared:
    """What the results of one record share while they are assembled."""

    __slots__ = ("params", "ruleset", "sheet", "values")

    def __init__(self, ruleset: RuleSet, params: dict[str, Any], sheet: FactSheet) -> None:
        self.ruleset = ruleset
        self.params = params
        self.sheet = sheet
        # Placeholder values: parameters, then facts; a reason naming {evidence} sets it.
        self.values: dict[str, Any] = {**params, **sheet.values}


def _result(
    shared: _Shared, planned: _CriterionPlan, chosen: _StatusPlan, decisive: bool, missing: list[str]
) -> CriterionResult:
    """One criterion's result, given its status (``chosen``)."""
    sheet, values = shared.sheet, shared.values
    known, facts, status = sheet.values, planned.facts, chosen.status
    evidence = _evidence(sheet, facts)
    if chosen.reason_names_evidence:
        values["evidence"] = "; ".join([e["what"] for e in evidence]) or "none"
    reason = chosen.reason.render(values)
    if chosen.emphasis and kleene(chosen.emphasis[0], known, shared.params):
        reason = f"{reason}; {chosen.emphasis[1].render(values)}"
    notes = sheet.not_checked
    criterion = planned.criterion
    return CriterionResult(
        criterion.id,
        criterion.title,
        criterion.effect,
        status,
        reason,
        decisive,
        chosen.urgent,
        {name: known[name] for name in facts},
        evidence,
        planned.parameters,
        missing,
        [notes[n] for n in planned.notable if n in notes] if planned.notable and notes else [],
        planned.sources,
        chosen.recommendation.render(values) if chosen.recommendation else None,
        planned.source_ids,
    )


def _mark_superseded(
    plan: _Plan, results: tuple[CriterionResult, ...], facts: Mapping[str, FactValue]
) -> tuple[CriterionResult, ...]:
    """Mark each criterion that passed only because a stronger finding on the same facts
    holds: with BP 186/104 the review band (systolic at most 180) is false because the
    exclusion (systolic above 180) is met, so the review is superseded, not passed.

    Criterion R is superseded by S when S has a finding (a level), that level is at least
    as strong as the one R would have had, and every fact on R's decisive branches is on
    S's decisive branches (``explain.decisive``)."""
    from screening.engine.explain import decisive_comparisons, evaluate

    findings = {i for i, r in enumerate(results) if r.level is not None and r.status != Status.unknown}
    if not findings:
        return results
    params = plan.params
    reads: dict[int, frozenset[str]] = {}

    def decisive_facts(index: int) -> frozenset[str]:
        if index not in reads:
            criterion, status = plan.criteria[index].criterion, results[index].status
            use_not_met_when = status == Status.not_met and criterion.not_met_when is not None
            condition = criterion.not_met_when if use_not_met_when else criterion.when
            assert condition is not None
            tree = evaluate(condition, facts, params)
            reads[index] = frozenset(n.condition.fact for n in decisive_comparisons(tree))  # type: ignore[union-attr]
        return reads[index]

    out = list(results)
    for i, result in enumerate(results):
        if result.level is not None or result.status == Status.unknown:
            continue
        other = Status.met if result.status == Status.not_met else Status.not_met
        would = level(result.effect, other)
        if would is None:
            continue
        for j in plan.criteria[i].rivals:
            stronger = results[j].level
            if j in findings and stronger is not None and _RANK[stronger] <= _RANK[would]:
                mine = decisive_facts(i)
                if mine and mine <= decisive_facts(j):
                    out[i] = result._replace(superseded_by=results[j].id)
                    break
    return tuple(out)


def _evidence(sheet: FactSheet, facts: tuple[str, ...]) -> list[dict[str, str]]:
    """The evidence of ``facts``, each item once (a new list)."""
    found = sheet.evidence
    first: list[Evidence] | None = None
    for name in facts:
        items = found[name]
        if items:
            if first is None:
                first, first_name = items, name
            elif items is not first:
                return _unique_dicts(item for fact in facts for item in sheet.evidence_dicts(fact))
    if first is None:
        return []
    # One list of evidence, maybe shared by facts computed together: the usual case.
    dicts = sheet.evidence_dicts(first_name)
    return list(dicts) if len(dicts) < 2 else _unique_dicts(dicts)


def _missing(ruleset: RuleSet, criterion: Criterion, values: dict[str, Any], sheet: FactSheet) -> list[str]:
    """What would settle an unknown criterion."""
    missing: list[str] = []
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
    return _unique(missing)


def _not_checked(results: tuple[CriterionResult, ...], unknown: list[CriterionResult]) -> list[str]:
    """The cautions left unknown, then the facts taken as absent."""
    cautions = [f"{r.id} ({r.title}): not checked; {r.reason}" for r in unknown if r.effect == Effect.caution]
    return _unique(cautions + [note for r in results if r.not_checked for note in r.not_checked])


def _recommendations(results: tuple[CriterionResult, ...], outcome: Outcome) -> list[str]:
    """Urgent first, then by the outcome level each result contributes; the next step last.

    They follow the outcome: an ineligible patient gets only the steps of what excludes
    them (and anything urgent), not "baseline ECG before the first infusion"; while
    information or a review is pending, a caution's step applies only if the patient goes
    ahead, and says so."""
    advised = [r for r in results if r.recommendation]
    if outcome == Outcome.ineligible:
        advised = [r for r in advised if r.urgent or r.level == Outcome.ineligible]
    advised.sort(key=_priority)  # stable: ties keep the criteria order
    pending = outcome in (Outcome.needs_information, Outcome.needs_review)
    return _unique([_step(r, pending) for r in advised] + [_NEXT_STEP[outcome]])


def _step(result: CriterionResult, pending: bool) -> str:
    text = result.recommendation or ""
    if result.urgent:
        return f"URGENT: {text}"
    if pending and result.level == Outcome.eligible_with_cautions:
        lowered = text[:1].lower() + text[1:] if text[1:2].islower() else text
        return f"If the patient goes ahead: {lowered}"
    return text


def _priority(result: CriterionResult) -> tuple[bool, int]:
    result_level = result.level
    return (not result.urgent, _RANK[result_level] if result_level else len(OUTCOMES))


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


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _unique_dicts(items: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """Drop repeated evidence: the same dict object, or an equal one."""
    out: list[dict[str, str]] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out
