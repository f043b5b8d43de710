"""The batch CSV layout: one patient per row, and its conversion to and from native records.

The columns are :data:`CSV_COLUMNS` (documented in the README and ``screening batch
--help``). A blank cell is "not recorded". List cells hold items separated by ``;``, each
with ``|``-separated parts: treatments ``name|outcome|class``, diagnoses
``code|status|onset|last_active``, medications ``name|daily_dose_mg|code``, allergies
``substance|code``. For the three histories a blank cell is *unknown* (not asked) and
``none`` is an explicit none, as ``null`` and ``[]`` in the native record.

:func:`csv_record` turns a row into a native record dict (the worker does this, so the
parent only splits rows); :func:`csv_row_of` flattens a record into a row (lossy: the
latest reading of each kind), for ``screening generate --format csv``.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from screening.errors import FieldProblem, RecordError


class CsvRow(NamedTuple):
    """One CSV row and the header it is read with."""

    header: tuple[str, ...]
    values: tuple[str, ...]


# The CSV layout: column -> what it holds. Blank cells are "not recorded". For the three
# history columns a blank cell is *unknown* (the question was not asked) and `none` is an
# explicit "none", exactly as null and [] in the native record.
CSV_COLUMNS: dict[str, str] = {
    "id": "record id (required)",
    "birth_date": "YYYY-MM-DD",
    "age": "years, when there is no birth date",
    "sex": "female, male or other",
    "deceased": "true or false (blank: false)",
    "weight_kg": "body weight in kg",
    "breastfeeding": "true or false (blank: not recorded)",
    "pregnancy_status": "pregnant or not_pregnant",
    "pregnancy_date": "date of the pregnancy status",
    "pain_code": "the primary pain condition: ICD-10-CM, or SNOMED CT when all digits",
    "pain_display": "its name",
    "pain_onset": "its onset date",
    "pain_duration_months": "its duration in months, when there is no onset date",
    "pain_score": "latest 0-10 pain score",
    "pain_score_date": "its date",
    "systolic": "latest blood pressure, mmHg",
    "diastolic": "mmHg",
    "bp_date": "its date",
    "treatments": "name|outcome|class items separated by ';' (blank: not taken, none: no trials)",
    "psychiatric_history": "code|status|onset|last_active items separated by ';' (blank: not asked, none: none)",
    "substance_use_history": "code|status|onset|last_active items (blank: not asked, none: none)",
    "conditions": "other diagnoses, code|status|onset|last_active items (blank: none recorded)",
    "medications": "current medications, name|daily_dose_mg|code items",
    "allergies": "substance|code items",
    "alt": "ALT result, U/L",
    "alt_upper_limit": "the lab's upper limit of normal for ALT",
    "ast": "AST result, U/L",
    "ast_upper_limit": "the lab's upper limit of normal for AST",
    "liver_tests_date": "date of the ALT/AST results",
    "phq9_item9": "PHQ-9 item 9 (0-3)",
    "phq9_total": "PHQ-9 total (0-27)",
    "phq9_date": "its date",
}

_LISTS_WITH_UNKNOWN = ("treatments", "psychiatric_history", "substance_use_history")
_SCALARS = ("birth_date", "age", "sex", "deceased", "weight_kg", "breastfeeding")
# The record keys that hold numbers and flags: the model takes no text for them (strict at
# the door), so a CSV cell, which is only text, is converted here first.
_NUMBERS = frozenset(
    {"age", "weight_kg", "duration_months", "score", "systolic", "diastolic", "item9", "total"}
    | {"value", "upper_limit", "daily_dose_mg"}
)
_FLAGS = frozenset({"deceased", "breastfeeding"})
_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")


def _typed(key: str, text: str) -> Any:
    """A cell as the record model takes it: numbers as numbers, ``true``/``false`` as flags.

    A cell that is neither stays text, so the model refuses it with the message JSON input
    gets ("must be a number, not the text "high""), and the column map names the column.
    """
    if key in _FLAGS:
        return {"true": True, "false": False}.get(text.lower(), text)
    if key in _NUMBERS and _DECIMAL.match(text):
        number = float(text)
        return int(number) if number.is_integer() else number  # 50.0 years is a whole number
    return text


def csv_record(row: CsvRow) -> tuple[dict[str, Any], dict[str, str]]:
    """A native record dict from a CSV row, and which column each record path came from.

    Number and true/false cells are converted (:func:`_typed`); everything else, and a cell
    that does not convert, stays text for the record model to validate, so a bad cell gets
    the same error as in JSON, and the column map names the cell.
    """
    cells = {name: value.strip() for name, value in zip(row.header, row.values, strict=True)}
    record: dict[str, Any] = {"id": cells.get("id", "")}
    columns: dict[str, str] = {"id": "id"}
    record_id = record["id"] or None
    for name in _SCALARS:
        if cells.get(name):
            record[name] = _typed(name, cells[name])
            columns[name] = name

    def group(field: str, parts: dict[str, str], required: tuple[str, ...], extra: dict[str, Any]) -> None:
        given = {key: _typed(key, cells[column]) for key, column in parts.items() if cells.get(column)}
        if not given:
            return
        for key in required:
            given.setdefault(key, "")  # let the model say what is missing, per column
        record[field] = [{**given, **extra}]
        columns[f"{field}[0]"] = ", ".join(parts.values())
        for key, column in parts.items():
            columns[f"{field}[0].{key}"] = column

    group(
        "pregnancy_status", {"status": "pregnancy_status", "date": "pregnancy_date"}, ("status", "date"), {}
    )
    group(
        "pain_conditions",
        {
            "code": "pain_code",
            "display": "pain_display",
            "onset": "pain_onset",
            "duration_months": "pain_duration_months",
        },
        ("code",),
        {"primary": True},
    )
    if record.get("pain_conditions"):
        pain = record["pain_conditions"][0]
        if pain["code"].isdigit():
            pain["system"] = "snomed"
    group("pain_scores", {"score": "pain_score", "date": "pain_score_date"}, ("score", "date"), {})
    group(
        "blood_pressure",
        {"systolic": "systolic", "diastolic": "diastolic", "date": "bp_date"},
        ("systolic", "diastolic", "date"),
        {},
    )
    group("phq9", {"item9": "phq9_item9", "total": "phq9_total", "date": "phq9_date"}, ("date",), {})

    labs: list[dict[str, Any]] = []
    for test in ("ALT", "AST"):  # matched to the rule set's value sets by test name
        column = test.lower()
        if cells.get(column):
            lab = {"test": test, "value": _typed("value", cells[column]), "unit": "U/L"}
            lab["date"] = cells.get("liver_tests_date", "")
            if cells.get(f"{column}_upper_limit"):
                lab["upper_limit"] = _typed("upper_limit", cells[f"{column}_upper_limit"])
            columns[f"labs[{len(labs)}]"] = f"{column}, liver_tests_date"
            columns[f"labs[{len(labs)}].value"] = column
            columns[f"labs[{len(labs)}].date"] = "liver_tests_date"
            columns[f"labs[{len(labs)}].upper_limit"] = f"{column}_upper_limit"
            labs.append(lab)
    if labs:
        record["labs"] = labs

    problems: list[FieldProblem] = []
    for field in ("treatments", "psychiatric_history", "substance_use_history", "conditions"):
        text = cells.get(field, "")
        columns[field] = field
        if not text:
            if field not in _LISTS_WITH_UNKNOWN:
                record[field] = []
            continue  # left out: unknown
        if text.lower() == "none":
            record[field] = []
            continue
        parse = _treatment if field == "treatments" else _diagnosis
        items = []
        for part in _items(text):
            item = parse(part, field, problems)
            if item is not None:
                items.append(item)
        record[field] = items
    for field, parse in (("medications", _medication), ("allergies", _allergy)):
        text = cells.get(field, "")
        columns[field] = field
        if text and text.lower() != "none":
            record[field] = [i for i in (parse(p, field, problems) for p in _items(text)) if i is not None]
    if problems:
        raise RecordError(record_id, problems)
    return record, columns


def column_of(field: str, columns: dict[str, str]) -> str | None:
    """The CSV column a record path (``blood_pressure[0].systolic``) was read from."""
    while field:
        if field in columns:
            return columns[field]
        cut = max(field.rfind("."), field.rfind("["))
        if cut <= 0:
            return None
        field = field[:cut]
    return None


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


def _split(part: str, field: str, names: tuple[str, ...], problems: list[FieldProblem]) -> list[str] | None:
    pieces = [p.strip() for p in part.split("|")]
    if len(pieces) > len(names):
        problems.append(
            FieldProblem(field, "csv_format", f"{part!r} has {len(pieces)} parts; expected {'|'.join(names)}")
        )
        return None
    return pieces + [""] * (len(names) - len(pieces))


def _diagnosis(part: str, field: str, problems: list[FieldProblem]) -> dict[str, Any] | None:
    pieces = _split(part, field, ("code", "status", "onset", "last_active"), problems)
    if pieces is None:
        return None
    code, status, onset, last_active = pieces
    item: dict[str, Any] = {"code": code, "system": "snomed" if code.isdigit() else "icd-10-cm"}
    for key, value in (("status", status), ("onset", onset), ("last_active", last_active)):
        if value:
            item[key] = value
    return item


def _treatment(part: str, field: str, problems: list[FieldProblem]) -> dict[str, Any] | None:
    from screening.record import TreatmentClass

    pieces = _split(part, field, ("name", "outcome", "class"), problems)
    if pieces is None:
        return None
    name, outcome, klass = pieces
    item: dict[str, Any] = {"name": name}
    if outcome:
        item["outcome"] = outcome
    if not klass and name in TreatmentClass.__members__:
        klass = name
    if klass:
        item["treatment_class"] = klass
    return item


def _medication(part: str, field: str, problems: list[FieldProblem]) -> dict[str, Any] | None:
    pieces = _split(part, field, ("name", "daily_dose_mg", "code"), problems)
    if pieces is None:
        return None
    name, dose, code = pieces
    item: dict[str, Any] = {"name": name}
    if dose:
        item["daily_dose_mg"] = _typed("daily_dose_mg", dose)
    if code:
        item["code"] = code
    return item


def _allergy(part: str, field: str, problems: list[FieldProblem]) -> dict[str, Any] | None:
    pieces = _split(part, field, ("substance", "code"), problems)
    if pieces is None:
        return None
    substance, code = pieces
    return {"substance": substance, "code": code} if code else {"substance": substance}


def csv_row_of(record: dict[str, Any]) -> list[str]:
    """A native record flattened to the CSV layout (lossy: the latest reading of each kind,
    the primary pain condition, current medications; no heart rate, no sources)."""
    cells = dict.fromkeys(CSV_COLUMNS, "")
    for name in ("id", "birth_date", "age", "sex", "weight_kg"):
        if record.get(name) is not None:
            cells[name] = _cell(record[name])
    if record.get("deceased"):
        cells["deceased"] = "true"
    if record.get("breastfeeding") is not None:
        cells["breastfeeding"] = _cell(record["breastfeeding"])

    def latest(field: str, *keys: str) -> dict[str, Any] | None:
        items = record.get(field) or []
        return max(items, key=lambda i: tuple(i.get(k) or 0 for k in keys)) if items else None

    if pregnancy := latest("pregnancy_status", "date"):
        cells["pregnancy_status"], cells["pregnancy_date"] = pregnancy["status"], pregnancy["date"]
    pains = record.get("pain_conditions") or []
    pain = next((p for p in pains if p.get("primary")), pains[0] if pains else None)
    if pain:
        for key in ("code", "display", "onset", "duration_months"):
            cells[f"pain_{key}"] = _cell(pain.get(key))
    if score := latest("pain_scores", "date", "score"):
        cells["pain_score"], cells["pain_score_date"] = _cell(score["score"]), score["date"]
    if bp := latest("blood_pressure", "date", "systolic"):
        cells["systolic"], cells["diastolic"], cells["bp_date"] = (
            _cell(bp["systolic"]),
            _cell(bp["diastolic"]),
            bp["date"],
        )
    if phq9 := latest("phq9", "date"):
        cells["phq9_item9"], cells["phq9_total"], cells["phq9_date"] = (
            _cell(phq9.get("item9")),
            _cell(phq9.get("total")),
            phq9["date"],
        )
    for test in ("ALT", "AST"):
        labs = [lab for lab in record.get("labs") or [] if lab["test"].upper() == test]
        if labs:
            lab = max(labs, key=lambda item: item["date"])
            cells[test.lower()] = _cell(lab["value"])
            cells[f"{test.lower()}_upper_limit"] = _cell(lab.get("upper_limit"))
            cells["liver_tests_date"] = max(cells["liver_tests_date"], lab["date"])
    treatments = record.get("treatments")
    if treatments is not None:
        cells["treatments"] = _joined(
            [(t["name"], t.get("outcome"), t.get("treatment_class")) for t in treatments]
        )
    for field in ("psychiatric_history", "substance_use_history", "conditions"):
        items = record.get(field)
        if items is not None and (items or field != "conditions"):
            cells[field] = _joined(
                [(d["code"], d.get("status"), d.get("onset"), d.get("last_active")) for d in items]
            )
    current = [m for m in record.get("medications") or [] if m.get("status", "current") == "current"]
    if current:
        cells["medications"] = _joined([(m["name"], m.get("daily_dose_mg"), m.get("code")) for m in current])
    if record.get("allergies"):
        cells["allergies"] = _joined([(a["substance"], a.get("code")) for a in record["allergies"]])
    return list(cells.values())


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _joined(items: list[tuple[object, ...]]) -> str:
    """Items as ``a|b|c;a|b`` with trailing empty parts left out; ``none`` for no items."""
    if not items:
        return "none"
    parts = []
    for item in items:
        texts = [_cell(v) for v in item]
        if any(";" in t or "|" in t for t in texts):
            raise ValueError(f"{texts} holds ';' or '|', which the CSV layout cannot carry")
        while texts and not texts[-1]:
            texts.pop()
        parts.append("|".join(texts))
    return ";".join(parts)
