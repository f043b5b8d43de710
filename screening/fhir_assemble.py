"""One patient's partials into a native record dict, and a record clipped to a screening date.

:func:`assemble` is the second half of reading FHIR (the first is
:func:`screening.fhir_map.extract`). It works on one patient at a time:

* blood pressure from panels, and from standalone systolic and diastolic observations that
  share an effective time;
* repeated orders or sessions of the same drug or procedure become one treatment trial,
  from the earliest start to the last recorded date. Its outcome is a documented failure if
  any order records one, else ``ongoing`` if one is active, else the documented outcome,
  else ``unknown``, and then possibly *inferred* failed (fhir-mapping.md: the trial lasted
  at least the rule set's minimum and a high pain score was recorded after it ended);
* every item is checked against the record model here, so an implausible value (a BP of
  300/20) is left out with a note instead of making the whole record invalid;
* a FHIR record is a problem list: ``psychiatric_history`` and ``substance_use_history``
  are ``[]`` (absent means not present) unless the conditions were not available at all;
  ``treatments`` is a list only when the treatment data was available (the caller says).

:func:`clip_to` removes what the record did not yet know on the screening date: items
dated after it are dropped, a condition that abated later was still active then, and a
trial that ended later was still ongoing. FHIR data is not refused for a date after the
screening date, as a native record is; the decision's ``input_notes`` say what was left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError

from .fhir_terms import FhirTerms, Partial
from .record import (
    FAILED_OUTCOMES,
    Allergy,
    BloodPressure,
    Diagnosis,
    HeartRate,
    LabResult,
    Medication,
    PainCondition,
    PainScore,
    Phq9,
    PregnancyStatus,
    TreatmentTrial,
)

_FAILED = frozenset(o.value for o in FAILED_OUTCOMES)
# partial kind -> (record list, model the items must satisfy)
_LISTS: dict[str, tuple[str, type[BaseModel]]] = {
    "bp": ("blood_pressure", BloodPressure),
    "hr": ("heart_rate", HeartRate),
    "pain": ("pain_scores", PainScore),
    "phq9": ("phq9", Phq9),
    "lab": ("labs", LabResult),
    "pregnancy": ("pregnancy_status", PregnancyStatus),
    "allergy": ("allergies", Allergy),
}
_DATED = ("blood_pressure", "heart_rate", "pain_scores", "phq9", "labs", "pregnancy_status")
_DIAGNOSES = ("pain_conditions", "conditions", "psychiatric_history", "substance_use_history")


def assemble(
    base: Partial,
    partials: Iterable[Partial],
    terms: FhirTerms,
    *,
    conditions_known: bool = True,
    treatments_known: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """The native record of one patient, and notes on what was read but not used."""
    record: dict[str, Any] = dict(base)
    record.update({"pain_conditions": [], "conditions": [], "medications": []})
    record.update({name: [] for name, _ in _LISTS.values()})
    notes: list[str] = []
    halves: dict[str, dict[str, Partial]] = {}
    trials: dict[str, list[Partial]] = {}
    weights: list[Partial] = []
    for partial in partials:
        kind = partial["k"]
        if kind in _LISTS:
            name, model = _LISTS[kind]
            _add(record[name], partial["item"], model, notes)
        elif kind == "dx":
            target = "pain_conditions" if partial["pain"] else "conditions"
            _add(record[target], partial["item"], PainCondition if partial["pain"] else Diagnosis, notes)
        elif kind == "bp_half":
            halves.setdefault(partial["time"], {}).setdefault(partial["part"], partial)
        elif kind == "trial":
            trials.setdefault(partial["key"], []).append(partial)
        elif kind == "med":
            # Repeated orders of a current drug are one medication.
            if not any(m["name"] == partial["item"]["name"] for m in record["medications"]):
                _add(record["medications"], partial["item"], Medication, notes)
        elif kind == "weight":
            weights.append(partial)
        elif kind == "breastfeeding":
            record["breastfeeding"] = True
        elif kind == "note":
            notes.append(partial["text"])
    for pair in halves.values():
        if len(pair) == 2:
            systolic, diastolic = pair["systolic"], pair["diastolic"]
            item = {
                "systolic": systolic["value"],
                "diastolic": diastolic["value"],
                "date": systolic["date"],
                "source": f"{systolic['source']} + {diastolic['source']}",
            }
            _add(record["blood_pressure"], item, BloodPressure, notes)
    if weights:
        latest = max(weights, key=lambda w: w["date"])
        if 1 < latest["value"] <= 400:
            record["weight_kg"] = latest["value"]
        else:
            notes.append(f"{latest['source']}: body weight {latest['value']:g} kg not plausible; not used")
    if conditions_known:
        record["psychiatric_history"] = []
        record["substance_use_history"] = []
    if treatments_known:
        record["treatments"] = []
        for members in trials.values():
            _add(
                record["treatments"],
                merge_trial(members, record["pain_scores"], terms),
                TreatmentTrial,
                notes,
            )
    return record, notes


def _add(
    target: list[dict[str, Any]], item: dict[str, Any], model: type[BaseModel], notes: list[str]
) -> None:
    """Append the item if the record model accepts it; otherwise note why it was left out."""
    clean = {key: value for key, value in item.items() if value is not None}
    try:
        model.model_validate(clean)
    except ValidationError as error:
        reason = "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors(include_url=False))
        notes.append(f"{item.get('source') or 'an item'}: not used ({reason})")
        return
    target.append(clean)


def merge_trial(
    members: list[Partial], pain_scores: list[dict[str, Any]], terms: FhirTerms
) -> dict[str, Any]:
    """One treatment trial from the orders or sessions of one drug or procedure."""
    members = sorted(members, key=lambda m: m["item"]["start"] or m["item"]["end"] or "")
    starts = [m["item"]["start"] for m in members if m["item"]["start"]]
    lasts = [
        m["item"]["end"] or m["item"]["start"] for m in members if m["item"]["end"] or m["item"]["start"]
    ]
    documented = [m for m in members if m["outcome"]]
    failed = [m for m in documented if m["outcome"] in _FAILED]
    ongoing = [m for m in members if m["state"] == "ongoing"]
    end = max(lasts) if lasts else None
    if failed:
        outcome, decisive = failed[-1]["outcome"], failed[-1]
    elif ongoing:
        outcome, decisive, end = "ongoing", ongoing[-1], None
    elif documented:
        outcome, decisive = documented[-1]["outcome"], documented[-1]
    else:
        outcome, decisive = "unknown", members[-1]
    latest = members[-1]["item"]
    trial = {
        "name": latest["name"],
        "code": latest["code"],
        "start": min(starts) if starts else None,
        "end": end,
        "outcome": outcome,
        "source": decisive["item"]["source"],
    }
    if outcome == "unknown" and inferred_failure(trial, pain_scores, terms):
        trial.update(outcome="ineffective", inferred=True)
    return trial


def inferred_failure(trial: dict[str, Any], pain_scores: list[dict[str, Any]], terms: FhirTerms) -> bool:
    """fhir-mapping.md's inference: long enough a trial, and high pain recorded after it ended."""
    start, end = trial.get("start"), trial.get("end")
    if not terms.infer or not start or not end:
        return False
    if (date.fromisoformat(end) - date.fromisoformat(start)).days < terms.infer_min_days:
        return False
    return any(p["date"] > end and p["score"] >= terms.infer_min_pain for p in pain_scores)


