"""Reading FHIR R4: Bundles, CDS Hooks prefetch and Bulk Data exports into native records.

    >>> from screening import bundle_records, bulk_records, is_fhir
    >>> records = bundle_records(bundle, screener.ruleset, source="chart.json")
    >>> records[0]["id"], records[0]["conditions"][0]["source"]
    ('98671a34-...', 'Condition/267f3c0b-...')

Each record is a plain dict in the schema of :class:`screening.record.Record`, one per
Patient; its id is the Patient id and every item names its resource (``"source"``). The
mapping (``docs/reading-rules.md``) lives in :mod:`screening.fhir.map` and
:mod:`screening.fhir.observations` (one resource at a time) and
:mod:`screening.fhir.assemble` (one patient at a time); the code lists come from the rule
set's value sets (:mod:`screening.fhir.terms`); Bulk Data exports are streamed by
:mod:`screening.fhir.bulk`; missing CDS Hooks prefetch is fetched by
:mod:`screening.service.fhir_fetch`.

Resources are joined to their patient by ``subject`` (``patient`` for AllergyIntolerance):
``Patient/<id>``, an absolute URL ending so, or the ``fullUrl`` of the Patient's entry
(``urn:uuid:...`` in transaction Bundles). A resource without a subject belongs to the
only Patient of its Bundle; one whose patient is not in the Bundle is left out with a note.
Malformed input raises :class:`~screening.errors.InputError` naming the source and the
position (``entry[3].resource.code.coding[0].code``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from screening.errors import FieldProblem, InputError, RecordError
from screening.fhir.assemble import assemble, native
from screening.fhir.map import PATIENT_REFERENCE, TREATMENT_TYPES, extract, patient_base
from screening.fhir.terms import Concept, FhirTerms, Malformed, Partial, concept, note, objects, terms_for
from screening.ruleset.model import RuleSet

_MAX_DEPTH = 4


@dataclass
class FhirRecord:
    """A native record read from FHIR, with notes on what was read but not used."""

    record: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    error: InputError | None = None
    """Set (only when reading leniently) for a patient with a malformed resource: not screened."""

    def failure(self) -> RecordError | None:
        """The error as this patient's RecordError, naming the resource and the field."""
        if self.error is None:
            return None
        where = ":".join(p for p in (self.error.source, self.error.position) if p)
        message = str(self.error).removeprefix(f"{where}: ")
        record_id = self.record.get("id")
        problem = FieldProblem(self.error.position or "resource", "invalid_fhir", message)
        failed = RecordError(record_id if isinstance(record_id, str) else None, [problem])
        failed.source = self.error.source
        return failed


