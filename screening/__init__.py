"""Eligibility screening for IV ketamine in chronic pain.

Criteria live in YAML rule files; durable-rules decides which hold; every decision carries
its reasons, sources, missing data and next steps.

    >>> from screening import Screener
    >>> decision = Screener().screen({"id": "p1", ...}, as_of="2026-11-22")
    >>> decision.outcome
"""

from screening.decision import CriterionResult, Decision, NotScreened
from screening.errors import (
    EngineError,
    FieldProblem,
    InputError,
    Problem,
    RecordError,
    RuleSetError,
    ScreeningError,
)
from screening.fhir.bulk import bulk_records
from screening.fhir.bundle import bundle_records, is_fhir
from screening.intake import InputKind, Screener, classify
from screening.record import Record, parse_record
from screening.ruleset.loading import load_ruleset
from screening.ruleset.model import RuleSet
from screening.screener import default_rules_dir
from screening.vocabulary import Effect, Outcome, Status

__all__ = [
    "CriterionResult",
    "Decision",
    "Effect",
    "EngineError",
    "FieldProblem",
    "InputError",
    "InputKind",
    "NotScreened",
    "Outcome",
    "Problem",
    "Record",
    "RecordError",
    "RuleSet",
    "RuleSetError",
    "Screener",
    "ScreeningError",
    "Status",
    "bulk_records",
    "bundle_records",
    "classify",
    "default_rules_dir",
    "is_fhir",
    "load_ruleset",
    "parse_record",
]
