"""Rate limits per API token, session member and case link: a token bucket each, 429 with
an honest Retry-After, on a monotonic clock the tests move."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from accord.api.app import create_app
from accord.api.auth import rate_limiter
from accord.api.ratelimit import ENV, RateLimiter, configure
from accord.node import Node
from tests.clocks import TickingClock, cheap_passwords

CASEWORK = ["cases:read", "cases:write"]


@dataclass
class Monotonic:
    at: float = 500.0

    def __call__(self) -> float:
        return self.at


@dataclass
class Limited:
    client: TestClient
    clock: Monotonic
    tom: dict[str, str]
    tom_again: dict[str, str]  # a second token of the same member
    case_id: str
    priya: dict[str, str]


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Limited]:
    """30 requests a minute (one every 2 s), bursts of 3."""
    node = Node.init(tmp_path / "node", name="Northwind Broadband")
    clock = Monotonic()
    app = create_app(
        node,
        rate_limit=RateLimiter(30, burst=3, clock=clock),
        now=TickingClock(),
        passwords=cheap_passwords(),
    )
    services = app.state.services
    tom = services.members.create("tom", "correct horse battery", role="agent", display_name="Tom")
    first = services.tokens.create(tom.id, "one", CASEWORK).token
    second = services.tokens.create(tom.id, "two", CASEWORK).token
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {first}"}
        opened = client.post(
            "/api/v1/cases",
            headers=headers,
            json={"title": "Broadband", "customer": {"id": "priya", "name": "Priya"}},
        )
        link = client.post(
            f"/api/v1/cases/{opened.json()['case']}/portal-links",
            headers=headers,
            json={"party": "priya", "identity": "priya@example.com"},
        )
        clock.at += 60  # a full bucket again
        yield Limited(
            client,
            clock,
            headers,
            {"Authorization": f"Bearer {second}"},
            opened.json()["case"],
            {"Authorization": f"Portal {link.json()['token']}"},
        )
    node.close()


def statuses(
    client: TestClient, headers: dict[str, str], n: int, url: str = "/api/v1/cases"
) -> list[int]:
    return [client.get(url, headers=headers).status_code for _ in range(n)]


def test_a_burst_then_429_with_an_honest_retry_after(limited: Limited) -> None:
    client, clock = limited.client, limited.clock
    assert statuses(client, limited.tom, 3) == [200, 200, 200]
    refused = client.get("/api/v1/cases", headers=limited.tom)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "2"
    assert "30 requests a minute" in refused.json()["detail"]
    clock.at += 1.9
    assert client.get("/api/v1/cases", headers=limited.tom).status_code == 429
    retry = int(client.get("/api/v1/cases", headers=limited.tom).headers["Retry-After"])
    assert retry == 1  # 1.9 s of the 2 s have passed: the answer rounds up, never down
    clock.at += retry
    assert statuses(client, limited.tom, 2) == [200, 429]
    clock.at += 60
    assert statuses(client, limited.tom, 4) == [200, 200, 200, 429]  # never more than the burst


def test_a_refused_request_changes_nothing(limited: Limited) -> None:
    client, case = limited.client, f"/api/v1/cases/{limited.case_id}"
    before = client.get(f"{case}/events", headers=limited.tom).json()
    statuses(limited.client, limited.tom, 2)
    refused = client.post(f"{case}/messages", headers=limited.tom, json={"text": "hello"})
    assert refused.status_code == 429
    limited.clock.at += 60
    assert client.get(f"{case}/events", headers=limited.tom).json() == before


def test_each_credential_has_its_own_bucket(limited: Limited) -> None:
    client = limited.client
    assert statuses(client, limited.tom, 4)[-1] == 429
    # another token of the same member, the customer's case link, and a session
    assert statuses(client, limited.tom_again, 3) == [200, 200, 200]
    assert statuses(client, limited.priya, 3, "/api/v1/portal") == [200, 200, 200]
    assert client.get("/api/v1/portal", headers=limited.priya).status_code == 429
    login = client.post(
        "/api/v1/session", json={"username": "tom", "password": "correct horse battery"}
    )
    assert login.status_code == 200  # logging in is not counted
    assert statuses(client, {}, 4, "/api/v1/me") == [200, 200, 200, 429]
    assert client.get("/api/v1/cases", headers=limited.tom).status_code == 429


def test_health_ready_and_unauthenticated_requests_are_not_limited(limited: Limited) -> None:
    client = limited.client
    statuses(client, limited.tom, 4)
    for _ in range(20):
        assert client.get("/health", headers=limited.tom).status_code == 200
        assert client.get("/ready").status_code == 200
    # an unknown token is refused as such, and does not spend anyone's bucket
    forged = {"Authorization": "Bearer acc_forged"}
    assert statuses(client, forged, 5) == [401] * 5
    assert client.get("/openapi.json").status_code == 200


def test_configured_by_argument_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert configure(None, {}).per_minute == 600  # type: ignore[union-attr]
    assert configure(None, {ENV: "120"}).burst == 120  # type: ignore[union-attr]
    assert configure(None, {ENV: "0"}) is None and configure(0) is None
    assert configure(45).per_minute == 45  # type: ignore[union-attr]
    for wrong in ("fast", "-1"):
        with pytest.raises(ValueError, match=r"rate limit|ACCORD_RATE_LIMIT"):
            configure(None, {ENV: wrong})

    node = Node.init(tmp_path / "node", name="Northwind Broadband")
    monkeypatch.setenv(ENV, "2")
    app = create_app(node, now=TickingClock(), passwords=cheap_passwords())
    services = app.state.services
    tom = services.members.create("tom", "correct horse battery", role="agent", display_name="Tom")
    headers = {"Authorization": f"Bearer {services.tokens.create(tom.id, 't', CASEWORK).token}"}
    with TestClient(app) as client:
        assert statuses(client, headers, 3) == [200, 200, 429]
        # an application without a limiter (not made by create_app) takes the environment's
        del app.state.rate_limiter
        monkeypatch.setenv(ENV, "0")
        assert rate_limiter(app) is None
        assert statuses(client, headers, 5) == [200] * 5
    node.close()


@given(
    per_minute=st.integers(1, 10_000),
    burst=st.integers(1, 50),
    steps=st.lists(st.floats(0, 30, allow_nan=False), max_size=60),
)
def test_retry_after_is_honest(per_minute: int, burst: int, steps: list[float]) -> None:
    """Whenever a request is refused, one made Retry-After seconds later is admitted."""
    clock = Monotonic()
    limiter = RateLimiter(per_minute, burst=burst, clock=clock)
    for step in steps:
        clock.at += step
        wait = limiter.take("caller")
        if wait:
            assert wait >= 1
            clock.at += wait
            assert limiter.take("caller") == 0


def test_full_buckets_are_forgotten() -> None:
    clock = Monotonic()
    limiter = RateLimiter(60, burst=2, clock=clock)
    for n in range(10_001):
        limiter.take(f"token:{n}")
    clock.at += 10
    limiter.take("token:new")
    assert len(limiter._buckets) == 1
