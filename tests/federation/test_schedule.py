"""The periodic pull keeps going whatever a round does."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from accord.federation.schedule import PeriodicSync
from accord.federation.sync import PullResult


class FakeFederation:
    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.rounds = 0
        self.done = threading.Event()

    def sync(self) -> list[PullResult]:
        self.rounds += 1
        outcome = self.outcomes[min(self.rounds, len(self.outcomes)) - 1]
        if self.rounds >= len(self.outcomes):
            self.done.set()
        if isinstance(outcome, Exception):
            raise outcome
        return list(outcome)


def test_rounds_continue_after_failures(caplog: pytest.LogCaptureFixture) -> None:
    failed = PullResult("sha256:" + "a" * 64, "ed25519:peer", error="connection refused")
    fake = FakeFederation([RuntimeError("database is locked"), [failed], []])
    schedule = PeriodicSync(fake, interval=0.01)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="accord.sync"):
        schedule.start()
        assert fake.done.wait(10), "the schedule stopped after a failing round"
        schedule.stop()
    assert fake.rounds >= 3
    assert "periodic sync round failed" in caplog.text
    assert "connection refused" in caplog.text


def test_interval_zero_means_on_demand_only() -> None:
    fake = FakeFederation([[]])
    schedule = PeriodicSync(fake, interval=0)  # type: ignore[arg-type]
    schedule.start()
    schedule.stop()
    assert fake.rounds == 0
