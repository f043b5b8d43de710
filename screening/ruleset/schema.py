"""The rule file format, as pydantic models. Unknown keys and wrong types are errors.

A rule directory holds YAML files; each may contain any of these top-level sections, and
the loader (:mod:`screening.ruleset.model`) merges them::

    ruleset:     id, version, title, description         (exactly one file has it)
    sources:     id -> citation, label, url, seed         (provenance of criteria)
    parameters:  name -> default, unit, description       (thresholds and windows),
                 minimum, maximum, and its order against other parameters:
                 below / above (strictly), at_most / at_least: a name or a list of names
    answers:     record field -> what to ask when it is left blank
    value_sets:  id -> title, source, icd10cm, snomed, rxnorm, loinc, text, ...
    facts:       name -> aggregate, args, output, ask, if_absent, not_checked
    criteria:    list of id, title, effect, sources, when, reason, recommendation,
                 label_when_failed (what failed, for the report), ...
    dosing:      reference dosing ranges shown for eligible patients

Files named ``*_test.yaml`` hold test cases instead (:mod:`screening.authoring.casetests`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    WrapValidator,
    model_validator,
)

from screening.vocabulary import Effect

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
NAME_RULE = "starts with a lower-case letter and has only a-z, 0-9 and _ (at most 64)"
CriterionId = Annotated[str, Field(pattern=r"^(INC|IND|EXC|REV|CAU)-[A-Z0-9]+(-[A-Z0-9]+)*$")]


def _plain(message: str, finite: bool = False) -> WrapValidator:
    """One plain message instead of pydantic's one line per member of a union."""

    def validate(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            out = handler(value)
        except ValidationError:
            raise ValueError(message) from None
        if finite and isinstance(out, float) and not math.isfinite(out):
            raise ValueError(message)
        return out

    return WrapValidator(validate)


Number = Annotated[StrictInt | StrictFloat, _plain("expected a finite number", finite=True)]
ScalarValue = Annotated[
    StrictBool | StrictInt | StrictFloat | StrictStr,
    _plain("expected a finite number, a string, or true or false", finite=True),
]
Name = Annotated[str, Field(pattern=NAME_PATTERN.pattern), _plain(f"expected a name that {NAME_RULE}")]
Names = Annotated[list[Name] | Name, _plain("expected a parameter name or a list of them")]
ORDER_KEYS = {"below": "below", "above": "above", "at_most": "at most", "at_least": "at least"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RulesetMeta(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")]
    version: Annotated[str, Field(min_length=1)]
    title: str
    description: str = ""


class SourceDef(_Strict):
    citation: str
    label: str | None = None
    url: str | None = None
    seed: str | None = Field(default=None, description="File name of a seed document.")


class ParameterDef(_Strict):
    default: ScalarValue
    unit: str | None = None
    description: str
    minimum: Number | None = None
    maximum: Number | None = None
    below: Names = Field(default=[], description="Parameters this one must stay strictly below.")
    above: Names = Field(default=[], description="Parameters this one must stay strictly above.")
    at_most: Names = Field(default=[], description="Parameters this one must not exceed.")
    at_least: Names = Field(default=[], description="Parameters this one must not be under.")

    def order(self) -> list[tuple[str, str]]:
        """The order constraints, as (key, other parameter) pairs."""
        out: list[tuple[str, str]] = []
        for key in ORDER_KEYS:
            names = getattr(self, key)
            out.extend((key, name) for name in ([names] if isinstance(names, str) else names))
        return out

    @property
    def numeric(self) -> bool:
        """Whether the definition says the parameter is a number, whatever its default."""
        return self.minimum is not None or self.maximum is not None or bool(self.order())


class ValueSetDef(_Strict):
    title: str
    source: str
    icd10cm: list[StrictStr] = []
    exclude_icd10cm: list[StrictStr] = []
    snomed: list[StrictStr] = []
    rxnorm: list[StrictStr] = []
    loinc: list[StrictStr] = []
    text: list[StrictStr] = []
    attributes: dict[str, StrictStr] = {}
    dose_factors: dict[str, Number] = {}

    @model_validator(mode="after")
    def _has_codes(self) -> ValueSetDef:
        if not (self.icd10cm or self.snomed or self.rxnorm or self.loinc or self.text):
            raise ValueError("a value set needs at least one of icd10cm, snomed, rxnorm, loinc, text")
        return self


class FactDef(_Strict):
    description: str
    aggregate: str
    args: dict[str, Any] = {}
    output: str = "value"
    also: list[str] = Field(default=[], description="Other outputs to expose as facts named <fact>_<output>.")
    ask: str | None = Field(default=None, description="What to ask for when this fact is unknown.")
    if_absent: ScalarValue | None = Field(
        default=None, description="Value to use when absent; without it, absent means unknown."
    )
    not_checked: str | None = Field(default=None, description="Note shown when if_absent was used.")


class Templates(_Strict):
    met: str | None = None
    not_met: str | None = None
    unknown: str | None = None


class Reasons(_Strict):
    met: str
    not_met: str
    unknown: str


class Emphasis(_Strict):
    when: Any
    text: str


class CriterionDef(_Strict):
    id: CriterionId
    title: str
    effect: Annotated[Effect, Field(strict=False)]  # the YAML word, read as the enum
    sources: Annotated[list[StrictStr], Field(min_length=1)]
    when: Any
    not_met_when: Any = None
    reason: Reasons
    recommendation: Templates = Templates()
    ask: str | None = Field(
        default=None, description="What would settle it when unknown; used when its placeholders are known."
    )
    emphasis: Emphasis | None = None
    urgent: bool = False
    description: str = ""
    label_when_failed: str | None = Field(
        default=None,
        description="A few words for what failed, as the report's flow diagram names it "
        "(under {adult_min_age}); it may name parameters, not facts.",
    )


class DoseRange(_Strict):
    label: str
    low_mg_per_kg: Number
    high_mg_per_kg: Number
    detail: str
    source: str


class DosingDef(_Strict):
    note: str
    ranges: list[DoseRange]


AnswerKey = Literal[
    "psychiatric_history", "substance_use_history", "treatments", "conditions", "medications", "allergies"
]
"""The record lists that can be left unanswered: ``aggregates.ANSWER_FIELDS`` (a test checks)."""
ANSWER_KEYS: tuple[str, ...] = get_args(AnswerKey)


class RuleFile(_Strict):
    """A whole rule file; the loader validates it section by section, entry by entry."""

    ruleset: RulesetMeta | None = None
    sources: dict[Name, SourceDef] = {}
    parameters: dict[Name, ParameterDef] = {}
    answers: dict[AnswerKey, str] = {}
    value_sets: dict[Name, ValueSetDef] = {}
    facts: dict[Name, FactDef] = {}
    criteria: list[CriterionDef] = []
    dosing: DosingDef | None = None


SECTIONS = tuple(RuleFile.model_fields)
KEYED_MODELS: dict[str, type[BaseModel]] = {
    "sources": SourceDef,
    "parameters": ParameterDef,
    "value_sets": ValueSetDef,
    "facts": FactDef,
}
