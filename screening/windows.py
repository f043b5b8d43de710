"""Time windows counted back from the screening date: the one place that decides them.

Every criterion reads time the same way (the clinical spec's conventions):

- "within N days" holds for a date on or after ``as_of`` minus N days, and "within N
  months" for a date on or after ``as_of`` minus N *calendar* months: the end day is in
  the window. Counting back clamps to the end of a shorter month (as of 2026-03-31, one
  month back is 2026-02-28).
- "more than N ago" is exactly the complement of "within N".
- "present for at least N" (chronic pain) holds for a start on or before the window's
  first day: exactly N months ago counts.

Aggregates never subtract dates or compare day counts themselves; they ask a
:class:`Window`. Durations shown in reasons come from :func:`elapsed_text`, which counts
the same way, so a reason never reads as being on the other side of a window from its
status.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

Unit = Literal["days", "months"]


def add_months(day: date, months: int) -> date:
    """``day`` plus (or minus) whole calendar months, clamped to the end of a shorter month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


@lru_cache(maxsize=4096)
def _start(as_of: date, amount: int, unit: Unit) -> date:
    if unit == "days":
        return as_of - timedelta(days=amount)
    return add_months(as_of, -amount)


@dataclass(frozen=True, slots=True)
class Window:
    """The last ``amount`` days or calendar months up to the screening date, both ends included."""

    amount: int
    unit: Unit

    @classmethod
    def days(cls, amount: int) -> Window:
        return cls(amount, "days")

    @classmethod
    def months(cls, amount: int) -> Window:
        return cls(amount, "months")

    def start(self, as_of: date) -> date:
        """The first day in the window."""
        return _start(as_of, self.amount, self.unit)

    def contains(self, day: date, as_of: date) -> bool:
        """Whether ``day`` is within the window ("within N days/months")."""
        return day >= _start(as_of, self.amount, self.unit)

    def before(self, day: date, as_of: date) -> bool:
        """Whether ``day`` is more than N days/months ago (the complement of :meth:`contains`)."""
        return day < _start(as_of, self.amount, self.unit)

    def reached_by(self, since: date, as_of: date) -> bool:
        """Whether something present since ``since`` has lasted at least N days/months."""
        return since <= _start(as_of, self.amount, self.unit)

    def __str__(self) -> str:
        unit = self.unit if self.amount != 1 else self.unit[:-1]
        return f"{self.amount} {unit}"


@lru_cache(maxsize=65536)
def elapsed(since: date, as_of: date) -> tuple[int, int]:
    """Whole calendar months from ``since`` to ``as_of`` counted back from ``as_of`` (as the
    windows count), and the days left over.

    ``elapsed(d, as_of) == (N, 0)`` exactly when ``d`` is the first day of the N-month
    window, so "within N months" holds for (N, 0) and fails for (N, 1).
    """
    months = (as_of.year - since.year) * 12 + as_of.month - since.month
    while months > 0 and add_months(as_of, -months) < since:
        months -= 1
    while add_months(as_of, -(months + 1)) >= since:
        months += 1
    return months, (add_months(as_of, -months) - since).days


@lru_cache(maxsize=65536)
def elapsed_text(since: date, as_of: date) -> str:
    """The time from ``since`` to ``as_of`` in words for reasons, e.g. "6 months 3 days (187 days)".

    Whole months and days, never a rounded number of months, so the text can never read as
    reaching a threshold that the dates do not reach.
    """
    months, days = elapsed(since, as_of)
    total = (as_of - since).days
    parts = []
    if months:
        parts.append(f"{months} month{'s' if months != 1 else ''}")
    if days or not months:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    text = " ".join(parts)
    return text if not months else f"{text} ({total} days)"
