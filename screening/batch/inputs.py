"""Batch inputs: every supported format read as one stream of items, in input order.

An item is ``(source, payload, size)``: where the record came from (``file:line`` or a
path), what a worker needs to screen it, and the input bytes it stands for (for the
progress bar). Payloads stay raw so that they are cheap to ship to worker processes:

* ``bytes``: one native record as JSON (a JSONL line, or a record read from FHIR);
* :class:`CsvRow`: one CSV row with its header, turned into a record by the worker;
* :class:`ReadError`: an input that could not be read as a record at all. It still takes
  a position and gets an error line, so nothing is dropped.

Formats (``--input-format``, or detected by :func:`detect_format`):

``jsonl``  one native record per line; blank lines are skipped. ``-`` reads stdin.
``json``   a JSON file of one native record (or an array of them), or a directory of such
           files (``*.json``): the files ``screening check`` reads.
``csv``    one patient per row, the flat layout of :data:`CSV_COLUMNS` (see the README).
``fhir``   a directory of FHIR R4 Bundle files (``*.json``), or one Bundle file.
``bulk``   a FHIR Bulk Data export: a directory of NDJSON files, one per resource type.
"""

from __future__ import annotations

import csv
import itertools
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from screening.batch.csv_layout import CSV_COLUMNS, CsvRow
from screening.errors import InputError, ScreeningError
from screening.intake import InputKind, classify

if TYPE_CHECKING:
    from screening.ruleset.model import RuleSet

FORMATS = ("jsonl", "json", "csv", "fhir", "bulk")


class FhirRecord(bytes):
    """A native record read from FHIR, as JSON: screened with FHIR's date handling."""


class ReadError(NamedTuple):
    """An input that could not be read as a record; it becomes an error line."""

    code: str
    message: str
    record_id: str | None = None
    """The patient whose FHIR resource was malformed, when it is known."""

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


Payload = bytes | CsvRow | ReadError
Item = tuple[str, Payload, int]


def detect_format(path: Path | str) -> str:
    """Guess an input's format from what it is: a directory's files, a suffix, a first line."""
    if str(path) == "-":
        return "jsonl"
    path = Path(path)
    if path.is_dir():
        if any(path.glob("*.ndjson")):
            return "bulk"
        nested = [p.parent for p in path.glob("*/*.ndjson")]
        if nested and not any(path.glob("*/*.json")):
            raise InputError(
                f"looks like a Bulk Data export is in {nested[0]}; pass that directory", str(path)
            )
        if any(path.rglob("*.json")):
            return _json_directory_format(path)
        raise InputError(
            "a directory must hold JSON files (native records or FHIR Bundles, *.json) "
            "or a Bulk Data export (*.ndjson)",
            str(path),
        )
    if not path.is_file():
        raise InputError("no such file or directory", str(path))
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    with path.open("rb") as file:
        head = file.read(1 << 16)
    first = head.lstrip().split(b"\n", 1)[0].strip()
    if first and not first.startswith((b"{", b"[")) and first.split(b",", 1)[0].strip(b'"') == b"id":
        return "csv"
    if first.startswith(b"{"):
        try:
            data = orjson.loads(first)
        except orjson.JSONDecodeError:
            # One JSON document over many lines (a pretty-printed record or Bundle), or JSONL
            # whose first line is broken: that one gets its error line.
            return _json_file_format(path) or "jsonl"
        # A JSONL line, or a whole one-line FHIR Bundle.
        return "fhir" if isinstance(data, dict) and data.get("resourceType") == "Bundle" else "jsonl"
    if first.startswith(b"["):
        return _json_file_format(path) or "jsonl"
    return "jsonl"


def _json_file_format(path: Path) -> str | None:
    """A file that is one JSON document: "fhir" for a FHIR resource, "json" for native records."""
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    return "fhir" if classify(data) is InputKind.FHIR else "json"


# How many *.json files of a directory are read to tell native records from FHIR Bundles.
_PEEK_FILES = 10