@dataclass(frozen=True)
class Entry:
    """One resource of the input and where it was found."""

    resource: Mapping[str, Any]
    position: str
    full_url: str | None = None

    @property
    def type(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def label(self) -> str:
        """``Type/id``: what a clinician looks up in the chart."""
        rid = self.resource.get("id")
        return (
            f"{self.type}/{rid}"
            if isinstance(rid, str) and rid
            else self.full_url or f"{self.type} at {self.position}"
        )


def is_fhir(data: object) -> bool:
    """Whether parsed JSON is a FHIR resource (a JSON object with a ``resourceType``)."""
    return isinstance(data, Mapping) and isinstance(data.get("resourceType"), str)


def bundle_records(
    bundle: dict[str, Any], ruleset: RuleSet, source: str | None = None
) -> list[dict[str, Any]]:
    """One native record dict per Patient of a Bundle of any type (or of a single resource)."""
    return [native(r.record) for r in read_bundle(bundle, ruleset, source)]


def read_bundle(
    data: Mapping[str, Any], ruleset: RuleSet, source: str | None = None, *, strict: bool = True
) -> list[FhirRecord]:
    """Like :func:`bundle_records`, keeping the notes of each record.

    The records are for :meth:`~screening.screener.Screener.screen_fhir_record` (or
    :func:`~screening.fhir.assemble.clip_to`), which finish them for the screening date;
    :func:`~screening.fhir.assemble.native` finishes one for any date.

    ``strict=False`` (batch): a malformed resource or entry does not stop the Bundle; it
    is the ``error`` of its patient's record, or of a record of its own (see read_entries).
    """
    if strict:
        return read_entries(list(flatten(data, source)), ruleset, source)
    errors: list[InputError] = []
    entries = list(flatten(data, source, errors=errors))
    found = read_entries(entries, ruleset, source, strict=False)
    return found + [FhirRecord({}, error=error) for error in errors]


def flatten(
    data: Any,
    source: str | None,
    position: str = "",
    depth: int = 0,
    errors: list[InputError] | None = None,
) -> Iterator[Entry]:
    """The resources of a Bundle (nested Bundles included) or the single resource given.

    With ``errors``, an entry that is not an object or has no resourceType is added there
    and passed over, instead of raising."""
    if not is_fhir(data):
        raise InputError("not a FHIR resource (a JSON object with a resourceType)", source, position or None)
    if data["resourceType"] != "Bundle":
        yield Entry(data, position or "resource")
        return
    entries = data.get("entry") or []
    if not isinstance(entries, list):
        raise InputError("Bundle.entry must be an array", source, _at(position, "entry"))
    for index, entry in enumerate(entries):
        where = _at(position, f"entry[{index}]")
        problem = None
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(entry, dict):
            problem = InputError("a Bundle entry must be an object", source, where)
        elif resource is None:
            continue  # e.g. a DELETE request or a search outcome without a resource
        elif not is_fhir(resource):
            where = f"{where}.resource"
            problem = InputError("an entry's resource must be an object with a resourceType", source, where)
        if problem is not None:
            if errors is None:
                raise problem
            errors.append(problem)
            continue
        assert isinstance(resource, dict)
        where = f"{where}.resource"
        if resource["resourceType"] == "Bundle" and depth < _MAX_DEPTH:
            yield from flatten(resource, source, where, depth + 1, errors)
            continue
        full_url = entry.get("fullUrl")
        yield Entry(resource, where, full_url if isinstance(full_url, str) else None)


def _at(position: str, part: str) -> str:
    return f"{position}.{part}" if position else part


def ref_key(ref: str) -> str:
    """A reference in comparable form: ``Type/id`` (from relative or absolute), or a URN."""
    ref = ref.split("/_history/")[0].rstrip("/")
    if ref.startswith("urn:"):
        return ref
    parts = ref.split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else ref


def read_entries(
    entries: list[Entry],
    ruleset: RuleSet,
    source: str | None,
    *,
    patient_id: str | None = None,
    conditions_known: bool = True,
    treatments_known: bool | None = None,
    medications_known: bool = True,
    allergies_known: bool = True,
    strict: bool = True,
) -> list[FhirRecord]:
    """Records from resources: one per Patient, or the one patient ``patient_id`` names.

    Without any Patient resource, each patient the resources refer to is screened, with
    age and sex unknown (a lone Observation, a search result).

    ``treatments_known`` defaults to whether the patient has any MedicationStatement,
    MedicationRequest or Procedure: without them the treatment history is unknown, not
    empty. A malformed resource raises InputError; with ``strict=False`` it is reported
    instead, as the ``error`` of its patient's record (that patient is not screened), or of
    a record of its own when its patient cannot be told.
    """
    reader = _Reader(terms_for(ruleset), entries, source, strict)
    return reader.records(patient_id, conditions_known, treatments_known, medications_known, allergies_known)


class _Reader:
    def __init__(
        self, terms: FhirTerms, entries: list[Entry], source: str | None, strict: bool = True
    ) -> None:
        self.terms = terms
        self.source = source
        self.strict = strict
        self.entries = _unique(entries)
        medications: dict[str, Mapping[str, Any]] = {}
        for entry in self.entries:
            if entry.type == "Medication":
                for key in keys_of(entry):
                    medications[key] = entry.resource
        self.lookup = functools.partial(lookup_medication, medications)

    def records(
        self,
        patient_id: str | None,
        conditions_known: bool,
        treatments_known: bool | None,
        medications_known: bool = True,
        allergies_known: bool = True,
    ) -> list[FhirRecord]:
        patients = [e for e in self.entries if e.type == "Patient"]
        if patient_id is not None:
            patients = [e for e in patients if e.resource.get("id") == patient_id][:1]
        owners: dict[str, int] = {}
        bases: list[tuple[Partial, list[str]]] = []
        errors: list[InputError | None] = []
        for index, entry in enumerate(patients):
            record_id = patient_id_of(entry)
            base, error = self._read(
                entry, lambda e=entry, r=record_id: patient_base(e.resource, self.terms, r)
            )
            bases.append(base or ({"id": record_id}, []))
            errors.append(error)
            for key in keys_of(entry):
                owners[key] = index
        if not patients and patient_id is None:
            # Resources without their Patient (a lone Observation, a search result): screen
            # each patient they refer to, with age and sex unknown. Such a fragment is not a
            # chart, so none of its lists is taken as complete: histories, problem list,
            # medications and allergies are "not available" unless it holds some.
            for referred in self._referred_patients():
                owners[f"Patient/{referred}"] = len(bases)
                bases.append(
                    (
                        {"id": referred},
                        [
                            f"no Patient resource for Patient/{referred}: age and sex unknown, "
                            "and no list in the input is taken as complete"
                        ],
                    )
                )
                errors.append(None)
            if bases:
                conditions_known = medications_known = allergies_known = False
                treatments_known = False
        if patient_id is not None:
            # Also the transaction-Bundle form, where Synthea-like data keep it in prefetch.
            owners[f"Patient/{patient_id}"] = owners[f"urn:uuid:{patient_id}"] = 0
            if not bases:
                bases.append(
                    ({"id": patient_id}, [f"no Patient resource for {patient_id}: age and sex unknown"])
                )
                errors.append(None)
        partials: list[list[Partial]] = [[] for _ in bases]
        treated = [False for _ in bases]
        stray: list[Partial] = []
        orphans: list[FhirRecord] = []
        only = 0 if len(bases) == 1 else None  # the owner of a resource naming no patient
        for entry in self.entries:
            field_name = PATIENT_REFERENCE.get(entry.type)
            if field_name is None:
                continue
            ref, error = self._read(entry, lambda e=entry, f=field_name: subject_of(e.resource, f))
            owner = owners.get(ref_key(ref)) if ref else only
            if error is not None:
                if owner is None:
                    orphans.append(FhirRecord({}, error=error))
                elif errors[owner] is None:
                    errors[owner] = error
                continue
            if owner is None:
                stray.append(
                    note(f"{entry.label}: its patient ({ref or 'none given'}) is not in the input; not used")
                )
                continue
            found, error = self._read(
                entry, lambda e=entry: extract(e.resource, self.terms, e.label, self.lookup)
            )
            if error is not None:
                errors[owner] = errors[owner] or error
                continue
            partials[owner].extend(found)
            treated[owner] = treated[owner] or entry.type in TREATMENT_TYPES
        out = []
        for index, ((base, notes), items) in enumerate(zip(bases, partials, strict=True)):
            if len(bases) == 1:
                items.extend(stray)
            known = treated[index] if treatments_known is None else treatments_known
            record, more = assemble(
                base,
                items,
                self.terms,
                conditions_known=conditions_known,
                treatments_known=known,
                medications_known=medications_known,
                allergies_known=allergies_known,
            )
            out.append(FhirRecord(record, notes + more, errors[index]))
        return out + orphans

    def _referred_patients(self) -> list[str]:
        """The ids of the Patients the resources refer to (``Patient/<id>``), in order."""
        found: dict[str, None] = {}
        for entry in self.entries:
            field_name = PATIENT_REFERENCE.get(entry.type)
            if field_name is None:
                continue
            try:
                ref = subject_of(entry.resource, field_name)
            except Malformed:
                continue  # reported when the entry is read
            key = ref_key(ref) if ref else ""
            if key.startswith("Patient/") and len(key) > len("Patient/"):
                found.setdefault(key.removeprefix("Patient/")[:200], None)
        return list(found)

    def _read(self, entry: Entry, read: Any) -> tuple[Any, InputError | None]:
        """What ``read`` gives, or (strict: raises) the InputError naming where it failed."""
        try:
            return read(), None
        except Malformed as error:
            problem = InputError(f"{entry.label}: {error}", self.source, f"{entry.position}.{error.path}")
            if self.strict:
                raise problem from None
            return None, problem


def lookup_medication(
    medications: Mapping[str, Mapping[str, Any]], resource: Mapping[str, Any], ref: str | None
) -> Concept | None:
    """The code of a referenced Medication: contained (``#id``) or elsewhere in the input."""
    if not ref:
        return None
    target: Any = None
    if ref.startswith("#"):
        target = next((c for c, _ in objects(resource, "contained", "") if c.get("id") == ref[1:]), None)
    else:
        target = medications.get(ref) or medications.get(ref_key(ref))
    return concept(target, "code", "contained") if isinstance(target, dict) else None


def subject_of(resource: Mapping[str, Any], field_name: str) -> str | None:
    value = resource.get(field_name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Malformed(field_name, "expected a Reference object")
    ref = value.get("reference")
    if ref is not None and not isinstance(ref, str):
        raise Malformed(f"{field_name}.reference", "expected a string")
    return ref


def keys_of(entry: Entry) -> set[str]:
    """The strings a reference to this resource may use."""
    keys = set()
    rid = entry.resource.get("id")
    if isinstance(rid, str) and rid:
        keys.add(f"{entry.type}/{rid}")
    if entry.full_url:
        keys.update({entry.full_url, ref_key(entry.full_url)})
    return keys


def patient_id_of(entry: Entry) -> str:
    rid = entry.resource.get("id")
    if isinstance(rid, str) and rid:
        return rid[:200]
    if entry.full_url:
        return entry.full_url.rsplit(":", 1)[-1].rsplit("/", 1)[-1][:200] or entry.position
    return f"Patient at {entry.position}"


def _unique(entries: list[Entry]) -> list[Entry]:
    """Each resource once, where the input repeats it (CDS Hooks prefetch keys can overlap)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for entry in entries:
        rid = entry.resource.get("id")
        if isinstance(rid, str) and rid:
            if (entry.type, rid) in seen:
                continue
            seen.add((entry.type, rid))
        out.append(entry)
    return out
