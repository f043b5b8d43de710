"""The native intake record: what an intake system sends about one patient.

The model tells *unknown* apart from *none*. A list that is ``null`` or left out is
unknown where the clinical spec needs an explicit answer (psychiatric history, substance
use history, treatment history); an empty list ``[]`` is an explicit "none". The problem
list, medications and allergies left out are none (the spec: with no medication list entry
there is no current drug), but an explicit ``null`` says the source could not supply them
("not available", e.g. an EHR feed that failed), and the criteria that read them are then
unknown rather than silently "not met". Lists of observations (blood pressure, pain
scores, labs) default to empty: a missing reading makes the criteria that need it
*unknown* through their recency windows, not through the list.

:func:`parse_record` is the one way in: it validates against the screening date and turns
every pydantic complaint into a :class:`~screening.errors.RecordError` that names the record
and the field, in plain words.

Types are strict at the door, the same for JSON and for Python callers: a number is a
number (``true`` and ``"180"`` are not), a flag is ``true`` or ``false``, a date is a
``YYYY-MM-DD`` string (or a :class:`~datetime.date` from Python). The model is not in
pydantic's strict mode, which in Python mode would refuse ``"male"`` for an enum and
``"2026-11-01"`` for a date, as every Python caller passes them: numbers and flags are
``Strict`` one by one, and dates go through :func:`_iso_date`.

The work per record is bounded: a list holds at most :data:`MAX_LIST_ITEMS` items and a
text at most :data:`MAX_TEXT_LENGTH` characters (pydantic refuses a longer list before it
validates any item), an object with more keys than its model has fields is refused as a
whole, and an error lists at most :data:`~screening.errors.MAX_PROBLEMS` problems.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from screening.errors import MAX_PROBLEMS, FieldProblem, InputError, RecordError, clip

MAX_LIST_ITEMS = 10_000
"""The most items any list of a record may hold: far above any real patient (a blood
pressure every day for 27 years). pydantic checks a list's length before its items, so
2,500,000 empty items are refused in milliseconds instead of half a minute of per-item
errors, all holding the GIL."""
MAX_TEXT_LENGTH = 1_000
"""The longest text a field may hold (names, displays, codes, sources)."""
SHOWN_LENGTH = 80
"""A value quoted in an error message is cut to this many characters."""

Whole = Annotated[int, Strict()]
"""A whole JSON number: never a boolean (``true`` is not 1) nor text (``"5"``)."""
Number = Annotated[float, Strict()]
"""A JSON number, whole or not: never a boolean nor text."""
Flag = Annotated[bool, Strict()]
"""``true`` or ``false``: never 1, 0 or the text ``"true"``."""
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)]

CodeSystem = Literal["icd-10-cm", "snomed"]
SourcedField = Literal["birth_date", "age", "sex", "weight_kg", "breastfeeding", "deceased"]
"""The plain (not list) fields of a record, whose sources are in ``Record.sources``."""
Source = Annotated[
    Text | None,
    Field(default=None, description="Where the item came from, e.g. a FHIR 'Condition/abc'."),
]


class Status(StrEnum):
    """Clinical status of a diagnosis."""

    active = "active"
    remission = "remission"
    resolved = "resolved"


class TreatmentClass(StrEnum):
    """The conventional treatment classes of INC-REFRACTORY."""

    gabapentinoid_anticonvulsant = "gabapentinoid_anticonvulsant"
    snri_tca = "snri_tca"
    nsaid_nonopioid = "nsaid_nonopioid"
    opioid = "opioid"
    topical = "topical"
    physical_therapy = "physical_therapy"
    interventional = "interventional"
    psychological = "psychological"


class TrialOutcome(StrEnum):
    """How a treatment trial ended. ``unknown`` is never counted as failed."""

    ineffective = "ineffective"
    partial_response = "partial_response"
    not_tolerated = "not_tolerated"
    effective = "effective"
    ongoing = "ongoing"
    unknown = "unknown"


FAILED_OUTCOMES = frozenset(
    {TrialOutcome.ineffective, TrialOutcome.partial_response, TrialOutcome.not_tolerated}
)


def _iso_date(value: object) -> object:
    """A ``YYYY-MM-DD`` string or a date, as a date: not a number (pydantic would read
    20200101 as seconds since 1970), not a date and time (which day, where?)."""
    if type(value) is str and len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:  # with that shape, fromisoformat takes only YYYY-MM-DD in ASCII digits
            return date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError(
                "bad_date", "{shown} is not a real date", {"shown": shown(value)}
            ) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise PydanticCustomError(
        "bad_date", "must be a date as YYYY-MM-DD, not {shown}", {"shown": shown(value)}
    )


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
"""A date as documented: ``YYYY-MM-DD`` in JSON."""


def _not_after_screening(value: date, info: ValidationInfo) -> date:
    as_of = (info.context or {}).get("as_of")
    if as_of is not None and value > as_of:
        raise ValueError(f"date {value.isoformat()} is after the screening date {as_of}")
    return value


Day = Annotated[IsoDate, AfterValidator(_not_after_screening)]
"""A date that may not be after the screening date (given as validation context)."""


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _items(**kwargs: Any) -> Any:
    """A list field, at most MAX_LIST_ITEMS long (also in the JSON schema, as maxItems)."""
    return Field(max_length=MAX_LIST_ITEMS, **kwargs)


ICD10CM_CODE = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")
"""A well-formed ICD-10-CM code: letter, digit, alphanumeric, then up to 4 more after an
optional dot (F31.2, F3112, Z3A.01, T40.7X1A). Upper or lower case; outer spaces ignored."""
SNOMED_CODE = re.compile(r"^[1-9][0-9]{5,17}$")
"""A SNOMED CT concept id: 6 to 18 digits, no leading zero."""


class Diagnosis(_Item):
    """A coded diagnosis with its status and dates.

    The code must be well formed for its system. A code that is not (``XXX``, ``schizo``)
    is rejected with an error naming the field, never ignored: an unreadable psychiatric
    history item left out would read as a clean history. Free text belongs in ``display``.
    """

    # system before code, so that the code's validator knows which system it is in.
    system: CodeSystem = "icd-10-cm"
    code: Text = Field(min_length=1, description="ICD-10-CM (e.g. F31.2) or SNOMED CT code.")
    display: Text | None = None
    status: Status = Status.active
    onset: Day | None = None
    last_active: Day | None = Field(
        default=None,
        description="Last episode or last problematic use; for remission, when it began.",
    )
    source: Source = None

    @field_validator("code")
    @classmethod
    def _well_formed_code(cls, code: str, info: ValidationInfo) -> str:
        system = info.data.get("system")
        if system == "snomed":
            if not SNOMED_CODE.match(code.strip()):
                raise ValueError(f"{code!r} is not a SNOMED CT concept id (6-18 digits)")
        elif system is not None and not ICD10CM_CODE.match(code.strip().upper()):
            raise ValueError(
                f"{code!r} is not a well-formed ICD-10-CM code (e.g. F31.2); "
                "give system 'snomed' for a SNOMED CT code, and free text as the display"
            )
        return code


class PainCondition(Diagnosis):
    """A pain condition. ``primary`` marks the one the referral is for."""

    primary: Flag = False
    duration_months: Number | None = Field(
        default=None, ge=0, le=1200, description="Pain duration at screening, if no onset date."
    )


class PainScore(_Item):
    """A 0-10 numeric rating scale score."""

    score: Number = Field(ge=0, le=10)
    date: Day
    source: Source = None


class TreatmentTrial(_Item):
    """A past or current trial of a drug or a modality, and how it ended."""

    name: Text = Field(min_length=1)
    code: Text | None = Field(default=None, description="RxNorm or SNOMED CT code.")
    treatment_class: TreatmentClass | None = Field(
        default=None, description="Left out, it is looked up from the code or name."
    )
    start: Day | None = None
    end: Day | None = None
    outcome: TrialOutcome = TrialOutcome.unknown
    inferred: Flag = Field(default=False, description="The outcome was inferred, not recorded.")
    source: Source = None

    @model_validator(mode="after")
    def _ordered(self) -> TreatmentTrial:
        if self.start and self.end and self.end < self.start:
            raise ValueError("end is before start")
        return self


class BloodPressure(_Item):
    """A blood pressure reading in mmHg."""

    systolic: Number = Field(ge=40, le=300)
    diastolic: Number = Field(ge=20, le=200)
    date: Day
    source: Source = None

    @model_validator(mode="after")
    def _diastolic_below_systolic(self) -> BloodPressure:
        if self.diastolic >= self.systolic:
            raise ValueError(f"diastolic {self.diastolic:g} is not below systolic {self.systolic:g}")
        return self


class HeartRate(_Item):
    """A heart rate in beats per minute."""

    bpm: Number = Field(ge=20, le=300)
    date: Day
    source: Source = None


class LabResult(_Item):
    """A laboratory result, with the upper limit of normal when the lab reports one."""

    test: Text = Field(min_length=1, description="Test name, e.g. ALT or AST.")
    code: Text | None = Field(default=None, description="LOINC code, e.g. 1742-6 for ALT.")
    value: Number = Field(ge=0)
    unit: Text | None = None
    upper_limit: Number | None = Field(default=None, gt=0)
    date: Day
    source: Source = None


class Phq9(_Item):
    """A PHQ-9 questionnaire: item 9 (thoughts of self-harm, 0-3) and/or the total."""

    item9: Whole | None = Field(default=None, ge=0, le=3)
    total: Whole | None = Field(default=None, ge=0, le=27)
    date: Day
    source: Source = None


class Medication(_Item):
    """A medication, current or past."""

    name: Text = Field(min_length=1)
    code: Text | None = Field(default=None, description="RxNorm code.")
    status: Literal["current", "past"] = "current"
    daily_dose_mg: Number | None = Field(default=None, ge=0, le=100000)
    source: Source = None


class Allergy(_Item):
    """A documented allergy or hypersensitivity."""

    substance: Text = Field(min_length=1)
    code: Text | None = Field(default=None, description="RxNorm or SNOMED CT code.")
    source: Source = None


class PregnancyStatus(_Item):
    """A dated pregnancy status."""

    status: Literal["pregnant", "not_pregnant"]
    date: Day
    source: Source = None


class Record(_Item):
    """One patient's intake record."""

    id: str = Field(min_length=1, max_length=200)
    birth_date: IsoDate | None = None
    age: Whole | None = Field(default=None, ge=0, le=130, description="Years, if no birth date.")
    sex: Literal["female", "male", "other"] | None = None
    deceased: Flag = False
    weight_kg: Number | None = Field(default=None, gt=1, le=400)
    pregnancy_status: list[PregnancyStatus] = _items(default=[])
    breastfeeding: Flag | None = None
    pain_conditions: list[PainCondition] = _items(default=[])
    pain_scores: list[PainScore] = _items(default=[])
    treatments: list[TreatmentTrial] | None = _items(
        default=None, description="null: treatment history not taken; []: no prior treatment."
    )
    psychiatric_history: list[Diagnosis] | None = _items(
        default=None, description="null: not asked (unknown); []: explicitly none."
    )
    substance_use_history: list[Diagnosis] | None = _items(
        default=None, description="null: not asked (unknown); []: explicitly none."
    )
    conditions: list[Diagnosis] | None = _items(
        default_factory=list,
        json_schema_extra={"default": []},
        description=(
            "Other diagnoses: cardiovascular, hepatic, neurological, ... "
            "Left out or []: none; null: the problem list is not available (unknown)."
        ),
    )
    blood_pressure: list[BloodPressure] = _items(default=[])
    heart_rate: list[HeartRate] = _items(default=[])
    labs: list[LabResult] = _items(default=[])
    phq9: list[Phq9] = _items(default=[])
    medications: list[Medication] | None = _items(
        default_factory=list,
        json_schema_extra={"default": []},
        description="Left out or []: no medication; null: the medication list is not available (unknown).",
    )
    allergies: list[Allergy] | None = _items(
        default_factory=list,
        json_schema_extra={"default": []},
        description="Left out or []: no allergy; null: the allergy list is not available (unknown).",
    )
    sources: dict[SourcedField, Text] = Field(
        default_factory=dict,
        max_length=len(get_args(SourcedField)),
        json_schema_extra={"default": {}},
        description=(
            'Where the plain fields came from, e.g. {"birth_date": "Patient/abc", '
            '"weight_kg": "Observation/w1"}; the decision\'s evidence names them.'
        ),
    )

    @field_validator("birth_date")
    @classmethod
    def _birth_date_plausible(cls, value: date | None, info: ValidationInfo) -> date | None:
        as_of = (info.context or {}).get("as_of")
        if value is not None and as_of is not None:
            if value > as_of:
                raise ValueError(f"birth date {value} is after the screening date {as_of}")
            if years_between(value, as_of) > 130:
                raise ValueError(f"birth date {value} gives an age over 130 years")
        return value


