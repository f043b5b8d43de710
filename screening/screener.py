"""The Screener: load a rule set once, then screen records against it.

    >>> from screening import Screener
    >>> screener = Screener()                       # the default rule set
    >>> decision = screener.screen(record_dict, as_of="2026-11-22")
    >>> decision.outcome, decision.missing_information

A Screener owns one durable-rules engine. It is safe to share between threads (calls are
serialised), but durable-rules holds the GIL, so use one Screener per process to scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from .compiler import MET, NOT_MET, compile_ruleset, rule_name
from .decision import Decision, decide
from .engine import Engine
from .errors import EngineError, InputError
from .facts import FactSheet, compute_facts
from .record import Record, parse_record
from .ruleset import RuleSet, load_ruleset


def default_rules_dir() -> Path:
    """The rule set shipped with the package (or the repository's ``rules/`` in a checkout)."""
    packaged = Path(str(resources.files("screening"))) / "_rules"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "rules"


def parse_as_of(value: date | str | None) -> date:
    """The screening date: a date, an ISO ``YYYY-MM-DD`` string, or None for today."""
    if value is None:
        return date.today()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"as_of {value!r} is not a date (expected YYYY-MM-DD)") from None


def load_json(data: str | bytes, source: str | None = None) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InputError(f"not valid JSON: {error}", source=source) from None


class Screener:
    """Screens patient records against one rule set."""

    def __init__(
        self,
        rules: Path | str | None = None,
        params: Path | str | None = None,
        *,
        ruleset: RuleSet | None = None,
    ) -> None:
        self.ruleset = ruleset or load_ruleset(rules or default_rules_dir(), params)
        self.definition = compile_ruleset(self.ruleset)
        self.engine = Engine(self.definition)
        self._rule_names = frozenset(self.definition)

    def screen(
        self, record: Record | Mapping[str, Any] | str | bytes, as_of: date | str | None = None
    ) -> Decision:
        """Screen one record. Raises RecordError or InputError for bad input."""
        day = parse_as_of(as_of)
        validated = self.validate(record, day)
        sheet = compute_facts(self.ruleset, validated, day)
        return decide(self.ruleset, validated, day, sheet, self.statuses(sheet))

    def validate(self, record: Record | Mapping[str, Any] | str | bytes, as_of: date) -> Record:
        if isinstance(record, Record):
            return record
        if isinstance(record, (str, bytes)):
            record = load_json(record)
        if not isinstance(record, Mapping):
            raise InputError(f"a record must be a JSON object, not {type(record).__name__}")
        return parse_record(dict(record), as_of)

    def statuses(self, sheet: FactSheet) -> dict[str, str]:
        """Each criterion's status, from the rules durable-rules fired for the record's fact."""
        fired = self.engine.fired(sheet.known())
        strangers = fired - self._rule_names
        if strangers:
            raise EngineError(f"durable-rules fired rules that were never compiled: {sorted(strangers)}")
        out = {}
        for criterion in self.ruleset.criteria:
            met = rule_name(criterion.id, MET) in fired
            not_met = rule_name(criterion.id, NOT_MET) in fired
            if met and not_met:
                raise EngineError(f"{criterion.id}: both its met and not-met rules fired")
            settled = all(sheet.values[name] is not None for name in criterion.facts)
            if not met and not not_met and criterion.not_met_when is None and settled:
                raise EngineError(f"{criterion.id}: no rule fired although every fact it needs is known")
            out[criterion.id] = MET if met else NOT_MET if not_met else "unknown"
        return out
