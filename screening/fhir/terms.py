"""What the FHIR reader needs from the rule set, and typed access to FHIR JSON.

:class:`FhirTerms` gathers, once per rule set, the value sets and parameters that
``docs/reading-rules.md`` names: the observation codes, the pain-condition and treatment-class
sets (the ones the ``primary_pain_condition`` and ``treatment_classes`` aggregates use), and the sets of
``rules/valuesets/fhir.yaml`` (trial outcomes, answer codes). No code list lives here.

The accessors (:func:`field`, :func:`string`, :func:`element`, :func:`objects`,
:func:`concept`, :func:`day`, ...) are the only way the reader touches FHIR JSON. They read
leniently where FHIR allows absence and strictly where it fixes a type: a ``status`` that
is an object, a ``code`` that is a number or a ``coding`` that is not a list raises
:class:`Malformed`, which the reader turns into an
:class:`~screening.errors.InputError` naming the file and the position (and, reading a
batch, the error of that patient alone).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from screening.errors import Problem, RuleSetError
from screening.ruleset.model import RuleSet
from screening.valuesets import ValueSet

# FHIR code system URIs (and their HL7 OIDs) to the short names the record uses.
SYSTEMS = {
    "http://snomed.info/sct": "snomed",
    "urn:oid:2.16.840.1.113883.6.96": "snomed",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd-10-cm",
    "urn:oid:2.16.840.1.113883.6.90": "icd-10-cm",
    "http://loinc.org": "loinc",
    "urn:oid:2.16.840.1.113883.6.1": "loinc",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "urn:oid:2.16.840.1.113883.6.88": "rxnorm",
}
OBSERVATION_SETS = (
    "bp_panel",
    "systolic_bp",
    "diastolic_bp",
    "heart_rate",
    "pain_severity",
    "phq9_total",
    "phq9_item9",
    "alt",
    "ast",
    "pregnancy_status",
    "body_weight",
)
NONSPECIFIC_PAIN_SET = "chronic_pain_nonspecific"
BREASTFEEDING_SET = "breastfeeding"
PREGNANCY_SET = "pregnancy"
# Failure is reported before success when a trial has several reasons.
TRIAL_OUTCOMES = ("not_tolerated", "ineffective", "partial_response", "effective")
_FULL_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")


Partial = dict[str, Any]
"""A piece of a native record read from one resource (see :mod:`screening.fhir.map`)."""


def note(text: str) -> Partial:
    """A partial that is a sentence about data read but not used."""
    return {"k": "note", "text": text}


class Malformed(Exception):
    """A FHIR element of the wrong type; ``path`` is where, inside the resource."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


@dataclass(frozen=True)
class Coding:
    system: str | None
    code: str | None
    display: str | None


@dataclass(frozen=True)
class Concept:
    """A CodeableConcept: its codings and text."""

    codings: tuple[Coding, ...]
    text: str | None

    def code_in(self, system: str) -> str | None:
        """The first code of a system (short name, e.g. ``rxnorm``)."""
        return next((c.code for c in self.codings if c.system == system and c.code), None)

    @property
    def label(self) -> str | None:
        """A human name: the text, else the first display, else the first code."""
        return (
            self.text
            or next((c.display for c in self.codings if c.display), None)
            or next((c.code for c in self.codings if c.code), None)
        )

    def words(self) -> str:
        """Text and displays, for the word matching that docs/reading-rules.md allows."""
        return " ; ".join(filter(None, [self.text, *(c.display for c in self.codings)]))