def years_between(start: date, end: date) -> int:
    """Whole years from ``start`` to ``end`` (an age)."""
    return end.year - start.year - ((end.month, end.day) < (start.month, start.day))


def parse_record(data: Any, as_of: date) -> Record:
    """Validate one record (a dict, or its JSON text) against the screening date.

    Raises RecordError for an invalid record, InputError for text that is not a JSON object.
    JSON is read with orjson and validated in Python mode, like every other caller's dict:
    one set of rules whichever way a record comes in.
    """
    if isinstance(data, (str, bytes)):
        data = load_json(data)
        if not isinstance(data, dict):
            raise not_a_record(data)
    context = {"as_of": as_of}
    if isinstance(data, dict) and (crowded := _crowded(data)):
        raise RecordError(_record_id_of(data), crowded)
    try:
        return Record.model_validate(data, context=context)
    except ValidationError as error:
        raise _record_error(_record_id_of(data), error, data, context) from None


def _crowded(data: dict[str, Any]) -> list[FieldProblem]:
    """The record, or items of its lists, with more keys than their model has fields.

    Some of those keys are unknown, and pydantic would build an error for each: a million
    unknown keys would cost seconds. Checked here, before pydantic, in one pass over the
    lists; a list over MAX_LIST_ITEMS is left to pydantic, which refuses it whole.
    """
    found = []
    for path, value, fields in _objects(data):
        if len(value) > len(fields):
            unknown = [key for key in value if key not in fields]
            names = ", ".join(_quoted(key) for key in unknown[:3])
            more = f" and {len(unknown) - 3:,} more" if len(unknown) > 3 else ""
            found.append(
                FieldProblem(
                    path,
                    "unknown_fields",
                    f"has {len(unknown):,} unknown field{'s' if len(unknown) != 1 else ''}: {names}{more}",
                )
            )
    return found


