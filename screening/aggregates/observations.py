"""Aggregates over dated observations: blood pressure, pain scores, labs, PHQ-9,
pregnancy and breastfeeding status (see :mod:`screening.aggregates.base`).

Registered in :data:`screening.aggregates.base.AGGREGATES` when :mod:`screening.aggregates.base`
is imported. Like every aggregate they hold no codes; a threshold only ever arrives as an
argument from the rule set.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from operator import attrgetter
from typing import Any

from screening.aggregates.base import (
    DIAGNOSES,
    Evidence,
    FactValue,
    Finding,
    RecordView,
    _any_of,
    _dx_evidence,
    _iso,
    _latest,
    _matching,
    _recent,
    _stale,
    aggregate,
)
from screening.record import BloodPressure, Diagnosis
from screening.windows import Window


def _bp_text(reading: BloodPressure) -> str:
    return f"BP {reading.systolic:g}/{reading.diastolic:g} mmHg"


def latest_bp_day(
    view: RecordView, within_days: int
) -> tuple[tuple[float, float, date] | None, list[Evidence]]:
    """The latest day with BP readings in the window: its highest systolic and highest
    diastolic (which may come from different readings), with every reading of that day
    as evidence; or None with the newest stale reading as evidence.
    """
    key = ("latest_bp_day", within_days)
    found = view.memo.get(key)
    if found is None:
        found = view.memo[key] = _latest_bp_day(view, within_days)
    return found


def _latest_bp_day(
    view: RecordView, within_days: int
) -> tuple[tuple[float, float, date] | None, list[Evidence]]:
    readings, as_of = view.record.blood_pressure, view.as_of
    if not readings:
        return None, []
    recent = _recent(readings, as_of, within_days)
    if not recent:
        return None, _stale(readings, _bp_text, within_days)
    day = max(r.date for r in recent)
    same_day = [r for r in recent if r.date == day]
    evidence = [Evidence(_bp_text(r), _iso(day), r.source) for r in same_day]
    if len(same_day) > 1:
        evidence = [e._replace(what=f"{e.what} (one of {len(same_day)} readings that day)") for e in evidence]
    highest = (max(r.systolic for r in same_day), max(r.diastolic for r in same_day), day)
    return highest, evidence


@aggregate(
    {"systolic": "number", "diastolic": "number", "date": "string"},
    {"within_days": "days"},
    reads={"blood_pressure"},
    reading="latest",
)
def latest_blood_pressure(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The most recent BP within the window. With several readings that day, the highest
    systolic and the highest diastolic of the day (conservative), every reading as evidence.
    """
    latest, evidence = latest_bp_day(view, args["within_days"])
    if latest is None:
        return Finding({"systolic": None, "diastolic": None, "date": None}, evidence)
    systolic, diastolic, day = latest
    values: dict[str, FactValue] = {
        "systolic": systolic,
        "diastolic": diastolic,
        "date": _iso(day),
    }
    return Finding(values, evidence)


