"""A FHIR Bulk Data export (one NDJSON file per resource type) into records, streamed.

An export mixes every patient in every file, so a patient's record can only be built
once all files have been read. Holding every resource for millions of patients is not an
option, so each line is turned into its *partials* at once (a few small dicts, or none for
the many resources the screener does not use, such as most Observations) and filed under
its patient. Small exports keep the partials in memory; larger ones spill them into
buckets on disk by a hash of the patient id, then build one bucket's patients at a time.
Memory then holds one bucket's partials, never the export.

Only ``Patient``, ``Medication``, ``Condition``, ``Observation``, ``MedicationStatement``,
``MedicationRequest``, ``Procedure`` and ``AllergyIntolerance`` files are opened
(``<Type>.ndjson`` or ``<Type>.<anything>.ndjson``). Records come out in Patient-file order
(within a bucket, when spilled). A line that is not JSON, or a resource of the wrong shape,
raises :class:`~screening.errors.InputError` naming the file and the line.
"""

from __future__ import annotations

import functools
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from screening.errors import InputError
from screening.fhir.assemble import assemble, native
from screening.fhir.bundle import (
    Entry,
    FhirRecord,
    keys_of,
    lookup_medication,
    patient_id_of,
    ref_key,
    subject_of,
)
from screening.fhir.map import MEDICATION_TYPES, PATIENT_REFERENCE, TREATMENT_TYPES, extract, patient_base
from screening.fhir.terms import Malformed, terms_for
from screening.ruleset.model import RuleSet

READ_TYPES = ("Patient", "Medication", *PATIENT_REFERENCE)
BUCKET_BYTES = 512 * 1024 * 1024
MAX_BUCKETS = 256

# A patient's slot: [order, base record or None, notes, partials, first problem or None]
Slot = list[Any]


