"""The words every layer shares, each with its one ordering.

A criterion has an :class:`Effect` (what its result does to the outcome) and, for a record,
a :class:`Status` (three-valued: unknown is a status, never a false). Effects and statuses
decide the :class:`Outcome`. They are ``StrEnum``s, so they compare equal to, and serialise
as, the words rule files, JSON lines and reports use.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A criterion's result for one record, in the order reports list them."""

    met = "met"
    not_met = "not_met"
    unknown = "unknown"


class Effect(StrEnum):
    """What a criterion's result does, in the order rule sets and decisions list criteria."""

    require = "require"
    """Must be met: not met makes the patient ineligible."""
    indication = "indication"
    """The condition treated: not met sends the decision to clinician review."""
    exclude = "exclude"
    """Must not be met: met makes the patient ineligible."""
    review = "review"
    """Met sends the decision to clinician review."""
    caution = "caution"
    """Met is a caution; never holds a patient back."""


class Outcome(StrEnum):
    """A decision's outcome, strongest first (the strongest a criterion gives wins)."""

    ineligible = "ineligible"
    needs_information = "needs_information"
    needs_review = "needs_review"
    eligible_with_cautions = "eligible_with_cautions"
    eligible = "eligible"


STATUSES: tuple[str, ...] = tuple(status.value for status in Status)
"""The statuses as plain strings, for dict keys that are written as JSON (orjson takes no
``StrEnum`` keys)."""
EFFECTS: tuple[str, ...] = tuple(effect.value for effect in Effect)
OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)


def effect_rank(effect: str) -> int:
    """An effect's place in the one ordering (unknown words last)."""
    return EFFECTS.index(effect) if effect in EFFECTS else len(EFFECTS)
