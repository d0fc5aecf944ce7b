"""Issue 18, "What it must show": whatever writes a change, every follower's effect happens
exactly once — on SQLite and PostgreSQL.

Each test builds one node (``create_app(..., inline_followers=False)``: nothing reacts on
the write path, so every effect below comes from the followers' own pass), makes one
change through one origin, then runs the followers twice (``Followers.catch_up``) and
reads the inbox and the search index twice, counting after each round: the counts are
the expected ones after the first round and do not move in the second.

What is counted, for the case the change landed on:

- **webhook** — ``webhook_deliveries`` rows by event type (one webhook subscribed to every
  type);
- **owner** — the owner's ``notifications`` of kind ``case.activity`` (``member-notices``);
- **inbox** — ``case_inbox`` rows (one, computed from the case's latest state) and the
  case's rows in the members' inbox (``Inbox.list``, its read path);
- **search** — the index's message rows (``search_docs``) holding the change's text, and
  that a search finds the case;
- **clock** — armed response clocks (``sla.breach`` jobs due before "never"; targets are
  configured: first response 60 min).

Expected counts (origin by follower; "new case" means the origin opened the case too):

======================  ==============================  =====  =====  ======  =====
origin                  webhook deliveries              owner  inbox  search  clock
======================  ==============================  =====  =====  ======  =====
api (member's reply)    0 (a)                           0 (b)  1      1       0 (c)
api inbound (new case)  case.opened 1, message.rec. 1   1      1      1       1
web form (member page)  0 (a)                           0 (b)  1      1       0 (c)
portal API (customer)   message.received 1              1      1      1       1
CLI case new + post     case.opened 1 (a)               0 (d)  1      1       0 (c)
email (new case)        case.opened 1, message.rec. 1   1      1      1       1
telegram webhook (new)  case.opened 1, message.rec. 1   1      1      1       1
timer (missed callback) proposal.made 1 (e)             0 (b)  1      1       0 (f)
import (CSV, new case)  0 (g)                           0 (g)  1      1       0 (g)
peer's push             message.received 1              1      1      1       1 (h)
peer's pull             message.received 1              1      1      1       1 (h)
======================  ==============================  =====  =====  ======  =====

(a) ``message.received`` is for messages of *other* parties: this node's own member's
    message gives none. (b) ``member-notices`` tells the owner what other parties did, not
    what this node's members or timers did. (c) A member's reply answers: it arms no clock
    (it stops one). (d) ``accord case new`` gives the case no owner, and the post is the
    node's own. (e) The apology is Accord's own message (no ``message.received``); the new
    time is a proposal; the lead's ``escalation`` notification is the timer's own effect,
    not the follower's. (f) Accord's own notice neither starts nor stops a clock. (g)
    Imports notify nobody (docs/import.md): no webhooks, owners or response clocks for
    history. (h) Any message not from this node's members starts the clock, another
    organisation's included (``accord.service.sla``).

Then two faults: events committed by a process killed before anyone woke the followers
(a worker's followers find them, each effect once), and a follower that dies half-way
through a batch (nothing of that batch kept for it, the others not held back, its lag
shows the failure; once it succeeds, each effect once).
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from accord.api.app import create_app
from accord.auth.members import Member
from accord.channels.email.mailboxes import Mailbox
from accord.cli import app as cli_app
from accord.core.events import Event
from accord.federation.signing import sign_request
from accord.importing.csv_files import read_csv
from accord.importing.writer import Importer
from accord.integrations import webhooks as wh
from accord.jobs.follow import Follower, FollowerRunner
from accord.jobs.queue import JobQueue
from accord.node import Node
from accord.service import settings
from accord.service.inbox import Inbox
from accord.service.sla import BREACH, IDLE
from accord.store.search import Search
from accord.store.tables import case_inbox, cases, notifications, webhook_deliveries
from accord.wiring import Services
from tests.clocks import FakeClock, cheap_passwords

A_URL = "http://northwind.test"
B_URL = "http://contoso.test"
PASSWORD = "correct horse battery"
CASEWORK = ["cases:read", "cases:write", "notes:read", "notes:write"]
WORD = "zephyrquartz"  # in the change's text, and in nothing else any test writes


class Loopback:
    """An httpx transport to in-process applications, by host (the nodes' federation)."""

    def __init__(self) -> None:
        self.clients: dict[str, TestClient] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        client = self.clients[request.url.host]
        skip = {"host", "content-length", "transfer-encoding", "connection"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        answer = client.request(
            request.method, str(request.url), content=request.content, headers=headers
        )
        return httpx.Response(
            answer.status_code,
            content=answer.content,
            headers={"content-type": answer.headers.get("content-type", "")},
        )


@dataclass(frozen=True)
class Effects:
    webhooks: Counter[str]
    owner: int
    inbox: int
    search: int
    clock: int

    def row(self) -> tuple[dict[str, int], int, int, int, int]:
        return dict(self.webhooks), self.owner, self.inbox, self.search, self.clock


@dataclass
class Desk:
    node: Node
    app: FastAPI
    client: TestClient
    clock: FakeClock
    loopback: Loopback
    tom: Member
    tokens: dict[str, dict[str, str]]
    root: Path
    database_url: str
    opened: list[Node] = field(default_factory=list)

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def open_case(self) -> str:
        """Tom opens a case for Priya through the API: he owns it."""
        response = self.client.post(
            "/api/v1/cases",
            headers=self.tokens["tom"],
            json={"title": "Business broadband", "customer": {"id": "priya", "name": "Priya"}},
        )
        assert response.status_code == 201, response.text
        case_id: str = response.json()["case"]
        return case_id

    def portal(self, case_id: str) -> dict[str, str]:
        link = self.client.post(
            f"/api/v1/cases/{case_id}/portal-links",
            headers=self.tokens["tom"],
            json={"party": "priya", "identity": "priya@example.com"},
        )
        assert link.status_code == 201, link.text
        return {"Authorization": f"Portal {link.json()['token']}"}

    def effects(self, case_id: str, needle: str = WORD) -> Effects:
        inbox = Inbox(self.node.cases, self.node.key.public, now=self.clock)
        listed = [r for r in inbox.list("open", member_id=self.tom.id) if r.case_id == case_id]
        hits = [h for h in Search(self.node.db).search(needle) if h.case_id == case_id]
        armed = [
            j
            for j in JobQueue(self.node.db, now=self.clock).pending(
                kind=BREACH, key_prefix=f"sla:{case_id}"
            )
            if j.run_at < IDLE
        ]
        with self.node.db.read() as conn:
            hooks = Counter(
                conn.execute(
                    sa.select(webhook_deliveries.c.event_type).where(
                        webhook_deliveries.c.case_id == case_id
                    )
                ).scalars()
            )
            owner = conn.execute(
                sa.select(sa.func.count()).where(
                    notifications.c.case_id == case_id, notifications.c.kind == "case.activity"
                )
            ).scalar_one()
            rows = conn.execute(
                sa.select(case_inbox.c.event_count, cases.c.event_count)
                .select_from(case_inbox.join(cases, cases.c.case_id == case_inbox.c.case_id))
                .where(case_inbox.c.case_id == case_id)
            ).all()
            docs = conn.execute(
                sa.text(
                    "SELECT count(*) FROM search_docs "
                    "WHERE case_id = :c AND kind = 'message' AND body LIKE :b"
                ),
                {"c": case_id, "b": f"%{needle}%"},
            ).scalar_one()
        assert all(mine == theirs for mine, theirs in rows), "an inbox row lags its case"
        assert len(listed) == len(rows), (listed, rows)
        assert len(hits) == min(1, docs), (hits, docs)
        return Effects(hooks, int(owner), len(rows), int(docs), len(armed))

    def followed_twice(self, case_id: str, needle: str = WORD) -> Effects:
        """Run the followers, count; run them again, count again: the same."""
        self.services.followers.catch_up()
        first = self.effects(case_id, needle)
        assert self.services.followers.catch_up() == 0
        assert self.effects(case_id, needle) == first
        assert all(lag.behind == 0 and lag.failures == 0 for lag in self.services.followers.lag())
        return first

    def peer(self) -> Node:
        """Contoso's node (SQLite), served in-process at ``B_URL``."""
        node_b = Node.init(self.root / "contoso", name="Contoso")
        self.opened.append(node_b)
        node_b.set_url(B_URL)
        app_b = create_app(node_b, now=self.clock, passwords=cheap_passwords())
        self.loopback.clients["contoso.test"] = TestClient(app_b, base_url=B_URL)
        return node_b

    def shared_case(self, node_b: Node) -> str:
        """A case between Northwind (Tom owns it) and Contoso, held by both nodes."""
        parties = [
            {"id": "northwind", "name": "Northwind", "kind": "organisation",
             "node": self.node.key.public, "url": A_URL},
            {"id": "contoso", "name": "Contoso", "kind": "organisation",
             "node": node_b.key.public, "url": B_URL},
        ]  # fmt: skip
        opened = self.node.cases.create(
            self.node.key,
            None,
            "case.opened",
            {"title": "Leased line install", "nonce": "shared", "parties": parties},
            member="Tom Baker",
            time=self.clock(),
        )
        self.services.ownership.take(opened.case, self.tom)
        node_b.cases.append(self.node.cases.events(opened.case))
        return opened.case


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[Desk]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    node.set_url(A_URL)
    clock = FakeClock()
    loopback = Loopback()
    app = create_app(
        node,
        now=clock,
        passwords=cheap_passwords(),
        transport=httpx.MockTransport(loopback),
        rate_limit=0,
        inline_followers=False,
    )
    services: Services = app.state.services
    tokens: dict[str, dict[str, str]] = {}
    made: dict[str, Member] = {}
    for username, name, role, scopes in (
        ("tom", "Tom Baker", "agent", CASEWORK),
        ("sara", "Sara Lind", "lead", CASEWORK),
        ("admin", "Ada Admin", "admin", [*CASEWORK, "channels:admin", "inbound:write"]),
    ):
        made[username] = services.members.create(username, PASSWORD, role=role, display_name=name)
        token = services.tokens.create(made[username].id, "t", scopes).token
        tokens[username] = {"Authorization": f"Bearer {token}"}
    services.ownership.add_team("Broadband", lead="sara")
    services.ownership.set_profile("tom", team="Broadband", availability="online")
    services.ownership.set_profile("sara", team="Broadband", availability="away")
    services.mail.mailboxes.add(
        Mailbox(id=0, address="support@northwind.example", display_name="Northwind", smtp=None,
                imap=None)
    )  # fmt: skip
    settings.write(node.db, "sla", {"default": {"first_response": 60, "next_response": 120}})
    services.webhooks.resolver = lambda _host, _port: ["93.184.215.14"]
    services.webhooks.create(
        "https://hooks.example.com/accord", list(wh.EVENT_TYPES), created_by="admin"
    )
    client = TestClient(app, base_url=A_URL)
    loopback.clients["northwind.test"] = client
    desk = Desk(node, app, client, clock, loopback, made["tom"], tokens, tmp_path, database_url)
    with client:
        yield desk
    for other in desk.opened:
        other.close()
    node.close()


# -- the origins: each makes one change and returns the case it landed on --------------------


def by_api(desk: Desk) -> str:
    case_id = desk.open_case()
    desk.followed_twice(case_id)
    posted = desk.client.post(
        f"/api/v1/cases/{case_id}/messages",
        headers=desk.tokens["tom"],
        json={"text": f"The {WORD} router ships today."},
    )
    assert posted.status_code == 201, posted.text
    return case_id


def by_inbound_api(desk: Desk) -> str:
    given = desk.client.post(
        "/api/v1/inbound/shop-till",
        headers={**desk.tokens["admin"], "Idempotency-Key": "till-1"},
        json={
            "sender": {"kind": "phone", "value": "+44 7700 900123", "name": "Priya Shah"},
            "text": f"Called the shop: my {WORD} router is dead.",
        },
    )
    assert given.status_code == 200 and given.json()["new_case"], given.text
    return str(given.json()["case"])


def by_web_form(desk: Desk) -> str:
    import re

    case_id = desk.open_case()
    desk.followed_twice(case_id)
    form = re.search(r'name="csrf" value="([^"]+)"', desk.client.get("/login").text)
    assert form, "no CSRF field on the login form"
    page = desk.client.post(
        "/login",
        data={"username": "tom", "password": PASSWORD, "next": "/", "csrf": form.group(1)},
    )
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and found, page.text
    replied = desk.client.post(
        f"/cases/{case_id}/reply",
        data={"text": f"The {WORD} router ships today.", "csrf": found.group(1)},
        follow_redirects=False,
    )
    assert replied.status_code == 303, replied.text
    return case_id


def by_portal(desk: Desk) -> str:
    case_id = desk.open_case()
    desk.followed_twice(case_id)
    said = desk.client.post(
        "/api/v1/portal/messages",
        headers=desk.portal(case_id),
        json={"text": f"Is the {WORD} router on its way?"},
    )
    assert said.status_code == 201, said.text
    return case_id


def by_cli(desk: Desk) -> str:
    runner = CliRunner()
    where = ["--data", str(desk.root / "northwind"), "--database", desk.database_url]

    def accord(*args: str) -> str:
        result = runner.invoke(cli_app, [*args, *where], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output.strip()

    case_id = accord("case", "new", "Refund", "--customer", "Priya Shah")
    accord("case", "post", case_id, f"The {WORD} refund is on its way.")
    return case_id


def by_email(desk: Desk) -> str:
    message = EmailMessage()
    message["From"] = "Dana Whitfield <dana@example.net>"
    message["To"] = "support@northwind.example"
    message["Subject"] = "Broadband down"
    message["Message-ID"] = make_msgid(domain="example.net")
    message.set_content(f"No sync light on the {WORD} router since Monday.")
    receipt = desk.services.mail.receive(
        message.as_bytes(), recipients=["support@northwind.example"]
    )
    assert receipt.case_id and receipt.new_case, receipt
    return str(receipt.case_id)


def by_telegram(desk: Desk) -> str:
    made = desk.client.post(
        "/api/v1/channels",
        headers=desk.tokens["admin"],
        json={
            "platform": "telegram",
            "name": "telegram",
            "settings": {"api_base": "https://api.telegram.example"},
            "secrets": {"bot_token": "123:ABC", "secret_token": "tg-secret"},
        },
    )
    assert made.status_code == 201, made.text
    sender = {"id": 901234567, "is_bot": False, "first_name": "Priya", "last_name": "Shah"}
    update = {
        "update_id": 745001,
        "message": {
            "message_id": 52,
            "from": sender,
            "chat": {**sender, "type": "private"},
            "date": int(desk.clock().timestamp()),
            "text": f"Is there a {WORD} outage in Leeds?",
        },
    }
    hook = desk.client.post(
        f"/hooks/{made.json()['id']}",
        content=orjson.dumps(update),
        headers={"X-Telegram-Bot-Api-Secret-Token": "tg-secret"},
    )
    assert hook.status_code == 200, hook.text
    with desk.node.db.read() as conn:
        case_id = conn.execute(
            sa.text("SELECT case_id FROM channel_messages WHERE channel = 'telegram'")
        ).scalar_one()
    return str(case_id)


def by_timer(desk: Desk) -> str:
    """Tom promises a callback, Priya accepts it, nobody calls: the missed-callback timer
    apologises and proposes a new time."""
    case_id = desk.open_case()
    due = desk.clock() + timedelta(hours=2)
    proposal = desk.client.post(
        f"/api/v1/cases/{case_id}/proposals",
        headers=desk.tokens["tom"],
        json={
            "changes": [
                {
                    "op": "activity.put",
                    "activity": "callback",
                    "title": "Call Priya to confirm the switch",
                    "owner": desk.services.party_id,
                    "member": "Tom Baker",
                    "kind": "callback",
                    "channel": "phone",
                    "due": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ]
        },
    )
    assert proposal.status_code == 201, proposal.text
    accepted = desk.client.post(
        f"/api/v1/portal/proposals/{proposal.json()['events'][0]}/accept",
        headers=desk.portal(case_id),
    )
    assert accepted.status_code == 200, accepted.text
    desk.followed_twice(case_id, "did not call you back")  # the follower arms the timers
    queue = JobQueue(desk.node.db, now=desk.clock)
    job = queue.unfinished(f"callback.missed:{case_id}:callback")
    assert job is not None
    desk.clock.moment = job.run_at
    with desk.node.db.write() as conn:  # as the worker runs a due job
        desk.services.callbacks.missed(job, conn)
    return case_id


def by_import(desk: Desk) -> str:
    folder = desk.root / "export"
    folder.mkdir()
    (folder / "customers.csv").write_text(
        "id,name,email,phone\nC-1,Grace Hopper,grace@example.net,\n"
    )
    (folder / "cases.csv").write_text(
        textwrap.dedent(f"""\
            id,customer_id,customer_name,customer_email,subject,status,created_at,text
            K-101,C-1,,,Invoice,open,2026-11-20T15:30:00Z,Please re-issue the {WORD} invoice.
        """)
    )
    report = Importer(desk.node).run(
        "csv:helpdesk", read_csv(folder / "customers.csv", folder / "cases.csv")
    )
    assert report.failed == [] and len(report.cases) == 1, report
    return report.cases[0]


def _peer_message(desk: Desk, node_b: Node, case_id: str) -> Event:
    return node_b.cases.create(
        node_b.key,
        case_id,
        "message.posted",
        {"text": f"The {WORD} circuit is patched in."},
        member="Carl Berg",
        time=desk.clock(),
    )


def by_push(desk: Desk) -> str:
    """Contoso's node pushes its new event to Northwind's federation endpoint, signed."""
    node_b = desk.peer()
    case_id = desk.shared_case(node_b)
    desk.followed_twice(case_id)
    event = _peer_message(desk, node_b, case_id)
    path = f"/federation/v1/cases/{case_id}/events"
    body = event.wire() + b"\n"
    signed = sign_request(node_b.key, "POST", A_URL + path, body, now=desk.clock())
    pushed = desk.client.post(
        path, content=body, headers={**signed, "Content-Type": "application/jsonl"}
    )
    assert pushed.status_code == 200, pushed.text
    return case_id


def by_pull(desk: Desk) -> str:
    node_b = desk.peer()
    case_id = desk.shared_case(node_b)
    desk.followed_twice(case_id)
    _peer_message(desk, node_b, case_id)
    pulled = desk.services.federation.pull(case_id, node_b.key.public, B_URL)
    assert pulled.error is None and pulled.stored == 1, pulled
    return case_id


NOTHING: dict[str, int] = {}
NEW_CASE = {"case.opened": 1, "message.received": 1}
RECEIVED = {"message.received": 1}
ORIGINS: dict[str, tuple[Callable[[Desk], str], tuple[dict[str, int], int, int, int, int]]] = {
    #                         webhook deliveries          owner inbox search clock
    "api": (by_api, (NOTHING, 0, 1, 1, 0)),
    "inbound-api": (by_inbound_api, (NEW_CASE, 1, 1, 1, 1)),
    "web-form": (by_web_form, (NOTHING, 0, 1, 1, 0)),
    "portal": (by_portal, (RECEIVED, 1, 1, 1, 1)),
    "cli": (by_cli, ({"case.opened": 1}, 0, 1, 1, 0)),
    "email": (by_email, (NEW_CASE, 1, 1, 1, 1)),
    "telegram": (by_telegram, (NEW_CASE, 1, 1, 1, 1)),
    "timer": (by_timer, ({"proposal.made": 1}, 0, 1, 1, 0)),
    "import": (by_import, (NOTHING, 0, 1, 1, 0)),
    "peer-push": (by_push, (RECEIVED, 1, 1, 1, 1)),
    "peer-pull": (by_pull, (RECEIVED, 1, 1, 1, 1)),
}


@pytest.mark.parametrize("origin", list(ORIGINS))
def test_every_follower_acts_once_on_a_change_from(desk: Desk, origin: str) -> None:
    change, expected = ORIGINS[origin]
    case_id = change(desk)
    needle = "did not call you back" if origin == "timer" else WORD
    before = desk.effects(case_id, needle)  # written, and nothing has reacted yet

    after = desk.followed_twice(case_id, needle)

    added = Effects(
        after.webhooks - before.webhooks,
        after.owner - before.owner,
        after.inbox,
        after.search,
        after.clock,
    )
    assert added.row() == expected


# -- faults ----------------------------------------------------------------------------------


def _customer_case(desk: Desk, title: str) -> str:
    """A case opened, routed to Tom and written to by its customer, straight into the log
    (``CaseStore.create``), as a process leaves it that is killed right after its commit:
    no write path is left to wake anyone."""
    services = desk.services
    body = services.negotiation.opening(
        title=title,
        party_id=services.party_id,
        party_name=desk.node.name,
        party_url=A_URL,
        customer={"id": "priya", "name": "Priya Shah"},
    )
    node = desk.node
    case_id = node.cases.create(node.key, None, "case.opened", body, member="Tom Baker").case
    with node.db.write() as conn:
        assert services.ownership.route_in(conn, case_id) is not None
    node.cases.create(
        node.key,
        case_id,
        "message.posted",
        {"text": f"Is the {WORD} line live yet?"},
        member="Priya Shah",
        for_party="priya",
        session="portal-link-1",
        via="portal",
    )
    return case_id


def test_kill_9_between_a_commit_and_its_effects_loses_and_repeats_nothing(desk: Desk) -> None:
    case_id = _customer_case(desk, "Fibre install")
    assert desk.effects(case_id).row() == (NOTHING, 0, 1, 1, 0)  # committed, followed by nobody

    # the worker process, started later, with its own services
    worker = Services.build(desk.node, now=desk.clock, inline_followers=False).followers
    assert worker.catch_up() > 0
    after = desk.effects(case_id)
    assert after.row() == (NEW_CASE, 1, 1, 1, 1)

    assert worker.catch_up() == 0  # and again (a second worker, a restart): nothing more
    assert desk.services.followers.catch_up() == 0
    assert desk.effects(case_id) == after
    assert all(lag.behind == 0 and lag.failures == 0 for lag in worker.lag())


class DiesHalfWay:
    """A follower whose process dies half-way through a batch: it has written the effects
    of the cases before ``case_id`` through the batch's transaction when it raises."""

    def __init__(self, inner: Follower, case_id: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.case_id = case_id
        self.dying = True
        self.handled: list[str] = []

    def handle(self, conn: Connection, case_id: str, batch: Sequence[Event], *rest: Any) -> None:
        if self.dying and case_id == self.case_id:
            raise RuntimeError("killed in the middle of a batch")
        self.inner.handle(conn, case_id, batch, *rest)
        self.handled.append(case_id)


def test_a_follower_killed_mid_batch_keeps_nothing_of_it_and_holds_back_no_other(
    desk: Desk,
) -> None:
    first, second, third = (_customer_case(desk, f"Install {n}") for n in (1, 2, 3))
    followers = desk.services.followers.runner.followers
    dying = DiesHalfWay(next(f for f in followers if f.name == "webhooks"), third)
    runner = FollowerRunner(
        desk.node.db, [dying if f.name == "webhooks" else f for f in followers], now=desk.clock
    )
    start = {lag.name: lag.position for lag in runner.lag()}

    runner.run_pass()

    assert dying.handled == [first, second]  # it wrote their deliveries, then died
    lag = {m.name: m for m in runner.lag()}
    failing = lag.pop("webhooks")
    assert failing.position == start["webhooks"] and failing.behind > 0  # the mark stayed
    assert failing.failures == 1 and "killed in the middle of a batch" in str(failing.last_error)
    assert failing.retry_at == desk.clock() + timedelta(seconds=5)
    assert all(m.behind == 0 and m.failures == 0 for m in lag.values()), lag  # not held back
    for case_id in (first, second, third):
        effects = desk.effects(case_id)
        assert effects.row() == (NOTHING, 1, 1, 1, 1)  # no delivery kept; the rest done
    assert JobQueue(desk.node.db, now=desk.clock).pending(kind=wh.DELIVER) == []

    dying.dying = False  # restarted: it waits for its retry, then takes the batch again
    assert runner.run_once(dying) == 0
    desk.clock.advance(seconds=5)
    runner.catch_up()
    for case_id in (first, second, third):
        assert desk.effects(case_id).row() == (NEW_CASE, 1, 1, 1, 1)
    assert len(JobQueue(desk.node.db, now=desk.clock).pending(kind=wh.DELIVER)) == 6
    assert runner.catch_up() == 0
    for case_id in (first, second, third):
        assert desk.effects(case_id).row() == (NEW_CASE, 1, 1, 1, 1)
    healed = {m.name: m for m in runner.lag()}["webhooks"]
    assert (healed.behind, healed.failures, healed.last_error) == (0, 0, None)
    assert healed.retry_at is None