@aggregate(
    {"band": "string", "text": "string", "over": "string"},
    {
        "within_days": "days",
        "exclusion_systolic": "number",
        "exclusion_diastolic": "number",
        "review_systolic": "number",
        "caution_systolic": "number",
        "caution_diastolic": "number",
    },
    reads={"blood_pressure"},
    reading="latest",
)
def blood_pressure_band(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Which of the rule set's BP limits (given as arguments) the latest BP is above, in words.

    ``band`` is exclusion, review, caution or normal: the highest band whose limit is
    exceeded. ``over`` says which value exceeded which limit, ``text`` adds the limit, so that a BP criterion that
    is not met because a higher limit applies can say so plainly.
    """
    latest, evidence = latest_bp_day(view, args["within_days"])
    if latest is None:
        return Finding({"band": None, "text": None, "over": None}, evidence)
    systolic, diastolic, _ = latest
    ex_s, ex_d = args["exclusion_systolic"], args["exclusion_diastolic"]
    rev_s = args["review_systolic"]
    ca_s, ca_d = args["caution_systolic"], args["caution_diastolic"]
    bands: tuple[tuple[str, str, float, float | None], ...] = (
        ("exclusion", f"the exclusion limit of {ex_s:g}/{ex_d:g} mmHg", ex_s, ex_d),
        ("review", f"the review limit of {rev_s:g} mmHg systolic", rev_s, None),
        ("caution", f"the caution limit of {ca_s:g}/{ca_d:g} mmHg", ca_s, ca_d),
    )
    for band, limit, systolic_limit, diastolic_limit in bands:
        over = []
        if systolic > systolic_limit:
            over.append(f"systolic {systolic:g} > {systolic_limit:g}")
        if diastolic_limit is not None and diastolic > diastolic_limit:
            over.append(f"diastolic {diastolic:g} > {diastolic_limit:g}")
        if over:
            said = ", ".join(over)
            return Finding({"band": band, "text": f"above {limit} ({said})", "over": said}, evidence)
    return Finding(
        {
            "band": "normal",
            "text": f"at or below the caution limit of {ca_s:g}/{ca_d:g} mmHg",
            "over": "none",
        },
        evidence,
    )


@aggregate(
    {"value": "number", "date": "string"}, {"within_days": "days"}, reads={"pain_scores"}, reading="latest"
)
def latest_pain_score(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The most recent 0-10 pain score within the window."""
    latest, evidence = _latest(
        view.record.pain_scores,
        view.as_of,
        args["within_days"],
        lambda s: f"pain score {s.score:g}/10",
        rank=attrgetter("date", "score"),
    )
    if latest is None:
        return Finding({"value": None, "date": None}, evidence)
    return Finding({"value": latest.score, "date": _iso(latest.date)}, evidence)


def _ratio_text(ratio: float) -> str:
    """A ratio to two decimals for reading, or to four where two would make a ratio just
    above a whole multiple (3.0025) read as that multiple ("3.00"), the usual limits."""
    two = f"{ratio:.2f}"
    if float(two) != ratio and float(two).is_integer():
        return f"{ratio:.4f}".rstrip("0")
    return two.rstrip("0").rstrip(".")


@aggregate(
    {"ratio": "number", "test": "string", "date": "string", "shown": "string"},
    {"value_sets": "value_sets", "within_days": "days", "default_upper_limit": "number"},
    reads={"labs"},
    reading="highest",
)
def lab_ratio(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The highest result / upper limit of normal among matching labs in the window, exact
    (a ratio of 3.0025 is above 3). A result without a reference range is divided by
    ``default_upper_limit``, and the evidence says so.

    ``shown`` says it in words, or that there was none in the window.
    """
    record, as_of = view.record, view.as_of
    default_limit = args["default_upper_limit"]
    best: tuple[float, Any] | None = None
    for lab in _recent(record.labs, as_of, args["within_days"]):
        if not _any_of(args["value_sets"], view.classify.lab(lab.code, lab.test)):
            continue
        ratio = lab.value / (lab.upper_limit or default_limit)
        if best is None or ratio > best[0]:
            best = (ratio, lab)
    if best is None:
        none = f"none in the last {args['within_days']} days"
        return Finding({"ratio": None, "test": None, "date": None, "shown": none})
    ratio, lab = best
    unit = f" {lab.unit}" if lab.unit else ""
    if lab.upper_limit:
        limit = f"upper limit {lab.upper_limit:g}{unit}"
    else:
        limit = f"no reference range reported, so the default upper limit {default_limit:g} U/L"
    what = f"{lab.test} {lab.value:g}{unit} ({limit})"
    shown = f"{what} = {_ratio_text(ratio)}x the upper limit, on {_iso(lab.date)}"
    return Finding(
        {"ratio": ratio, "test": lab.test, "date": _iso(lab.date), "shown": shown},
        [Evidence(what, _iso(lab.date), lab.source)],
    )


@aggregate(
    {"value": "number", "date": "string", "shown": "string"},
    {"within_days": "days"},
    reads={"phq9"},
    reading="any",
)
def phq9_item9(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The highest PHQ-9 item 9 score (0-3) within the window: thoughts of self-harm
    reported on any questionnaire in the window count, even if a later one scored lower.
    ``shown`` says it in words, with the latest score when that was lower.
    """
    answered = [p for p in view.record.phq9 if p.item9 is not None]
    in_window = _recent(answered, view.as_of, args["within_days"])
    if not in_window:
        none = f"none in the last {args['within_days']} days"
        stale = _stale(answered, lambda p: f"PHQ-9 item 9 = {p.item9}", args["within_days"])
        return Finding({"value": None, "date": None, "shown": none}, stale)
    highest = max(in_window, key=attrgetter("item9", "date"))
    latest = max(in_window, key=attrgetter("date", "item9"))
    shown = f"{highest.item9} on {_iso(highest.date)}"
    evidence = [Evidence(f"PHQ-9 item 9 = {highest.item9}", _iso(highest.date), highest.source)]
    if latest.item9 != highest.item9:
        shown += (
            f" (the highest in the last {args['within_days']} days; {latest.item9} on {_iso(latest.date)})"
        )
        evidence.append(Evidence(f"PHQ-9 item 9 = {latest.item9} (later)", _iso(latest.date), latest.source))
    return Finding({"value": highest.item9, "date": _iso(highest.date), "shown": shown}, evidence)


@aggregate(
    {"value": "string", "date": "string"},
    {"within_days": "days", "diagnosis_within_days": "days", "value_sets": "value_sets"},
    reads={"pregnancy_status", DIAGNOSES},
    reading="latest",
)
def pregnancy_status(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Pregnancy status from the most recent evidence: a dated status within ``within_days``,
    or an active pregnancy diagnosis with an onset within ``diagnosis_within_days``.

    The most recent of these decides (on the same day, pregnant). An older pregnancy
    diagnosis is no evidence of a current pregnancy. An undated active pregnancy diagnosis
    counts as pregnant, unless the latest dated evidence says not pregnant: then the record
    contradicts itself and the status is unknown.
    """
    as_of = view.as_of
    within_dx = args["diagnosis_within_days"]
    statuses = view.record.pregnancy_status
    dated: list[tuple[date, bool, Evidence]] = [
        (p.date, p.status == "pregnant", Evidence(f"pregnancy status: {p.status}", _iso(p.date), p.source))
        for p in _recent(statuses, as_of, args["within_days"])
    ]
    undated: list[Diagnosis] = []
    old: list[Evidence] = []
    for dx in _matching(view, args["value_sets"], ("active",)):
        if dx.onset is None:
            undated.append(dx)
        elif Window.days(within_dx).contains(dx.onset, as_of):
            dated.append((dx.onset, True, _dx_evidence(dx)))
        else:
            seen = _dx_evidence(dx)
            old.append(seen._replace(what=f"{seen.what}: onset more than {within_dx} days ago, not used"))
    if not dated and not undated:
        stale = _stale(statuses, lambda p: f"pregnancy status: {p.status}", args["within_days"])
        return Finding({"value": None, "date": None}, stale + old)
    undated_evidence = [(seen := _dx_evidence(dx))._replace(what=f"{seen.what}, undated") for dx in undated]
    if not dated:
        return Finding({"value": "pregnant", "date": None}, undated_evidence + old)
    day = max(when for when, _, _ in dated)
    pregnant = any(is_pregnant for when, is_pregnant, _ in dated if when == day)
    latest = [seen for when, is_pregnant, seen in dated if when == day and is_pregnant == pregnant]
    superseded = [
        seen._replace(what=f"{seen.what} (superseded by the evidence of {_iso(day)})")
        for when, is_pregnant, seen in dated
        if is_pregnant != pregnant
    ]
    if undated and not pregnant:
        contradicted = [
            e._replace(what=f"{e.what}: contradicts the status of {_iso(day)}") for e in undated_evidence
        ]
        return Finding({"value": None, "date": None}, latest + contradicted + superseded + old)
    value = "pregnant" if pregnant else "not_pregnant"
    return Finding({"value": value, "date": _iso(day)}, latest + undated_evidence + superseded + old)


@aggregate({"value": "boolean", "shown": "string"})
def breastfeeding_status(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Whether the patient is breastfeeding, as recorded; ``shown`` says it in words.

    Not recorded: false for a male patient (not applicable, nothing left unchecked), and
    otherwise unknown, with ``shown`` saying that it was not recorded.
    """
    record = view.record
    if record.breastfeeding is not None:
        said = "breastfeeding" if record.breastfeeding else "not breastfeeding"
        recorded = Evidence(f"recorded as {said}", None, record.sources.get("breastfeeding"))
        return Finding({"value": record.breastfeeding, "shown": f"{said} (recorded)"}, [recorded])
    if record.sex == "male":
        male = Evidence("sex: male", None, record.sources.get("sex"))
        return Finding({"value": False, "shown": "not applicable (sex male)"}, [male])
    return Finding({"value": None, "shown": "not recorded, so taken as not breastfeeding"})
