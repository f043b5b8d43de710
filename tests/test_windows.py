"""The one window rule: end day included, calendar months counted back from the screening date."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from screening.windows import Window, add_months, elapsed, elapsed_text


@pytest.mark.parametrize(
    ("as_of", "months", "start"),
    [
        (date(2026, 11, 1), 6, date(2026, 5, 1)),  # the spec's own example
        (date(2026, 11, 22), 6, date(2026, 5, 22)),
        (date(2026, 3, 31), 1, date(2026, 2, 28)),  # clamped to the shorter month
        (date(2028, 3, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2026, 8, 31), 6, date(2026, 2, 28)),
        (date(2026, 1, 15), 12, date(2025, 1, 15)),
    ],
)
def test_month_windows_start_that_many_calendar_months_back(as_of: date, months: int, start: date) -> None:
    window = Window.months(months)
    assert window.start(as_of) == start
    assert window.contains(start, as_of)
    assert not window.contains(start - timedelta(days=1), as_of)
    assert window.before(start - timedelta(days=1), as_of)
    assert not window.before(start, as_of)


def test_day_windows_include_their_end_day() -> None:
    as_of = date(2026, 11, 22)
    window = Window.days(30)
    assert window.contains(date(2026, 10, 23), as_of)
    assert not window.contains(date(2026, 10, 22), as_of)
    assert window.contains(as_of, as_of)


def test_at_least_n_months_counts_the_day_exactly_n_months_ago() -> None:
    as_of = date(2026, 11, 22)
    assert Window.months(3).reached_by(date(2026, 8, 22), as_of)
    assert not Window.months(3).reached_by(date(2026, 8, 23), as_of)
    # Counted back from the screening date: 3 months before 2027-02-28 is 2026-11-28, so a
    # pain that began 2026-11-30 has not lasted 3 months yet (counting forward from the
    # onset would clamp 2026-11-30 + 3 months to 2027-02-28 and say it had).
    assert not Window.months(3).reached_by(date(2026, 11, 30), date(2027, 2, 28))


def test_elapsed_text_never_reads_as_reaching_a_window_it_does_not_reach() -> None:
    assert elapsed_text(date(2026, 8, 24), date(2026, 11, 22)) == "2 months 29 days (90 days)"
    assert elapsed_text(date(2026, 5, 22), date(2026, 11, 22)) == "6 months (184 days)"
    assert elapsed_text(date(2026, 11, 2), date(2026, 11, 22)) == "20 days"
    assert elapsed_text(date(2025, 10, 22), date(2026, 11, 22)) == "13 months (396 days)"


days = st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31))


@given(days, days, st.integers(min_value=0, max_value=240))
def test_elapsed_agrees_with_the_windows(a: date, b: date, n: int) -> None:
    since, as_of = min(a, b), max(a, b)
    months, rest = elapsed(since, as_of)
    window = Window.months(n)
    # Within n months exactly when the elapsed time is at most n months and no days.
    assert window.contains(since, as_of) == ((months, rest) <= (n, 0))
    assert window.before(since, as_of) == (not window.contains(since, as_of))
    assert window.reached_by(since, as_of) == (months >= n)
    assert add_months(as_of, -months) >= since
