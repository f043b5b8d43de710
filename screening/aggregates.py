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
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, Literal, NamedTuple

from .record import (
    FAILED_OUTCOMES,
    Diagnosis,
    Medication,
    PainCondition,
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
DIAGNOSES = "diagnoses"
"""In an aggregate's ``reads``: the record's diagnoses in the aggregate's ``value_sets``."""


class Evidence(NamedTuple):
    """A record item a fact was computed from (a named tuple: cheap to build, immutable)."""

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
    """Which value sets a coded diagnosis, drug or lab belongs to, memoised across records."""

    def __init__(self, value_sets: Iterable[ValueSet], limit: int = 100_000) -> None:
        self._value_sets = tuple(value_sets)
        self._diagnoses: dict[tuple[str, str, str | None], frozenset[str]] = {}
        self._drugs: dict[tuple[str | None, str | None], frozenset[str]] = {}
        self._labs: dict[tuple[str | None, str | None], frozenset[str]] = {}
        self._limit = limit

    def __call__(self, dx: Diagnosis) -> frozenset[str]:
        key = (dx.system, dx.code, dx.display)
        found = self._diagnoses.get(key)
        if found is None:
            found = frozenset(
                vs.id for vs in self._value_sets if vs.matches_diagnosis(dx.code, dx.system, dx.display)
            )
            self._remember(self._diagnoses, key, found)
        return found

    def drug(self, code: str | None, name: str | None) -> frozenset[str]:
        """The value sets a drug (or allergy substance) matches by code or name."""
        key = (code, name)
        found = self._drugs.get(key)
        if found is None:
            found = frozenset(vs.id for vs in self._value_sets if vs.matches_drug(code, name))
            self._remember(self._drugs, key, found)
        return found

    def lab(self, code: str | None, name: str | None) -> frozenset[str]:
        """The value sets a lab test matches by LOINC code or name."""
        key = (code, name)
        found = self._labs.get(key)
        if found is None:
            found = frozenset(vs.id for vs in self._value_sets if vs.matches_lab(code, name))
            self._remember(self._labs, key, found)
        return found

    def _remember(self, cache: dict[Any, frozenset[str]], key: Any, found: frozenset[str]) -> None:
        if len(cache) >= self._limit:
            cache.clear()
        cache[key] = found


class RecordView:
    """One record on one screening date, with per-record work done once."""

    __slots__ = (
        "_by_value_set",
        "_diagnoses",
        "_medications",
        "_primary_pain",
        "as_of",
        "classify",
        "record",
    )

    def __init__(self, record: Record, as_of: date, classify: DiagnosisClassifier) -> None:
        self.record = record
        self.as_of = as_of
        self.classify = classify
        self._diagnoses: list[tuple[Diagnosis, frozenset[str]]] | None = None
        self._by_value_set: dict[str, list[Diagnosis]] | None = None
        self._medications: list[tuple[Medication, frozenset[str]]] | None = None
        self._primary_pain: list[PainCondition] | None = None

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

    def primary_pain(self) -> list[PainCondition]:
        """The pain conditions marked primary, or all of them when none is."""
        if self._primary_pain is None:
            conditions = self.record.pain_conditions
            self._primary_pain = [c for c in conditions if c.primary] or list(conditions)
        return self._primary_pain

    def current_medications(self) -> list[tuple[Medication, frozenset[str]]]:
        """The current medications, with the ids of the value sets each matches."""
        if self._medications is None:
            drug = self.classify.drug
            self._medications = [
                (med, drug(med.code, med.name)) for med in self.record.medications if med.status == "current"
            ]
        return self._medications

    def value_set_ids(self) -> Iterable[str]:
        """The value sets that hold at least one of the record's diagnoses."""
        return self.by_value_set().keys()

    def by_value_set(self) -> dict[str, list[Diagnosis]]:
        """The record's diagnoses by the id of each value set they belong to (do not mutate)."""
        if self._by_value_set is None:
            index: dict[str, list[Diagnosis]] = {}
            for dx, classes in self.diagnoses():
                for vs_id in classes:
                    index.setdefault(vs_id, []).append(dx)
            self._by_value_set = index
        return self._by_value_set


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
    reads: frozenset[str] | None = None
    """The record lists it reads, when it reads nothing else (:data:`DIAGNOSES`: the record's
    diagnoses in its ``value_sets``). With all of them empty, its finding depends only on its
    arguments, the screening date and which :data:`ANSWER_FIELDS` are blank, so records share
    it. None: computed for every record."""

    def may_be_unknown(self, args: Mapping[str, Any]) -> bool:
        return self.unknown_only_with is None or any(name in args for name in self.unknown_only_with)


AGGREGATES: dict[str, Aggregate] = {}


def aggregate(
    outputs: Mapping[str, FactType],
    args: Mapping[str, ArgKind] | None = None,
    optional: Iterable[str] = (),
    unknown_only_with: Iterable[str] | None = None,
    reads: Iterable[str] | None = None,
) -> Callable[[Callable[[RecordView, Mapping[str, Any]], Finding]], Callable[..., Finding]]:
    unknown = set(reads or ()) - {DIAGNOSES} - set(Record.model_fields)
    if unknown:
        raise ValueError(f"reads names no record field: {sorted(unknown)}")

    def register(func: Callable[[RecordView, Mapping[str, Any]], Finding]) -> Callable[..., Finding]:
        AGGREGATES[func.__name__] = Aggregate(
            func.__name__,
            func,
            args or {},
            frozenset(optional),
            outputs,
            (func.__doc__ or "").strip(),
            None if unknown_only_with is None else frozenset(unknown_only_with),
            None if reads is None else frozenset(reads),
        )
        return func

    return register


def months_between(start: date, end: date) -> float:
    return round((end - start).days / DAYS_PER_MONTH, 1)


@lru_cache(maxsize=4096)
def _iso(day: date | None) -> str | None:
    """A date as ``YYYY-MM-DD`` (memoised: records share their dates)."""
    return day.isoformat() if day else None


def _recent(items: Iterable[Any], as_of: date, within_days: int) -> list[Any]:
    return [item for item in items if (as_of - item.date).days <= within_days]


_by_date = attrgetter("date")


def _top(items: Sequence[Any], rank: Callable[[Any], Any]) -> Any:
    """The highest-ranked item (the first of equals), without ranking a single item."""
    return items[0] if len(items) == 1 else max(items, key=rank)


def _stale(items: Sequence[Any], what: Callable[[Any], str], within_days: int) -> list[Evidence]:
    if not items:
        return []
    latest = _top(items, _by_date)
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
    rank: Callable[[Any], Any] = _by_date,
) -> tuple[Any | None, list[Evidence]]:
    """The latest item in the window with its evidence, or None with the newest stale item's."""
    if not items:
        return None, []
    recent = _recent(items, as_of, within_days)
    if not recent:
        return None, _stale(items, describe, within_days)
    latest = _top(recent, rank)
    return latest, [Evidence(describe(latest), _iso(latest.date), latest.source)]


