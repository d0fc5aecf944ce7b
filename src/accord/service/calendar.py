"""Business hours, holidays and time zones, for SLA targets and timers.

Pure: no I/O and no clock reads. Every function is handed the instants it needs, takes
aware datetimes (any zone) and returns aware datetimes in UTC.

- `WeeklyHours`: opening intervals per weekday in local wall-clock time, parsed from a
  compact spec such as ``"mon-fri 09:00-17:30; sat 10:00-14:00"``.
- `BusinessCalendar`: weekly hours in an IANA time zone, closed on public holidays (from the
  `holidays` package, for a country and optional subdivision) and on explicit dates. It
  answers `is_open`, `next_open`, `add` (when has this much business time elapsed) and
  `between` (how much business time lies between two instants).
- `SlaClock`: a value object that accumulates business time across pauses, so that the
  time waiting on the customer does not count against a response target.

How time is measured
--------------------
Business time is real elapsed time (seconds of UTC) inside opening intervals. The
boundaries of an interval are local wall-clock times, turned into instants with zoneinfo,
so a 09:00-17:30 day is 8.5 hours on the days the clocks change too, and a 00:00-24:00 day
is 23 or 25 hours on those days.

A boundary wall-clock time T on a local date resolves to **the first instant at which the
local clock reads T or later**:

- an ordinary time is itself;
- an ambiguous time (clocks going back, T happens twice) is its first occurrence, so the
  repeated hour lies inside an interval that spans it (01:30-02:30 in London on the day
  summer time ends is two real hours);
- a nonexistent time (clocks going forward, T is skipped) is the instant the clocks jump,
  so an interval inside the skipped hour is empty, and one that starts in it opens when
  the clocks jump (01:30-03:00 in London on the day summer time starts is one real hour,
  02:00-03:00 BST).

This mapping never goes backwards, so intervals stay in order and never overlap, also
across midnight and in zones that skip or repeat a whole day.

A holiday closes its whole local date. 24:00 as an end means the next local midnight.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

__all__ = ["BusinessCalendar", "SlaClock", "WeeklyHours"]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_INDEX = {name: i for names in (DAY_NAMES, _FULL_DAY_NAMES) for i, name in enumerate(names)}
MINUTES_PER_DAY = 24 * 60
# After this many local days in a row without any opening, stop looking: the calendar is
# closed for good (e.g. explicit holidays covering years) and waiting would never end.
_MAX_CLOSED_DAYS = 3660
_DAY_CACHE_SIZE = 4096
_TIME = re.compile(r"(\d{1,2}):(\d{2})")

Interval = tuple[int, int]
"""An opening interval in minutes after local midnight: start inclusive, end exclusive,
0 <= start < end <= 1440 (1440 is 24:00, the next midnight)."""

Span = tuple[datetime, datetime]


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_time(text: str, part: str) -> int:
    m = _TIME.fullmatch(text)
    if m is None:
        raise ValueError(f"bad time {text!r} in {part!r}: expected HH:MM")
    hours, minutes = int(m.group(1)), int(m.group(2))
    if minutes >= 60 or hours > 24 or (hours == 24 and minutes != 0):
        raise ValueError(f"bad time {text!r} in {part!r}: 00:00 to 24:00")
    return hours * 60 + minutes


def _parse_days(text: str, part: str) -> list[int]:
    days: list[int] = []
    for item in text.split(","):
        ends = item.split("-")
        if len(ends) > 2 or not all(ends):
            raise ValueError(f"bad days {item!r} in {part!r}: expected e.g. mon, mon-fri")
        for name in ends:
            if name not in _DAY_INDEX:
                raise ValueError(
                    f"bad day {name!r} in {part!r}: expected one of {', '.join(DAY_NAMES)}"
                )
        first, last = _DAY_INDEX[ends[0]], _DAY_INDEX[ends[-1]]
        # A range may wrap past Sunday: "sun-thu" is Sunday to Thursday.
        days.extend((first + i) % 7 for i in range((last - first) % 7 + 1))
    return days


def _merge(intervals: Iterable[Interval], where: str) -> tuple[Interval, ...]:
    """Sorted, with touching intervals joined; overlapping ones are an error."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start < merged[-1][1]:
            prev = merged[-1]
            raise ValueError(
                f"overlapping hours on {where}: {_hhmm(prev[0])}-{_hhmm(prev[1])} "
                f"and {_hhmm(start)}-{_hhmm(end)}"
            )
        if merged and start == merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