def field(node: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    """``node[key]`` if present and of the right JSON type; None if absent."""
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise Malformed(_join(path, key), f"expected {_JSON_NAMES.get(expected, expected)}")
    return value


_JSON_NAMES = {"dict": "an object", "list": "an array", "str": "a string", "bool": "a boolean"}


def string(node: Mapping[str, Any], key: str, path: str) -> str | None:
    """A string element (a code such as ``status``, an id, a uri); None if absent."""
    value: str | None = field(node, key, str, path)
    return value


def element(node: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path (``effectivePeriod.end``), None where a step is absent.

    A step that is present but not an object raises :class:`Malformed`: a string where a
    Period belongs is a broken resource, not a missing date."""
    parts = dotted.split(".")
    for index, part in enumerate(parts[:-1]):
        node = field(node, part, dict, ".".join(parts[:index]))
        if node is None:
            return None
    return node.get(parts[-1])


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def objects(node: Mapping[str, Any], key: str, path: str) -> list[tuple[dict[str, Any], str]]:
    """The objects of a list element, each with its path."""
    items = field(node, key, list, path) or []
    out = []
    for index, item in enumerate(items):
        where = f"{_join(path, key)}[{index}]"
        if not isinstance(item, dict):
            raise Malformed(where, "expected an object")
        out.append((item, where))
    return out


def concept(node: Mapping[str, Any], key: str, path: str = "") -> Concept | None:
    """A CodeableConcept element, or None when absent."""
    value = field(node, key, dict, path)
    if value is None:
        return None
    return concept_of(value, _join(path, key))


def concept_of(value: Mapping[str, Any], path: str) -> Concept:
    codings = []
    for coding, where in objects(value, "coding", path):
        system = field(coding, "system", str, where)
        codings.append(
            Coding(
                SYSTEMS.get(system, system) if system else None,
                field(coding, "code", str, where),
                field(coding, "display", str, where),
            )
        )
    return Concept(tuple(codings), field(value, "text", str, path))


def concepts(node: Mapping[str, Any], key: str, path: str = "") -> list[Concept]:
    """A list of CodeableConcepts (or a single one where FHIR allows either)."""
    value = node.get(key)
    if isinstance(value, dict):
        return [concept_of(value, _join(path, key))]
    return [concept_of(item, where) for item, where in objects(node, key, path)]


def day(value: Any, path: str) -> str | None:
    """A FHIR date or dateTime as ``YYYY-MM-DD`` (its local date); None for a partial date."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(path, "expected a date string")
    match = _FULL_DATE.match(value)
    if not match:
        if re.fullmatch(r"\d{4}(-\d{2})?", value):
            return None
        raise Malformed(path, f"{value!r} is not a FHIR date")
    try:
        date.fromisoformat(match.group(1))
    except ValueError:
        raise Malformed(path, f"{value!r} is not a valid date") from None
    return match.group(1)


def first_day(res: Mapping[str, Any], paths: tuple[str, ...]) -> str | None:
    """The first full date found at the dotted paths (e.g. ``onsetPeriod.start``)."""
    for path in paths:
        found = day(element(res, path), path)
        if found:
            return found
    return None


def reference(node: Mapping[str, Any], key: str, path: str) -> str | None:
    """The ``reference`` string of a Reference element."""
    ref = field(node, key, dict, path)
    return field(ref, "reference", str, _join(path, key)) if ref else None


def number(value: Any) -> float | None:
    """A finite JSON number, or a decimal carried as a string (US Core's valueString "12")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        found = float(value)
    elif isinstance(value, str):
        try:
            found = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    # "NaN" and "1e999" parse as floats but are no measurement.
    return found if math.isfinite(found) else None


class FhirTerms:
    """The rule set's value sets and parameters, arranged for reading FHIR."""

    def __init__(self, ruleset: RuleSet) -> None:
        sets = ruleset.value_sets
        missing = [name for name in OBSERVATION_SETS if name not in sets]
        if missing:
            raise RuleSetError(
                [
                    Problem(
                        str(ruleset.directory),
                        0,
                        0,
                        "missing_value_set",
                        f"reading FHIR needs the value sets {missing} (see docs/reading-rules.md)",
                    )
                ]
            )
        self.observations = {name: sets[name] for name in OBSERVATION_SETS}
        self.pain = self._fact_sets(ruleset, "primary_pain_condition")
        if NONSPECIFIC_PAIN_SET in sets:
            self.pain.append(sets[NONSPECIFIC_PAIN_SET])
        self.treatments = self._fact_sets(ruleset, "treatment_classes")
        # Every drug code list (current medications, allergies, treatment classes).
        self.drugs = [vs for vs in sets.values() if vs.rxnorm] + [
            vs for vs in self.treatments if not vs.rxnorm
        ]
        self.breastfeeding = sets.get(BREASTFEEDING_SET)
        self.pregnancy = sets.get(PREGNANCY_SET)
        self.diagnosis_sets = tuple(sets.values())
        self.outcomes = sorted(
            (vs for vs in sets.values() if vs.attributes.get("fhir_trial_outcome") in TRIAL_OUTCOMES),
            key=lambda vs: TRIAL_OUTCOMES.index(vs.attributes["fhir_trial_outcome"]),
        )
        self._outcome_words = {vs.id: _phrases(vs.text) for vs in self.outcomes}
        negations = [word for vs in sets.values() if vs.attributes.get("fhir_negation") for word in vs.text]
        self._negated = (
            re.compile(r"\b(?:" + "|".join(map(re.escape, negations)) + r")(?:\s+[\w'-]+){0,3}\s*$")
            if negations
            else None
        )
        self.pregnancy_answers = _by_attribute(sets.values(), "fhir_pregnancy_status")
        self.sex_answers = _by_attribute(sets.values(), "fhir_sex")
        self.answer_scores: dict[str, float] = {}
        for vs in sets.values():
            if vs.attributes.get("fhir_answer_score") == "true":
                for code in vs.loinc:
                    score = number(vs.attributes.get(code))
                    if score is not None:
                        self.answer_scores[code] = score
        # The failed-trial inference runs only when the rule set turns it on and sets both limits.
        params = ruleset.params
        limits = ("fhir_inferred_trial_min_weeks", "fhir_inferred_pain_min_score")
        self.infer = bool(params.get("fhir_infer_failed_trials")) and all(name in params for name in limits)
        self.infer_min_days = int(float(params.get(limits[0]) or 0) * 7)
        self.infer_min_pain = float(params.get(limits[1]) or 0)
        self._classified: dict[tuple[str, str, str | None], frozenset[str]] = {}

    @staticmethod
    def _fact_sets(ruleset: RuleSet, aggregate: str) -> list[ValueSet]:
        """The value sets given to a fact of ``aggregate``, in the order the fact lists them."""
        out: dict[str, ValueSet] = {}
        for fact in ruleset.facts.values():
            if fact.aggregate.name == aggregate:
                for vs in fact.args.get("value_sets", ()):
                    out.setdefault(vs.id, vs)
        return list(out.values())

    def observation(self, name: str, code: str | None) -> bool:
        """Whether a LOINC code belongs to one of the observation sets (codes only, no text)."""
        return bool(code) and self.observations[name].matches_lab(code, None)

    def classify(self, code: str, system: str, display: str | None) -> frozenset[str]:
        """The ids of every value set a diagnosis code belongs to (memoised)."""
        key = (system, code, display)
        found = self._classified.get(key)
        if found is None:
            found = frozenset(
                vs.id for vs in self.diagnosis_sets if vs.matches_diagnosis(code, system, display)
            )
            if len(self._classified) > 50_000:
                self._classified.clear()
            self._classified[key] = found
        return found

    def is_pain(self, code: str, system: str, display: str | None) -> bool:
        return any(vs.matches_diagnosis(code, system, display) for vs in self.pain)

    def is_treatment(self, code: str | None, name: str | None) -> bool:
        return any(vs.matches_drug(code, name) for vs in self.treatments)

    def is_drug(self, code: str | None, name: str | None) -> bool:
        return any(vs.matches_drug(code, name) for vs in self.drugs)

    def drug(
        self, value: Concept, matches: Callable[[str | None, str | None], bool] | None = None
    ) -> tuple[str | None, str | None]:
        """The code and name to record for a coded drug or substance.

        Every coding is tried, not only the first (a branded product code the code lists
        do not hold often comes before its ingredient), then the text and every display
        (docs/reading-rules.md's fallback). The name is the concept's label, with the display
        that matched added where the label does not hold it ("Xanax 0.5mg (alprazolam)"),
        so that the record's item matches the same code lists.
        """
        matches = matches or self.is_drug
        label = value.label
        first = value.code_in("rxnorm") or value.code_in("snomed")
        for coding in value.codings:
            if coding.system in ("rxnorm", "snomed") and coding.code and matches(coding.code, None):
                return coding.code, label
        for text in (value.text, *(c.display for c in value.codings)):
            if text and matches(None, text):
                if label and text.lower() not in label.lower():
                    return first, f"{label} ({text})"
                return first, label or text
        return first, label

    def trial_outcome(self, reasons: Iterable[Concept], notes: Iterable[str] = ()) -> str | None:
        """The outcome that reasons (codes, then words) and notes document, failure first."""
        reasons = list(reasons)
        texts = [c.words() for c in reasons] + list(notes)
        for vs in self.outcomes:
            coded = any(
                c.system == "snomed" and c.code in vs.snomed for concept in reasons for c in concept.codings
            )
            if coded or any(self._says(vs, text) for text in texts):
                return vs.attributes["fhir_trial_outcome"]
        return None

    def _says(self, vs: ValueSet, text: str) -> bool:
        """Whether the text holds one of the set's phrases, not negated ("no side effects")."""
        words = self._outcome_words.get(vs.id)
        if words is None or not text:
            return False
        lowered = text.lower()
        return any(
            self._negated is None or not self._negated.search(lowered[: found.start()])
            for found in words.finditer(lowered)
        )

    def answer(self, answers: Mapping[str, ValueSet], value: Concept | None) -> str | None:
        """The attribute value of the first answer set a coded value belongs to."""
        if value is None:
            return None
        for coding in value.codings:
            for attribute, vs in answers.items():
                if coding.code and coding.code in vs.snomed:
                    return attribute
        return None

    def score(self, value: Concept | None) -> float | None:
        """A score given as a LOINC answer code, else as a number in its display or text."""
        if value is None:
            return None
        for coding in value.codings:
            if coding.code in self.answer_scores:
                return self.answer_scores[coding.code]
        return (
            number(value.text)
            if value.text
            else next((n for c in value.codings if (n := number(c.display)) is not None), None)
        )


def _phrases(text: Iterable[str]) -> re.Pattern[str] | None:
    phrases = sorted({t.lower() for t in text}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, phrases)) + r")\b") if phrases else None


def _by_attribute(sets: Iterable[ValueSet], attribute: str) -> dict[str, ValueSet]:
    return {vs.attributes[attribute]: vs for vs in sets if attribute in vs.attributes}


_TERMS: dict[int, tuple[RuleSet, FhirTerms]] = {}


def terms_for(ruleset: RuleSet) -> FhirTerms:
    """The FhirTerms of a rule set, built once per rule set object."""
    cached = _TERMS.get(id(ruleset))
    if cached is not None and cached[0] is ruleset:
        return cached[1]
    terms = FhirTerms(ruleset)
    if len(_TERMS) >= 8:
        _TERMS.clear()
    _TERMS[id(ruleset)] = (ruleset, terms)
    return terms
