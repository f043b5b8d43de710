"""The Screener: load a rule set once, then screen records against it.

    >>> from screening import Screener
    >>> screener = Screener()                       # the default rule set
    >>> decision = screener.screen(record_dict, as_of="2026-11-22")
    >>> decision.outcome, decision.missing_information

A Screener owns one rule engine (durable-rules unless told otherwise). It is safe to share between threads (calls are
serialised), but durable-rules holds the GIL, so use one Screener per process to scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from screening.aggregates.base import DiagnosisClassifier
from screening.decision import Decision, NotScreened, decide
from screening.engine.base import EngineFactory, RuleEngine
from screening.engine.compiler import StatusReader, compile_ruleset
from screening.engine.durable import DurableEngine
from screening.engine.facts import FactSheet, compute_facts, plan
from screening.errors import EngineError, InputError
from screening.record import Record, load_json, not_a_record, parse_record
from screening.ruleset.loading import load_ruleset
from screening.ruleset.model import RuleSet


def default_rules_dir() -> Path:
    """The rule set shipped with the package (or the repository's ``rules/`` in a checkout)."""
    packaged = Path(str(resources.files("screening"))) / "_rules"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "rules"


def parse_as_of(value: date | str | None) -> date:
    """The screening date: a date (a datetime's date), an ISO ``YYYY-MM-DD`` string, or None for today."""
    if value is None:
        return date.today()
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise InputError(f"as_of must be a date or a YYYY-MM-DD string, not {type(value).__name__}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"as_of {value!r} is not a date (expected YYYY-MM-DD)") from None


class RecordScreener:
    """Screens native records against one rule set (FHIR and CDS Hooks input: :class:`screening.intake.Screener`)."""

    def __init__(
        self,
        rules: Path | str | None = None,
        params: Path | str | None = None,
        *,
        ruleset: RuleSet | None = None,
        engine: EngineFactory | None = None,
    ) -> None:
        """Load (or take) the rule set and compile it for the engine.

        ``engine`` builds the engine from the compiled definition: durable-rules
        (:class:`~screening.engine.durable.DurableEngine`) unless given. Tests and benchmarks
        pass :class:`~screening.engine.reference.ReferenceEngine` to decide with plain
        Python instead; durable-rules stays the production engine.
        """
        self.ruleset = ruleset or load_ruleset(rules or default_rules_dir(), params)
        self.definition = compile_ruleset(self.ruleset)
        self.engine: RuleEngine = (engine or DurableEngine)(self.definition)
        self._rule_names = frozenset(self.definition)
        self._classify = DiagnosisClassifier(self.ruleset.value_sets.values())
        self._plan = plan(self.ruleset)
        self._reader = StatusReader(self.ruleset)

    def screen(
        self, record: Record | Mapping[str, Any] | str | bytes, as_of: date | str | None = None
    ) -> Decision | NotScreened:
        """Screen one record: its decision, or NotScreened (a deceased patient). Raises RecordError
        or InputError for bad input."""
        day = parse_as_of(as_of)
        validated = self.validate(record, day)
        if validated.deceased:
            return NotScreened(validated.id, "the patient is recorded as deceased")
        sheet = compute_facts(self.ruleset, validated, day, self._classify, self._plan)
        return decide(self.ruleset, validated, day, sheet, self.statuses(sheet))

    def validate(self, record: Record | Mapping[str, Any] | str | bytes, as_of: date) -> Record:
        """The record validated against the screening date (a Record is checked again)."""
        if isinstance(record, Record):
            # Its dates were checked against the date it was built for, if any: check them
            # against this one (a pain score after as_of must not count as current).
            record = record.model_dump(exclude_unset=True)
        elif isinstance(record, (str, bytes)):
            record = load_json(record)
        if not isinstance(record, Mapping):
            raise not_a_record(record)
        return parse_record(dict(record), as_of)

    def statuses(self, sheet: FactSheet) -> dict[str, str]:
        """Each criterion's status, from the rules the engine fired for the record's fact."""
        fact = self._reader.fact(sheet.values)
        fired = self.engine.fired(fact)
        strangers = fired - self._rule_names
        if strangers:
            raise EngineError(f"the engine fired rules that were never compiled: {sorted(strangers)}")
        return self._reader.statuses(fact, fired)
