"""The aggregates of the patient and their diagnoses: age, plain record fields, the primary
pain condition, diagnoses in value sets, and substance use within a window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, NamedTuple

from screening.aggregates.base import (
    DIAGNOSES,
    Evidence,
    FactValue,
    Finding,
    RecordView,
    _dx_evidence,
    _first_of,
    _iso,
    _label,
    _matching,
    _unanswered,
    aggregate,
)
from screening.record import (
    PainCondition,
    years_between,
)
from screening.valuesets import ValueSet
from screening.windows import Window, elapsed_text


@aggregate({"value": "number"})
def age_years(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Age in whole years on the screening date, from the birth date or the stated age."""
    record, as_of = view.record, view.as_of
    sources = record.sources
    if record.birth_date:
        age = years_between(record.birth_date, as_of)
        born = Evidence(f"born {_iso(record.birth_date)}", None, sources.get("birth_date"))
        return Finding({"value": age}, [born])
    if record.age is not None:
        stated = Evidence(f"age {record.age} as recorded", None, sources.get("age"))
        return Finding({"value": record.age}, [stated])
    return Finding({"value": None})


@aggregate({"value": "string"}, {"field": "field"})
def record_field(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """A plain field of the record (sex, breastfeeding, weight_kg)."""
    record = view.record
    name = args["field"]
    value = getattr(record, name)
    evidence = [Evidence(f"{name}: {value}", None, record.sources.get(name))] if value is not None else []
    return Finding({"value": value}, evidence)


_GRADE_RANK = {"B": 0, "C": 1, "D": 2}
"""Evidence grades from best to weakest; an ungraded condition ("none") ranks below them all."""


class _PainCandidate(NamedTuple):
    condition: PainCondition
    chronic: bool | None
    """Present for at least the chronic minimum: True, False, or None (no onset or duration)."""
    standing: float | None
    """How long it has been present, in days (a stated duration counts 30.4375 days a month),
    to find the longest-standing one; None when not known."""
    grade: str
    label: str
    strength: str


def _pain_candidate(
    view: RecordView, condition: PainCondition, chronic: Window, value_sets: Sequence[ValueSet]
) -> _PainCandidate:
    as_of = view.as_of
    if condition.onset is not None:
        is_chronic: bool | None = chronic.reached_by(condition.onset, as_of)
        standing: float | None = float((as_of - condition.onset).days)
    elif condition.duration_months is not None:
        is_chronic = condition.duration_months >= chronic.amount
        standing = condition.duration_months * 30.4375
    else:
        is_chronic = standing = None
    matched = _first_of(value_sets, view.classify(condition))
    if matched is None:
        return _PainCandidate(condition, is_chronic, standing, "none", _label(condition), "none")
    attributes = matched.attributes
    return _PainCandidate(
        condition,
        is_chronic,
        standing,
        attributes.get("grade", "none"),
        attributes.get("label", matched.title),
        attributes.get("evidence", "none"),
    )


def _primary_pain(view: RecordView, chronic: Window, value_sets: Sequence[ValueSet]) -> _PainCandidate | None:
    """The primary pain condition, by the one rule every criterion reads it with.

    The one the record marks primary; otherwise, among those present for at least the
    chronic minimum, the best evidence grade (then the longest-standing); when none is,
    the longest-standing one. A condition whose duration is not recorded could still be
    chronic, so while one is undated and none is known to be chronic, the best-graded
    undated one is taken: its duration stays unknown and the decision asks for it, rather
    than deciding on a shorter dated condition.
    """
    candidates = [_pain_candidate(view, c, chronic, value_sets) for c in view.primary_pain()]
    if not candidates:
        return None

    def by_grade(c: _PainCandidate) -> tuple[int, float]:
        return (_GRADE_RANK.get(c.grade, len(_GRADE_RANK)), -(c.standing or 0.0))

    pool = [c for c in candidates if c.chronic] or [c for c in candidates if c.chronic is None]
    if pool:
        return min(pool, key=by_grade)
    return max(candidates, key=lambda c: c.standing or 0.0)


@aggregate(
    {
        "chronic": "boolean",
        "shown": "string",
        "grade": "string",
        "condition": "string",
        "evidence": "string",
    },
    {"chronic_months": "months", "value_sets": "value_sets"},
    reads={"pain_conditions"},
)
def primary_pain_condition(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The primary pain condition: whether it has lasted ``chronic_months`` (``chronic``, with
    ``shown`` saying for how long), and the evidence grade of ``value_sets`` it belongs to
    (``grade``: the first matching set's grade, or ``none``; ``condition``: its label).

    Every criterion about the pain condition reads these outputs, so they always describe
    the same condition (see :func:`_primary_pain` for how it is chosen).
    """
    chosen = _primary_pain(view, Window.months(args["chronic_months"]), args["value_sets"])
    if chosen is None:
        return Finding(dict.fromkeys(("chronic", "shown", "grade", "condition", "evidence")))
    condition = chosen.condition
    if condition.onset is not None:
        shown: str | None = f"{elapsed_text(condition.onset, view.as_of)} (since {_iso(condition.onset)})"
    elif condition.duration_months is not None:
        shown = f"{condition.duration_months:g} months (stated duration)"
    else:
        shown = None
    coded = f"{_label(condition)} ({condition.system} {condition.code})"
    evidence = [Evidence(coded, _iso(condition.onset), condition.source)]
    if condition.onset is None and condition.duration_months is not None:
        evidence = [Evidence(f"{coded}, for {condition.duration_months:g} months", None, condition.source)]
    values: dict[str, FactValue] = {
        "chronic": chosen.chronic,
        "shown": shown,
        "grade": chosen.grade,
        "condition": chosen.label,
        "evidence": chosen.strength,
    }
    return Finding(values, evidence)


@aggregate(
    {"value": "boolean", "names": "string"},
    {
        "value_sets": "value_sets",
        "statuses": "statuses",
        "onset_within_months": "months",
        "onset_before_months": "months",
        "answered_by": "answer",
    },
    optional={"statuses", "onset_within_months", "onset_before_months", "answered_by"},
    unknown_only_with={"onset_within_months", "onset_before_months", "answered_by"},
    reads={DIAGNOSES},
    reading="any",
)
def has_diagnosis(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Whether any diagnosis list holds a code of the value sets, with a status and onset window.

    Unknown (None) when nothing matched but ``answered_by`` names a list the record left
    blank (``null``), or when a match lacks the onset date its window needs. A match in any
    list settles it as met, even with the ``answered_by`` list blank.
    """
    record, as_of = view.record, view.as_of
    within, before = args.get("onset_within_months"), args.get("onset_before_months")
    recent = None if within is None else Window.months(within)
    earlier = None if before is None else Window.months(before)
    hits, undated = [], []
    for dx in _matching(view, args["value_sets"], args.get("statuses")):
        if recent is None and earlier is None:
            hits.append(dx)
        elif dx.onset is None:
            undated.append(dx)
        elif (recent is None or recent.contains(dx.onset, as_of)) and (
            earlier is None or earlier.before(dx.onset, as_of)
        ):
            hits.append(dx)
    if hits:
        names = "; ".join(_label(dx) for dx in hits)
        return Finding({"value": True, "names": names}, [_dx_evidence(dx) for dx in hits])
    blocked = _unanswered(record, args)
    if undated or blocked:
        evidence = [Evidence(f"{_label(dx)}: onset date not recorded", None, dx.source) for dx in undated]
        return Finding({"value": None, "names": None}, evidence, blocked_by=blocked)
    return Finding({"value": False, "names": "none"})


@aggregate(
    {"value": "boolean", "names": "string", "shown": "string"},
    {"value_sets": "value_sets", "within_months": "months", "answered_by": "answer"},
    optional={"answered_by"},
    reads={DIAGNOSES},
    reading="any",
)
def active_within(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Whether a matching diagnosis was active within the last ``within_months`` months:
    one active now, or one in remission or resolved whose ``last_active`` date (last
    episode or problematic use) is in the window. Any diagnosis in the window settles it.

    Unknown when none in the window settles it but one in remission has no date (the window
    cannot be placed), or when nothing matches and the ``answered_by`` list is blank.
    ``shown`` says when the last activity was, in words.
    """
    record, as_of = view.record, view.as_of
    window = Window.months(args["within_months"])
    latest: date | None = None
    active = False
    evidence = []
    undated = []
    for dx in _matching(view, args["value_sets"]):
        evidence.append(_dx_evidence(dx))
        if dx.status.value == "active":
            active = True
        elif dx.last_active:
            latest = dx.last_active if latest is None else max(latest, dx.last_active)
            evidence.append(Evidence(f"{_label(dx)}: last active {_iso(dx.last_active)}", None, dx.source))
        else:
            undated.append(dx)
            evidence.append(
                Evidence(f"{_label(dx)}: date of last problematic use not recorded", None, dx.source)
            )
    names = "; ".join(e.what for e in evidence) or "none"
    if active:
        return Finding({"value": True, "names": names, "shown": "active now"}, evidence)
    if latest is not None:
        shown = f"{_iso(latest)}, {elapsed_text(latest, as_of)} ago"
        in_window = window.contains(latest, as_of)
        if in_window or not undated:
            return Finding({"value": in_window, "names": names, "shown": shown}, evidence)
        return Finding({"value": None, "names": names, "shown": f"{shown}; another is not dated"}, evidence)
    if undated:
        return Finding({"value": None, "names": names, "shown": "not dated"}, evidence)
    blocked = _unanswered(record, args)
    if blocked:
        return Finding({"value": None, "names": None, "shown": "not recorded"}, evidence, blocked_by=blocked)
    return Finding({"value": False, "names": "none", "shown": "none recorded"}, evidence)
