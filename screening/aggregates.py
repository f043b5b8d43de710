"""The aggregates that rule files use to turn a record into facts.

A rule file declares each fact as an aggregate with arguments, e.g.::

    bp_systolic:
      aggregate: latest_blood_pressure
      args: {within_days: $bp_window_days}
      output: systolic

Each aggregate returns a :class:`Finding`: its outputs (a value or ``None`` for unknown),
the record items it used as :class:`Evidence`, and, when an output is unknown because an
explicit answer is missing, which record field would settle it (``blocked_by``).
Aggregates hold no clinical thresholds or codes: those arrive as arguments from the rule set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from .record import (
    FAILED_OUTCOMES,
    Diagnosis,
    Record,
    TrialOutcome,
    years_between,
)
from .valuesets import ValueSet

FactValue = bool | int | float | str | None
FactType = Literal["number", "boolean", "string"]
ArgKind = Literal["days", "months", "number", "value_set", "value_sets", "statuses", "answer", "field"]
DAYS_PER_MONTH = 30.4375
ANSWER_FIELDS = ("psychiatric_history", "substance_use_history", "treatments")
RECORD_FIELD_TYPES: dict[str, FactType] = {"breastfeeding": "boolean", "sex": "string", "weight_kg": "number"}


@dataclass(frozen=True, slots=True)
class Evidence:
    """A record item a fact was computed from."""

    what: str
    date: str | None = None
    source: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"what": self.what}
        if self.date:
            out["date"] = self.date
        if self.source:
            out["source"] = self.source
        return out


@dataclass(slots=True)
class Finding:
    values: dict[str, FactValue]
    evidence: list[Evidence] = field(default_factory=list)
    blocked_by: str | None = None


class DiagnosisClassifier:
    """Which value sets a coded diagnosis belongs to, memoised across records."""

    def __init__(self, value_sets: Iterable[ValueSet], limit: int = 100_000) -> None:
        self._value_sets = tuple(value_sets)
        self._cache: dict[tuple[str, str, str | None], frozenset[str]] = {}
        self._limit = limit

    def __call__(self, dx: Diagnosis) -> frozenset[str]:
        key = (dx.system, dx.code, dx.display)
        found = self._cache.get(key)
        if found is None:
            found = frozenset(
                vs.id for vs in self._value_sets if vs.matches_diagnosis(dx.code, dx.system, dx.display)
            )
            if len(self._cache) >= self._limit:
                self._cache.clear()
            self._cache[key] = found
        return found


class RecordView:
    """One record on one screening date, with per-record work done once."""

    __slots__ = ("_by_value_set", "_diagnoses", "as_of", "classify", "record")

    def __init__(self, record: Record, as_of: date, classify: DiagnosisClassifier) -> None:
        self.record = record
        self.as_of = as_of
        self.classify = classify
        self._diagnoses: list[tuple[Diagnosis, frozenset[str]]] | None = None
        self._by_value_set: dict[str, list[Diagnosis]] | None = None

    def diagnoses(self) -> list[tuple[Diagnosis, frozenset[str]]]:
        """Every diagnosis of every list, with the ids of the value sets it belongs to."""
        if self._diagnoses is None:
            record = self.record
            every = [
                *(record.psychiatric_history or ()),
                *(record.substance_use_history or ()),
                *record.conditions,
                *record.pain_conditions,
            ]
            self._diagnoses = [(dx, self.classify(dx)) for dx in every]
        return self._diagnoses

    def in_value_set(self, value_set_id: str) -> list[Diagnosis]:
        """The record's diagnoses that belong to one value set (most records: none)."""
        if self._by_value_set is None:
            index: dict[str, list[Diagnosis]] = {}
            for dx, classes in self.diagnoses():
                for vs_id in classes:
                    index.setdefault(vs_id, []).append(dx)
            self._by_value_set = index
        return self._by_value_set.get(value_set_id, [])


