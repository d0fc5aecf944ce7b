"""Business hours, holidays, time zones and the pausable SLA clock.

Expected instants are worked out by hand in the comments. Reminders for 2026: British
Summer Time (UTC+1) runs from Sunday 29 March 01:00 UTC to Sunday 25 October 01:00 UTC;
otherwise London is on GMT (UTC+0). New York is on EST (UTC-5) until Sunday 8 March 07:00
UTC, then EDT (UTC-4).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from accord.service.calendar import BusinessCalendar, SlaClock, WeeklyHours

FUZZ = settings(max_examples=200, deadline=None)
H = timedelta(hours=1)
M = timedelta(minutes=1)
US = timedelta(microseconds=1)
LONDON_TZ = ZoneInfo("Europe/London")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


WEEKDAYS = WeeklyHours.parse("mon-fri 09:00-17:30")
LONDON = BusinessCalendar("Europe/London", WEEKDAYS, country="GB", subdivision="ENG")
NEW_YORK = BusinessCalendar("America/New_York", WeeklyHours.parse("mon-fri 09:00-17:00"))
# An explicit holiday far away keeps these off the 24/7 fast path, so the general
# algorithm is what runs.
FAR = frozenset({date(1990, 1, 1)})


def only(spec: str, timezone: str = "Europe/London") -> BusinessCalendar:
    return BusinessCalendar(timezone, WeeklyHours.parse(spec), holidays=FAR)


# WeeklyHours


def test_parse_compact_spec() -> None:
    hours = WeeklyHours.parse("mon-fri 09:00-17:30; sat 10:00-14:00")
    assert hours.days == (((540, 1050),),) * 5 + (((600, 840),), ())
    assert str(hours) == "mon-fri 09:00-17:30; sat 10:00-14:00"


def test_parse_is_forgiving_about_form_and_canonical_when_printed() -> None:
    hours = WeeklyHours.parse(
        " Saturday 10:00 - 14:00 ;MON-fri 9:00-12:00, 13:00-17:30;; wed,fri 17:30-18:00 "
    )
    # Wednesday and Friday's evening hour touches their afternoon and is joined to it.
    assert str(hours) == (
        "mon-tue,thu 09:00-12:00,13:00-17:30; wed,fri 09:00-12:00,13:00-18:00; sat 10:00-14:00"
    )
    assert WeeklyHours.parse(str(hours)) == hours


def test_ranges_wrap_past_sunday_and_24_00_ends_the_day() -> None:
    hours = WeeklyHours.parse("sun-thu 08:00-24:00")
    assert [bool(day) for day in hours.days] == [True, True, True, True, False, False, True]
    assert hours.days[6] == ((480, 1440),)
    assert str(hours) == "mon-thu,sun 08:00-24:00"
    assert WeeklyHours.parse("mon-sun 00:00-24:00") == WeeklyHours.always()
    assert WeeklyHours.always().is_always and not hours.is_always


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no opening hours in ''"),
        (" ; ", "no opening hours"),
        ("mon-fri", "no hours in 'mon-fri'"),
        ("mun-fri 09:00-17:30", "bad day 'mun' in 'mun-fri 09:00-17:30'"),
        ("mon-fri 09:00-17:30; sat 10:00-14:00; sunday 9-12", "bad time '9' in 'sunday 9-12'"),
        ("mon-fri-sat 09:00-10:00", "bad days 'mon-fri-sat'"),
        ("mon,,fri 09:00-10:00", "bad days ''"),
        ("mon 09:00-25:00", "bad time '25:00' in 'mon 09:00-25:00'"),
        ("mon 09:60-10:00", "bad time '09:60'"),
        ("mon 24:30-24:45", "bad time '24:30'"),
        ("mon 0900-1000", "bad time '0900'"),
        ("mon 09:00-10:00-11:00", "bad interval '09:00-10:00-11:00'"),
        ("mon 09:00", "bad interval '09:00'"),
        ("mon 17:00-09:00", "bad interval '17:00-09:00' in 'mon 17:00-09:00': must end after"),
        ("mon 09:00-09:00", "must end after it starts"),
        (
            "mon-fri 09:00-12:00, 11:00-13:00",
            "overlapping hours on mon: 09:00-12:00 and 11:00-13:00",
        ),
        ("mon-fri 09:00-17:30; fri 09:00-16:00", "overlapping hours on fri"),
    ],
)
def test_parse_errors_name_the_bad_part(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        WeeklyHours.parse(spec)
    assert message in str(caught.value)


def test_weekly_hours_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="7 days"):
        WeeklyHours(((),) * 6)
    with pytest.raises(ValueError, match="bad interval on tue"):
        WeeklyHours(((), ((600, 1500),), (), (), (), (), ()))
    with pytest.raises(ValueError, match="sorted and not touch"):
        WeeklyHours((((600, 700), (700, 800)), (), (), (), (), (), ()))
    with pytest.raises(ValueError, match="at least once a week"):
        WeeklyHours(((),) * 7)


@st.composite
def weekly_hours(draw: st.DrawFn) -> WeeklyHours:
    days = []
    for _ in range(7):
        cuts = sorted(draw(st.sets(st.integers(0, 1440), max_size=6)))
        days.append(tuple((a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False)))
    assume(any(days))
    return WeeklyHours(tuple(days))


@FUZZ
@given(weekly_hours())
def test_printed_hours_parse_back(hours: WeeklyHours) -> None:
    assert WeeklyHours.parse(str(hours)) == hours


# BusinessCalendar: construction


def test_calendar_rejects_unknowns_and_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Lndon'"):
        BusinessCalendar("Europe/Lndon", WEEKDAYS)
    with pytest.raises(ValueError, match="no holidays known for 'XX'"):
        BusinessCalendar("UTC", WEEKDAYS, country="XX")
    with pytest.raises(ValueError, match="no holidays known for 'GB'"):
        BusinessCalendar("UTC", WEEKDAYS, country="GB", subdivision="XYZ")
    with pytest.raises(ValueError, match="needs a country"):
        BusinessCalendar("UTC", WEEKDAYS, subdivision="ENG")
    with pytest.raises(ValueError, match="must be dates"):
        BusinessCalendar("UTC", WEEKDAYS, holidays=frozenset({datetime(2026, 1, 1)}))
    with pytest.raises(ValueError, match="aware datetime"):
        LONDON.is_open(datetime(2026, 6, 10, 10))
    with pytest.raises(ValueError, match="aware datetime"):
        LONDON.between(utc(2026, 6, 10), datetime(2026, 6, 11))


def test_calendars_compare_by_value() -> None:
    again = BusinessCalendar(
        "Europe/London", WeeklyHours.parse("mon-fri 09:00-17:30"), frozenset(), "GB", "ENG"
    )
    assert again == LONDON and hash(again) == hash(LONDON)
    assert BusinessCalendar.always() == BusinessCalendar("UTC", WeeklyHours.always())


# is_open and next_open


def test_open_from_opening_time_inclusive_to_closing_time_exclusive() -> None:
    # Wednesday 10 June 2026 is in summer time: 09:00-17:30 BST is 08:00-16:30 UTC.
    assert not LONDON.is_open(utc(2026, 6, 10, 8) - US)
    assert LONDON.is_open(utc(2026, 6, 10, 8))
    assert LONDON.is_open(utc(2026, 6, 10, 16, 30) - US)
    assert not LONDON.is_open(utc(2026, 6, 10, 16, 30))
    assert not LONDON.is_open(utc(2026, 6, 13, 12))  # Saturday
    # Any aware datetime will do; 09:00 London time is the opening instant.
    assert LONDON.is_open(datetime(2026, 6, 10, 9, tzinfo=LONDON_TZ))


def test_next_open() -> None:
    at = datetime(2026, 6, 10, 10, tzinfo=LONDON_TZ)
    assert LONDON.next_open(at) == utc(2026, 6, 10, 9)
    assert LONDON.next_open(at).tzinfo is UTC
    # After closing on Wednesday: Thursday 09:00 BST.
    assert LONDON.next_open(utc(2026, 6, 10, 16, 30)) == utc(2026, 6, 11, 8)
    # Friday evening: Monday 09:00 BST.
    assert LONDON.next_open(utc(2026, 6, 12, 20)) == utc(2026, 6, 15, 8)
    # Christmas Eve evening (GMT): Christmas Day, the weekend and the observed Boxing Day
    # (Monday 28th, as the 26th is a Saturday) are closed; Tuesday 29th 09:00 GMT.
    assert LONDON.next_open(utc(2026, 12, 24, 18)) == utc(2026, 12, 29, 9)


# add


def test_add_within_a_day() -> None:
    # Wednesday 10:00 BST (09:00 UTC) + 2h15 = 12:15 BST.
    assert LONDON.add(utc(2026, 6, 10, 9), 2 * H + 15 * M) == utc(2026, 6, 10, 11, 15)
    # With a lunch break: 11:30 BST + 1h = 30 min before lunch, 30 min after: 13:30 BST.
    lunch = BusinessCalendar("Europe/London", WeeklyHours.parse("mon-fri 09:00-12:00,13:00-17:30"))
    assert lunch.add(utc(2026, 6, 10, 10, 30), H) == utc(2026, 6, 10, 12, 30)


def test_add_reaching_closing_time_ends_there_and_zero_is_start() -> None:
    # 16:00 BST + 1h30 = 17:30 BST exactly: closing time, not Thursday's opening.
    assert LONDON.add(utc(2026, 6, 10, 15), 90 * M) == utc(2026, 6, 10, 16, 30)
    saturday = utc(2026, 6, 13, 12)
    assert LONDON.add(saturday, timedelta(0)) == saturday
    with pytest.raises(ValueError, match="must not be negative"):
        LONDON.add(saturday, -US)


def test_add_across_the_evening_and_the_weekend() -> None:
    # Wednesday 17:00 BST + 1h: 30 min to closing, then Thursday 09:00 BST + 30 min.
    assert LONDON.add(utc(2026, 6, 10, 16), H) == utc(2026, 6, 11, 8, 30)
    # Friday 17:00 BST + 1h: 30 min, then Monday 09:00 BST + 30 min.
    assert LONDON.add(utc(2026, 6, 12, 16), H) == utc(2026, 6, 15, 8, 30)
    # From Saturday noon: the clock starts on Monday 09:00 BST.
    assert LONDON.add(utc(2026, 6, 13, 12), H) == utc(2026, 6, 15, 9)
    # 8.5h is a whole working day: Wednesday 12:00 BST + 8h30 = Thursday 12:00 BST.
    assert LONDON.add(utc(2026, 6, 10, 11), 8 * H + 30 * M) == utc(2026, 6, 11, 11)


def test_add_across_christmas_in_england() -> None:
    assert LONDON.is_holiday(date(2026, 12, 25)) and LONDON.is_holiday(date(2026, 12, 28))
    assert not LONDON.is_holiday(date(2026, 12, 24))
    # Thursday 24 December 16:30 GMT + 2h: 1h to closing; Friday 25 (Christmas Day),
    # Saturday 26 (Boxing Day), Sunday 27 and Monday 28 (Boxing Day observed) are closed;
    # Tuesday 29 09:00 GMT + 1h = 10:00.
    assert LONDON.add(utc(2026, 12, 24, 16, 30), 2 * H) == utc(2026, 12, 29, 10)
    # Without the country's holidays only the weekend is skipped: Friday 25th 10:00.
    plain = BusinessCalendar("Europe/London", WEEKDAYS)
    assert plain.add(utc(2026, 12, 24, 16, 30), 2 * H) == utc(2026, 12, 25, 10)
    # Scotland keeps 28 December too, but not Easter Monday, which England does.
    scotland = BusinessCalendar("Europe/London", WEEKDAYS, country="GB", subdivision="SCT")
    assert LONDON.is_holiday(date(2026, 4, 6)) and not scotland.is_holiday(date(2026, 4, 6))


def test_explicit_holidays_close_the_whole_local_day() -> None:
    closed = BusinessCalendar("Europe/London", WEEKDAYS, holidays=frozenset({date(2026, 6, 11)}))
    # Wednesday 17:00 BST + 1h: 30 min, Thursday is closed, Friday 09:00 BST + 30 min.
    assert closed.add(utc(2026, 6, 10, 16), H) == utc(2026, 6, 12, 8, 30)
    assert not closed.is_open(utc(2026, 6, 11, 10))


def test_add_across_the_spring_change_in_london() -> None:
    # Friday 27 March 16:30 GMT (16:30 UTC) + 2h: 1h to 17:30 GMT; the clocks go forward on
    # Sunday; Monday 30 March opens at 09:00 BST = 08:00 UTC, + 1h = 09:00 UTC. (Ignoring
    # the change would give 10:00 UTC.)
    assert LONDON.add(utc(2026, 3, 27, 16, 30), 2 * H) == utc(2026, 3, 30, 9)


def test_add_across_the_autumn_change_in_london() -> None:
    # Friday 23 October 16:30 BST (15:30 UTC) + 2h: 1h to 17:30 BST (16:30 UTC); the clocks
    # go back on Sunday; Monday 26 October opens at 09:00 GMT = 09:00 UTC, + 1h = 10:00 UTC.
    assert LONDON.add(utc(2026, 10, 23, 15, 30), 2 * H) == utc(2026, 10, 26, 10)


def test_add_across_the_spring_change_in_new_york() -> None:
    # Friday 6 March 16:00 EST (21:00 UTC) + 3h: 1h to 17:00 EST (22:00 UTC); the clocks go
    # forward on Sunday 8 March; Monday 9 March opens at 09:00 EDT = 13:00 UTC, + 2h = 15:00.
    assert NEW_YORK.add(utc(2026, 3, 6, 21), 3 * H) == utc(2026, 3, 9, 15)


def test_a_working_day_is_its_wall_clock_length_on_the_days_the_clocks_change() -> None:
    daily = only("mon-sun 09:00-17:30")
    # Sunday 29 March: 09:00-17:30 BST = 08:00-16:30 UTC, 8.5 hours.
    assert daily.between(utc(2026, 3, 29), utc(2026, 3, 30)) == 8 * H + 30 * M
    assert daily.next_open(utc(2026, 3, 29)) == utc(2026, 3, 29, 8)
    # Saturday 17:00 GMT + 1h: 30 min, then Sunday 09:00 BST (08:00 UTC) + 30 min.
    assert daily.add(utc(2026, 3, 28, 17), H) == utc(2026, 3, 29, 8, 30)
    # Sunday 25 October: 09:00-17:30 GMT = 09:00-17:30 UTC, 8.5 hours.
    assert daily.between(utc(2026, 10, 25), utc(2026, 10, 26)) == 8 * H + 30 * M
    assert daily.next_open(utc(2026, 10, 25)) == utc(2026, 10, 25, 9)


def test_a_whole_local_day_is_23_or_25_real_hours_when_the_clocks_change() -> None:
    sundays = only("sun 00:00-24:00")
    # 29 March: 00:00 GMT (00:00 UTC) to 00:00 BST on the 30th (23:00 UTC on the 29th).
    assert sundays.between(utc(2026, 3, 28), utc(2026, 4, 1)) == 23 * H
    assert not sundays.is_open(utc(2026, 3, 29, 23))
    # 25 October: 00:00 BST (23:00 UTC on the 24th) to 00:00 GMT on the 26th (00:00 UTC).
    assert sundays.between(utc(2026, 10, 24), utc(2026, 10, 28)) == 25 * H
    assert sundays.is_open(utc(2026, 10, 24, 23))
    # New York, 8 March: 00:00 EST (05:00 UTC) to 00:00 EDT on the 9th (04:00 UTC).
    ny_sundays = only("sun 00:00-24:00", "America/New_York")
    assert ny_sundays.between(utc(2026, 3, 7), utc(2026, 3, 10)) == 23 * H


def test_a_boundary_skipped_by_the_clocks_resolves_to_the_jump() -> None:
    # 29 March, London: 01:00 GMT jumps to 02:00 BST at 01:00 UTC. 01:30 never happens, so
    # an interval opening then opens at the jump (01:00 UTC); 03:00 BST is 02:00 UTC: 1 h.
    early = only("sun 01:30-03:00")
    assert early.next_open(utc(2026, 3, 29)) == utc(2026, 3, 29, 1)
    assert early.between(utc(2026, 3, 29), utc(2026, 3, 30)) == H
    assert early.add(utc(2026, 3, 29), 30 * M) == utc(2026, 3, 29, 1, 30)
    # An interval wholly inside the skipped hour is empty: next open is a week later,
    # 5 April 01:15 BST = 00:15 UTC.
    skipped = only("sun 01:15-01:45")
    assert skipped.between(utc(2026, 3, 29), utc(2026, 3, 30)) == timedelta(0)
    assert skipped.next_open(utc(2026, 3, 29)) == utc(2026, 4, 5, 0, 15)
    # New York, 8 March: 02:00 EST jumps to 03:00 EDT at 07:00 UTC. 02:30-04:00 opens at
    # the jump and closes at 04:00 EDT = 08:00 UTC: 1 h.
    ny = only("sun 02:30-04:00", "America/New_York")
    assert ny.next_open(utc(2026, 3, 8)) == utc(2026, 3, 8, 7)
    assert ny.between(utc(2026, 3, 8), utc(2026, 3, 9)) == H


def test_a_boundary_the_clocks_repeat_resolves_to_its_first_occurrence() -> None:
    # 25 October, London: 02:00 BST goes back to 01:00 GMT at 01:00 UTC, so 01:30 happens at
    # 00:30 UTC (BST) and again at 01:30 UTC (GMT). 01:30-02:30 opens at the first, 00:30
    # UTC, and closes at 02:30 GMT = 02:30 UTC: two real hours, the repeated one included.
    repeated = only("sun 01:30-02:30")
    assert repeated.next_open(utc(2026, 10, 25)) == utc(2026, 10, 25, 0, 30)
    assert repeated.between(utc(2026, 10, 25), utc(2026, 10, 26)) == 2 * H
    assert repeated.add(utc(2026, 10, 25), 90 * M) == utc(2026, 10, 25, 2)
    assert repeated.is_open(utc(2026, 10, 25, 1, 45))


# between


def test_between() -> None:
    # A summer week: five 8.5 h days.
    assert LONDON.between(utc(2026, 6, 8), utc(2026, 6, 15)) == 42 * H + 30 * M
    # The week the clocks go forward is no shorter: the change is on Sunday.
    assert LONDON.between(utc(2026, 3, 23), utc(2026, 3, 30)) == 42 * H + 30 * M
    # Christmas week: Thursday 24th and Tuesday 29th to Thursday 31st only.
    assert LONDON.between(utc(2026, 12, 21), utc(2027, 1, 1)) == 7 * (8 * H + 30 * M)
    # Wednesday 17:00 BST to Thursday 10:00 BST: 30 min + 1 h.
    assert LONDON.between(utc(2026, 6, 10, 16), utc(2026, 6, 11, 9)) == 90 * M
    at = utc(2026, 6, 10, 12)
    assert LONDON.between(at, at) == timedelta(0)
    with pytest.raises(ValueError, match="before start"):
        LONDON.between(at, at - US)


# The 24/7 calendar


def test_always_open_is_plain_arithmetic_even_across_a_clock_change() -> None:
    always = BusinessCalendar.always("Europe/London")
    start = utc(2026, 3, 28, 12)
    assert always.is_open(start) and always.next_open(start) == start
    assert always.add(start, 24 * H) == utc(2026, 3, 29, 12)
    assert always.between(start, utc(2026, 3, 30, 12)) == 48 * H
    assert BusinessCalendar.always().add(start, 5 * US) == start + 5 * US


# Properties, over zones with awkward changes: a 30-minute one (Lord Howe), clocks that
# jumped and went back at midnight (São Paulo before 2019), a skipped day (Apia, 30
# December 2011), and hours with boundaries inside the changes.

CALENDARS = [
    BusinessCalendar(
        "Europe/London",
        WeeklyHours.parse("mon-fri 09:00-12:00,13:00-17:30; sat 10:00-14:00"),
        country="GB",
        subdivision="ENG",
    ),
    BusinessCalendar("America/New_York", WeeklyHours.parse("mon-fri 09:00-17:00"), country="US"),
    only("mon-sun 00:30-02:15,02:20-03:00,08:00-20:00", "Australia/Lord_Howe"),
    only("mon-sun 00:00-00:30,23:00-24:00; wed 12:00-13:00", "America/Sao_Paulo"),
    only("mon-sun 00:00-24:00", "Pacific/Apia"),
    only("mon-sun 00:00-01:30,01:45-02:30,03:00-24:00", "Europe/London"),
    BusinessCalendar.always("Europe/London"),
]
calendars = st.sampled_from(CALENDARS)
# Instants when clocks changed in those zones, to draw starts near them often.
CHANGES = [
    utc(2026, 3, 29, 1),  # London forward
    utc(2026, 10, 25, 1),  # London back
    utc(2026, 3, 8, 7),  # New York forward
    utc(2026, 11, 1, 6),  # New York back
    utc(2026, 4, 4, 15),  # Lord Howe back half an hour
    utc(2026, 10, 3, 15, 30),  # Lord Howe forward half an hour
    utc(2018, 11, 4, 3),  # São Paulo forward from midnight
    utc(2019, 2, 17, 2),  # São Paulo back from midnight
    utc(2011, 12, 30, 10),  # Apia skips 30 December 2011
]
instants = st.one_of(
    st.datetimes(
        min_value=datetime(2010, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    st.builds(
        lambda change, offset: change + offset,
        st.sampled_from(CHANGES),
        st.timedeltas(min_value=-timedelta(days=3), max_value=timedelta(days=3)),
    ),
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))


@FUZZ
@given(calendars, instants, durations)
def test_between_inverts_add(calendar: BusinessCalendar, start: datetime, d: timedelta) -> None:
    end = calendar.add(start, d)
    assert end.tzinfo is UTC and end >= start
    assert calendar.between(start, end) == d
    if d:  # and it is the earliest such instant
        assert calendar.between(start, end - US) < d
        assert calendar.is_open(end - US)


@FUZZ
@given(calendars, instants, durations, durations)
def test_between_adds_up(
    calendar: BusinessCalendar, a: datetime, ab: timedelta, bc: timedelta
) -> None:
    b, c = a + ab, a + ab + bc
    assert calendar.between(a, c) == calendar.between(a, b) + calendar.between(b, c)


@FUZZ
@given(calendars, instants)
def test_is_open_and_next_open_agree_with_between(calendar: BusinessCalendar, at: datetime) -> None:
    assert calendar.is_open(at) == (calendar.between(at, at + US) == US)
    first = calendar.next_open(at)
    assert first >= at and calendar.is_open(first)
    assert calendar.between(at, first) == timedelta(0)
    assert (first == at) == calendar.is_open(at)


@FUZZ
@given(instants, durations)
def test_round_the_clock_hours_in_a_changing_zone_are_real_time(
    start: datetime, d: timedelta
) -> None:
    general = CALENDARS[4]  # 00:00-24:00 in Apia, on the general path
    assert general.add(start, d) == start + d
    assert general.between(start, start + d) == d


# SlaClock

# Wednesday 10 June 2026, summer time: 09:00 BST is 08:00 UTC.
WED_0900 = utc(2026, 6, 10, 8)


def test_paused_time_does_not_count() -> None:
    clock = SlaClock.started(WED_0900)
    # Unpaused, a 4 h target falls due at 13:00 BST.
    assert clock.due(LONDON, 4 * H) == utc(2026, 6, 10, 12)
    # Waiting on the customer from 10:00 to 11:30 BST.
    waiting = clock.paused(utc(2026, 6, 10, 9))
    assert waiting.is_paused and waiting.due(LONDON, 4 * H) is None
    assert waiting.elapsed(LONDON, utc(2026, 6, 10, 9, 30)) == H
    assert waiting.elapsed(LONDON, utc(2026, 6, 10, 10, 30)) == H
    resumed = waiting.resumed(utc(2026, 6, 10, 10, 30))
    assert not resumed.is_paused
    # 1 h before the pause, 30 min after it by 12:00 BST.
    assert resumed.elapsed(LONDON, utc(2026, 6, 10, 11)) == 90 * M
    # 1 h before the pause, 3 h more from 11:30 BST: 14:30 BST, 1 h 30 later.
    assert resumed.due(LONDON, 4 * H) == utc(2026, 6, 10, 13, 30)


def test_a_pause_over_the_evening_moves_due_by_its_business_time_only() -> None:
    # An 11.5 h target from Wednesday 09:00 BST is 8.5 h on Wednesday and 3 h on Thursday:
    # Thursday 12:00 BST. Paused Wednesday 17:00 BST, resumed Thursday 10:00 BST: 30 min + 1 h
    # of business time, so it moves to 13:30 BST.
    clock = SlaClock.started(WED_0900)
    assert clock.due(LONDON, 11 * H + 30 * M) == utc(2026, 6, 11, 11)
    paused = clock.paused(utc(2026, 6, 10, 16)).resumed(utc(2026, 6, 11, 9))
    assert paused.pauses == ((utc(2026, 6, 10, 16), utc(2026, 6, 11, 9)),)
    assert paused.due(LONDON, 11 * H + 30 * M) == utc(2026, 6, 11, 12, 30)
    # A pause inside closed hours changes nothing.
    night = clock.paused(utc(2026, 6, 10, 20)).resumed(utc(2026, 6, 11, 7))
    assert night.due(LONDON, 11 * H + 30 * M) == utc(2026, 6, 11, 11)


def test_a_clock_paused_from_the_start_counts_from_the_resume() -> None:
    # Waiting on the customer from the start (Wednesday 09:00 BST) until 15:00 BST.
    clock = SlaClock.started(WED_0900).paused(WED_0900)
    assert clock.due(LONDON, H) is None
    assert clock.elapsed(LONDON, utc(2026, 6, 10, 12)) == timedelta(0)
    resumed = clock.resumed(utc(2026, 6, 10, 14))
    assert resumed.elapsed(LONDON, utc(2026, 6, 10, 15)) == H
    # 3 h from 15:00 BST: 2 h 30 to closing, then Thursday 09:00 BST + 30 min.
    assert resumed.due(LONDON, 3 * H) == utc(2026, 6, 11, 8, 30)


def test_a_target_reached_before_a_pause_stays_due_then() -> None:
    clock = SlaClock.started(WED_0900).paused(utc(2026, 6, 10, 9))
    assert clock.due(LONDON, 30 * M) == utc(2026, 6, 10, 8, 30)
    assert clock.due(LONDON, H) == utc(2026, 6, 10, 9)
    assert clock.due(LONDON, H + US) is None
    assert clock.due(LONDON, timedelta(0)) == WED_0900


def test_clock_events_are_idempotent_and_ordered() -> None:
    clock = SlaClock.started(datetime(2026, 6, 10, 9, tzinfo=LONDON_TZ))
    assert clock.started_at == WED_0900 and clock.started_at.tzinfo is UTC
    paused = clock.paused(utc(2026, 6, 10, 9))
    assert paused.paused(utc(2026, 6, 10, 10)) == paused
    assert clock.resumed(utc(2026, 6, 10, 10)) == clock
    with pytest.raises(ValueError, match="before the clock's last event"):
        paused.resumed(utc(2026, 6, 10, 8, 30))
    with pytest.raises(ValueError, match="before the clock started"):
        clock.elapsed(LONDON, utc(2026, 6, 10, 7))
    with pytest.raises(ValueError, match="must be in order"):
        SlaClock(WED_0900, ((utc(2026, 6, 10, 10), utc(2026, 6, 10, 9)),))
    with pytest.raises(ValueError, match="aware datetime"):
        SlaClock.started(datetime(2026, 6, 10, 9))
    with pytest.raises(ValueError, match="must not be negative"):
        clock.due(LONDON, -US)


@FUZZ
@given(calendars, instants, durations, durations, st.floats(0, 1), durations)
def test_due_moves_later_by_exactly_the_paused_business_time(
    calendar: BusinessCalendar,
    start: datetime,
    target: timedelta,
    pause_length: timedelta,
    where: float,
    later: timedelta,
) -> None:
    clock = SlaClock.started(start)
    due = clock.due(calendar, target)
    assert due == calendar.add(start, target)
    # A pause that begins before the target is reached.
    pause_start = start + (due - start) * where
    assume(pause_start < due)
    pause_end = pause_start + pause_length
    paused = clock.paused(pause_start).resumed(pause_end)
    paused_business = calendar.between(pause_start, pause_end)
    assert paused.due(calendar, target) == calendar.add(due, paused_business)
    now = pause_end + later
    assert paused.elapsed(calendar, now) == calendar.between(start, now) - paused_business


def test_a_calendar_closed_for_years_says_so_instead_of_looping() -> None:
    mondays = frozenset(date(2026, 1, 5) + timedelta(weeks=n) for n in range(600))
    closed = BusinessCalendar("UTC", WeeklyHours.parse("mon 09:00-10:00"), holidays=mondays)
    with pytest.raises(ValueError, match="closed for 3660 days in a row"):
        closed.next_open(utc(2026, 1, 1))
    # Closed for under ten years is only a long wait: 500 Mondays closed, then it opens.
    fewer = frozenset(d for d in mondays if d < date(2026, 1, 5) + timedelta(weeks=500))
    closed = BusinessCalendar("UTC", WeeklyHours.parse("mon 09:00-10:00"), holidays=fewer)
    assert closed.add(utc(2026, 1, 1), H) == utc(2035, 8, 6, 10)