@aggregate({"value": "number"})
def age_years(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Age in whole years on the screening date, from the birth date or the stated age."""
    record, as_of = view.record, view.as_of
    if record.birth_date:
        age = years_between(record.birth_date, as_of)
        return Finding({"value": age}, [Evidence(f"born {_iso(record.birth_date)}")])
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
    reads={"blood_pressure"},
)
def latest_blood_pressure(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The most recent BP reading within the window (the highest systolic of that day)."""
    record, as_of = view.record, view.as_of
    latest, evidence = _latest(
        record.blood_pressure,
        as_of,
        args["within_days"],
        lambda r: f"BP {r.systolic:g}/{r.diastolic:g} mmHg",
        rank=attrgetter("date", "systolic"),
    )
    if latest is None:
        return Finding({"systolic": None, "diastolic": None, "date": None, "days_ago": None}, evidence)
    values: dict[str, FactValue] = {
        "systolic": latest.systolic,
        "diastolic": latest.diastolic,
        "date": _iso(latest.date),
        "days_ago": (as_of - latest.date).days,
    }
    return Finding(values, evidence)


@aggregate({"value": "number", "date": "string"}, {"within_days": "days"}, reads={"pain_scores"})
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


@aggregate({"value": "number"}, reads={"pain_conditions"})
def pain_duration_months(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Months the primary pain condition has been present, from its onset or stated duration."""
    as_of = view.as_of
    best: float | None = None
    evidence = []
    for condition in view.primary_pain():
        if condition.onset:
            months = months_between(condition.onset, as_of)
            evidence.append(
                Evidence(f"{_label(condition)} since {_iso(condition.onset)}", None, condition.source)
            )
        elif condition.duration_months is not None:
            months = condition.duration_months
            evidence.append(Evidence(f"{_label(condition)} for {months:g} months", None, condition.source))
        else:
            continue
        best = months if best is None else max(best, months)
    return Finding({"value": best}, evidence)


@aggregate(
    {"grade": "string", "condition": "string", "evidence": "string"},
    {"value_sets": "value_sets"},
    reads={"pain_conditions"},
)
def indication(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Evidence grade of the primary pain condition: the first matching set's ``grade``.

    A pain condition that no listed set matches has grade ``none``. With several
    candidates and no primary flag, the best-supported one is used.
    """
    candidates = view.primary_pain()
    if not candidates:
        return Finding({"grade": None, "condition": None, "evidence": None})
    ranked = []
    for condition in candidates:
        matched = _first_of(args["value_sets"], view.classify(condition))
        grade = matched.attributes.get("grade", "none") if matched else "none"
        label = matched.attributes.get("label", matched.title) if matched else _label(condition)
        strength = matched.attributes.get("evidence", "none") if matched else "none"
        ranked.append((grade, label, strength, condition))
    grade, label, strength, condition = min(ranked, key=itemgetter(0))
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
    reads={"treatments"},
)
def treatment_classes(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Distinct treatment classes with a failed trial, and those whose outcome is unknown.

    A trial's class is its ``treatment_class``, or the ``treatment_class`` attribute of the
    first value set matching its code or name. Failure is ineffective, partial response or
    not tolerated; ``possible`` adds the classes with an undocumented outcome.
    """
    treatments = view.record.treatments
    if treatments is None:
        nothing: dict[str, FactValue] = dict.fromkeys(
            ("failed", "possible", "failed_classes", "undetermined_classes")
        )
        return Finding(nothing, blocked_by="treatments")
    value_sets, drug = args["value_sets"], view.classify.drug
    failed: set[str] = set()
    undetermined: set[str] = set()
    evidence = []
    for trial in treatments:
        if trial.treatment_class:
            klass: str | None = trial.treatment_class.value
        else:
            klass = _attribute_of_first(value_sets, drug(trial.code, trial.name), "treatment_class")
        label = f"{trial.name}: {trial.outcome.value}{' (inferred)' if trial.inferred else ''}"
        if klass is None:
            evidence.append(
                Evidence(f"{label}; class not recognised, not counted", _iso(trial.end), trial.source)
            )
            continue
        evidence.append(Evidence(f"{label} [{klass}]", _iso(trial.end or trial.start), trial.source))
        if trial.outcome in FAILED_OUTCOMES:
            failed.add(klass)
        elif trial.outcome == TrialOutcome.unknown:
            undetermined.add(klass)
    open_classes = sorted(undetermined - failed)
    return Finding(
        {
            "failed": len(failed),
            "possible": len(failed) + len(open_classes),
            "failed_classes": ", ".join(sorted(failed)) or "none",
            "undetermined_classes": ", ".join(open_classes) or "none",
        },
        evidence,
    )


def _first_of(value_sets: Iterable[ValueSet], ids: frozenset[str]) -> ValueSet | None:
    """The first of ``value_sets`` whose id is in ``ids`` (the sets an item was classified into)."""
    if ids:
        for value_set in value_sets:
            if value_set.id in ids:
                return value_set
    return None


def _attribute_of_first(value_sets: Iterable[ValueSet], ids: frozenset[str], name: str) -> str | None:
    """An attribute of the first of ``value_sets`` whose id is in ``ids``, if it has one."""
    matched = _first_of(value_sets, ids)
    return matched.attributes.get(name) if matched else None


def _any_of(value_sets: Iterable[ValueSet], ids: frozenset[str]) -> bool:
    """Whether any of ``value_sets`` has its id in ``ids``."""
    return _first_of(value_sets, ids) is not None


def _label(dx: Diagnosis) -> str:
    return dx.display or dx.code


def _matching(
    view: RecordView, value_sets: Iterable[ValueSet], statuses: Sequence[str] | None = None
) -> list[Diagnosis]:
    """The record's diagnoses in any of ``value_sets`` (with one of ``statuses``), each once."""
    index = view.by_value_set()
    found: list[Diagnosis] = []
    for value_set in value_sets:
        for dx in index.get(value_set.id, ()):
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
    reads={DIAGNOSES},
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
    for dx in _matching(view, args["value_sets"], args.get("statuses")):
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
    reads={DIAGNOSES},
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
    for dx in _matching(view, args["value_sets"]):
        evidence.append(_dx_evidence(dx))
        if dx.status.value == "active":
            current = 0.0
        elif dx.last_active:
            current = months_between(dx.last_active, as_of)
            evidence.append(Evidence(f"{_label(dx)}: last active {_iso(dx.last_active)}", None, dx.source))
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
    reads={"labs"},
)
def lab_ratio(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The highest result / upper limit of normal among matching labs in the window."""
    record, as_of = view.record, view.as_of
    best: tuple[float, Any] | None = None
    for lab in _recent(record.labs, as_of, args["within_days"]):
        if not _any_of(args["value_sets"], view.classify.lab(lab.code, lab.test)):
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
        {"ratio": ratio, "test": lab.test, "date": _iso(lab.date)},
        [Evidence(" ".join(shown.split()), _iso(lab.date), lab.source)],
    )


@aggregate({"value": "number", "date": "string"}, {"within_days": "days"}, reads={"phq9"})
def phq9_item9(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """The most recent PHQ-9 item 9 score (0-3) within the window."""
    answered = [p for p in view.record.phq9 if p.item9 is not None]
    latest, evidence = _latest(
        answered, view.as_of, args["within_days"], lambda p: f"PHQ-9 item 9 = {p.item9}"
    )
    if latest is None:
        return Finding({"value": None, "date": None}, evidence)
    return Finding({"value": latest.item9, "date": _iso(latest.date)}, evidence)


@aggregate(
    {"value": "boolean", "names": "string"},
    {"value_sets": "value_sets"},
    unknown_only_with=(),
    reads={"medications"},
)
def current_medication(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Whether a current medication matches the value sets (by RxNorm code or ingredient)."""
    value_sets = args["value_sets"]
    hits = [m for m, value_set_ids in view.current_medications() if _any_of(value_sets, value_set_ids)]
    if not hits:
        return Finding({"value": False, "names": "none"})
    evidence = [
        Evidence(f"{m.name}" + (f" {m.daily_dose_mg:g} mg/day" if m.daily_dose_mg else ""), None, m.source)
        for m in hits
    ]
    return Finding({"value": True, "names": ", ".join(m.name for m in hits)}, evidence)


@aggregate({"value": "number"}, {"value_set": "value_set"}, reads={"medications"})
def equivalent_daily_dose(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Total current daily dose in reference-drug mg, by the value set's ``dose_factors``.

    0 with no matching current drug; unknown when a matching drug has no dose or factor.
    """
    value_set: ValueSet = args["value_set"]
    total = 0.0
    evidence = []
    for med, value_set_ids in view.current_medications():
        if value_set.id not in value_set_ids:
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


@aggregate(
    {"value": "boolean", "names": "string"},
    {"value_sets": "value_sets"},
    unknown_only_with=(),
    reads={"allergies"},
)
def has_allergy(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Whether a documented allergy or hypersensitivity matches the value sets."""
    drug, value_sets = view.classify.drug, args["value_sets"]
    hits = [a for a in view.record.allergies if _any_of(value_sets, drug(a.code, a.substance))]
    if not hits:
        return Finding({"value": False, "names": "none"})
    evidence = [Evidence(f"allergy: {a.substance}", None, a.source) for a in hits]
    return Finding({"value": True, "names": ", ".join(a.substance for a in hits)}, evidence)


@aggregate(
    {"value": "string", "date": "string"},
    {"within_days": "days", "value_sets": "value_sets"},
    reads={"pregnancy_status", DIAGNOSES},
)
def pregnancy_status(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Pregnancy status: the latest dated status in the window, or an active pregnancy diagnosis."""
    active = _matching(view, args["value_sets"], ("active",))
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
    return Finding({"value": latest.status, "date": _iso(latest.date)}, evidence)
