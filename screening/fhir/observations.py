"""Observations to record items: vital signs, scores, labs and pregnancy status.

Only ``final``, ``amended`` and ``corrected`` observations count, and a ``dataAbsentReason``
means no value. What an observation is comes from its LOINC code and the rule set's
observation value sets (``bp_panel``, ``systolic_bp``, ... ``body_weight``):

* blood pressure from a panel's systolic and diastolic components (85354-9, and 55284-4 of
  Synthea 2.x), or from standalone systolic and diastolic observations, which
  :mod:`screening.fhir.assemble` pairs when they share an effective time;
* pain 0-10 and PHQ-9 scores as numbers, numeric strings or LOINC answer codes, also as
  components of a panel;
* ALT and AST with the reference range's ``high`` as the upper limit of normal;
* pregnancy status from its SNOMED CT answer, body weight converted to kg.

Every value goes through :func:`measured`: read as recorded (never rounded), converted
where its unit is known (:data:`UNITS`), and otherwise left out with a note.
The date is the effective date (a period's end), else the ``issued`` date.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from screening.fhir.terms import (
    Concept,
    FhirTerms,
    Malformed,
    Partial,
    concept,
    day,
    element,
    field,
    note,
    number,
    objects,
    string,
)
from screening.valuesets import ValueSet

VALID_OBSERVATION = frozenset({"final", "amended", "corrected"})
# 1 kPa in mmHg: UCUM defines mm[Hg] as 133.322 Pa (ucum-essence.xml, "133.3220 kPa/m"
# of mercury column), so 1 kPa = 1000 / 133.322 mmHg = 7.50062 mmHg.
KPA_TO_MMHG = 7.50062
_SCORE = {"{score}": 1.0, "{Score}": 1.0, "{#}": 1.0, "1": 1.0, "score": 1.0}
UNITS: dict[str, dict[str, float]] = {
    # Each kind of value: the units it may be recorded in (UCUM codes, and the unit texts
    # Synthea and the FHIR examples write), with the factor to the record's unit.
    "blood pressure": {"mm[Hg]": 1.0, "mmHg": 1.0, "mm Hg": 1.0, "kPa": KPA_TO_MMHG},
    "heart rate": {"/min": 1.0, "{beats}/min": 1.0, "{beat}/min": 1.0, "beats/min": 1.0, "bpm": 1.0},
    "pain score": {"/10": 1.0, **_SCORE},
    "PHQ-9 score": {"/27": 1.0, "/3": 1.0, **_SCORE},
    "liver test": {"U/L": 1.0, "[IU]/L": 1.0, "IU/L": 1.0, "U/l": 1.0},
    "body weight": {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237},
}
UNITLESS = frozenset({"blood pressure", "heart rate", "pain score", "PHQ-9 score"})
"""Kinds whose value may be read without a unit. Scores have no other unit. A BP in kPa
read as mmHg could never pass: every kPa systolic (under 40) is below the record model's
floor of 40 mmHg, so the reading is refused, not misread. Heart rate is only ever given
per minute. Not so for liver tests (U/L or ukat/L, a factor of 60 apart, both plausible
numbers) or body weight (kg or lb), which without a unit are left out."""
_KINDS = {
    "systolic_bp": "blood pressure",
    "diastolic_bp": "blood pressure",
    "heart_rate": "heart rate",
    "pain_severity": "pain score",
    "phq9_total": "PHQ-9 score",
    "phq9_item9": "PHQ-9 score",
    "alt": "liver test",
    "ast": "liver test",
    "body_weight": "body weight",
}


def _effective(res: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """An observation's date, and the raw effective value (to pair systolic with diastolic)."""
    for path in (
        "effectiveDateTime",
        "effectiveInstant",
        "effectivePeriod.end",
        "effectivePeriod.start",
        "issued",
    ):
        node = element(res, path)
        found = day(node, path)
        if found:
            return found, instant(str(node))
    return None, None


