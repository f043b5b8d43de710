"""The Screener: load a rule set once, then screen records against it.

    >>> from screening import Screener
    >>> screener = Screener()                       # the default rule set
    >>> decision = screener.screen(record_dict, as_of="2026-11-22")
    >>> decision.outcome, decision.missing_information

A Screener owns one durable-rules engine. It is safe to share between threads (calls are
serialised), but durable-rules holds the GIL, so use one Screener per process to scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from .aggregates import DiagnosisClassifier
from .compiler import StatusReader, compile_ruleset
from .decision import Decision, decide
from .engine import Engine
from .errors import EngineError, InputError, NotScreened, RecordError
from .facts import FactSheet, compute_facts, plan
from .record import Record, parse_record
from .ruleset import RuleSet, load_ruleset


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


def load_json(data: str | bytes, source: str | None = None) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        # line:column, so that a broken file is reported as file:line:col.
        raise InputError(f"not valid JSON: {error.msg}", source, f"{error.lineno}:{error.colno}") from None


def json_type(value: object) -> str:
    """A parsed JSON value's type, in JSON's words ("a string", "an array", "null")."""
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def not_a_record(value: object, source: str | None = None) -> InputError:
    """The error for parsed JSON that is not an object, so cannot be a record."""
    return InputError(f"a record must be a JSON object, not {json_type(value)}", source)


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
        self._classify = DiagnosisClassifier(self.ruleset.value_sets.values())
        self._plan = plan(self.ruleset)
        self._reader = StatusReader(self.ruleset)

    def screen(
        self, record: Record | Mapping[str, Any] | str | bytes, as_of: date | str | None = None
    ) -> Decision:
        """Screen one record. Raises RecordError or InputError for bad input."""
        day = parse_as_of(as_of)
        validated = self.validate(record, day)
        if validated.deceased:
            raise NotScreened(validated.id, "the patient is recorded as deceased")
        sheet = compute_facts(self.ruleset, validated, day, self._classify, self._plan)
        return decide(self.ruleset, validated, day, sheet, self.statuses(sheet))

    def screen_fhir(
        self, data: Mapping[str, Any], as_of: date | str | None = None, source: str | None = None
    ) -> list[Decision | NotScreened | RecordError]:
        """Screen each Patient of a FHIR Bundle (or resource): its decision, or why there is none.

        A malformed resource fails only its own patient: that patient's result is a
        RecordError naming the resource and the field (one whose patient cannot be told is
        a RecordError of its own). Raises InputError when the input is not readable FHIR
        or holds no Patient.
        """
        from .fhir import read_bundle

        day = parse_as_of(as_of)
        found = read_bundle(data, self.ruleset, source, strict=False)
        if not any(item.record for item in found):
            # Only unreadable entries: the input is not readable FHIR, not a patient's bad record.
            unreadable = [item.error for item in found if item.error is not None]
            raise (
                unreadable[0]
                if unreadable
                else InputError("the FHIR input holds no Patient resource", source)
            )
        out: list[Decision | NotScreened | RecordError] = []
        for item in found:
            failed = item.failure()
            if failed is not None:
                out.append(failed)
                continue
            try:
                out.append(self.screen_fhir_record(item.record, day, item.notes))
            except (NotScreened, RecordError) as error:
                out.append(error)
        return out

    def screen_fhir_record(
        self, record: Mapping[str, Any], as_of: date | str | None = None, notes: Sequence[str] = ()
    ) -> Decision:
        """Screen a record read from FHIR; items dated after ``as_of`` are left out and noted.

        The notes (what was read but not used) are in the decision's ``input_notes``.
        """
        from .fhir_assemble import clip_to
        from .fhir_terms import terms_for

        day = parse_as_of(as_of)
        clipped, dropped = clip_to(dict(record), day, terms_for(self.ruleset))
        decision = self.screen(clipped, day)
        return replace(decision, extra={**decision.extra, "input_notes": [*notes, *dropped]})

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
        """Each criterion's status, from the rules durable-rules fired for the record's fact."""
        fact = self._reader.fact(sheet.values)
        fired = self.engine.fired(fact)
        strangers = fired - self._rule_names
        if strangers:
            raise EngineError(f"durable-rules fired rules that were never compiled: {sorted(strangers)}")
        return self._reader.statuses(fact, fired)