@dataclass(frozen=True)
class WeeklyHours:
    """Opening intervals for each weekday, Monday first, in local wall-clock time.

    ``days[0]`` is Monday's intervals, ``days[6]`` Sunday's, each a sorted tuple of
    non-touching ``(start, end)`` minutes after midnight (see `Interval`). Build one with
    `parse` or `always`; `str()` gives back a spec that parses to an equal value.
    """

    days: tuple[tuple[Interval, ...], ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError(f"weekly hours need 7 days, Monday first; got {len(self.days)}")
        for name, intervals in zip(DAY_NAMES, self.days, strict=True):
            for start, end in intervals:
                if not 0 <= start < end <= MINUTES_PER_DAY:
                    raise ValueError(
                        f"bad interval on {name}: {start}-{end} minutes; "
                        "need 0 <= start < end <= 1440"
                    )
            if _merge(intervals, name) != intervals:
                raise ValueError(f"intervals on {name} must be sorted and not touch: {intervals}")
        if not any(self.days):
            raise ValueError("weekly hours must open at least once a week")

    @classmethod
    def parse(cls, spec: str) -> WeeklyHours:
        """Parse ``"mon-fri 09:00-17:30; sat 10:00-14:00"``.

        Parts are separated by ``;``. Each is days then intervals: days are names (``mon`` or
        ``monday``, any case), comma lists and ranges (``mon,wed,fri``, ``mon-fri``,
        ``sun-thu`` wraps); intervals are ``HH:MM-HH:MM``, several separated by commas or
        spaces, end after start, ``24:00`` for midnight at the end of the day. A day may
        appear in several parts; its intervals are combined, touching ones joined, and
        overlapping ones rejected. Days not named are closed. Raises `ValueError` naming
        the bad part.
        """
        per_day: list[list[Interval]] = [[] for _ in range(7)]
        for raw in spec.split(";"):
            part = raw.strip()
            if not part:
                continue
            words = part.lower().split(None, 1)
            if len(words) < 2:
                raise ValueError(f"no hours in {part!r}: expected e.g. 'mon-fri 09:00-17:30'")
            days = _parse_days(words[0], part)
            tokens = re.sub(r"\s*-\s*", "-", words[1]).replace(",", " ").split()
            for token in tokens:
                ends = token.split("-")
                if len(ends) != 2:
                    raise ValueError(f"bad interval {token!r} in {part!r}: expected HH:MM-HH:MM")
                start, end = _parse_time(ends[0], part), _parse_time(ends[1], part)
                if end <= start:
                    raise ValueError(
                        f"bad interval {token!r} in {part!r}: must end after it starts "
                        "(overnight hours are two intervals, one ending at 24:00)"
                    )
                for day in days:
                    per_day[day].append((start, end))
        if not any(per_day):
            raise ValueError(f"no opening hours in {spec!r}")
        return cls(tuple(_merge(ivs, DAY_NAMES[i]) for i, ivs in enumerate(per_day)))

    @classmethod
    def always(cls) -> WeeklyHours:
        """Open every day 00:00-24:00."""
        return cls((((0, MINUTES_PER_DAY),),) * 7)

    @property
    def is_always(self) -> bool:
        return all(ivs == ((0, MINUTES_PER_DAY),) for ivs in self.days)

    def __str__(self) -> str:
        groups: dict[tuple[Interval, ...], list[int]] = {}
        for day, intervals in enumerate(self.days):
            if intervals:
                groups.setdefault(intervals, []).append(day)
        parts = []
        for intervals, days in groups.items():
            runs: list[list[int]] = []
            for day in days:
                if runs and runs[-1][-1] == day - 1:
                    runs[-1].append(day)
                else:
                    runs.append([day])
            names = ",".join(
                DAY_NAMES[r[0]] if len(r) == 1 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}"
                for r in runs
            )
            hours = ",".join(f"{_hhmm(s)}-{_hhmm(e)}" for s, e in intervals)
            parts.append(f"{names} {hours}")
        return "; ".join(parts)