def instant(value: str) -> str:
    """A dateTime in comparable form: the same instant gives the same string, whatever
    the notation (``...T10:00:00Z`` and ``...T10:00:00+00:00``); a date or a time without
    a zone stays as written."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None or len(value) <= 10:
        return value
    return parsed.astimezone(UTC).isoformat()


def measured(
    node: Mapping[str, Any],
    path: str,
    kind: str,
    source: str,
    quantity: str = "valueQuantity",
    assumed_unit: str | None = None,
) -> tuple[float | None, str | None]:
    """A value in the record's unit for its kind (a key of :data:`UNITS`), as recorded.

    The value of an observation or component (valueQuantity, valueInteger, valueDecimal or
    a numeric valueString), or the Quantity at ``quantity`` (a reference range's ``high``).
    It is converted where its unit is known (kPa to mmHg, lb to kg) and never rounded:
    thresholds compare what was recorded (docs/reading-rules.md, "Values are compared as recorded").
    Without a unit, ``assumed_unit`` is taken, else the value is read only for the kinds
    of :data:`UNITLESS`. Returns the value, or None and a note saying why a value that is
    there is not used (a unit the screener does not know, no unit where one is needed).
    """
    if node.get("dataAbsentReason") is not None:
        return None, None
    unit: str | None = None
    value: float | None = None
    found = field(node, quantity, dict, path)
    if found is not None:
        where = f"{path}.{quantity}" if path else quantity
        value = _number(found, "value", where, (int, float))
        # The UCUM code is the machine-readable unit; ``unit`` is display text, the fallback.
        unit = string(found, "code", where) or string(found, "unit", where)
    elif quantity == "valueQuantity":
        for key, kinds in (("valueInteger", (int,)), ("valueDecimal", (int, float)), ("valueString", (str,))):
            if node.get(key) is not None:
                value = _number(node, key, path, kinds)
                break
    if value is None:
        return None, None
    unit = unit or assumed_unit
    if unit is None:
        if kind in UNITLESS:
            return value, None
        return None, f"{source}: {kind} {value:g} has no unit; not used"
    factor = UNITS[kind].get(unit.strip())
    if factor is None:
        return None, f"{source}: {kind} {value:g} in {unit!r}, a unit the screener does not know; not used"
    return value * factor, None


def _number(node: Mapping[str, Any], key: str, path: str, kinds: tuple[type, ...]) -> float | None:
    """A number element (a string only where ``kinds`` allows it: valueString "12")."""
    raw = node.get(key)
    if raw is not None and (isinstance(raw, bool) or not isinstance(raw, kinds)):
        where = f"{path}.{key}" if path else key
        raise Malformed(where, "expected a string" if kinds == (str,) else "expected a number")
    return number(raw)


def observation(res: Mapping[str, Any], terms: FhirTerms, source: str, _: object = None) -> list[Partial]:
    """The partials of an Observation: BP, heart rate, pain, PHQ-9, ALT/AST, pregnancy, weight."""
    if string(res, "status", "") not in VALID_OBSERVATION:
        return []
    codes = _loinc(concept(res, "code"))
    kind = next((name for name in terms.observations if any(terms.observation(name, c) for c in codes)), None)
    components = objects(res, "component", "")
    if kind is None:
        # A panel may carry the PHQ-9 item or total as a component.
        return [
            p
            for component, where in components
            for p in _component_scores(component, where, terms, res, source)
        ]
    when, raw_time = _effective(res)
    if when is None:
        return [note(f"{source}: {kind.replace('_', ' ')} observation has no full date; not used")]
    if kind == "bp_panel":
        return _bp_panel(components, terms, when, source)
    if kind == "pregnancy_status":
        answer = terms.answer(terms.pregnancy_answers, concept(res, "valueCodeableConcept"))
        if answer is None:
            return []
        return [{"k": "pregnancy", "item": {"status": answer, "date": when, "source": source}}]
    value, why = measured(res, "", _KINDS[kind], source)
    if why is not None:
        return [note(why)]
    if kind in ("systolic_bp", "diastolic_bp"):
        if value is None:
            return []
        part = "systolic" if kind == "systolic_bp" else "diastolic"
        return [
            {"k": "bp_half", "part": part, "value": value, "time": raw_time, "date": when, "source": source}
        ]
    if kind in ("pain_severity", "phq9_item9", "phq9_total"):
        if value is None:
            value = terms.score(concept(res, "valueCodeableConcept"))
        return _score(kind, value, when, source)
    if value is None:
        return []
    if kind == "heart_rate":
        return [{"k": "hr", "item": {"bpm": value, "date": when, "source": source}}]
    if kind == "body_weight":
        return [{"k": "weight", "value": value, "date": when, "source": source}]
    return _lab(res, terms.observations[kind], codes, value, when, source)


def _loinc(value: Concept | None) -> list[str]:
    return [c.code for c in value.codings if c.system == "loinc" and c.code] if value else []


def _bp_panel(
    components: list[tuple[dict[str, Any], str]], terms: FhirTerms, when: str, source: str
) -> list[Partial]:
    values: dict[str, float] = {}
    out: list[Partial] = []
    for component, where in components:
        codes = _loinc(concept(component, "code", where))
        for name, part in (("systolic_bp", "systolic"), ("diastolic_bp", "diastolic")):
            if any(terms.observation(name, c) for c in codes):
                value, why = measured(component, where, "blood pressure", f"{source} {where}")
                if why is not None:
                    out.append(note(why))
                if value is not None:
                    values.setdefault(part, value)
    if not values:
        return out
    if len(values) < 2:
        # Half a reading is still the latest blood pressure: it must not let an older one decide.
        return [*out, {"k": "bp_incomplete", "known": values, "date": when, "source": source}]
    return [*out, {"k": "bp", "item": {**values, "date": when, "source": source}}]


def _component_scores(
    component: Mapping[str, Any], where: str, terms: FhirTerms, res: Mapping[str, Any], source: str
) -> list[Partial]:
    codes = _loinc(concept(component, "code", where))
    for kind in ("phq9_item9", "phq9_total"):
        if any(terms.observation(kind, c) for c in codes):
            when, _ = _effective(res)
            value, why = measured(component, where, _KINDS[kind], f"{source} {where}")
            if why is not None:
                return [note(why)]
            if value is None:
                value = terms.score(concept(component, "valueCodeableConcept", where))
            return _score(kind, value, when, source) if when else []
    return []


def _score(kind: str, value: float | None, when: str, source: str) -> list[Partial]:
    if value is None:
        return []
    if kind == "pain_severity":
        return [{"k": "pain", "item": {"score": value, "date": when, "source": source}}]
    if value != int(value):
        return [note(f"{source}: PHQ-9 score {value:g} is not a whole number; not used")]
    key = "item9" if kind == "phq9_item9" else "total"
    return [{"k": "phq9", "item": {key: int(value), "date": when, "source": source}}]


def _lab(
    res: Mapping[str, Any],
    vs: ValueSet,
    codes: list[str],
    value: float,
    when: str,
    source: str,
) -> list[Partial]:
    out: list[Partial] = []
    upper = None
    for ranges, where in objects(res, "referenceRange", ""):
        if field(ranges, "high", dict, where) is not None:
            # A range is given in the unit of the value it qualifies: without a unit of its
            # own, that is U/L (every liver-test unit read here is U/L).
            upper, why = measured(ranges, where, "liver test", source, "high", assumed_unit="U/L")
            if why is not None:
                out.append(note(why.replace("liver test", "upper limit of normal", 1)))
            break
    code = next((c for c in codes if vs.matches_lab(c, None)), None)
    item = {
        "test": vs.attributes.get("label") or vs.id.upper(),
        "code": code,
        "value": value,
        "unit": "U/L",
        "upper_limit": upper,
        "date": when,
        "source": source,
    }
    return [*out, {"k": "lab", "item": item}]