def read_bulk(
    directory: Path, ruleset: RuleSet, bucket_bytes: int = BUCKET_BYTES, *, strict: bool = True
) -> Iterator[FhirRecord]:
    """The records of an export directory; spills to disk past ``bucket_bytes`` of input.

    A line that is not JSON or a resource of the wrong shape raises InputError; with
    ``strict=False`` it is reported instead and the rest of the export is read: as the
    ``error`` of its patient's record (that patient is not screened), or, when the line
    names no readable patient, as a record of its own with only the error.
    """
    if not directory.is_dir():
        raise InputError("a Bulk Data export must be a directory of NDJSON files", str(directory))
    files = export_files(directory)
    if not files.get("Patient"):
        raise InputError("no Patient NDJSON file (Patient.ndjson or Patient.*.ndjson)", str(directory))
    terms = terms_for(ruleset)
    medications: dict[str, Mapping[str, Any]] = {}
    orphans: list[FhirRecord] = []

    def failed(problem: InputError) -> None:
        if strict:
            raise problem
        orphans.append(FhirRecord({}, error=problem))

    for path in files.get("Medication", []):
        for _, entry in _entries(path):
            if isinstance(entry, InputError):
                failed(entry)
                continue
            for key in keys_of(entry):
                medications[key] = entry.resource
    lookup = functools.partial(lookup_medication, medications)
    size = sum(p.stat().st_size for paths in files.values() for p in paths)
    buckets = min(MAX_BUCKETS, max(1, -(-size // max(1, bucket_bytes))))
    with tempfile.TemporaryDirectory(prefix="screening-bulk-") as spill:
        store = _Store(buckets, Path(spill))
        order = 0
        for path in files["Patient"]:
            for position, entry in _entries(path):
                if isinstance(entry, InputError):
                    failed(entry)
                    continue
                record_id = patient_id_of(entry)
                try:
                    base, notes = _guard(
                        path, position, entry, lambda e=entry, r=record_id: patient_base(e.resource, terms, r)
                    )
                except InputError as problem:
                    if strict:
                        raise
                    base, notes = {"id": record_id}, []
                    store.add(record_id, ["E", _problem(problem)])
                store.add(record_id, ["P", order, base, notes])
                order += 1
        for kind, field_name in PATIENT_REFERENCE.items():
            for path in files.get(kind, []):
                for position, entry in _entries(path):
                    if isinstance(entry, InputError):
                        failed(entry)
                        continue
                    try:
                        ref = _guard(
                            path, position, entry, lambda e=entry, f=field_name: subject_of(e.resource, f)
                        )
                    except InputError as problem:
                        failed(problem)
                        continue
                    key = ref_key(ref) if ref else ""
                    if not key.startswith("Patient/"):
                        continue
                    try:
                        found = _guard(
                            path, position, entry, lambda e=entry: extract(e.resource, terms, e.label, lookup)
                        )
                    except InputError as problem:
                        if strict:
                            raise
                        store.add(key.removeprefix("Patient/"), ["E", _problem(problem)])
                        continue
                    if found:
                        store.add(key.removeprefix("Patient/"), ["X", found])
        yield from orphans
        conditions_known = bool(files.get("Condition"))
        treatments_known = any(files.get(kind) for kind in TREATMENT_TYPES)
        medications_known = any(files.get(kind) for kind in MEDICATION_TYPES)
        allergies_known = bool(files.get("AllergyIntolerance"))
        for slots in store.buckets():
            for _, base, notes, partials, first in sorted(
                (slot for slot in slots.values() if slot[1] is not None), key=lambda slot: slot[0]
            ):
                record, more = assemble(
                    base,
                    partials,
                    terms,
                    conditions_known=conditions_known,
                    treatments_known=treatments_known,
                    medications_known=medications_known,
                    allergies_known=allergies_known,
                )
                error = InputError(first[0], first[1], first[2]) if first else None
                yield FhirRecord(record, notes + more, error)
        store.close()


def export_files(directory: Path) -> dict[str, list[Path]]:
    """The NDJSON files of the resource types the screener reads, by type, sorted."""
    out: dict[str, list[Path]] = {}
    for path in sorted(directory.glob("*.ndjson")):
        kind = path.name.split(".", 1)[0]
        if kind in READ_TYPES:
            out.setdefault(kind, []).append(path)
    return out


def _entries(path: Path) -> Iterator[tuple[str, Entry | InputError]]:
    """Each resource of an NDJSON file with its line number (or why the line is not one);
    blank lines are skipped."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                resource = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                yield (
                    str(number),
                    InputError(f"not valid JSON: {error.msg}", str(path), f"{number}:{error.colno}"),
                )
                continue
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                yield (
                    str(number),
                    InputError("not a FHIR resource (an object with a resourceType)", str(path), str(number)),
                )
                continue
            yield str(number), Entry(resource, f"line {number}")


def _problem(error: InputError) -> list[Any]:
    """An InputError as JSON, to spill with the partials: message, source, position."""
    where = ":".join(p for p in (error.source, error.position) if p)
    return [str(error).removeprefix(f"{where}: "), error.source, error.position]


def _guard(path: Path, position: str, entry: Entry, read: Any) -> Any:
    try:
        return read()
    except Malformed as error:
        raise InputError(f"{entry.label}: {error.path}: {error}", str(path), position) from None


class _Store:
    """Partials by patient: in memory for one bucket, else in bucket files on disk."""

    def __init__(self, buckets: int, directory: Path) -> None:
        self.count = buckets
        self.memory: dict[str, Slot] = {}
        self.files: list[IO[bytes]] = (
            [(directory / f"{i}.jsonl").open("wb") for i in range(buckets)] if buckets > 1 else []
        )

    def add(self, patient: str, item: list[Any]) -> None:
        if not self.files:
            _merge(self.memory, patient, item)
            return
        bucket = zlib.crc32(patient.encode()) % self.count
        self.files[bucket].write(orjson.dumps([patient, item]) + b"\n")

    def buckets(self) -> Iterator[dict[str, Slot]]:
        if not self.files:
            yield self.memory
            return
        for handle in self.files:
            handle.close()
            slots: dict[str, Slot] = {}
            with open(handle.name, "rb") as lines:
                for line in lines:
                    patient, item = orjson.loads(line)
                    _merge(slots, patient, item)
            Path(handle.name).unlink()
            yield slots

    def close(self) -> None:
        for handle in self.files:
            handle.close()


def _merge(slots: dict[str, Slot], patient: str, item: list[Any]) -> None:
    slot = slots.setdefault(patient, [0, None, [], [], None])
    if item[0] == "P":
        slot[0], slot[1], slot[2] = item[1], item[2], item[3]
    elif item[0] == "E":
        slot[4] = slot[4] or item[1]  # the first problem names the resource and the field
    else:
        slot[3].extend(item[1])


def bulk_records(directory: Path, ruleset: RuleSet) -> Iterator[dict[str, Any]]:
    """One native record dict per Patient of a Bulk Data export directory, streamed."""
    for found in read_bulk(Path(directory), ruleset):
        yield native(found.record)
