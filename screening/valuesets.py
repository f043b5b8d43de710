"""Value sets: code lists from the rule set, compiled for fast matching.

ICD-10-CM codes match by prefix (``F31.1`` matches ``F31.13``), with or without the dot.
SNOMED CT, RxNorm and LOINC codes match exactly. ``text`` entries match whole words or phrases
of a display or drug name (``alt`` matches "ALT" but not "alternative"). An entry joining
phrases with `` + `` matches a name holding every one of them, in any order
(``diclofenac + gel`` matches "diclofenac sodium 10 MG/ML Topical Gel").

A diagnosis is matched by its code. Its display text is a fallback only where the code
cannot say: for a set with the attribute ``match_display_with_code: "true"`` (a condition
with no specific code, such as ketamine cystitis, coded N30.8-). Otherwise a display never
overrides the code: "Pain in limb; CRPS ruled out" coded M79.609 is not CRPS.
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
    _all_of: tuple[tuple[re.Pattern[str], ...], ...] = field(default=(), compare=False, repr=False)
    """The `` + `` entries: each a tuple of phrases that must all be present."""

    @classmethod
    def build(cls, id: str, spec: Mapping[str, object]) -> ValueSet:
        def strings(key: str) -> list[str]:
            value = spec.get(key) or []
            return [str(v) for v in value] if isinstance(value, Sequence) else []

        text = tuple(t.lower() for t in strings("text"))
        simple = [t for t in text if " + " not in t]
        words = re.compile(r"\b(?:" + "|".join(map(re.escape, simple)) + r")\b") if simple else None
        all_of = tuple(
            tuple(re.compile(r"\b" + re.escape(part.strip()) + r"\b") for part in t.split(" + "))
            for t in text
            if " + " in t
        )
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
            _all_of=all_of,
        )

    def has_icd(self, code: str) -> bool:
        key = icd_key(code)
        return key.startswith(self.icd10cm) and not (
            self.exclude_icd10cm and key.startswith(self.exclude_icd10cm)
        )

    def has_text(self, text: str | None) -> bool:
        if not text:
            return False
        lowered = text.lower()
        if self._words and self._words.search(lowered):
            return True
        return any(all(p.search(lowered) for p in parts) for parts in self._all_of)

    @property
    def display_with_code(self) -> bool:
        """Whether a coded diagnosis may still match by its display (codes not specific)."""
        return self.attributes.get("match_display_with_code") == "true"

    def matches_diagnosis(self, code: str | None, system: str, display: str | None) -> bool:
        """A diagnosis by its ICD-10-CM or SNOMED CT code; by its display only when it has
        no code, or when this set's condition has no specific code (``display_with_code``).
        """
        if code:
            if system == "snomed":
                if code in self.snomed:
                    return True
            elif self.icd10cm and self.has_icd(code):
                return True
            if not self.display_with_code:
                return False
        return self.has_text(display)

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