def _objects(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], frozenset[str]]]:
    """The record, its sources and the items of its lists, each with its path and the keys
    it may have (pydantic would check a million keys of ``sources`` before their count)."""
    yield "(record)", data, _RECORD_FIELDS
    if isinstance(sources := data.get("sources"), dict) and len(sources) > len(_SOURCED_FIELDS):
        yield "sources", sources, _SOURCED_FIELDS
    for name, fields in _ITEM_FIELDS.items():
        items = data.get(name)
        if isinstance(items, list) and len(items) <= MAX_LIST_ITEMS:
            for index, item in enumerate(items):
                if isinstance(item, dict) and len(item) > len(fields):  # the path only then
                    yield f"{name}[{index}]", item, fields


def _item_model(annotation: Any) -> type[BaseModel] | None:
    for inner in get_args(annotation):
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
        if (found := _item_model(inner)) is not None:
            return found
    return None


_RECORD_FIELDS = frozenset(Record.model_fields)
_SOURCED_FIELDS = frozenset(get_args(SourcedField))
_ITEM_MODELS = {
    name: model
    for name, field in Record.model_fields.items()
    if (model := _item_model(field.annotation)) is not None
}
"""Each list field of a record, in the model's order, and the model of its items."""
_ITEM_FIELDS = {name: frozenset(model.model_fields) for name, model in _ITEM_MODELS.items()}


