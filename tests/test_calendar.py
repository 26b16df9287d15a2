"""Tests for deadlines on the Danish calendar (engine.calendar)."""

from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.calendar import (
    COPENHAGEN,
    DayRule,
    DeadlineUnit,
    _public_holidays,
    add_working_days,
    compute_deadline,
    is_working_day,
    local_date,
    next_working_day,
)


def _at(text: str) -> datetime:
    """Parse an ISO 8601 timestamp that includes its UTC offset."""
    instant = datetime.fromisoformat(text)
    assert instant.tzinfo is not None
    return instant


# Public holidays


def test_public_holidays_2023():
    # Easter Sunday 2023 was 9 April. Store Bededag (General Prayer Day) is the 4th Friday
    # after Easter, 5 May, and was still a public holiday in 2023.
    expected = {
        date(2023, 1, 1),  # New Year's Day
        date(2023, 4, 6),  # Maundy Thursday
        date(2023, 4, 7),  # Good Friday
        date(2023, 4, 9),  # Easter Sunday
        date(2023, 4, 10),  # Easter Monday
        date(2023, 5, 5),  # Store Bededag
        date(2023, 5, 18),  # Ascension Day
        date(2023, 5, 28),  # Whit Sunday
        date(2023, 5, 29),  # Whit Monday
        date(2023, 12, 25),  # Christmas Day
        date(2023, 12, 26),  # Boxing Day
    }
    assert _public_holidays(2023) == expected


def test_public_holidays_2024():
    # Easter Sunday 2024 was 31 March. Store Bededag was abolished from 2024, so the list
    # has no entry for 26 April.
    expected = {
        date(2024, 1, 1),  # New Year's Day
        date(2024, 3, 28),  # Maundy Thursday
        date(2024, 3, 29),  # Good Friday
        date(2024, 3, 31),  # Easter Sunday
        date(2024, 4, 1),  # Easter Monday
        date(2024, 5, 9),  # Ascension Day
        date(2024, 5, 19),  # Whit Sunday
        date(2024, 5, 20),  # Whit Monday
        date(2024, 12, 25),  # Christmas Day
        date(2024, 12, 26),  # Boxing Day
    }
    assert _public_holidays(2024) == expected


def test_store_bededag_2023_non_working():
    # 5 May 2023 is a Friday, so only the holiday makes it a non-working day.
    assert not is_working_day(date(2023, 5, 5))


def test_store_bededag_2024_working():
    # 26 April 2024 is the Friday that would have been Store Bededag.
    assert is_working_day(date(2024, 4, 26))


def test_boxing_day_on_saturday_no_substitute():
    # Boxing Day 2026 falls on Saturday 26 December. Denmark has no substitute days off,
    # so Monday 28 December is a working day.
    assert not is_working_day(date(2026, 12, 26))
    assert is_working_day(date(2026, 12, 28))


def test_year_outside_holiday_data_raises():
    # The holidays package returns no holidays after 2100, which would make Easter a
    # working day, so the lookup raises instead.
    with pytest.raises(ValueError, match="2101"):
        is_working_day(date(2101, 4, 11))


# Day rules


def test_standard_constitution_day_2026_working():
    # 5 June 2026 is a Friday and Constitution Day is not a public holiday.
    assert is_working_day(date(2026, 6, 5), DayRule.STANDARD)


def test_extended_constitution_day_non_working():
    assert not is_working_day(date(2026, 6, 5), DayRule.EXTENDED)


def test_extended_christmas_eve_non_working():
    # 24 December 2025 is a Wednesday.
    assert is_working_day(date(2025, 12, 24), DayRule.STANDARD)
    assert not is_working_day(date(2025, 12, 24), DayRule.EXTENDED)


def test_extended_new_years_eve_non_working():
    # 31 December 2025 is a Wednesday.
    assert is_working_day(date(2025, 12, 31), DayRule.STANDARD)
    assert not is_working_day(date(2025, 12, 31), DayRule.EXTENDED)


