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

from .record import (
    Diagnosis,
    Medication,
    PainCondition,
    Record,
    years_between,
)
from .valuesets import ValueSet
from .windows import Window, elapsed_text

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


# The other aggregates register themselves in AGGREGATES.
from . import aggregates_observations as _aggregates_observations  # noqa: E402,F401
from . import aggregates_treatment as _aggregates_treatment  # noqa: E402,F401
