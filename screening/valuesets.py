"""Value sets: code lists from the rule set, compiled for fast matching.

ICD-10-CM codes match by prefix (``F31.1`` matches ``F31.13``), with or without the dot.
SNOMED CT, RxNorm and LOINC codes match exactly. ``text`` entries match whole words or phrases
of a display or drug name (``alt`` matches "ALT" but not "alternative").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


def icd_key(code: str) -> str:
    """An ICD-10-CM code in matching form: upper case, no dot, no spaces."""
    return code.replace(".", "").replace(" ", "").upper()


@dataclass(frozen=True)
class ValueSet:
    """One code list with its provenance."""

    id: str
    title: str
    source: str
    icd10cm: tuple[str, ...] = ()
    exclude_icd10cm: tuple[str, ...] = ()
    snomed: frozenset[str] = frozenset()
    rxnorm: frozenset[str] = frozenset()
    loinc: frozenset[str] = frozenset()
    text: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    dose_factors: Mapping[str, float] = field(default_factory=dict)
    _words: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(cls, id: str, spec: Mapping[str, object]) -> ValueSet:
        def strings(key: str) -> list[str]:
            value = spec.get(key) or []
            return [str(v) for v in value] if isinstance(value, Sequence) else []

        text = tuple(t.lower() for t in strings("text"))
        words = re.compile(r"\b(?:" + "|".join(map(re.escape, text)) + r")\b") if text else None
        return cls(
            id=id,
            title=str(spec.get("title", id)),
            source=str(spec.get("source", "")),
            icd10cm=tuple(icd_key(c) for c in strings("icd10cm")),
            exclude_icd10cm=tuple(icd_key(c) for c in strings("exclude_icd10cm")),
            snomed=frozenset(strings("snomed")),
            rxnorm=frozenset(strings("rxnorm")),
            loinc=frozenset(strings("loinc")),
            text=text,
            attributes=dict(spec.get("attributes") or {}),  # type: ignore[call-overload]
            dose_factors={
                str(k).lower(): float(v)
                for k, v in (spec.get("dose_factors") or {}).items()  # type: ignore[attr-defined]
            },
            _words=words,
        )

    def has_icd(self, code: str) -> bool:
        key = icd_key(code)
        return key.startswith(self.icd10cm) and not (
            self.exclude_icd10cm and key.startswith(self.exclude_icd10cm)
        )

    def has_text(self, text: str | None) -> bool:
        return bool(text and self._words and self._words.search(text.lower()))

    def matches_diagnosis(self, code: str, system: str, display: str | None) -> bool:
        """A diagnosis coded in ICD-10-CM or SNOMED CT, falling back to its display."""
        hit = code in self.snomed if system == "snomed" else bool(self.icd10cm) and self.has_icd(code)
        return hit or self.has_text(display)

    def matches_drug(self, code: str | None, name: str | None) -> bool:
        """A drug by RxNorm (or SNOMED) code, falling back to an ingredient name."""
        if code and (code in self.rxnorm or code in self.snomed):
            return True
        return self.has_text(name)

    def matches_lab(self, code: str | None, name: str | None) -> bool:
        if code and code in self.loinc:
            return True
        return self.has_text(name)

    def ingredient_in(self, name: str | None) -> str | None:
        """The first listed ingredient named in ``name``, for per-ingredient factors."""
        lowered = (name or "").lower()
        for ingredient in self.dose_factors:
            if re.search(r"\b" + re.escape(ingredient), lowered):
                return ingredient
        return None