@dataclass(frozen=True)
class Aggregate:
    """An aggregate's function and its signature, checked when rule files load."""

    name: str
    func: Callable[[RecordView, Mapping[str, Any]], Finding]
    args: Mapping[str, ArgKind]
    optional: frozenset[str]
    outputs: Mapping[str, FactType]
    doc: str
    unknown_only_with: frozenset[str] | None = None
    """None: any output may be unknown. A set: only when one of these arguments is given."""

    def may_be_unknown(self, args: Mapping[str, Any]) -> bool:
        return self.unknown_only_with is None or any(name in args for name in self.unknown_only_with)


AGGREGATES: dict[str, Aggregate] = {}


def aggregate(
    outputs: Mapping[str, FactType],
    args: Mapping[str, ArgKind] | None = None,
    optional: Iterable[str] = (),
    unknown_only_with: Iterable[str] | None = None,
) -> Callable[[Callable[[RecordView, Mapping[str, Any]], Finding]], Callable[..., Finding]]:
    def register(func: Callable[[RecordView, Mapping[str, Any]], Finding]) -> Callable[..., Finding]:
        AGGREGATES[func.__name__] = Aggregate(
            func.__name__,
            func,
            args or {},
            frozenset(optional),
            outputs,
            (func.__doc__ or "").strip(),
            None if unknown_only_with is None else frozenset(unknown_only_with),
        )
        return func

    return register


def months_between(start: date, end: date) -> float:
    return round((end - start).days / DAYS_PER_MONTH, 1)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _recent(items: Iterable[Any], as_of: date, within_days: int) -> list[Any]:
    return [item for item in items if (as_of - item.date).days <= within_days]


def _stale(items: Sequence[Any], what: Callable[[Any], str], within_days: int) -> list[Evidence]:
    if not items:
        return []
    latest = max(items, key=lambda item: item.date)
    return [
        Evidence(
            f"{what(latest)} (older than {within_days} days, not used)", _iso(latest.date), latest.source
        )
    ]


def _latest(
    items: Sequence[Any],
    as_of: date,
    within_days: int,
    describe: Callable[[Any], str],
    rank: Callable[[Any], Any] = lambda item: item.date,
) -> tuple[Any | None, list[Evidence]]:
    """The latest item in the window with its evidence, or None with the newest stale item's."""
    recent = _recent(items, as_of, within_days)
    if not recent:
        return None, _stale(items, describe, within_days)
    latest = max(recent, key=rank)
    return latest, [Evidence(describe(latest), _iso(latest.date), latest.source)]