def _json_directory_format(path: Path) -> str:
    """A directory of *.json files: FHIR Bundles if one of its first files is a FHIR
    resource (others, such as a MANIFEST.json, are passed over), else native records."""
    native = False
    for file in itertools.islice(sorted(path.rglob("*.json")), _PEEK_FILES):
        try:
            data = orjson.loads(file.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if classify(data) is InputKind.FHIR:
            return "fhir"
        native = native or isinstance(data, dict | list)
    return "json" if native else "fhir"


def read_inputs(
    paths: Iterable[Path | str],
    input_format: str | None,
    ruleset: RuleSet | None = None,
    notes: list[str] | None = None,
) -> Iterator[Item]:
    """Every item of every input, in order. ``ruleset`` is needed for FHIR inputs.

    ``notes`` collects what was passed over on purpose: JSON files in a Bundle directory
    that are not FHIR resources (a ``MANIFEST.json``)."""
    for path in paths:
        kind = input_format or detect_format(path)
        if kind == "jsonl":
            yield from read_jsonl(path)
        elif kind == "json":
            yield from read_json(Path(path))
        elif kind == "csv":
            yield from read_csv(Path(path))
        elif kind in ("fhir", "bulk"):
            if ruleset is None:
                raise InputError("reading FHIR needs the rule set", str(path))
            if kind == "fhir":
                yield from read_bundles(Path(path), ruleset, notes)
            else:
                yield from read_bulk(Path(path), ruleset)
        else:
            raise InputError(f"unknown input format {kind!r} (expected one of {', '.join(FORMATS)})")


def input_size(paths: Iterable[Path | str]) -> int | None:
    """Total bytes of the inputs, for the progress bar; None when unknown (stdin)."""
    total = 0
    for path in paths:
        if str(path) == "-":
            return None
        path = Path(path)
        if path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            total += path.stat().st_size
    return total


def read_jsonl(path: Path | str) -> Iterator[Item]:
    """One item per non-blank line; the payload is the line's bytes, unparsed."""
    name = "<stdin>" if str(path) == "-" else str(path)
    file = sys.stdin.buffer if name == "<stdin>" else Path(path).open("rb")  # noqa: SIM115
    try:
        for number, line in enumerate(file, 1):
            if line.strip():
                yield f"{name}:{number}", line, len(line)
    finally:
        if file is not sys.stdin.buffer:
            file.close()


def read_json(path: Path) -> Iterator[Item]:
    """One item per native record of a JSON file (a record, or an array of records), or of
    each ``*.json`` file of a directory, sorted by path. A file that is not one gets an
    error line: invalid JSON, something else than a record, or a FHIR resource."""
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    for file in files:
        source = str(file)
        body = file.read_bytes()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            yield source, ReadError(InputError.code, f"{source}: not valid JSON: {error}"), len(body)
            continue
        if classify(data) is InputKind.FHIR:
            message = (
                f"{source}: a FHIR resource, not a native record; put FHIR Bundles in a directory "
                "of their own, or pass --input-format fhir"
            )
            yield source, ReadError(InputError.code, message), len(body)
        elif isinstance(data, list):
            for index, record in enumerate(data):
                # Each element on its own: a non-object gets its error line from the worker.
                yield f"{source}[{index}]", orjson.dumps(record), len(body) if index == 0 else 0
        else:
            # The file's own bytes: the worker's errors then give positions in this file.
            yield source, body, len(body)


def read_csv(path: Path) -> Iterator[Item]:
    """One item per CSV row. The header is checked first: unknown columns stop the batch.

    A row with the wrong number of cells is passed on as it is: the worker gives it an
    ``invalid_csv_row`` error line that still names the record id when its cell is readable."""
    with path.open("r", encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        header = _checked_csv_header(next(reader, []), path)
        start = reader.line_num + 1
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                start = reader.line_num + 1
                continue
            yield f"{path}:{start}", CsvRow(header, tuple(row)), sum(len(cell) + 1 for cell in row)
            start = reader.line_num + 1


def csv_header(path: Path) -> tuple[str, ...]:
    """A CSV input's header, checked (raises InputError), without reading its rows."""
    with path.open("r", encoding="utf-8-sig", newline="") as file:
        return _checked_csv_header(next(csv.reader(file), []), path)


def _checked_csv_header(row: list[str], path: Path) -> tuple[str, ...]:
    header = tuple(h.strip() for h in row)
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if "id" not in header or unknown:
        problem = f"unknown columns {unknown}" if unknown else "no 'id' column"
        raise InputError(f"{problem}; the columns are: {', '.join(CSV_COLUMNS)}", str(path))
    return header


def read_bundles(path: Path, ruleset: RuleSet, notes: list[str] | None = None) -> Iterator[Item]:
    """One item per Patient of each FHIR Bundle file (``*.json``, sorted by path).

    In a directory, JSON files that are not FHIR resources are passed over (and noted).
    A malformed resource fails only its patient (an error line naming the resource and the
    field); one whose patient cannot be told gets an error line of its own."""
    from screening.fhir.bundle import read_bundle

    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    for file in files:
        source = str(file)
        size = file.stat().st_size
        try:
            bundle = orjson.loads(file.read_bytes())
            if path.is_dir() and classify(bundle) is not InputKind.FHIR:
                if notes is not None:
                    notes.append(f"{source}: not a FHIR resource, passed over")
                continue
            records = read_bundle(bundle, ruleset, source=source, strict=False)
        except orjson.JSONDecodeError as error:
            yield source, ReadError(InputError.code, f"{source}: not valid JSON: {error}"), size
            continue
        except ScreeningError as error:
            yield source, ReadError(error.code, str(error)), size
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            yield source, ReadError(InputError.code, f"{source}: not a readable FHIR Bundle: {error}"), size
            continue
        if not any(found.record for found in records):
            yield source, ReadError("no_patient", f"{source}: the Bundle holds no Patient"), size
        for index, found in enumerate(records):
            yield source, _fhir_item(found), size if index == 0 else 0


def read_bulk(path: Path, ruleset: RuleSet) -> Iterator[Item]:
    """One item per Patient of a Bulk Data export, joined by ``screening.fhir.bundle``.

    A malformed line fails only the patient it names (an error line naming the resource and
    the field); a line with no readable patient gets an error line of its own."""
    from screening.fhir.bulk import read_bulk as read_export

    records = read_export(Path(path), ruleset, strict=False)
    while True:
        try:
            found = next(records)
        except StopIteration:
            return
        except ScreeningError as error:
            # A generator that raised cannot go on: report it once, as one item.
            yield str(path), ReadError(error.code, str(error)), 0
            return
        patient = found.record.get("id")
        yield (f"{path}#Patient/{patient}" if patient else str(path)), _fhir_item(found), 0


def _fhir_item(found: Any) -> Payload:
    """A record read from FHIR as a payload: its JSON (with its notes), or its error."""
    from screening.fhir.assemble import NOTES

    if found.error is not None:
        patient = found.record.get("id")
        who = f"Patient/{patient}: " if patient else ""
        return ReadError(
            found.error.code, f"{who}{found.error}", patient if isinstance(patient, str) else None
        )
    record = {**found.record, NOTES: found.notes} if found.notes else found.record
    return FhirRecord(orjson.dumps(record))
