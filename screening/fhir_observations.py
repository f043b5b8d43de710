"""Observations to record items: vital signs, scores, labs and pregnancy status.

Only ``final``, ``amended`` and ``corrected`` observations count, and a ``dataAbsentReason``
means no value. What an observation is comes from its LOINC code and the rule set's
observation value sets (``bp_panel``, ``systolic_bp``, ... ``body_weight``):

* blood pressure from a panel's systolic and diastolic components (85354-9, and 55284-4 of
  Synthea 2.x), or from standalone systolic and diastolic observations, which
  :mod:`screening.fhir_assemble` pairs when they share an effective time;
* pain 0-10 and PHQ-9 scores as numbers, numeric strings or LOINC answer codes, also as
  components of a panel;
* ALT and AST with the reference range's ``high`` as the upper limit of normal;
* pregnancy status from its SNOMED CT answer, body weight converted to kg.

The date is the effective date (a period's end), else the ``issued`` date.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .fhir_terms import Concept, FhirTerms, Partial, concept, day, field, note, number, objects
from .valuesets import ValueSet

VALID_OBSERVATION = frozenset({"final", "amended", "corrected"})
_BP_UNITS = frozenset({"mm[Hg]", "mmHg", "mm Hg"})
_WEIGHT_UNITS = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237}


def _effective(res: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """An observation's date, and the raw effective value (to pair systolic with diastolic)."""
    for path in (
        "effectiveDateTime",
        "effectiveInstant",
        "effectivePeriod.end",
        "effectivePeriod.start",
        "issued",
    ):
        node: Any = res
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
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


def _quantity(node: Mapping[str, Any], path: str) -> tuple[float | None, str | None]:
    """A numeric value (valueQuantity, valueInteger, a numeric valueString) and its unit."""
    if node.get("dataAbsentReason") is not None:
        return None, None
    quantity = field(node, "valueQuantity", dict, path)
    if quantity is not None:
        where = f"{path}.valueQuantity" if path else "valueQuantity"
        unit = field(quantity, "code", str, where) or field(quantity, "unit", str, where)
        return number(quantity.get("value")), unit
    for key in ("valueInteger", "valueDecimal", "valueString"):
        if key in node:
            return number(node[key]), None
    return None, None


def observation(res: Mapping[str, Any], terms: FhirTerms, source: str, _: object = None) -> list[Partial]:
    """The partials of an Observation: BP, heart rate, pain, PHQ-9, ALT/AST, pregnancy, weight."""
    if res.get("status") not in VALID_OBSERVATION:
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
    value, unit = _quantity(res, "")
    if kind in ("systolic_bp", "diastolic_bp"):
        if value is None:
            return []
        if unit and unit not in _BP_UNITS:
            return [note(f"{source}: blood pressure in {unit!r}, not mmHg; not used")]
        part = "systolic" if kind == "systolic_bp" else "diastolic"
        return [
            {
                "k": "bp_half",
                "part": part,
                "value": mmhg(value),
                "time": raw_time,
                "date": when,
                "source": source,
            }
        ]
    if kind in ("pain_severity", "phq9_item9", "phq9_total"):
        if value is None:
            value = terms.score(concept(res, "valueCodeableConcept"))
        return _score(kind, value, when, source)
    if value is None and kind != "pregnancy_status":
        return []
    if kind == "heart_rate":
        return [{"k": "hr", "item": {"bpm": value, "date": when, "source": source}}]
    if kind == "body_weight":
        factor = _WEIGHT_UNITS.get(unit or "kg")
        if factor is None or value is None:
            return [note(f"{source}: body weight in {unit!r}; not used")]
        return [{"k": "weight", "value": round(value * factor, 1), "date": when, "source": source}]
    if kind in ("alt", "ast"):
        return [_lab(res, terms.observations[kind], codes, value, unit, when, source)]
    answer = terms.answer(terms.pregnancy_answers, concept(res, "valueCodeableConcept"))
    if answer is None:
        return []
    return [{"k": "pregnancy", "item": {"status": answer, "date": when, "source": source}}]


def _loinc(value: Concept | None) -> list[str]:
    return [c.code for c in value.codings if c.system == "loinc" and c.code] if value else []


def _bp_panel(
    components: list[tuple[dict[str, Any], str]], terms: FhirTerms, when: str, source: str
) -> list[Partial]:
    values: dict[str, float] = {}
    for component, where in components:
        codes = _loinc(concept(component, "code", where))
        for name, part in (("systolic_bp", "systolic"), ("diastolic_bp", "diastolic")):
            if any(terms.observation(name, c) for c in codes):
                value, unit = _quantity(component, where)
                if value is not None and (unit is None or unit in _BP_UNITS):
                    values.setdefault(part, mmhg(value))
    if not values:
        return []
    if len(values) < 2:
        # Half a reading is still the latest blood pressure: it must not let an older one decide.
        return [{"k": "bp_incomplete", "known": values, "date": when, "source": source}]
    return [{"k": "bp", "item": {**values, "date": when, "source": source}}]


def mmhg(value: float) -> float:
    """A blood pressure to whole mmHg, the precision it is measured to (Synthea gives 108.058)."""
    return float(math.floor(value + 0.5))


def _component_scores(
    component: Mapping[str, Any], where: str, terms: FhirTerms, res: Mapping[str, Any], source: str
) -> list[Partial]:
    codes = _loinc(concept(component, "code", where))
    for kind in ("phq9_item9", "phq9_total"):
        if any(terms.observation(kind, c) for c in codes):
            when, _ = _effective(res)
            value, _unit = _quantity(component, where)
            if value is None:
                value = terms.score(concept(component, "valueCodeableConcept", where))
            return _score(kind, value, when, source) if when else []
    return []


def _score(kind: str, value: float | None, when: str, source: str) -> list[Partial]:
    if value is None:
        return []
    if kind == "pain_severity":
        # To one decimal, the precision of a 0-10 scale (Synthea gives 0.663541).
        score = math.floor(value * 10 + 0.5) / 10
        return [{"k": "pain", "item": {"score": score, "date": when, "source": source}}]
    if value != int(value):
        return [note(f"{source}: PHQ-9 score {value:g} is not a whole number; not used")]
    key = "item9" if kind == "phq9_item9" else "total"
    return [{"k": "phq9", "item": {key: int(value), "date": when, "source": source}}]


def _lab(
    res: Mapping[str, Any],
    vs: ValueSet,
    codes: list[str],
    value: float | None,
    unit: str | None,
    when: str,
    source: str,
) -> Partial:
    upper = None
    for ranges, where in objects(res, "referenceRange", ""):
        high = field(ranges, "high", dict, where)
        if high is not None:
            upper = number(high.get("value"))
            break
    code = next((c for c in codes if vs.matches_lab(c, None)), None)
    item = {
        "test": vs.attributes.get("label") or vs.id.upper(),
        "code": code,
        "value": value,
        "unit": unit,
        "upper_limit": upper,
        "date": when,
        "source": source,
    }
    return {"k": "lab", "item": item}
