"""One patient's partials into a native record dict, and a record clipped to a screening date.

:func:`assemble` is the second half of reading FHIR (the first is
:func:`screening.fhir.map.extract`). It works on one patient at a time:

* blood pressure from panels, and from standalone systolic and diastolic observations that
  share an effective time;
* repeated orders or sessions of the same drug or procedure become one treatment trial,
  from the earliest start to the last recorded date. Its outcome is a documented failure if
  any order records one, else ``ongoing`` if one is active, else the documented outcome,
  else ``unknown``, and then possibly *inferred* failed (docs/reading-rules.md: the trial lasted
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

from screening.aggregates.base import DIAGNOSIS_FIELDS
from screening.fhir.terms import FhirTerms, Partial
from screening.record import (
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
INCOMPLETE_BP = "_incomplete_blood_pressure"
"""Record key (never validated: :func:`clip_to` and :func:`native` remove it) for blood
pressure readings with only one half: a systolic without its diastolic, or a panel with one
component absent. The record model needs both halves, so such a reading cannot decide the
BP criteria; but it is the latest blood pressure, so older readings must not decide them
either (see :func:`supersede_blood_pressure`)."""
DECEASED_ON = "_deceased_on"
"""Record key (removed like INCOMPLETE_BP) for the date of a Patient's deceasedDateTime."""
NOTES = "_input_notes"
"""Record key (removed like INCOMPLETE_BP) for the notes of a record read from FHIR, where
the record travels alone (a batch worker): clip_to returns them first among its notes."""
_PRIVATE = (INCOMPLETE_BP, DECEASED_ON, NOTES)
_DATED = ("blood_pressure", "heart_rate", "pain_scores", "phq9", "labs", "pregnancy_status")