def test_workers_day_working_under_both_rules():
    # 1 May 2026 is a Friday. The holidays package lists it as an optional Danish
    # holiday, but neither rule includes it.
    assert is_working_day(date(2026, 5, 1), DayRule.STANDARD)
    assert is_working_day(date(2026, 5, 1), DayRule.EXTENDED)


def test_next_working_day_from_good_friday():
    # Good Friday 2026 is 3 April. Saturday, Easter Sunday and Easter Monday follow, so
    # the next working day is Tuesday 7 April.
    assert next_working_day(date(2026, 4, 3)) == date(2026, 4, 7)


def test_next_working_day_on_working_day():
    # Monday 2 March 2026 is a working day, so it is returned unchanged.
    assert next_working_day(date(2026, 3, 2)) == date(2026, 3, 2)


# Working days


def test_working_days_across_easter_2025():
    # Start Wednesday 16 April 2025, not counted. Thursday 17 to Monday 21 April are
    # Maundy Thursday, Good Friday, Saturday, Easter Sunday and Easter Monday. The count
    # runs Tue 22 (1), Wed 23 (2), Thu 24 (3), Fri 25 (4) and Mon 28 (5).
    assert add_working_days(date(2025, 4, 16), 5) == date(2025, 4, 28)

    deadline = compute_deadline(_at("2025-04-16T12:00+02:00"), 5, DeadlineUnit.WORKING_DAYS)
    assert deadline.end_date == date(2025, 4, 28)
    assert deadline.moved_from is None


def test_working_days_christmas_by_rule():
    # Start Monday 22 December 2025. Under the standard rule the count runs Tue 23 (1),
    # Wed 24 (2) and Mon 29 (3), skipping Christmas Day, Boxing Day and the weekend.
    # The extended rule also skips 24 December, so the count ends on Tuesday 30 December.
    assert add_working_days(date(2025, 12, 22), 3, DayRule.STANDARD) == date(2025, 12, 29)
    assert add_working_days(date(2025, 12, 22), 3, DayRule.EXTENDED) == date(2025, 12, 30)


def test_working_days_zero_returns_start():
    # Saturday 7 March 2026 is returned unchanged. Only compute_deadline moves it.
    assert add_working_days(date(2026, 3, 7), 0) == date(2026, 3, 7)


def test_working_days_negative_raises():
    with pytest.raises(ValueError, match="-1"):
        add_working_days(date(2026, 3, 2), -1)


# Calendar days and weeks


def test_weeks_from_monday():
    # Monday 2 March 2026 plus 4 weeks is Monday 30 March, a working day.
    deadline = compute_deadline(_at("2026-03-02T09:00+01:00"), 4, DeadlineUnit.WEEKS)
    assert deadline.end_date == date(2026, 3, 30)
    assert deadline.moved_from is None


def test_calendar_days_saturday_moves_to_monday():
    # Monday 2 March 2026 plus 5 days is Saturday 7 March, which moves to Monday 9 March.
    deadline = compute_deadline(_at("2026-03-02T09:00+01:00"), 5, DeadlineUnit.CALENDAR_DAYS)
    assert deadline.end_date == date(2026, 3, 9)
    assert deadline.moved_from == date(2026, 3, 7)


def test_end_on_easter_sunday():
    # Sunday 29 March 2026 plus 1 week is Easter Sunday, 5 April. Easter Monday follows,
    # so the deadline moves to Tuesday 7 April.
    deadline = compute_deadline(_at("2026-03-29T10:00+02:00"), 1, DeadlineUnit.WEEKS)
    assert deadline.end_date == date(2026, 4, 7)
    assert deadline.moved_from == date(2026, 4, 5)


def test_end_on_whit_sunday():
    # Sunday 10 May 2026 plus 14 days is Whit Sunday, 24 May. Whit Monday follows, so
    # the deadline moves to Tuesday 26 May.
    deadline = compute_deadline(_at("2026-05-10T10:00+02:00"), 14, DeadlineUnit.CALENDAR_DAYS)
    assert deadline.end_date == date(2026, 5, 26)
    assert deadline.moved_from == date(2026, 5, 24)


