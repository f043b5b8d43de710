"""Screening FHIR input: each Patient of a Bundle, or one record read from FHIR.

A malformed resource fails only its own patient: that patient's result is a RecordError
naming the resource and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from screening.decision import Decision, NotScreened
from screening.errors import InputError, RecordError
from screening.fhir.assemble import clip_to
from screening.fhir.bundle import read_bundle
from screening.fhir.terms import terms_for
from screening.screener import RecordScreener, parse_as_of


def screen_bundle(
    screener: RecordScreener,
    data: Mapping[str, Any],
    as_of: date | str | None = None,
    source: str | None = None,
) -> list[Decision | NotScreened | RecordError]:
    """Each Patient's decision, or why there is none. Raises InputError when the input is not
    readable FHIR or holds no Patient."""
    day = parse_as_of(as_of)
    found = read_bundle(data, screener.ruleset, source, strict=False)
    if not any(item.record for item in found):
        # Only unreadable entries: the input is not readable FHIR, not a patient's bad record.
        unreadable = [item.error for item in found if item.error is not None]
        raise unreadable[0] if unreadable else InputError("the FHIR input holds no Patient resource", source)
    out: list[Decision | NotScreened | RecordError] = []
    for item in found:
        failed = item.failure()
        if failed is not None:
            out.append(failed)
            continue
        try:
            out.append(screen_read_record(screener, item.record, day, item.notes))
        except RecordError as error:
            out.append(error)
    return out


def screen_read_record(
    screener: RecordScreener,
    record: Mapping[str, Any],
    as_of: date | str | None = None,
    notes: Sequence[str] = (),
) -> Decision | NotScreened:
    """Screen a record read from FHIR; items dated after ``as_of`` are left out and noted in the
    decision's ``input_notes``, with ``notes`` (what was read but not used)."""
    day = parse_as_of(as_of)
    clipped, dropped = clip_to(dict(record), day, terms_for(screener.ruleset))
    decision = screener.screen(clipped, day)
    if isinstance(decision, NotScreened):
        return decision
    return replace(decision, extra={**decision.extra, "input_notes": [*notes, *dropped]})