def assemble(
    base: Partial,
    partials: Iterable[Partial],
    terms: FhirTerms,
    *,
    conditions_known: bool = True,
    treatments_known: bool = True,
    medications_known: bool = True,
    allergies_known: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """The native record of one patient, and notes on what was read but not used.

    A kind of data the input could not provide (``*_known`` false: a CDS Hooks prefetch
    that was unavailable, a Bulk export without that resource type) is ``None`` in the
    record, "not available", so the criteria that read it are unknown rather than not met.
    """
    record: dict[str, Any] = dict(base)
    record.update({"pain_conditions": [], "conditions": [], "medications": []})
    record.update({name: [] for name, _ in _LISTS.values()})
    notes: list[str] = []
    halves: dict[str, dict[str, Partial]] = {}
    trials: dict[str, list[Partial]] = {}
    weights: list[Partial] = []
    incomplete: list[Partial] = []
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
        elif kind == "bp_incomplete":
            incomplete.append(partial)
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
            _sourced(record, "breastfeeding", partial.get("source"))
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
        else:
            [(part, half)] = pair.items()
            incomplete.append(
                {"known": {part: half["value"]}, "date": half["date"], "source": half["source"]}
            )
    if incomplete:
        # Carried to clip_to, which knows the screening date (see INCOMPLETE_BP).
        record[INCOMPLETE_BP] = [
            {"known": i["known"], "date": i["date"], "source": i["source"]} for i in incomplete
        ]
    if weights:
        latest = max(weights, key=lambda w: w["date"])
        if 1 < latest["value"] <= 400:
            record["weight_kg"] = latest["value"]
            _sourced(record, "weight_kg", latest.get("source"))
        else:
            notes.append(f"{latest['source']}: body weight {latest['value']:g} kg not plausible; not used")
    if conditions_known:
        record["psychiatric_history"] = []
        record["substance_use_history"] = []
    elif not record["conditions"]:
        record["conditions"] = None
    if not medications_known and not record["medications"]:
        record["medications"] = None
    if not allergies_known and not record["allergies"]:
        record["allergies"] = None
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


def _sourced(record: dict[str, Any], name: str, source: str | None) -> None:
    """Name the resource a plain field of the record came from (``Record.sources``)."""
    if source:
        record["sources"] = {**record.get("sources", {}), name: source}


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
    # The inference is for a trial that stopped with no reason recorded (docs/reading-rules.md):
    # one stopped for a reason that is not a failure (cost, course completed) stays unknown.
    stated = any(m.get("stopped_for") for m in members)
    if outcome == "unknown" and not stated and inferred_failure(trial, pain_scores, terms):
        trial.update(outcome="ineffective", inferred=True)
    return trial


def inferred_failure(trial: dict[str, Any], pain_scores: list[dict[str, Any]], terms: FhirTerms) -> bool:
    """docs/reading-rules.md's inference: long enough a trial, and high pain recorded after it ended."""
    start, end = trial.get("start"), trial.get("end")
    if not terms.infer or not start or not end:
        return False
    if (date.fromisoformat(end) - date.fromisoformat(start)).days < terms.infer_min_days:
        return False
    return any(p["date"] > end and p["score"] >= terms.infer_min_pain for p in pain_scores)


def clip_to(record: dict[str, Any], as_of: date, terms: FhirTerms) -> tuple[dict[str, Any], list[str]]:
    """The record as it stood on ``as_of``, and notes on what was left out."""
    day = as_of.isoformat()
    incomplete = record.get(INCOMPLETE_BP) or []
    died = record.get(DECEASED_ON)
    record_notes = record.get(NOTES) or []
    record = {key: value for key, value in record.items() if key not in _PRIVATE}
    out = dict(record)
    later: list[str] = list(record_notes)
    if died and died > day:
        out["deceased"] = False
        later.append(f"deceased on {died}, after the screening date {day}: screened as alive on that date")
    dropped: dict[str, int] = {}

    def keep(name: str, items: list[dict[str, Any]]) -> None:
        if len(items) != len(record.get(name) or []):
            dropped[name] = len(record[name]) - len(items)
        out[name] = items

    for name in _DATED:
        if name in record:
            keep(name, [i for i in record[name] if i["date"] <= day])
    for name in DIAGNOSIS_FIELDS:
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
    out["blood_pressure"], more = supersede_blood_pressure(
        out.get("blood_pressure") or [], [i for i in incomplete if i["date"] <= day]
    )
    return out, later + notes + more


def supersede_blood_pressure(
    readings: list[dict[str, Any]], incomplete: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Complete readings, without those an incomplete reading on a later or the same day supersedes.

    The BP criteria use the latest reading (the highest systolic of its day), and read
    "systolic over the limit OR diastolic over the limit". A later reading with one half
    unknown leaves that undecided, so no older reading may decide it: the criteria are then
    unknown, and a note names the incomplete reading and the readings left out.
    """
    if not incomplete:
        return readings, []
    latest = max(incomplete, key=lambda i: i["date"])
    notes = []
    for item in sorted(incomplete, key=lambda i: (i["date"], i["source"])):
        known = ", ".join(f"{part} {value:g}" for part, value in item["known"].items())
        missing = "diastolic" if "systolic" in item["known"] else "systolic"
        notes.append(
            f"{item['source']}: blood pressure on {item['date']} has {known} mmHg but no {missing} value; "
            "the record model needs both, so it cannot decide the blood pressure criteria"
        )
    superseded = [r for r in readings if r["date"] <= latest["date"]]
    if superseded:
        names = ", ".join(str(r.get("source") or r["date"]) for r in superseded[:5])
        more = f" and {len(superseded) - 5} more" if len(superseded) > 5 else ""
        notes.append(
            f"blood pressure readings up to {latest['date']} ({names}{more}) are superseded by the "
            f"incomplete reading {latest['source']}: not used, so the blood pressure is unknown"
        )
    return [r for r in readings if r["date"] > latest["date"]], notes


def native(record: dict[str, Any]) -> dict[str, Any]:
    """A record read from FHIR as a plain native record, for any screening date.

    Incomplete blood pressure readings supersede the complete ones before them (whatever
    the screening date, since it is not known here), and the private key is removed."""
    if not any(key in record for key in _PRIVATE):
        return record
    out = {key: value for key, value in record.items() if key not in _PRIVATE}
    if INCOMPLETE_BP in record:
        readings = out.get("blood_pressure") or []
        out["blood_pressure"], _ = supersede_blood_pressure(readings, record[INCOMPLETE_BP])
    return out
