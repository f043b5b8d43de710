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
and the field.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import FieldProblem, RecordError

CodeSystem = Literal["icd-10-cm", "snomed"]
SourcedField = Literal["birth_date", "age", "sex", "weight_kg", "breastfeeding", "deceased"]
"""The plain (not list) fields of a record, whose sources are in ``Record.sources``."""
Source = Annotated[
    str | None,
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


def _not_after_screening(value: date, info: ValidationInfo) -> date:
    as_of = (info.context or {}).get("as_of")
    if as_of is not None and value > as_of:
        raise ValueError(f"date {value.isoformat()} is after the screening date {as_of}")
    return value


Day = Annotated[date, AfterValidator(_not_after_screening)]
"""A date that may not be after the screening date (given as validation context)."""


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    code: str = Field(min_length=1, description="ICD-10-CM (e.g. F31.2) or SNOMED CT code.")
    display: str | None = None
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

    primary: bool = False
    duration_months: float | None = Field(
        default=None, ge=0, le=1200, description="Pain duration at screening, if no onset date."
    )


class PainScore(_Item):
    """A 0-10 numeric rating scale score."""

    score: float = Field(ge=0, le=10)
    date: Day
    source: Source = None


class TreatmentTrial(_Item):
    """A past or current trial of a drug or a modality, and how it ended."""

    name: str = Field(min_length=1)
    code: str | None = Field(default=None, description="RxNorm or SNOMED CT code.")
    treatment_class: TreatmentClass | None = Field(
        default=None, description="Left out, it is looked up from the code or name."
    )
    start: Day | None = None
    end: Day | None = None
    outcome: TrialOutcome = TrialOutcome.unknown
    inferred: bool = Field(default=False, description="The outcome was inferred, not recorded.")
    source: Source = None

    @model_validator(mode="after")
    def _ordered(self) -> TreatmentTrial:
        if self.start and self.end and self.end < self.start:
            raise ValueError("end is before start")
        return self


class BloodPressure(_Item):
    """A blood pressure reading in mmHg."""

    systolic: float = Field(ge=40, le=300)
    diastolic: float = Field(ge=20, le=200)
    date: Day
    source: Source = None

    @model_validator(mode="after")
    def _diastolic_below_systolic(self) -> BloodPressure:
        if self.diastolic >= self.systolic:
            raise ValueError(f"diastolic {self.diastolic:g} is not below systolic {self.systolic:g}")
        return self


class HeartRate(_Item):
    """A heart rate in beats per minute."""

    bpm: float = Field(ge=20, le=300)
    date: Day
    source: Source = None


class LabResult(_Item):
    """A laboratory result, with the upper limit of normal when the lab reports one."""

    test: str = Field(min_length=1, description="Test name, e.g. ALT or AST.")
    code: str | None = Field(default=None, description="LOINC code, e.g. 1742-6 for ALT.")
    value: float = Field(ge=0)
    unit: str | None = None
    upper_limit: float | None = Field(default=None, gt=0)
    date: Day
    source: Source = None


class Phq9(_Item):
    """A PHQ-9 questionnaire: item 9 (thoughts of self-harm, 0-3) and/or the total."""

    item9: int | None = Field(default=None, ge=0, le=3)
    total: int | None = Field(default=None, ge=0, le=27)
    date: Day
    source: Source = None


class Medication(_Item):
    """A medication, current or past."""

    name: str = Field(min_length=1)
    code: str | None = Field(default=None, description="RxNorm code.")
    status: Literal["current", "past"] = "current"
    daily_dose_mg: float | None = Field(default=None, ge=0, le=100000)
    source: Source = None


class Allergy(_Item):
    """A documented allergy or hypersensitivity."""

    substance: str = Field(min_length=1)
    code: str | None = Field(default=None, description="RxNorm or SNOMED CT code.")
    source: Source = None


class PregnancyStatus(_Item):
    """A dated pregnancy status."""

    status: Literal["pregnant", "not_pregnant"]
    date: Day
    source: Source = None


class Record(BaseModel):
    """One patient's intake record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    birth_date: date | None = None
    age: int | None = Field(default=None, ge=0, le=130, description="Years, if no birth date.")
    sex: Literal["female", "male", "other"] | None = None
    deceased: bool = False
    weight_kg: float | None = Field(default=None, gt=1, le=400)
    pregnancy_status: list[PregnancyStatus] = []
    breastfeeding: bool | None = None
    pain_conditions: list[PainCondition] = []
    pain_scores: list[PainScore] = []
    treatments: list[TreatmentTrial] | None = Field(
        default=None, description="null: treatment history not taken; []: no prior treatment."
    )
    psychiatric_history: list[Diagnosis] | None = Field(
        default=None, description="null: not asked (unknown); []: explicitly none."
    )
    substance_use_history: list[Diagnosis] | None = Field(
        default=None, description="null: not asked (unknown); []: explicitly none."
    )
    conditions: list[Diagnosis] | None = Field(
        default_factory=list,
        json_schema_extra={"default": []},
        description=(
            "Other diagnoses: cardiovascular, hepatic, neurological, ... "
            "Left out or []: none; null: the problem list is not available (unknown)."
        ),
    )
    blood_pressure: list[BloodPressure] = []
    heart_rate: list[HeartRate] = []
    labs: list[LabResult] = []
    phq9: list[Phq9] = []
    medications: list[Medication] | None = Field(
        default_factory=list,
        json_schema_extra={"default": []},
        description="Left out or []: no medication; null: the medication list is not available (unknown).",
    )
    allergies: list[Allergy] | None = Field(
        default_factory=list,
        json_schema_extra={"default": []},
        description="Left out or []: no allergy; null: the allergy list is not available (unknown).",
    )
    sources: dict[SourcedField, str] = Field(
        default_factory=dict,
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
    """Validate one record against the screening date, or raise a RecordError."""
    record_id = _record_id_of(data)
    try:
        if isinstance(data, (str, bytes)):
            return Record.model_validate_json(data, context={"as_of": as_of})
        return Record.model_validate(data, context={"as_of": as_of})
    except ValidationError as error:
        raise RecordError(record_id, field_problems(error)) from None


def field_problems(error: ValidationError) -> list[FieldProblem]:
    """Translate a pydantic ValidationError into FieldProblems with dotted paths."""
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] in ("enum", "literal_error") and "input" in item:
            message = f"{item['input']!r} is not allowed: {message.lower()}"
        problems.append(FieldProblem(dotted(item["loc"]) or "(record)", item["type"], message))
    return problems


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
