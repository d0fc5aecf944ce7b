"""The clocks tests give to Accord, so that no test meets the real calendar.

Every application, service and store a test builds takes ``now=`` from here (or from a
clock of its own module built the same way). ``tests/test_clock_guard.py`` fails the suite
when a test builds the application without one, and CI runs the clock-sensitive modules a
second time with the process clock a year ahead (``ACCORD_TEST_CLOCK_OFFSET_DAYS``, see
``tests/conftest.py``) to show that none of them depends on today's date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from accord.auth.passwords import Passwords

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
"""A Tuesday morning in the scenarios' season; every literal date in a test is near it."""


class FakeClock:
    """An aware clock that stands still until a test moves it (tests never sleep)."""

    def __init__(self, start: datetime = START) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> datetime:
        self.moment += timedelta(**delta)
        return self.moment


class TickingClock:
    """A clock that starts at ``start`` and runs at the speed of the real one.

    For tests against real servers (browsers, subprocess peers) where time must pass on
    its own, without the answer depending on the real date.
    """

    def __init__(self, start: datetime = START) -> None:
        self.start = start
        self.origin = datetime.now(UTC)
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return self.start + (datetime.now(UTC) - self.origin) + self.offset

    def advance(self, **delta: float) -> datetime:
        self.offset += timedelta(**delta)
        return self()


def cheap_passwords() -> Passwords:
    """argon2id at its cheapest: a member's login in a test costs microseconds, not 0.4 s."""
    return Passwords(PasswordHasher.from_parameters(CHEAPEST))