def clip_to(record: dict[str, Any], as_of: date, terms: FhirTerms) -> tuple[dict[str, Any], list[str]]:
    """The record as it stood on ``as_of``, and notes on what was left out."""
    day = as_of.isoformat()
    out = dict(record)
    dropped: dict[str, int] = {}

    def keep(name: str, items: list[dict[str, Any]]) -> None:
        if len(items) != len(record.get(name) or []):
            dropped[name] = len(record[name]) - len(items)
        out[name] = items

    for name in _DATED:
        if name in record:
            keep(name, [i for i in record[name] if i["date"] <= day])
    for name in _DIAGNOSES:
        if record.get(name):
            items = []
            for dx in record[name]:
                if dx.get("onset") and dx["onset"] > day:
                    continue
                if dx.get("last_active") and dx["last_active"] > day:
                    dx = {k: v for k, v in dx.items() if k != "last_active"} | {"status": "active"}
                items.append(dx)
            keep(name, items)
    if record.get("treatments"):
        trials = []
        for trial in record["treatments"]:
            if trial.get("start") and trial["start"] > day:
                continue
            trial = dict(trial)
            if trial.get("end") and trial["end"] > day:
                trial.pop("end")
                trial.update(outcome="ongoing", inferred=False)
            if trial.get("inferred") and not inferred_failure(trial, out.get("pain_scores", []), terms):
                trial.update(outcome="unknown", inferred=False)
            trials.append(trial)
        keep("treatments", trials)
    notes = [
        f"{count} {name.replace('_', ' ')} item{'s' if count != 1 else ''} dated after the screening date {day}: not used"
        for name, count in dropped.items()
    ]
    return out, notes
