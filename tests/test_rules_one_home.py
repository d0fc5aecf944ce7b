"""Rules written once (issue 24, item 5), checked at every entry point that applies them.

Each test goes through the real entry point — the REST API, the case page, the command
line — so putting a private copy of a rule back into one of them (or dropping the rule
there) fails here, not only in the service's own tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from accord.api import connectors as api_connectors
from accord.auth.portal import PortalLinks, load_or_create_secret
from accord.cli import app as cli_app
from accord.node import Node
from accord.service import replies
from accord.service.errors import Forbidden, NotFound
from accord.service.links import DEFAULT_LINK_TTL, issue_case_link
from accord.store.tables import channel_messages
from accord.web import pages
from tests.clocks import FakeClock
from tests.web.conftest import Desk, make_desk
from tests.web.test_pages import login

SUPPLIER = "northwind-broadband"  # the node's own party: it signs for itself, nobody "hosts" it


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def desk(tmp_path: Path, clock: FakeClock) -> Iterator[Desk]:
    made = make_desk(tmp_path / "northwind", now=clock)
    yield made
    made.services.close()
    made.node.close()


def hosted_party(desk: Desk, case_id: str) -> str:
    state = desk.services.negotiation.state(case_id)
    return next(p for p, v in state["parties"].items() if v.get("hosted_by"))


def bearer(desk: Desk) -> dict[str, str]:
    tom = desk.services.members.by_username("tom")
    token = desk.services.tokens.create(tom.id, "tests", ["cases:read", "cases:write"])
    return {"Authorization": f"Bearer {token.token}"}


# -- "portal links only for a party this node hosts", one default lifetime ---------------


def test_the_service_refuses_a_party_it_does_not_host_and_applies_one_default(
    desk: Desk, clock: FakeClock
) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    state = desk.services.negotiation.state(case_id)
    host = desk.node.key.public
    links = desk.services.links
    with pytest.raises(Forbidden, match="not hosted by this node"):
        issue_case_link(links, state, SUPPLIER, "x@example.com", host=host)
    with pytest.raises(NotFound, match="has no party 'carrier'"):
        issue_case_link(links, state, "carrier", "x@example.com", host=host)
    customer = hosted_party(desk, case_id)
    made = issue_case_link(links, state, customer, "dana@example.net", host=host)
    assert made.expires_at == clock() + DEFAULT_LINK_TTL
    assert made.path == f"/portal/{made.token}"
    short = issue_case_link(
        links, state, customer, "dana@example.net", host=host, ttl=timedelta(hours=2)
    )
    assert short.expires_at == clock() + timedelta(hours=2)


def test_the_api_refuses_a_party_it_does_not_host(desk: Desk, clock: FakeClock) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    client, headers = TestClient(desk.app), bearer(desk)
    url = f"/api/v1/cases/{case_id}/portal-links"
    refused = client.post(url, headers=headers, json={"party": SUPPLIER, "identity": "x@y.example"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["field"] == "party" and "token" not in refused.json()
    unknown = client.post(
        url, headers=headers, json={"party": "carrier", "identity": "x@y.example"}
    )
    assert unknown.status_code == 404
    customer = hosted_party(desk, case_id)
    made = client.post(url, headers=headers, json={"party": customer, "identity": "d@x.example"})
    assert made.status_code == 201, made.text
    assert made.json()["expires"] == (clock() + DEFAULT_LINK_TTL).isoformat()
    hours = client.post(
        url, headers=headers, json={"party": customer, "identity": "d@x.example", "hours": 3}
    )
    assert hours.json()["expires"] == (clock() + timedelta(hours=3)).isoformat()


def test_the_case_page_refuses_a_party_it_does_not_host(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    client = TestClient(desk.app)
    csrf = login(client)
    for action in ("portal-link", "portal-link/send"):
        refused = client.post(f"/cases/{case_id}/{action}", data={"csrf": csrf, "party": SUPPLIER})
        assert refused.status_code == 403, (action, refused.status_code)
        assert "not hosted by this node" in refused.text
        assert not re.search(r"/portal/[A-Za-z0-9_-]+\.", refused.text), action
    timeline = desk.services.negotiation.cases.timeline(case_id, limit=5)
    assert not any("/portal/" in str(e.body.get("text", "")) for e in timeline)
    made = client.post(
        f"/cases/{case_id}/portal-link",
        data={"csrf": csrf, "party": hosted_party(desk, case_id)},
    )
    assert made.status_code == 200 and re.search(r"/portal/[A-Za-z0-9_-]+\.", made.text)
    sent = client.post(
        f"/cases/{case_id}/portal-link/send",
        data={"csrf": csrf, "party": hosted_party(desk, case_id)},
    )
    assert f"valid for {DEFAULT_LINK_TTL.days} days" in str(
        desk.services.negotiation.cases.timeline(case_id, limit=1)[0].body["text"]
    ), sent.text


def test_the_command_line_refuses_a_party_it_does_not_host(tmp_path: Path) -> None:
    runner = CliRunner()
    where = ["--data", str(tmp_path / "node")]

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, [*args, *where], env={"COLUMNS": "200"})
        assert result.exit_code == code, result.output
        return result.output

    run("init", "--name", "Northwind Broadband")
    case_id = run("case", "new", "Broadband", "--customer", "Priya Shah").strip()
    link = ["portal", "link", case_id, "--identity", "p@x.example", "--party"]
    refused = run(*link, SUPPLIER, code=1)
    assert "not hosted by this node" in refused and "/portal/" not in refused
    assert "has no party 'carrier'" in run(*link, "carrier", code=1)
    before = datetime.now(UTC)  # the command runs on the system clock: compare lifetimes
    made = runner.invoke(cli_app, [*link, "customer", *where], env={"COLUMNS": "200"})
    after = datetime.now(UTC)
    assert made.exit_code == 0, made.output
    node = Node.open(tmp_path / "node")
    try:
        grant = PortalLinks(load_or_create_secret(node.db)).verify(
            made.stdout.strip().removeprefix("/portal/")
        )
    finally:
        node.close()
    since = before.replace(microsecond=0) + DEFAULT_LINK_TTL
    assert since <= grant.expires_at <= after + DEFAULT_LINK_TTL


# -- one token bucket for the API's callers and federation's peers ------------------------


def test_one_rate_limiter_serves_the_api_and_federation() -> None:
    import accord.api.ratelimit
    import accord.federation.server
    from accord.ops.ratelimit import RateLimiter

    assert accord.api.ratelimit.RateLimiter is RateLimiter
    assert accord.federation.server.RateLimiter is RateLimiter
    now = [0.0]
    peer = RateLimiter(60, clock=lambda: now[0])  # a unit a second
    assert peer.take("ed25519:a", 50) == 0
    assert peer.take("ed25519:a", 20) == 10  # 10 left: 10 more seconds for 20
    now[0] += 10
    assert peer.take("ed25519:a", 20) == 0
    assert peer.take("ed25519:b") == 0  # another key, its own bucket


# -- the reply channel: the one the customer last wrote on, chosen in one place -----------


def outgoing(desk: Desk, case_id: str) -> list[str]:
    with desk.node.db.read() as conn:
        rows = conn.execute(
            sa.select(channel_messages.c.channel)
            .where(channel_messages.c.case_id == case_id, channel_messages.c.direction == "out")
            .order_by(channel_messages.c.id)
        )
        return [str(r.channel) for r in rows]


def test_a_reply_without_a_channel_goes_where_the_customer_last_wrote(desk: Desk) -> None:
    assert api_connectors.reply_on_channel is replies.reply_on_channel
    assert pages.reply_on_channel is replies.reply_on_channel
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    before = outgoing(desk, case_id)
    answered = TestClient(desk.app).post(
        f"/api/v1/cases/{case_id}/reply", headers=bearer(desk), json={"text": "On it."}
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["channel"] == "email"
    client = TestClient(desk.app)
    csrf = login(client)
    page = client.post(
        f"/cases/{case_id}/reply", data={"csrf": csrf, "text": "An engineer is booked."}
    )
    assert "by email." in page.text
    assert outgoing(desk, case_id)[len(before) :] == ["email", "email"]


# -- the mail log: one query behind the API and the command line -------------------------


def test_the_mail_log_is_one_query_for_the_api_and_the_command_line(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.channels.email.mailchannel import MailChannel

    first = desk.mail("Broadband down", "No sync light since Monday.")
    desk.mail("Invoice wrong", "Charged twice.", sender="sam@example.net", name="Sam Hill")
    asked: list[dict[str, object]] = []
    log = MailChannel.log

    def recorded(self: MailChannel, **where: object) -> list[dict[str, object]]:
        asked.append(where)
        return log(self, **where)  # type: ignore[arg-type]

    monkeypatch.setattr(MailChannel, "log", recorded)
    client = TestClient(desk.app)
    listed = client.get("/api/v1/mail/messages?direction=in", headers=bearer(desk))
    assert listed.status_code == 200, listed.text
    assert [m["subject"] for m in listed.json()["messages"]] == ["Invoice wrong", "Broadband down"]
    of_case = client.get(f"/api/v1/cases/{first}/mail", headers=bearer(desk))
    assert [m["subject"] for m in of_case.json()["messages"]][:1] == ["Broadband down"]
    printed = CliRunner().invoke(
        cli_app,
        ["mail", "list", "--direction", "in", "--data", str(desk.node.data_dir)],
        env={"COLUMNS": "200"},
    )
    assert printed.exit_code == 0, printed.output
    assert "Invoice wrong" in printed.output and "Broadband down" in printed.output
    assert [a.get("direction") for a in asked] == ["in", None, "in"]
    assert asked[1]["case_id"] == first and asked[1]["oldest_first"] is True