def test_end_on_christmas_day():
    # Tuesday 25 November 2025 plus 1 month is Christmas Day, Thursday 25 December.
    # Boxing Day and a weekend follow, so the deadline moves to Monday 29 December.
    deadline = compute_deadline(_at("2025-11-25T10:00+01:00"), 1, DeadlineUnit.MONTHS)
    assert deadline.end_date == date(2025, 12, 29)
    assert deadline.moved_from == date(2025, 12, 25)


def test_end_on_constitution_day_by_rule():
    # Friday 22 May 2026 plus 14 days is Friday 5 June. The standard rule keeps it. The
    # extended rule moves it past the weekend to Monday 8 June.
    start = _at("2026-05-22T10:00+02:00")

    standard = compute_deadline(start, 14, DeadlineUnit.CALENDAR_DAYS, DayRule.STANDARD)
    assert standard.end_date == date(2026, 6, 5)
    assert standard.moved_from is None

    extended = compute_deadline(start, 14, DeadlineUnit.CALENDAR_DAYS, DayRule.EXTENDED)
    assert extended.end_date == date(2026, 6, 8)
    assert extended.moved_from == date(2026, 6, 5)


def test_end_on_christmas_eve_extended():
    # Wednesday 17 December 2025 plus 1 week is 24 December. The extended rule skips it,
    # Christmas Day, Boxing Day and the weekend, so the deadline ends Monday 29 December.
    deadline = compute_deadline(_at("2025-12-17T10:00+01:00"), 1, DeadlineUnit.WEEKS, DayRule.EXTENDED)
    assert deadline.end_date == date(2025, 12, 29)
    assert deadline.moved_from == date(2025, 12, 24)


def test_end_on_new_years_eve_extended():
    # Monday 1 December 2025 plus 30 days is 31 December. The extended rule skips it and
    # New Year's Day, so the deadline ends Friday 2 January 2026.
    deadline = compute_deadline(_at("2025-12-01T10:00+01:00"), 30, DeadlineUnit.CALENDAR_DAYS, DayRule.EXTENDED)
    assert deadline.end_date == date(2026, 1, 2)
    assert deadline.moved_from == date(2025, 12, 31)


def test_zero_on_wednesday_same_day():
    # Wednesday 4 March 2026 is a working day, so a deadline of 0 days ends that day.
    deadline = compute_deadline(_at("2026-03-04T10:00+01:00"), 0, DeadlineUnit.CALENDAR_DAYS)
    assert deadline.end_date == date(2026, 3, 4)
    assert deadline.moved_from is None


def test_zero_on_saturday_moves_to_monday():
    # Saturday 7 March 2026 is not a working day, so the deadline moves to Monday 9 March.
    deadline = compute_deadline(_at("2026-03-07T10:00+01:00"), 0, DeadlineUnit.WORKING_DAYS)
    assert deadline.end_date == date(2026, 3, 9)
    assert deadline.moved_from == date(2026, 3, 7)


# Months


def test_months_from_january_31_leap_year():
    # 2024 is a leap year, so 31 January plus 1 month is Thursday 29 February.
    deadline = compute_deadline(_at("2024-01-31T10:00+01:00"), 1, DeadlineUnit.MONTHS)
    assert deadline.end_date == date(2024, 2, 29)
    assert deadline.moved_from is None


def test_months_from_january_31_non_leap_year():
    # 2025 is not a leap year, so 31 January plus 1 month is Friday 28 February.
    deadline = compute_deadline(_at("2025-01-31T10:00+01:00"), 1, DeadlineUnit.MONTHS)
    assert deadline.end_date == date(2025, 2, 28)
    assert deadline.moved_from is None


def test_months_clamped_then_moved():
    # 31 January 2026 plus 1 month is clamped to Saturday 28 February, which moves to
    # Monday 2 March.
    deadline = compute_deadline(_at("2026-01-31T10:00+01:00"), 1, DeadlineUnit.MONTHS)
    assert deadline.end_date == date(2026, 3, 2)
    assert deadline.moved_from == date(2026, 2, 28)


