"""The injectable clock of ``accord.auth``, and UTC normalisation for stored times.

Expiry is the heart of credentials, so no logic here calls ``datetime.now()``: every
store takes ``now``, a callable returning an aware datetime, and tests move it forward
instead of sleeping. Times are stored in UTC because SQLite keeps ``DateTime`` as text
without an offset: UTC on the way in and ``aware`` on the way out make both backends
compare and return the same instants.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real time, in UTC."""
    return datetime.now(UTC)


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is a programming error, never guessed at."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times in accord.auth must be timezone-aware")
    return moment.astimezone(UTC)


def aware(stored: datetime) -> datetime:
    """A time read back from the database, as an aware UTC datetime on both backends."""
    if stored.tzinfo is None:  # SQLite: stored as UTC text without an offset
        return stored.replace(tzinfo=UTC)
    return stored.astimezone(UTC)


def now_utc(clock: Clock) -> datetime:
    """Read ``clock`` once and normalise it, so one operation uses one instant."""
    return utc(clock())
