"""What the auth tests share: a password that meets the policy and a clock tests move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

PASSWORD = "correct horse battery staple"


class FakeClock:
    """An aware clock that only moves when a test says so (tests never sleep)."""

    def __init__(self, start: datetime = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)