def _record_error(
    record_id: str | None, error: ValidationError, data: Any, context: dict[str, Any]
) -> RecordError:
    """The RecordError for a failed validation: the first MAX_PROBLEMS problems and a count."""
    total = error.error_count()
    if total > MAX_PROBLEMS and isinstance(data, dict):
        # error.errors() costs a few µs an error, more than the validation that found
        # them (200,000 problems: 3 s): find the first ones again, item by item.
        problems = _first_problems(data, context)
    else:
        problems = [plain_problem(item) for item in error.errors(include_url=False)]
    return RecordError(record_id, problems, more=total - len(problems))


def _first_problems(data: dict[str, Any], context: dict[str, Any]) -> list[FieldProblem]:
    """The first MAX_PROBLEMS problems of an invalid record: its plain fields', then those
    of its list items in the model's order, validating one item at a time until there are
    enough. Each is a problem pydantic found in the whole record, with the same words."""
    lists = {
        name: value
        for name, value in data.items()
        if name in _ITEM_MODELS and isinstance(value, list) and len(value) <= MAX_LIST_ITEMS
    }
    problems = []
    try:  # the plain fields, and any list that is not a list or is over the limit
        Record.model_validate({**data, **{name: [] for name in lists}}, context=context)
    except ValidationError as error:
        problems = [plain_problem(item) for item in error.errors(include_url=False)[:MAX_PROBLEMS]]
    for name, model in _ITEM_MODELS.items():
        for index, item in enumerate(lists.get(name, ())):
            if len(problems) >= MAX_PROBLEMS:
                return problems[:MAX_PROBLEMS]
            try:
                model.model_validate(item, context=context)
            except ValidationError as error:
                problems += [plain_problem(e, (name, index)) for e in error.errors(include_url=False)]
    return problems[:MAX_PROBLEMS]