@aggregate({"value": "number"})
def age_years(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Age in whole years on the screening date, from the birth date or the stated age."""
    record, as_of = view.record, view.as_of
    if record.birth_date:
        age = years_between(record.birth_date, as_of)
        return Finding({"value": age}, [Evidence(f"born {record.birth_date.isoformat()}")])
    if record.age is not None:
        return Finding({"value": record.age}, [Evidence(f"age {record.age} as recorded")])
    return Finding({"value": None})


@aggregate({"value": "string"}, {"field": "field"})
def record_field(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """A plain field of the record (sex, breastfeeding, weight_kg)."""
    record = view.record
    value = getattr(record, args["field"])
    evidence = [Evidence(f"{args['field']}: {value}")] if value is not None else []
    return Finding({"value": value}, evidence)


@aggregate(
    {"systolic": "number", "diastolic": "number", "date": "string", "days_ago": "number"},
    {"within_days": "days"},
)
def latest_blood_pressure(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The most recent BP reading within the window (the highest systolic of that day)."""
    record, as_of = view.record, view.as_of
    latest, evidence = _latest(
        record.blood_pressure,
        as_of,
        args["within_days"],
        lambda r: f"BP {r.systolic:g}/{r.diastolic:g} mmHg",
        rank=lambda r: (r.date, r.systolic),
    )
    if latest is None:
        return Finding({"systolic": None, "diastolic": None, "date": None, "days_ago": None}, evidence)
    values: dict[str, FactValue] = {
        "systolic": latest.systolic,
        "diastolic": latest.diastolic,
        "date": latest.date.isoformat(),
        "days_ago": (as_of - latest.date).days,
    }
    return Finding(values, evidence)


@aggregate({"value": "number", "date": "string"}, {"within_days": "days"})
def latest_pain_score(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The most recent 0-10 pain score within the window."""
    latest, evidence = _latest(
        view.record.pain_scores,
        view.as_of,
        args["within_days"],
        lambda s: f"pain score {s.score:g}/10",
        rank=lambda s: (s.date, s.score),
    )
    if latest is None:
        return Finding({"value": None, "date": None}, evidence)
    return Finding({"value": latest.score, "date": latest.date.isoformat()}, evidence)


def _primary_pain(record: Record) -> list[Any]:
    primary = [c for c in record.pain_conditions if c.primary]
    return primary or list(record.pain_conditions)


@aggregate({"value": "number"})
def pain_duration_months(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Months the primary pain condition has been present, from its onset or stated duration."""
    record, as_of = view.record, view.as_of
    best: float | None = None
    evidence = []
    for condition in _primary_pain(record):
        if condition.onset:
            months = months_between(condition.onset, as_of)
            evidence.append(Evidence(f"{_label(condition)} since {condition.onset}", None, condition.source))
        elif condition.duration_months is not None:
            months = condition.duration_months
            evidence.append(Evidence(f"{_label(condition)} for {months:g} months", None, condition.source))
        else:
            continue
        best = months if best is None else max(best, months)
    return Finding({"value": best}, evidence)


@aggregate({"grade": "string", "condition": "string", "evidence": "string"}, {"value_sets": "value_sets"})
def indication(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Evidence grade of the primary pain condition: the first matching set's ``grade``.

    A pain condition that no listed set matches has grade ``none``. With several
    candidates and no primary flag, the best-supported one is used.
    """
    record = view.record
    candidates = _primary_pain(record)
    if not candidates:
        return Finding({"grade": None, "condition": None, "evidence": None})
    ranked = []
    for condition in candidates:
        matched = next(
            (
                vs
                for vs in args["value_sets"]
                if vs.matches_diagnosis(condition.code, condition.system, condition.display)
            ),
            None,
        )
        grade = matched.attributes.get("grade", "none") if matched else "none"
        label = matched.attributes.get("label", matched.title) if matched else _label(condition)
        strength = matched.attributes.get("evidence", "none") if matched else "none"
        ranked.append((grade, label, strength, condition))
    grade, label, strength, condition = min(ranked, key=lambda item: item[0])
    evidence = [
        Evidence(
            f"{_label(condition)} ({condition.system} {condition.code})",
            _iso(condition.onset),
            condition.source,
        )
    ]
    return Finding({"grade": grade, "condition": label, "evidence": strength}, evidence)


@aggregate(
    {"failed": "number", "possible": "number", "failed_classes": "string", "undetermined_classes": "string"},
    {"value_sets": "value_sets"},
)
def treatment_classes(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Distinct treatment classes with a failed trial, and those whose outcome is unknown.

    A trial's class is its ``treatment_class``, or the ``treatment_class`` attribute of the
    first value set matching its code or name. Failure is ineffective, partial response or
    not tolerated; ``possible`` adds the classes with an undocumented outcome.
    """
    record = view.record
    if record.treatments is None:
        nothing: dict[str, FactValue] = dict.fromkeys(
            ("failed", "possible", "failed_classes", "undetermined_classes")
        )
        return Finding(nothing, blocked_by="treatments")
    failed: dict[str, list[str]] = {}
    undetermined: dict[str, list[str]] = {}
    evidence = []
    for trial in record.treatments:
        klass = trial.treatment_class.value if trial.treatment_class else None
        if klass is None:
            matched = next((vs for vs in args["value_sets"] if vs.matches_drug(trial.code, trial.name)), None)
            klass = matched.attributes.get("treatment_class") if matched else None
        label = f"{trial.name}: {trial.outcome.value}{' (inferred)' if trial.inferred else ''}"
        if klass is None:
            evidence.append(
                Evidence(f"{label}; class not recognised, not counted", _iso(trial.end), trial.source)
            )
            continue
        evidence.append(Evidence(f"{label} [{klass}]", _iso(trial.end or trial.start), trial.source))
        if trial.outcome in FAILED_OUTCOMES:
            failed.setdefault(klass, []).append(trial.name)
        elif trial.outcome == TrialOutcome.unknown:
            undetermined.setdefault(klass, []).append(trial.name)
    open_classes = sorted(set(undetermined) - set(failed))
    return Finding(
        {
            "failed": len(failed),
            "possible": len(failed) + len(open_classes),
            "failed_classes": ", ".join(sorted(failed)) or "none",
            "undetermined_classes": ", ".join(open_classes) or "none",
        },
        evidence,
    )


def _label(dx: Diagnosis) -> str:
    return dx.display or dx.code


def _matching(view: RecordView, args: Mapping[str, Any]) -> list[Diagnosis]:
    statuses = args.get("statuses")
    found: list[Diagnosis] = []
    for value_set in args["value_sets"]:
        for dx in view.in_value_set(value_set.id):
            if dx not in found and (not statuses or dx.status.value in statuses):
                found.append(dx)
    return found


def _unanswered(record: Record, args: Mapping[str, Any]) -> str | None:
    answer = args.get("answered_by")
    return answer if answer and getattr(record, answer) is None else None


def _dx_evidence(dx: Diagnosis) -> Evidence:
    return Evidence(f"{_label(dx)} ({dx.system} {dx.code}, {dx.status.value})", _iso(dx.onset), dx.source)


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
)
def has_diagnosis(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Whether any diagnosis list holds a code of the value sets, with a status and onset window.

    Unknown (None) when nothing matched but ``answered_by`` names a list the record left
    blank, or when a match lacks the onset date its window needs.
    """
    record, as_of = view.record, view.as_of
    within = args.get("onset_within_months")
    before = args.get("onset_before_months")
    hits, undated = [], []
    for dx in _matching(view, args):
        if within is None and before is None:
            hits.append(dx)
        elif dx.onset is None:
            undated.append(dx)
        else:
            months = months_between(dx.onset, as_of)
            if (within is None or months <= within) and (before is None or months > before):
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
    {"value": "number", "names": "string"},
    {"value_sets": "value_sets", "answered_by": "answer"},
    optional={"answered_by"},
)
def months_since_last_active(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Months since a matching diagnosis was last active: 0 while one is active.

    For a diagnosis in remission or resolved, ``last_active`` (last episode or problematic
    use) dates it. Unknown when none matches, or a match in remission has no date.
    """
    record, as_of = view.record, view.as_of
    months: float | None = None
    evidence = []
    undated = False
    for dx in _matching(view, args):
        evidence.append(_dx_evidence(dx))
        if dx.status.value == "active":
            current = 0.0
        elif dx.last_active:
            current = months_between(dx.last_active, as_of)
            evidence.append(Evidence(f"{_label(dx)}: last active {dx.last_active}", None, dx.source))
        else:
            undated = True
            continue
        months = current if months is None else min(months, current)
    if months is not None and (months == 0 or not undated):
        names = "; ".join(e.what for e in evidence)
        return Finding({"value": months, "names": names}, evidence)
    return Finding({"value": None, "names": None}, evidence, blocked_by=_unanswered(record, args))


@aggregate(
    {"ratio": "number", "test": "string", "date": "string"},
    {"value_sets": "value_sets", "within_days": "days", "default_upper_limit": "number"},
)
def lab_ratio(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The highest result / upper limit of normal among matching labs in the window."""
    record, as_of = view.record, view.as_of
    best: tuple[float, Any] | None = None
    for lab in _recent(record.labs, as_of, args["within_days"]):
        if not any(vs.matches_lab(lab.code, lab.test) for vs in args["value_sets"]):
            continue
        ratio = round(lab.value / (lab.upper_limit or args["default_upper_limit"]), 2)
        if best is None or ratio > best[0]:
            best = (ratio, lab)
    if best is None:
        return Finding({"ratio": None, "test": None, "date": None})
    ratio, lab = best
    limit = lab.upper_limit or args["default_upper_limit"]
    shown = f"{lab.test} {lab.value:g} {lab.unit or ''} (upper limit {limit:g}{'' if lab.upper_limit else ', default'})"
    return Finding(
        {"ratio": ratio, "test": lab.test, "date": lab.date.isoformat()},
        [Evidence(" ".join(shown.split()), _iso(lab.date), lab.source)],
    )


@aggregate({"value": "number", "date": "string"}, {"within_days": "days"})
def phq9_item9(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The most recent PHQ-9 item 9 score (0-3) within the window."""
    answered = [p for p in view.record.phq9 if p.item9 is not None]
    latest, evidence = _latest(
        answered, view.as_of, args["within_days"], lambda p: f"PHQ-9 item 9 = {p.item9}"
    )
    if latest is None:
        return Finding({"value": None, "date": None}, evidence)
    return Finding({"value": latest.item9, "date": latest.date.isoformat()}, evidence)


@aggregate({"value": "boolean", "names": "string"}, {"value_sets": "value_sets"}, unknown_only_with=())
def current_medication(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Whether a current medication matches the value sets (by RxNorm code or ingredient)."""
    record = view.record
    hits = [
        m
        for m in record.medications
        if m.status == "current" and any(vs.matches_drug(m.code, m.name) for vs in args["value_sets"])
    ]
    if not hits:
        return Finding({"value": False, "names": "none"})
    evidence = [
        Evidence(f"{m.name}" + (f" {m.daily_dose_mg:g} mg/day" if m.daily_dose_mg else ""), None, m.source)
        for m in hits
    ]
    return Finding({"value": True, "names": ", ".join(m.name for m in hits)}, evidence)


@aggregate({"value": "number"}, {"value_set": "value_set"})
def equivalent_daily_dose(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Total current daily dose in reference-drug mg, by the value set's ``dose_factors``.

    0 with no matching current drug; unknown when a matching drug has no dose or factor.
    """
    record = view.record
    value_set: ValueSet = args["value_set"]
    total = 0.0
    evidence = []
    for med in record.medications:
        if med.status != "current" or not value_set.matches_drug(med.code, med.name):
            continue
        ingredient = value_set.ingredient_in(med.name)
        if med.daily_dose_mg is None or ingredient is None:
            evidence.append(
                Evidence(f"{med.name}: daily dose or conversion factor unknown", None, med.source)
            )
            return Finding({"value": None}, evidence)
        mg = med.daily_dose_mg * value_set.dose_factors[ingredient]
        evidence.append(
            Evidence(f"{med.name} {med.daily_dose_mg:g} mg/day ≈ {mg:g} mg equivalent", None, med.source)
        )
        total += mg
    return Finding({"value": round(total, 1)}, evidence)


@aggregate({"value": "boolean", "names": "string"}, {"value_sets": "value_sets"}, unknown_only_with=())
def has_allergy(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Whether a documented allergy or hypersensitivity matches the value sets."""
    record = view.record
    hits = [
        a for a in record.allergies if any(vs.matches_drug(a.code, a.substance) for vs in args["value_sets"])
    ]
    if not hits:
        return Finding({"value": False, "names": "none"})
    evidence = [Evidence(f"allergy: {a.substance}", None, a.source) for a in hits]
    return Finding({"value": True, "names": ", ".join(a.substance for a in hits)}, evidence)


@aggregate({"value": "string", "date": "string"}, {"within_days": "days", "value_sets": "value_sets"})
def pregnancy_status(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Pregnancy status: the latest dated status in the window, or an active pregnancy diagnosis."""
    active = _matching(view, {"value_sets": args["value_sets"], "statuses": ("active",)})
    if active:
        return Finding({"value": "pregnant", "date": _iso(active[0].onset)}, [_dx_evidence(active[0])])
    latest, evidence = _latest(
        view.record.pregnancy_status,
        view.as_of,
        args["within_days"],
        lambda p: f"pregnancy status: {p.status}",
    )
    if latest is None:
        return Finding({"value": None, "date": None}, evidence)
    return Finding({"value": latest.status, "date": latest.date.isoformat()}, evidence)
