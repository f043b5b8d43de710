"""The worklist for the intake team: who needs which information, one row per record and item.

``screening batch --worklist worklist.csv`` writes it after the run, from the output file
itself (like :meth:`screening.present.report.Summary.from_jsonl`), so a resumed or interrupted run's
worklist holds every whole line of the output, whichever run wrote it. Only records with
missing items have rows, in input order, one per item::

    position,source,record_id,outcome,item,obtain,criteria

``item`` is what the rule set asks for it (:class:`ItemIds`): ``answer:NAME`` (a record list
left unanswered, ``answers:`` of the rules), ``fact:NAME`` (a fact's ``ask``) or
``criterion:ID`` (a criterion's own ``ask``). ``obtain`` is the decision's missing item, in
the rule set's words, and ``criteria`` the criteria left unknown for want of it (cautions
left out: an unknown caution is "not checked", it does not hold the record back).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from screening.errors import InputError
from screening.ruleset.model import RuleSet
from screening.ruleset.templates import Template

COLUMNS = ("position", "source", "record_id", "outcome", "item", "obtain", "criteria")
_NO_MISSING = b'"missing_information":[]'  # orjson writes no spaces: most lines are skipped unparsed


class ItemIds:
    """The machine id of a missing item, traced back to what in the rule set asks for it.

    Decisions hold missing items as words (``decision.missing_information``); the words come
    from the rule set, rendered with its parameters and, for some asks, the record's facts
    ("the outcome of naproxen ..."): each source becomes a pattern, tried in the order the
    rule set lists them, answers first (an unanswered list is what a blocked fact asks).
    Facts that share their ask (the systolic and diastolic pressure) share the first's id."""

    def __init__(self, ruleset: RuleSet) -> None:
        params = {name: value for name, value in ruleset.params.items() if name not in ruleset.facts}
        self._exact: dict[str, str] = {}
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        for key, text in ruleset.answers.items():
            self._exact.setdefault(text, f"answer:{key}")
        for name, fact in ruleset.facts.items():
            if fact.ask is not None:
                self._add(fact.ask, params, f"fact:{name}")
            else:
                self._exact.setdefault(fact.description, f"fact:{name}")
        for criterion in ruleset.criteria:
            if criterion.ask is not None:
                self._add(criterion.ask, params, f"criterion:{criterion.id}")

    def _add(self, template: Template, params: Mapping[str, Any], item_id: str) -> None:
        bound = template.bind(params)
        if not bound.names:
            self._exact.setdefault(bound.render({}), item_id)
            return
        pattern = "".join(re.escape(literal) + (".+?" if name else "") for literal, name, _ in bound.parts)
        self._patterns.append((re.compile(pattern, re.S), item_id))

    def __call__(self, text: str) -> str:
        """The id of a missing item; empty when no part of the rule set asks in these words."""
        found = self._exact.get(text)
        if found is not None:
            return found
        return next((item_id for pattern, item_id in self._patterns if pattern.fullmatch(text)), "")


def worklist_rows(lines: Iterable[Mapping[str, Any]], ruleset: RuleSet) -> Iterator[tuple[object, ...]]:
    """The worklist rows of output lines of ``screening batch`` (see :data:`COLUMNS`)."""
    item_ids = ItemIds(ruleset)
    criteria = {c.id: c for c in ruleset.criteria}
    for line in lines:
        decision = line.get("decision")
        if not decision or not decision["missing_information"]:
            continue
        for item in decision["missing_information"]:
            waiting = [
                f"{c['id']} ({criteria[c['id']].title})" if c["id"] in criteria else c["id"]
                for c in decision["criteria"]
                if item in c.get("missing", ())
                and c.get("effect", getattr(criteria.get(c["id"]), "effect", None)) != "caution"
            ]
            yield (
                line["position"],
                line["source"],
                line.get("record_id") or "",
                decision["outcome"],
                item_ids(item),
                item,
                "; ".join(waiting),
            )


def read_lines(output: Path | str) -> Iterator[dict[str, Any]]:
    """The whole lines of an output file that have missing items (a partial last line is
    left out, as ``--resume`` leaves it)."""
    try:
        with Path(output).open("rb") as file:
            for raw in file:
                if raw.endswith(b"\n") and _NO_MISSING not in raw and b'"decision"' in raw:
                    yield orjson.loads(raw)
    except OSError as error:
        raise InputError(f"cannot read the results back: {error.strerror or error}", str(output)) from None


def write_worklist(output: Path | str, path: Path | str, ruleset: RuleSet) -> int:
    """Write the worklist of the output file ``output`` to ``path`` as CSV; the number of rows."""
    count = 0
    try:
        with Path(path).open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(COLUMNS)
            for row in worklist_rows(read_lines(output), ruleset):
                writer.writerow(row)
                count += 1
    except OSError as error:
        raise InputError(f"cannot write the worklist: {error.strerror or error}", str(path)) from None
    return count
