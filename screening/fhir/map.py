"""One FHIR resource to the pieces of a native record, as ``docs/reading-rules.md`` lays out.

:func:`extract` turns one resource into *partials*: small JSON-able dicts, each a record
item with the resource it came from (``"source": "Condition/abc"``). Partials need no other
resource, so a Bulk Data export can be read one line at a time and its partials grouped by
patient later; :mod:`screening.fhir.assemble` then pairs blood pressures, merges repeated
orders into one treatment trial and builds the record. Kinds of partial (``"k"``):

``dx`` (with ``pain``), ``breastfeeding``, ``bp``, ``bp_half``, ``hr``, ``pain``, ``phq9``,
``lab``, ``pregnancy``, ``weight``, ``med``, ``trial``, ``allergy`` and ``note`` (a
sentence about something read but not used).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from screening.fhir.assemble import DECEASED_ON
from screening.fhir.observations import observation
from screening.fhir.terms import (
    Coding,
    Concept,
    FhirTerms,
    Partial,
    concept,
    concept_of,
    concepts,
    day,
    field,
    first_day,
    note,
    objects,
    reference,
    string,
)

MedicationLookup = Callable[[Mapping[str, Any], str | None], Concept | None]

IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
CLINICAL_STATUS = {
    "active": "active",
    "recurrence": "active",
    "relapse": "active",
    "remission": "remission",
    "inactive": "resolved",
    "resolved": "resolved",
}
PATIENT_REFERENCE = {
    "Condition": "subject",
    "Observation": "subject",
    "MedicationStatement": "subject",
    "MedicationRequest": "subject",
    "Procedure": "subject",
    "AllergyIntolerance": "patient",
}
TREATMENT_TYPES = frozenset({"MedicationStatement", "MedicationRequest", "Procedure"})
MEDICATION_TYPES = frozenset({"MedicationStatement", "MedicationRequest"})


def status_code(resource: Mapping[str, Any], key: str) -> str | None:
    """The code of a status CodeableConcept (clinicalStatus, verificationStatus)."""
    value = concept(resource, key)
    return next((c.code for c in value.codings if c.code), None) if value else None


def patient_base(resource: Mapping[str, Any], terms: FhirTerms, record_id: str) -> tuple[Partial, list[str]]:
    """The demographic part of a record from a Patient resource, and notes."""
    base: Partial = {"id": record_id}
    notes = []
    birth = string(resource, "birthDate", "")
    if birth:
        full = day(birth, "birthDate")
        if full:
            base["birth_date"] = full
        else:
            notes.append(f"Patient/{record_id}: birth date {birth!r} is not a full date; not used")
    gender = string(resource, "gender", "")
    if gender in ("female", "male", "other"):
        base["sex"] = gender
    elif gender is None:
        sex = _individual_sex(resource, terms)
        if sex:
            base["sex"] = sex
    if field(resource, "deceasedBoolean", bool, ""):
        base["deceased"] = True
    died = string(resource, "deceasedDateTime", "")
    if died:
        base["deceased"] = True
        when = day(died, "deceasedDateTime")
        if when:
            base[DECEASED_ON] = when  # clip_to: not yet deceased on an earlier screening date
    here = f"Patient/{record_id}"
    base["sources"] = {name: here for name in ("birth_date", "sex", "deceased") if name in base}
    return base, notes


def _individual_sex(resource: Mapping[str, Any], terms: FhirTerms) -> str | None:
    """Sex from the US Core individual-sex extension, for a Patient without gender."""
    for extension, where in objects(resource, "extension", ""):
        url = string(extension, "url", where) or ""
        if not url.endswith("/us-core-individual-sex"):
            continue
        code = string(extension, "valueCode", where)
        if code in ("female", "male", "other"):
            return code
        value = field(extension, "valueCoding", dict, where)
        if value:
            found = terms.answer(terms.sex_answers, Concept((_coding(value, where),), None))
            if found:
                return found
    return None


def _coding(value: Mapping[str, Any], where: str) -> Coding:
    return concept_of({"coding": [value]}, where).codings[0]


def extract(
    resource: Mapping[str, Any], terms: FhirTerms, source: str, medication: MedicationLookup
) -> list[Partial]:
    """The partials of one resource (nothing for a type the screener does not read)."""
    reader = _READERS.get(resource.get("resourceType", ""))
    return reader(resource, terms, source, medication) if reader else []


def _condition(res: Mapping[str, Any], terms: FhirTerms, source: str, _: MedicationLookup) -> list[Partial]:
    if status_code(res, "verificationStatus") in IGNORED_VERIFICATION:
        return []
    code = concept(res, "code") or Concept((), None)
    usable = [c for c in code.codings if c.system in ("icd-10-cm", "snomed") and c.code]
    if not usable:
        label = code.label or "(no code)"
        return [note(f"{source}: condition {label} has no ICD-10-CM or SNOMED CT code; not used")]
    clinical = status_code(res, "clinicalStatus")
    abated = any(k.startswith("abatement") for k in res)
    status = CLINICAL_STATUS.get(clinical or "", "resolved" if clinical is None and abated else "active")
    onset = first_day(res, ("onsetDateTime", "onsetPeriod.start", "recordedDate"))
    abatement = first_day(res, ("abatementDateTime", "abatementPeriod.end", "abatementPeriod.start"))
    out: list[Partial] = []
    if (
        status == "active"
        and abatement
        and terms.pregnancy
        and any(
            terms.pregnancy.matches_diagnosis(c.code or "", c.system or "", c.display or code.text)
            for c in usable
        )
    ):
        # docs/reading-rules.md, "Pregnancy": a pregnancy Condition that has abated does not count,
        # whatever its clinicalStatus says. Other conditions keep theirs: a relapse or
        # recurrence is recorded with the earlier abatement it follows.
        status = "resolved"
        out.append(
            note(f"{source}: pregnancy with clinicalStatus {clinical} but abated on {abatement}; not current")
        )
    if (
        clinical is None
        and not abated
        and not any(terms.is_pain(c.code or "", c.system or "", c.display or code.text) for c in usable)
    ):
        # An encounter diagnosis may leave clinicalStatus out: what it shows is activity on
        # its date, not that the condition is current now (a 2005 F11.10 is not recent use).
        # A pain condition stays the condition the patient is referred for.
        known = first_day(res, ("onsetPeriod.end", "recordedDate")) or onset
        if known:
            status, abatement = "resolved", known
            out.append(
                note(
                    f"{source}: no clinicalStatus; read as last known active on {known} "
                    "(its onset or recorded date), not as current"
                )
            )
        else:
            out.append(note(f"{source}: no clinicalStatus and no date; read as current"))
    covered: frozenset[str] = frozenset()
    ranked = sorted(
        ((terms.classify(c.code or "", c.system or "", c.display or code.text), c) for c in usable),
        key=lambda pair: -len(pair[0]),
    )
    diagnoses = 0
    for classes, coding in ranked:
        # One diagnosis per condition, plus another coding only where it adds a value set.
        if diagnoses and classes <= covered:
            continue
        covered |= classes
        display = coding.display or code.text
        item = {
            "code": coding.code,
            "system": coding.system,
            "display": display,
            "status": status,
            "onset": onset,
            "last_active": abatement if status != "active" else None,
            "source": source,
        }
        pain = status == "active" and terms.is_pain(coding.code or "", coding.system or "", display)
        out.append({"k": "dx", "pain": pain, "item": item})
        diagnoses += 1
        if (
            status == "active"
            and terms.breastfeeding
            and terms.breastfeeding.matches_diagnosis(coding.code or "", coding.system or "", display)
        ):
            out.append({"k": "breastfeeding", "source": source})
    return out


def _medication(
    res: Mapping[str, Any], terms: FhirTerms, source: str, lookup: MedicationLookup
) -> list[Partial]:
    status = string(res, "status", "")
    if status not in ("active", "completed", "stopped"):
        return []
    ref = reference(res, "medicationReference", "")
    drug = concept(res, "medicationCodeableConcept") or lookup(res, ref)
    given = field(res, "medicationReference", dict, "")
    if drug is None and given is not None:
        # The Medication is not in the input: its display, if any, still names the drug.
        shown = string(given, "display", "medicationReference")
        drug = Concept((), shown) if shown else None
    if drug is None or not drug.label:
        what = f"medication {ref} is not in the input" if ref else "medication without a code or name"
        return [note(f"{source}: {what}; not used")]
    out: list[Partial] = []
    if status == "active":
        code, name = terms.drug(drug)
        out.append({"k": "med", "item": {"name": name, "code": code, "source": source}})
    code, name = terms.drug(drug, terms.is_treatment)
    if not name or not terms.is_treatment(code, name):
        return out
    if res.get("resourceType") == "MedicationStatement":
        start = first_day(res, ("effectivePeriod.start", "effectiveDateTime"))
        end = first_day(res, ("effectivePeriod.end",))
    else:
        start, end = first_day(res, ("authoredOn",)), None
    outcome, stopped_for = None, False
    if status != "active":
        stop = concepts(res, "statusReason")
        outcome = terms.trial_outcome(stop + concepts(res, "reasonCode"), _notes(res))
        stopped_for = bool(stop)
    key = f"drug:{code or name.lower()}"
    return [*out, _trial(key, name, code, start, end, status, outcome, source, stopped_for)]


def _trial(
    key: str,
    name: str,
    code: str | None,
    start: str | None,
    end: str | None,
    status: str,
    outcome: str | None,
    source: str,
    stopped_for: bool = False,
) -> Partial:
    """A treatment trial partial. ``stopped_for``: the resource records why the trial
    ended (a statusReason, a procedure outcome), so an outcome the screener cannot read
    from it (cost, course completed) is unknown, never inferred failed."""
    item = {"name": name, "code": code, "start": start, "end": end, "source": source}
    state = "ongoing" if status in ("active", "in-progress") else "past"
    return {
        "k": "trial",
        "key": key,
        "item": item,
        "state": state,
        "outcome": outcome,
        "stopped_for": stopped_for,
    }


def _notes(res: Mapping[str, Any]) -> list[str]:
    return [
        text
        for annotation, where in objects(res, "note", "")
        if (text := field(annotation, "text", str, where))
    ]


def _procedure(res: Mapping[str, Any], terms: FhirTerms, source: str, _: MedicationLookup) -> list[Partial]:
    status = string(res, "status", "")
    if status not in ("completed", "in-progress", "stopped"):
        return []
    code = concept(res, "code")
    name = code.label if code else None
    snomed = code.code_in("snomed") if code else None
    if not name or not terms.is_treatment(snomed, name):
        return []
    start = first_day(res, ("performedPeriod.start", "performedDateTime"))
    end = first_day(res, ("performedPeriod.end",)) or start
    outcome, stopped_for = None, False
    if status != "in-progress":
        reasons = [c for c in (concept(res, "outcome"),) if c] + concepts(res, "statusReason")
        outcome = terms.trial_outcome(reasons, _notes(res))
        stopped_for = bool(reasons)
    key = f"procedure:{snomed or name.lower()}"
    return [_trial(key, name, snomed, start, end, status, outcome, source, stopped_for)]


def _allergy(res: Mapping[str, Any], terms: FhirTerms, source: str, _: MedicationLookup) -> list[Partial]:
    if status_code(res, "verificationStatus") in IGNORED_VERIFICATION:
        return []
    if status_code(res, "clinicalStatus") in ("inactive", "resolved"):
        return []
    value = concept(res, "code")
    if value is None or not value.label:
        return []
    code, name = terms.drug(value)
    return [{"k": "allergy", "item": {"substance": name, "code": code, "source": source}}]


_READERS: dict[str, Callable[[Mapping[str, Any], FhirTerms, str, MedicationLookup], list[Partial]]] = {
    "Condition": _condition,
    "Observation": observation,
    "MedicationStatement": _medication,
    "MedicationRequest": _medication,
    "Procedure": _procedure,
    "AllergyIntolerance": _allergy,
}