def plain_problem(item: ErrorDetails, within: tuple[int | str, ...] = ()) -> FieldProblem:
    """One pydantic error as a FieldProblem: its field, a stable code and plain words.

    No pydantic code or phrasing ("Input should be") reaches the user; a value is quoted
    as JSON would write it and cut to SHOWN_LENGTH characters. ``within`` is the path of
    the object that was validated (``("labs", 3)``), when it was not the whole record.
    """
    loc = (*within, *item["loc"])
    kind = item["type"]
    ctx = item.get("ctx") or {}
    value = item.get("input")
    if loc and loc[-1] == "[key]":  # a key of `sources`: the key is the bad value
        loc = loc[:-1]
    # an unknown key is the field: a megabyte of key must not be echoed either
    field = dotted(tuple(clip(part, SHOWN_LENGTH) if isinstance(part, str) else part for part in loc))
    field = field or "(record)"
    if kind in _WRONG_TYPE:
        return FieldProblem(field, "wrong_type", f"must be {_WRONG_TYPE[kind]}, not {shown(value)}")
    if kind in _OUT_OF_RANGE:
        bound = next(iter(ctx.values()), "")
        bound = f"{bound:g}" if isinstance(bound, float) else bound  # gt=1 on a float field is 1.0
        return FieldProblem(
            field, "out_of_range", f"must be {_OUT_OF_RANGE[kind]} {bound}, not {shown(value)}"
        )
    if kind in ("enum", "literal_error"):
        allowed = ctx.get("expected", "")
        return FieldProblem(field, "not_allowed", f"{_quoted(value)} is not allowed; use {allowed}")
    if kind == "missing":
        return FieldProblem(field, "missing", "is required")
    if kind == "extra_forbidden":
        return FieldProblem(field, "unknown_field", "unknown field")
    if kind == "string_too_short":
        return FieldProblem(field, "empty", "must not be empty")
    if kind == "string_too_long":
        length = len(value) if isinstance(value, str) else 0
        message = f"is {length:,} characters long; at most {ctx.get('max_length', 0):,} are allowed"
        return FieldProblem(field, "text_too_long", message)
    if kind == "too_long":
        count = ctx.get("actual_length") or (len(value) if isinstance(value, (list, dict)) else 0)
        message = f"has {count:,} items; at most {ctx.get('max_length', 0):,} are allowed"
        return FieldProblem(field, "too_many_items", message)
    if kind in ("bad_date", "unknown_fields"):  # ours (PydanticCustomError), already plain
        return FieldProblem(field, kind, item["msg"])
    if kind.startswith("date") or kind.startswith("datetime"):
        return FieldProblem(field, "bad_date", f"must be a date as YYYY-MM-DD, not {shown(value)}")
    if kind == "value_error":  # the model's own validators, in plain words already
        return FieldProblem(field, "invalid", clip(item["msg"].removeprefix("Value error, "), 300))
    return FieldProblem(field, "invalid", f"is not valid: {shown(value)}")


_WRONG_TYPE = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "string_unicode": "text",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
}
_OUT_OF_RANGE = {
    "greater_than_equal": "at least",
    "greater_than": "more than",
    "less_than_equal": "at most",
    "less_than": "less than",
}


def shown(value: object) -> str:
    """A value as an error message quotes it: JSON words, long text cut short.

    ``true``, ``null``, ``180``, ``the text "180"``, ``a list of 3 items``, ``an object``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return clip(repr(value), SHOWN_LENGTH)
    if isinstance(value, str):
        return f'the text "{clip(value, SHOWN_LENGTH)}"' if value else "empty text"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value):,} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return "an object"
    return f"a Python {type(value).__name__}"


def _quoted(value: object) -> str:
    return repr(clip(value, SHOWN_LENGTH)) if isinstance(value, str) else shown(value)


def dotted(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as ``blood_pressure[0].systolic``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _record_id_of(data: Any) -> str | None:
    if isinstance(data, dict):
        value = data.get("id")
        return str(value) if value is not None else None
    return None


def load_json(data: str | bytes, source: str | None = None) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        # line:column, so that a broken file is reported as file:line:col.
        raise InputError(f"not valid JSON: {error.msg}", source, f"{error.lineno}:{error.colno}") from None


def json_type(value: object) -> str:
    """A parsed JSON value's type, in JSON's words ("a string", "an array", "null")."""
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def not_a_record(value: object, source: str | None = None) -> InputError:
    """The error for parsed JSON that is not an object, so cannot be a record."""
    return InputError(f"a record must be a JSON object, not {json_type(value)}", source)
