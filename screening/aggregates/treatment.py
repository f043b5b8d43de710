"""Aggregates over treatments, medications and allergies (see :mod:`screening.aggregates.base`).

Registered in :data:`screening.aggregates.base.AGGREGATES` when :mod:`screening.aggregates.base`
is imported. Like every aggregate they hold no codes or thresholds: drug names, codes and
treatment classes are value-set data (``rules/valuesets/medications.yaml``,
``procedures.yaml``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from screening.aggregates.base import (
    Evidence,
    FactValue,
    Finding,
    RecordView,
    _any_of,
    _attribute_of_first,
    _iso,
    _unanswered,
    aggregate,
)
from screening.record import FAILED_OUTCOMES, TreatmentTrial, TrialOutcome
from screening.valuesets import ValueSet

OPEN_OUTCOMES = frozenset({TrialOutcome.unknown, TrialOutcome.ongoing})
"""Outcomes not known yet: the trial may still turn out to have failed."""

TREATMENT_OUTPUTS = (
    "failed",
    "possible",
    "failed_classes",
    "undetermined_classes",
    "unclassified",
    "summary",
    "open",
)


def class_labels(value_sets: Iterable[ValueSet]) -> dict[str, str]:
    """Each ``treatment_class`` attribute value with its set's ``label`` (or title).

    Remembered for the value sets of each rule set (the same tuple for every record); do
    not mutate the dict returned."""
    sets = tuple(value_sets)
    key = tuple(map(id, sets))
    found = _LABELS.get(key)
    if found is None:
        if len(_LABELS) >= 64:
            _LABELS.clear()
        found = _LABELS[key] = (sets, _class_labels(sets))
    return found[1]


_LABELS: dict[tuple[int, ...], tuple[tuple[ValueSet, ...], dict[str, str]]] = {}
"""By the ids of the value sets, which the entry keeps alive, so an id is never reused."""


def _class_labels(value_sets: Iterable[ValueSet]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value_set in value_sets:
        klass = value_set.attributes.get("treatment_class")
        if klass:
            labels.setdefault(klass, value_set.attributes.get("label", value_set.title))
    return labels


def _classes(count: int) -> str:
    return f"{count} treatment class{'' if count == 1 else 'es'}"


@aggregate(
    {
        "failed": "number",
        "possible": "number",
        "failed_classes": "string",
        "undetermined_classes": "string",
        "unclassified": "string",
        "summary": "string",
        "open": "string",
    },
    {"value_sets": "value_sets"},
    reads={"treatments", "medications"},
)
def treatment_classes(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Distinct treatment classes with a failed trial, and how many more might have one.

    A trial's class is its ``treatment_class``, or the ``treatment_class`` attribute of the
    first value set matching its code or name. Failure is ineffective, partial response or
    not tolerated. ``possible`` adds the classes whose trials' outcome is not known yet
    (unknown or ongoing), and one class for each differently named trial whose class is not
    recognised and that did not work (failed, unknown or ongoing): unknown is never taken
    as not met. ``summary`` says all this in words (also with no treatment history);
    ``open`` names what would settle it, or is unknown when nothing is open.

    A current medication of a treatment class with no trial of that drug in the history is
    an ongoing trial (as an active FHIR order is): its outcome is not known yet.
    """
    treatments = view.record.treatments
    if treatments is None:
        nothing: dict[str, FactValue] = dict.fromkeys(TREATMENT_OUTPUTS)
        nothing["summary"] = "no treatment history recorded"
        return Finding(nothing, blocked_by="treatments")
    value_sets, drug = args["value_sets"], view.classify.drug
    labels = class_labels(value_sets)
    failed: set[str] = set()
    undetermined: dict[str, list[str]] = {}
    """By class, the names of the trials whose outcome is not known yet."""
    unclassified: dict[str, TreatmentTrial] = {}
    evidence = []
    for trial in treatments:
        if trial.treatment_class:
            klass: str | None = trial.treatment_class.value
        else:
            klass = _attribute_of_first(value_sets, drug(trial.code, trial.name), "treatment_class")
        said = f"{trial.name}: {trial.outcome.value}{' (inferred)' if trial.inferred else ''}"
        when = _iso(trial.end or trial.start)
        if klass is None:
            if trial.outcome == TrialOutcome.effective:
                note = "treatment class not recognised; effective, so not counted"
            else:
                note = "treatment class not recognised; counted as a possible class until it is known"
                unclassified.setdefault(trial.name.strip().lower(), trial)
            evidence.append(Evidence(f"{said}; {note}", when, trial.source))
            continue
        evidence.append(Evidence(f"{said} [{labels.get(klass, klass)}]", when, trial.source))
        if trial.outcome in FAILED_OUTCOMES:
            failed.add(klass)
        elif trial.outcome in OPEN_OUTCOMES:
            undetermined.setdefault(klass, []).append(trial.name)
    tried = {trial.name.strip().lower() for trial in treatments}
    for med, value_set_ids in view.current_medications():
        if med.name.strip().lower() in tried:
            continue
        klass = _attribute_of_first(value_sets, value_set_ids, "treatment_class")
        if klass is not None:
            evidence.append(
                Evidence(
                    f"{med.name}: current medication, outcome not recorded [{labels.get(klass, klass)}]",
                    None,
                    med.source,
                )
            )
            undetermined.setdefault(klass, []).append(med.name)
    open_classes = sorted(set(undetermined) - failed)
    failed_labels = ", ".join(sorted(labels.get(k, k) for k in failed))
    open_labels = ", ".join(labels.get(k, k) for k in open_classes)
    names = ", ".join(t.name for t in unclassified.values())
    if failed:
        summary = f"failed trials in {_classes(len(failed))} ({failed_labels})"
    else:
        summary = "no documented failed trial in any treatment class"
    if open_classes:
        summary += f"; outcome not known yet in {_classes(len(open_classes))} ({open_labels})"
    if unclassified:
        summary += f"; treatment class not recognised for: {names}"
    asks = [
        f"the outcome of {name} ({labels.get(klass, klass)})"
        for klass in open_classes
        for name in undetermined[klass]
    ]
    asks += [
        f"the treatment class of {t.name}" + (" and its outcome" if t.outcome in OPEN_OUTCOMES else "")
        for t in unclassified.values()
    ]
    return Finding(
        {
            "failed": len(failed),
            "possible": len(failed) + len(open_classes) + len(unclassified),
            "failed_classes": failed_labels or "none",
            "undetermined_classes": open_labels or "none",
            "unclassified": names or "none",
            "summary": summary,
            "open": "; ".join(asks) or None,
        },
        evidence,
    )


