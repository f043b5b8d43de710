"""Screener: the inputs it accepts and how it refuses the others."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from screening import InputError, Record, RecordError, Screener

from .conftest import AS_OF, eligible_record


def test_a_record_object_is_checked_against_the_screening_date(screener: Screener) -> None:
    record = Record.model_validate(eligible_record())
    assert screener.screen(record, as_of=AS_OF).outcome == "eligible"
    # The pain score (2026-11-01) and BP are after 2020-01-01: not current data on that date.
    with pytest.raises(RecordError) as raised:
        screener.screen(record, as_of="2020-01-01")
    fields = {problem.field for problem in raised.value.problems}
    assert "pain_scores[0].date" in fields


def test_as_of_takes_a_date_a_datetime_or_iso_text(screener: Screener) -> None:
    record = eligible_record()
    by_text = screener.screen(record, as_of=AS_OF)
    assert screener.screen(record, as_of=date(2026, 11, 22)).as_dict() == by_text.as_dict()
    assert screener.screen(record, as_of=datetime(2026, 11, 22, 15, 30)).as_dict() == by_text.as_dict()


@pytest.mark.parametrize("as_of", [20261122, "22/11/2026", 2026.11])
def test_a_bad_as_of_is_an_input_error(screener: Screener, as_of: object) -> None:
    with pytest.raises(InputError, match="as_of"):
        screener.screen(eligible_record(), as_of=as_of)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ['"hello"', "[]", "null", b"42"])
def test_json_text_that_is_not_an_object_is_an_input_error(screener: Screener, text: str | bytes) -> None:
    with pytest.raises(InputError, match="must be a JSON object"):
        screener.screen(text, as_of=AS_OF)