def test_months_across_year_end():
    # Monday 17 November 2025 plus 3 months is Tuesday 17 February 2026.
    deadline = compute_deadline(_at("2025-11-17T10:00+01:00"), 3, DeadlineUnit.MONTHS)
    assert deadline.end_date == date(2026, 2, 17)


# Start instant and time zones


def test_local_date_late_evening_utc():
    # 23:30 UTC on 1 March 2026 is 00:30 on 2 March in Copenhagen (UTC+1 in winter).
    assert local_date(_at("2026-03-01T23:30Z")) == date(2026, 3, 2)


def test_start_late_evening_utc_counts_local_day():
    # The start date is 2 March in Copenhagen, so 1 calendar day ends Tuesday 3 March.
    deadline = compute_deadline(_at("2026-03-01T23:30Z"), 1, DeadlineUnit.CALENDAR_DAYS)
    assert deadline.end_date == date(2026, 3, 3)


def test_ends_at_winter_to_summer_time():
    # Summer time starts 29 March 2026. Monday 16 March plus 2 weeks is Monday 30 March,
    # when Copenhagen is UTC+2, so 23:59:59 local time is 21:59:59 UTC.
    deadline = compute_deadline(_at("2026-03-16T10:00+01:00"), 2, DeadlineUnit.WEEKS)
    assert deadline.end_date == date(2026, 3, 30)
    assert deadline.ends_at == datetime(2026, 3, 30, 21, 59, 59, tzinfo=UTC)


def test_ends_at_summer_to_winter_time():
    # Summer time ends 25 October 2026. Monday 19 October plus 1 week is Monday 26 October,
    # when Copenhagen is UTC+1, so 23:59:59 local time is 22:59:59 UTC.
    deadline = compute_deadline(_at("2026-10-19T10:00+02:00"), 1, DeadlineUnit.WEEKS)
    assert deadline.end_date == date(2026, 10, 26)
    assert deadline.ends_at == datetime(2026, 10, 26, 22, 59, 59, tzinfo=UTC)


def test_ends_at_is_utc():
    deadline = compute_deadline(_at("2026-03-02T09:00+01:00"), 4, DeadlineUnit.WEEKS)
    assert deadline.ends_at.tzinfo is UTC


# Invalid arguments


def test_naive_start_raises():
    with pytest.raises(ValueError, match="no time zone"):
        compute_deadline(datetime(2026, 3, 2, 9, 0), 4, DeadlineUnit.WEEKS)


def test_local_date_naive_raises():
    with pytest.raises(ValueError, match="no time zone"):
        local_date(datetime(2026, 3, 2, 9, 0))


def test_negative_value_raises():
    with pytest.raises(ValueError, match="-3"):
        compute_deadline(_at("2026-03-02T09:00+01:00"), -3, DeadlineUnit.CALENDAR_DAYS)


def test_unknown_unit_raises():
    with pytest.raises(ValueError, match="fortnights"):
        compute_deadline(_at("2026-03-02T09:00+01:00"), 1, "fortnights")  # type: ignore[arg-type]


# Properties


@settings(deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1),
        max_value=datetime(2035, 12, 31, 23, 59, 59),
        timezones=st.just(UTC),
    ),
    value=st.integers(min_value=0, max_value=120),
    unit=st.sampled_from(DeadlineUnit),
    rule=st.sampled_from(DayRule),
)
def test_deadline_properties(start, value, unit, rule):
    deadline = compute_deadline(start, value, unit, rule)
    local_end = deadline.ends_at.astimezone(COPENHAGEN)

    assert is_working_day(deadline.end_date, rule)
    assert deadline.end_date >= local_date(start)
    assert local_end.date() == deadline.end_date
    assert local_end.time() == time(23, 59, 59)
    if deadline.moved_from is not None:
        assert deadline.moved_from < deadline.end_date
        assert not is_working_day(deadline.moved_from, rule)