@aggregate(
    {"value": "boolean", "names": "string"},
    {"value_sets": "value_sets", "answered_by": "answer"},
    optional={"answered_by"},
    unknown_only_with={"answered_by"},
    reads={"medications"},
)
def current_medication(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Whether a current medication matches the value sets (by RxNorm code or ingredient).

    Unknown (None) when the ``answered_by`` list (the medications) is blank: not available.
    """
    value_sets = args["value_sets"]
    hits = [m for m, value_set_ids in view.current_medications() if _any_of(value_sets, value_set_ids)]
    if not hits:
        blocked = _unanswered(view.record, args)
        if blocked:
            return Finding({"value": None, "names": None}, blocked_by=blocked)
        return Finding({"value": False, "names": "none"})
    evidence = [
        Evidence(f"{m.name}" + (f", {m.daily_dose_mg:g} mg/day" if m.daily_dose_mg else ""), None, m.source)
        for m in hits
    ]
    return Finding({"value": True, "names": ", ".join(m.name for m in hits)}, evidence)


@aggregate(
    {"value": "number"},
    {"value_set": "value_set", "answered_by": "answer"},
    optional={"answered_by"},
    reads={"medications"},
)
def equivalent_daily_dose(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Total current daily dose in reference-drug mg, by the value set's ``dose_factors``.

    0 with no matching current drug; unknown when a matching drug has no dose or factor,
    or when the ``answered_by`` list (the medications) is blank: not available.
    """
    blocked = _unanswered(view.record, args)
    if blocked:
        return Finding({"value": None}, blocked_by=blocked)
    value_set: ValueSet = args["value_set"]
    # Decimal arithmetic on the recorded figures: the total is compared unrounded, and binary
    # floats would put 0.1 mg x 3 a hair above a limit of 0.3.
    total = Decimal(0)
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
        mg = Decimal(repr(med.daily_dose_mg)) * Decimal(repr(value_set.dose_factors[ingredient]))
        evidence.append(
            Evidence(
                f"{med.name}, {med.daily_dose_mg:g} mg/day ≈ {float(mg):g} mg equivalent", None, med.source
            )
        )
        total += mg
    return Finding({"value": float(total)}, evidence)


@aggregate(
    {"value": "boolean", "names": "string"},
    {"value_sets": "value_sets", "answered_by": "answer"},
    optional={"answered_by"},
    unknown_only_with={"answered_by"},
    reads={"allergies"},
)
def has_allergy(view: RecordView, args: Mapping[str, Any]) -> Finding:
    """Whether a documented allergy or hypersensitivity matches the value sets.

    Unknown (None) when the ``answered_by`` list (the allergies) is blank: not available.
    """
    drug, value_sets = view.classify.drug, args["value_sets"]
    hits = [a for a in view.record.allergies or () if _any_of(value_sets, drug(a.code, a.substance))]
    if not hits:
        blocked = _unanswered(view.record, args)
        if blocked:
            return Finding({"value": None, "names": None}, blocked_by=blocked)
        return Finding({"value": False, "names": "none"})
    evidence = [Evidence(f"allergy: {a.substance}", None, a.source) for a in hits]
    return Finding({"value": True, "names": ", ".join(a.substance for a in hits)}, evidence)