def _to_utc(at: datetime, name: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {at.isoformat()}")
    return at.astimezone(UTC)


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekly hours in an IANA time zone, closed on holidays.

    ``holidays`` are explicit local dates; ``country`` (ISO 3166 code, e.g. ``"GB"``) and
    ``subdivision`` (e.g. ``"ENG"``) add that place's public holidays, observed days
    included, from the `holidays` package, computed a year at a time as dates are asked
    about. Unknown zones, countries or subdivisions raise `ValueError`. See the module
    docstring for how wall-clock boundaries become instants.
    """

    timezone: str
    hours: WeeklyHours
    holidays: frozenset[date] = frozenset()
    country: str | None = None
    subdivision: str | None = None
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _country_years: dict[int, frozenset[date]] = field(init=False, repr=False, compare=False)
    _day_spans: dict[date, tuple[Span, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {self.timezone!r}") from e
        dates = frozenset(self.holidays)
        for d in dates:
            if not isinstance(d, date) or isinstance(d, datetime):
                raise ValueError(f"holidays must be dates, got {d!r}")
        if self.subdivision is not None and self.country is None:
            raise ValueError(f"subdivision {self.subdivision!r} needs a country")
        if self.country is not None:
            try:
                holidays_lib.country_holidays(self.country, subdiv=self.subdivision, years=[])
            except NotImplementedError as e:
                raise ValueError(f"no holidays known for {self.country!r}: {e}") from e
        object.__setattr__(self, "holidays", dates)
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_country_years", {})
        object.__setattr__(self, "_day_spans", {})

    @classmethod
    def always(cls, timezone: str = "UTC") -> BusinessCalendar:
        """Open around the clock, no holidays: `add` and `between` are plain arithmetic."""
        return cls(timezone, WeeklyHours.always())

    @property
    def _is_always(self) -> bool:
        return self.hours.is_always and not self.holidays and self.country is None

    def is_holiday(self, day: date) -> bool:
        """Whether the local date `day` is closed as a holiday."""
        if day in self.holidays:
            return True
        if self.country is None:
            return False
        year = self._country_years.get(day.year)
        if year is None:
            found = holidays_lib.country_holidays(
                self.country, subdiv=self.subdivision, years=day.year
            )
            year = frozenset(found.keys())
            self._country_years[day.year] = year
        return day in year

    def is_open(self, at: datetime) -> bool:
        """Open at `at`: intervals include their start and exclude their end."""
        at = _to_utc(at, "at")
        if self._is_always:
            return True
        start, _ = next(self._spans_after(at))
        return start <= at

    def next_open(self, at: datetime) -> datetime:
        """The first open instant at or after `at` (`at` itself, in UTC, when open)."""
        at = _to_utc(at, "at")
        if self._is_always:
            return at
        start, _ = next(self._spans_after(at))
        return max(start, at)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant by which `duration` of business time has elapsed since
        `start`. A zero duration gives `start`; otherwise the result is open time or the
        end of an interval (closing time itself, not the next opening)."""
        start = _to_utc(start, "start")
        if duration < timedelta(0):
            raise ValueError(f"duration must not be negative, got {duration}")
        if self._is_always or not duration:
            return start + duration
        remaining = duration
        for a, b in self._spans_after(start):
            a = max(a, start)
            if remaining <= b - a:
                return a + remaining
            remaining -= b - a
        raise AssertionError("unreachable: _spans_after never ends")  # pragma: no cover

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time in ``[start, end)``; `end` before `start` is a `ValueError`."""
        start, end = _to_utc(start, "start"), _to_utc(end, "end")
        if end < start:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        if self._is_always:
            return end - start
        total = timedelta(0)
        if end == start:
            return total
        for a, b in self._spans_after(start):
            if a >= end:
                break
            total += min(b, end) - max(a, start)
        return total

    # Internals.

    def _spans_after(self, at: datetime) -> Iterator[Span]:
        """Opening spans in UTC, in order, from the first one that ends after `at`."""
        # From the day before, in case `at` reads as an earlier local date than the
        # spans it falls in (zones that set clocks back across midnight).
        day = at.astimezone(self._zone).date() - timedelta(days=1)
        closed_days = 0
        while True:
            spans = self._spans_on(day)
            if spans:
                closed_days = 0
            else:
                closed_days += 1
                if closed_days > _MAX_CLOSED_DAYS:
                    raise ValueError(
                        f"the calendar is closed for {_MAX_CLOSED_DAYS} days in a row up to {day}"
                    )
            for span in spans:
                if span[1] > at:
                    yield span
            day += timedelta(days=1)

    def _spans_on(self, day: date) -> tuple[Span, ...]:
        cached = self._day_spans.get(day)
        if cached is not None:
            return cached
        spans: list[Span] = []
        if not self.is_holiday(day):
            midnight = datetime.combine(day, time())
            for s, e in self.hours.days[day.weekday()]:
                a = self._resolve(midnight + timedelta(minutes=s))
                b = self._resolve(midnight + timedelta(minutes=e))
                if b > a:
                    spans.append((a, b))
        if len(self._day_spans) >= _DAY_CACHE_SIZE:
            self._day_spans.clear()
        self._day_spans[day] = result = tuple(spans)
        return result

    def _reading(self, at: datetime) -> datetime:
        return at.astimezone(self._zone).replace(tzinfo=None)

    def _resolve(self, wall: datetime) -> datetime:
        """The first instant at which the local clock reads `wall` (naive) or later."""
        candidates = [wall.replace(tzinfo=self._zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
        real = [c for c in candidates if self._reading(c) == wall]
        if real:  # ordinary, or ambiguous (then the first occurrence)
            return min(real)
        # Skipped by a jump forward: the two folds use the offsets either side of the jump,
        # so the jump lies between them; find the first instant reading `wall` or later.
        lo, hi = min(candidates), max(candidates)
        tick = timedelta(microseconds=1)
        low, high = 0, (hi - lo) // tick  # reading(lo) < wall <= reading(hi)
        while high - low > 1:
            mid = (low + high) // 2
            if self._reading(lo + mid * tick) >= wall:
                high = mid
            else:
                low = mid
        return lo + high * tick


@dataclass(frozen=True)
class SlaClock:
    """Business time accumulated towards a target, stopped while paused.

    Start one when the clock starts (a case opens, a customer writes), pause it while
    waiting on the customer, resume when they answer. Immutable: each event returns a new
    clock. Pausing a paused clock or resuming a running one returns it unchanged, so a
    repeated event is harmless; an event earlier than the last one is a `ValueError`.
    All instants are kept in UTC.
    """

    started_at: datetime
    pauses: tuple[tuple[datetime, datetime], ...] = ()
    """Finished pauses, as (paused, resumed) instants, in order."""
    paused_at: datetime | None = None
    """When the current pause began, or None while running."""

    def __post_init__(self) -> None:
        started = _to_utc(self.started_at, "started_at")
        pauses = tuple((_to_utc(a, "pause start"), _to_utc(b, "pause end")) for a, b in self.pauses)
        paused_at = None if self.paused_at is None else _to_utc(self.paused_at, "paused_at")
        instants = [started, *(t for p in pauses for t in p)]
        if paused_at is not None:
            instants.append(paused_at)
        if any(b < a for a, b in itertools.pairwise(instants)):
            raise ValueError("clock events must be in order: start, then pause, resume, ...")
        object.__setattr__(self, "started_at", started)
        object.__setattr__(self, "pauses", pauses)
        object.__setattr__(self, "paused_at", paused_at)

    @classmethod
    def started(cls, at: datetime) -> SlaClock:
        return cls(at)

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def last_event(self) -> datetime:
        if self.paused_at is not None:
            return self.paused_at
        return self.pauses[-1][1] if self.pauses else self.started_at

    def paused(self, at: datetime) -> SlaClock:
        at = self._check_order(at)
        if self.paused_at is not None:
            return self
        return SlaClock(self.started_at, self.pauses, at)

    def resumed(self, at: datetime) -> SlaClock:
        at = self._check_order(at)
        if self.paused_at is None:
            return self
        return SlaClock(self.started_at, (*self.pauses, (self.paused_at, at)))

    def elapsed(self, calendar: BusinessCalendar, now: datetime) -> timedelta:
        """Business time counted from the start to `now`, pauses excluded."""
        now = _to_utc(now, "now")
        if now < self.started_at:
            raise ValueError(f"now {now.isoformat()} is before the clock started")
        total = timedelta(0)
        for start, end in self._running():
            stop = now if end is None else min(end, now)
            if stop > start:
                total += calendar.between(start, stop)
        return total

    def due(self, calendar: BusinessCalendar, target: timedelta) -> datetime | None:
        """The instant `target` of business time is reached, counting no paused time.

        None while paused, unless the target was already reached before the pause began:
        then the instant it was reached, which no later pause can move.
        """
        if target < timedelta(0):
            raise ValueError(f"target must not be negative, got {target}")
        remaining = target
        for start, end in self._running():
            if end is None:
                return calendar.add(start, remaining)
            run = calendar.between(start, end)
            if remaining <= run:
                return calendar.add(start, remaining)
            remaining -= run
        return None

    def _running(self) -> Iterator[tuple[datetime, datetime | None]]:
        """The stretches the clock ran, in order; the last is open-ended if running."""
        start = self.started_at
        for paused, resumed in self.pauses:
            yield start, paused
            start = resumed
        yield start, self.paused_at

    def _check_order(self, at: datetime) -> datetime:
        at = _to_utc(at, "at")
        if at < self.last_event:
            raise ValueError(
                f"{at.isoformat()} is before the clock's last event {self.last_event.isoformat()}"
            )
        return at
