"""Deadlines on the Danish calendar.

Deadlines are counted as the Danish Ministry of Justice guidance on calculating appeal
deadlines prescribes (Justitsministeriets vejledning nr. 9533 of 26 June 2018). The day
of the start instant, converted to Copenhagen time, is not counted. A deadline ends at
23:59 Copenhagen time on its end date, and an end date that is not a working day moves
to the next working day.

Danish public holidays come from the `holidays` package. The list of non-working days
depends on a `DayRule` that is chosen per deadline.
"""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import holidays
from holidays.version import __version__ as HOLIDAYS_VERSION

COPENHAGEN = ZoneInfo("Europe/Copenhagen")

# 23:59:59 represents "23:59" on the end date. Copenhagen changes clocks at 02:00 or 03:00
# local time, so 23:59:59 exists exactly once on every date and needs no `fold`.
_END_OF_DAY = time(23, 59, 59)

_SATURDAY = 5
_SUNDAY = 6

# Days that the extended rule adds to the standard rule, as (month, day): Constitution
# Day (5 June), Christmas Eve and New Year's Eve. The `holidays` package lists these in
# its "optional" category for Denmark, but that category also contains 1 May, which is
# not part of the rule, so the dates are listed here.
_EXTENDED_DAYS_OFF = frozenset({(6, 5), (12, 24), (12, 31)})


class DeadlineUnit(StrEnum):
    """Unit in which a deadline's length is given."""

    CALENDAR_DAYS = "calendar_days"
    WEEKS = "weeks"
    MONTHS = "months"
    WORKING_DAYS = "working_days"


class DayRule(StrEnum):
    """Rule that decides which days are not working days.

    STANDARD: Saturdays, Sundays and Danish public holidays (miljøbeskyttelsesloven § 93
    names Saturdays and public holidays, and every Sunday is a public holiday).
    EXTENDED: the standard days, 5 June, 24 December and 31 December, as miljøskadeloven
    § 52, stk. 3 (LBK nr. 482 of 25 April 2022) lists them.
    """

    STANDARD = "standard"
    EXTENDED = "extended"


@dataclass(frozen=True)
class Deadline:
    """End of a deadline, after any move off a non-working day."""

    end_date: date
    """Copenhagen date on which the deadline ends."""

    ends_at: datetime
    """Aware UTC datetime of 23:59:59 Copenhagen time on `end_date`."""

    moved_from: date | None
    """Date on which the count ended, if that was a non-working day; otherwise None."""


@functools.cache
def _public_holidays(year: int) -> frozenset[date]:
    """Return the Danish public holidays of `year`, cached per year.

    Only the "public" category is requested. For Denmark it contains exactly the statutory
    holidays, with no observed or half days, which the tests check for 2023 and 2024. The
    package returns an empty set outside its supported years (1771-2100 in version 0.109),
    which would count Easter as a working day, so such years raise ValueError.
    """
    public_holidays = holidays.country_holidays("DK", years=year, categories=holidays.PUBLIC)
    first_year = public_holidays.start_year
    last_year = public_holidays.end_year
    if not first_year <= year <= last_year:
        raise ValueError(
            f"Invalid year {year}: the holidays package {HOLIDAYS_VERSION} has Danish "
            f"public holidays only for {first_year}-{last_year}."
        )

    return frozenset(public_holidays.keys())


def is_working_day(day: date, rule: DayRule = DayRule.STANDARD) -> bool:
    """Return whether `day` is a working day under `rule`.

    Raises ValueError for a year that the holidays package does not cover.
    """
    if day.weekday() in (_SATURDAY, _SUNDAY):
        return False
    if day in _public_holidays(day.year):
        return False
    if rule == DayRule.EXTENDED:
        return (day.month, day.day) not in _EXTENDED_DAYS_OFF
    return True


def next_working_day(day: date, rule: DayRule = DayRule.STANDARD) -> date:
    """Return the first working day on or after `day`."""
    while not is_working_day(day, rule):
        day += timedelta(days=1)
    return day


def add_working_days(start: date, count: int, rule: DayRule = DayRule.STANDARD) -> date:
    """Return the date `count` working days after `start`.

    `start` itself is not counted, so a count of 0 returns `start` even when it is not a
    working day. Raises ValueError for a negative count.
    """
    if count < 0:
        raise ValueError(f"Invalid working day count {count}: it must be 0 or more.")

    day = start
    remaining = count
    while remaining > 0:
        day += timedelta(days=1)
        if is_working_day(day, rule):
            remaining -= 1
    return day


def local_date(instant: datetime) -> date:
    """Return the Copenhagen date of the aware datetime `instant`.

    Raises ValueError for a naive datetime, because its time zone is unknown.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"Invalid instant {instant.isoformat()}: it has no time zone. "
            "Pass an aware datetime, for example with tzinfo=datetime.UTC."
        )
    return instant.astimezone(COPENHAGEN).date()


def _add_months(start: date, months: int) -> date:
    """Return the same day of the month `months` later, or that month's last day.

    31 January plus one month is 28 February, or 29 February in a leap year.
    """
    month_index = start.month - 1 + months
    year = start.year + month_index // 12
    month = month_index % 12 + 1
    last_day = calendar.monthrange(year, month)[1]
    return date(year, month, min(start.day, last_day))


def _count_end_date(start: date, value: int, unit: DeadlineUnit, rule: DayRule) -> date:
    """Return the date on which the count ends, before any move to a working day."""
    match unit:
        case DeadlineUnit.CALENDAR_DAYS:
            return start + timedelta(days=value)
        case DeadlineUnit.WEEKS:
            return start + timedelta(weeks=value)
        case DeadlineUnit.MONTHS:
            return _add_months(start, value)
        case DeadlineUnit.WORKING_DAYS:
            return add_working_days(start, value, rule)
        case _:
            raise ValueError(
                f"Invalid deadline unit {unit!r}: expected one of {', '.join(member.value for member in DeadlineUnit)}."
            )


def compute_deadline(start: datetime, value: int, unit: DeadlineUnit, rule: DayRule = DayRule.STANDARD) -> Deadline:
    """Compute the deadline that runs `value` units from the instant `start`.

    The count starts on the day after the Copenhagen date of `start`. If it ends on a day
    that is not a working day under `rule`, the deadline moves to the next working day.
    A `value` of 0 ends on the start date, moved in the same way. Raises ValueError for a
    naive `start`, a negative `value` or an unknown unit.
    """
    if value < 0:
        raise ValueError(f"Invalid deadline length {value}: it must be 0 or more.")

    start_date = local_date(start)
    counted_end = _count_end_date(start_date, value, unit, rule)
    end_date = next_working_day(counted_end, rule)

    local_end = datetime.combine(end_date, _END_OF_DAY, tzinfo=COPENHAGEN)
    return Deadline(
        end_date=end_date,
        ends_at=local_end.astimezone(UTC),
        moved_from=counted_end if end_date != counted_end else None,
    )


def end_of_day(day: date) -> datetime:
    """Return 23:59:59 Copenhagen time on `day`, as an aware UTC datetime."""
    return datetime.combine(day, _END_OF_DAY, tzinfo=COPENHAGEN).astimezone(UTC)
