"""Eligibility screening for IV ketamine in chronic pain.

Criteria live in YAML rule files; durable-rules decides which hold; every decision carries
its reasons, sources, missing data and next steps.

    >>> from screening import Screener
    >>> decision = Screener().screen({"id": "p1", ...}, as_of="2026-11-22")
    >>> decision.outcome
"""

from .decision import CriterionResult, Decision, Outcome
from .errors import (
    EngineError,
    FieldProblem,
    InputError,
    NotScreened,
    Problem,
    RecordError,
    RuleSetError,
    ScreeningError,
)
from .fhir import bulk_records, bundle_records, is_fhir
from .record import Record, parse_record
from .ruleset import RuleSet, load_ruleset
from .screener import Screener, default_rules_dir

__all__ = [
    "CriterionResult",
    "Decision",
    "EngineError",
    "FieldProblem",
    "InputError",
    "NotScreened",
    "Outcome",
    "Problem",
    "Record",
    "RecordError",
    "RuleSet",
    "RuleSetError",
    "Screener",
    "ScreeningError",
    "bulk_records",
    "bundle_records",
    "default_rules_dir",
    "is_fhir",
    "load_ruleset",
    "parse_record",
]
