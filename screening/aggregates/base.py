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
from operator import attrgetter
from typing import Any, Literal, NamedTuple

from screening.record import (
    Diagnosis,
    Medication,
    PainCondition,
    Record,
)
from screening.valuesets import ValueSet
from screening.windows import Window

FactValue = bool | int | float | str | None
FactType = Literal["number", "boolean", "string"]
Reading = Literal["latest", "any", "highest"]
ArgKind = Literal["days", "months", "number", "value_set", "value_sets", "statuses", "answer", "field"]
ANSWER_FIELDS = (
    "psychiatric_history",
    "substance_use_history",
    "treatments",
    "conditions",
    "medications",
    "allergies",
)
"""The record lists that can be blank (``null``: not asked, or not available), so that the
facts read from them are unknown and the decision asks for them (``answered_by``)."""
RECORD_FIELD_TYPES: dict[str, FactType] = {"breastfeeding": "boolean", "sex": "string", "weight_kg": "number"}
DIAGNOSES = "diagnoses"
"""In an aggregate's ``reads``: the record's diagnoses in the aggregate's ``value_sets``."""
DIAGNOSIS_FIELDS = ("pain_conditions", "conditions", "psychiatric_history", "substance_use_history")
"""The record lists that hold diagnoses (what :data:`DIAGNOSES` reads)."""


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
        "memo",
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
        self.memo: dict[Any, Any] = {}
        """What one aggregate works out that another also needs (e.g. the latest BP day)."""

    def diagnoses(self) -> list[tuple[Diagnosis, frozenset[str]]]:
        """Every diagnosis of every list, with the ids of the value sets it belongs to."""
        if self._diagnoses is None:
            record = self.record
            every = [
                *(record.psychiatric_history or ()),
                *(record.substance_use_history or ()),
                *(record.conditions or ()),
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
                (med, drug(med.code, med.name))
                for med in self.record.medications or ()
                if med.status == "current"
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

    reading: Reading | None = None
    """For an aggregate over a time window, which reading in it counts (the spec's
    conventions): the most recent (a state: BP, pain score, pregnancy status), any (a
    report or event: PHQ-9 item 9, MI or stroke, problematic use), or the highest (ALT/AST)."""

    def may_be_unknown(self, args: Mapping[str, Any]) -> bool:
        return self.unknown_only_with is None or any(name in args for name in self.unknown_only_with)


AGGREGATES: dict[str, Aggregate] = {}


def aggregate(
    outputs: Mapping[str, FactType],
    args: Mapping[str, ArgKind] | None = None,
    optional: Iterable[str] = (),
    unknown_only_with: Iterable[str] | None = None,
    reads: Iterable[str] | None = None,
    reading: Reading | None = None,
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
            reading,
        )
        return func

    return register


@lru_cache(maxsize=4096)
def _iso(day: date | None) -> str | None:
    """A date as ``YYYY-MM-DD`` (memoised: records share their dates)."""
    return day.isoformat() if day else None


def _recent(items: Iterable[Any], as_of: date, within_days: int) -> list[Any]:
    """The dated items within the last ``within_days`` days (the end day included)."""
    first = Window.days(within_days).start(as_of)
    return [item for item in items if item.date >= first]


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
    """The ``answered_by`` list when the record left it blank (``null``), else None."""
    answer = args.get("answered_by")
    return answer if answer and getattr(record, answer) is None else None


def _dx_evidence(dx: Diagnosis) -> Evidence:
    return Evidence(f"{_label(dx)} ({dx.system} {dx.code}, {dx.status.value})", _iso(dx.onset), dx.source)
