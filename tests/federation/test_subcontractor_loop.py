"""Issue 18's acceptance on two real nodes: what a subcontractor does on its own node
reaches every consumer on the supplier's node.

Northwind Broadband (the supplier) hosts a customer who wrote in by email; it invites
FibreFix Ltd (the subcontractor), and an activity FibreFix owns is agreed. On FibreFix's
node a member posts a message and marks the activity done. On Northwind's node — with no
`accord sync` and nothing announced there — the case owner is notified, the case needs
them in the inbox, the ``message.received`` and ``activity.done`` webhooks reach a
receiver once each, signed, and the customer is told by mail.

Both nodes are real ``accord serve`` processes on 127.0.0.1 with SQLite each; Northwind's
SMTP relay is an aiosmtpd sink on loopback and its webhook receiver an HTTP server on
loopback. The nodes run on the real clock: the only time given to them (the activity's
due time) is computed from now, and everything else they stamp themselves."""

from __future__ import annotations

import base64
import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller

from accord.auth.members import MemberStore
from accord.auth.tokens import TokenStore
from accord.integrations.webhooks import sign

from ..clocks import TickingClock, cheap_passwords
from ..integrations.receiver import Received, receiving
from ..servers import free_port
from .test_three_nodes import Peer, cli, eventually, future, make_peer, ok, serving, view

pytestmark = pytest.mark.slow

TITLE = "Broadband down since the storm"  # the case, as the inbox names it

CUSTOMER = "priya@example.com"
SUPPORT = "support@northwind.example"
MESSAGE = "Engineer on site at the cabinet: the splitter was water-damaged."


@dataclass
class Sink:
    """A real SMTP server on loopback that keeps every mail it accepts."""

    port: int
    received: list[tuple[list[str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"

    def texts_to(self, address: str) -> list[str]:
        """The plain-text body of every mail to ``address``, in the order received."""
        with self.lock:
            raws = [raw for rcpt, raw in self.received if address in rcpt]
        texts = []
        for raw in raws:
            mail = message_from_bytes(raw, policy=policy.default)
            assert isinstance(mail, EmailMessage)
            part = mail.get_body(preferencelist=("plain",))
            texts.append(part.get_content() if part is not None else "")
        return texts


@contextlib.contextmanager
def smtp_sink() -> Iterator[Sink]:
    sink = Sink(free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def add_member(peer: Peer, username: str, role: str, scopes: list[str]) -> str:
    """Another member of ``peer``'s node and an API token of theirs (made in-process)."""
    members = MemberStore(peer.node.db, passwords=cheap_passwords(), now=TickingClock())
    member = members.create(
        username, "correct horse battery staple", role=role, display_name=username.title()
    )
    return TokenStore(peer.node.db, now=TickingClock()).create(member.id, "e2e", scopes).token


def customer_mail() -> str:
    """The customer's first mail to Northwind's support address, base64 for the API."""
    mail = EmailMessage()
    mail["From"] = f"Priya Shah <{CUSTOMER}>"
    mail["To"] = SUPPORT
    mail["Subject"] = TITLE
    mail["Message-ID"] = make_msgid(domain="example.com")
    mail.set_content("My broadband has been down since the storm on Sunday.")
    return base64.b64encode(mail.as_bytes()).decode("ascii")


def inbox(url: str, username: str, view_name: str) -> str:
    """The inbox page of ``view_name`` as ``username`` sees it after logging in."""
    with httpx.Client(base_url=url, timeout=10) as browser:
        form = browser.get("/login")
        found = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert found, form.text
        login = browser.post(
            "/login",
            data={
                "username": username,
                "password": "correct horse battery staple",
                "next": "/",
                "csrf": found.group(1),
            },
        )
        assert login.status_code == 303, login.text
        page = browser.get("/", params={"view": view_name, "partial": "true"})
        assert page.status_code == 200, page.text
        return page.text


def hooks_of(received: list[Received], kind: str, event: str) -> list[dict[str, Any]]:
    """The bodies of the deliveries of ``kind`` about the log event ``event``."""
    bodies = [orjson.loads(r.body) for r in received]
    return [b for b in bodies if b["type"] == kind and b["data"]["event"] == event]


def test_a_subcontractors_changes_reach_every_consumer_of_the_supplier(tmp_path: Path) -> None:
    northwind = make_peer(tmp_path, "Northwind Broadband")
    fibrefix = make_peer(tmp_path, "FibreFix Ltd")
    admin = add_member(
        northwind,
        "admin",
        "admin",
        ["cases:read", "cases:write", "members:admin", "channels:admin", "inbound:write"],
    )
    owner = northwind  # the agent make_peer made: the one member routing may choose
    as_admin = {"Authorization": f"Bearer {admin}"}

    with (
        smtp_sink() as sink,
        receiving() as receiver,
        serving(northwind, fibrefix),
        httpx.Client(timeout=10) as http,
    ):
        nw = northwind.url
        # Northwind: a relay, a webhook, and its agent available to own new cases
        ok(
            http.post(
                f"{nw}/api/v1/mailboxes",
                headers=as_admin,
                json={
                    "address": SUPPORT,
                    "display_name": "Northwind Support",
                    "smtp": {"host": "127.0.0.1", "port": sink.port, "security": "none"},
                },
            ),
            201,
        )
        hook = ok(
            http.post(
                f"{nw}/api/v1/webhooks",
                headers=as_admin,
                json={
                    "url": receiver.url,
                    "events": ["message.received", "activity.done"],
                    "allow_private": True,
                },
            ),
            201,
        )
        ok(
            http.put(
                f"{nw}/api/v1/me/availability", headers=owner.auth, json={"availability": "online"}
            )
        )

        # the customer writes in: a case for a customer Northwind hosts, with an address
        receipt = ok(
            http.post(
                f"{nw}/api/v1/mail/inbound",
                headers=as_admin,
                json={"raw": customer_mail(), "recipients": [SUPPORT]},
            )
        )
        assert receipt["new_case"], receipt
        case_id = receipt["case"]
        base = f"/api/v1/cases/{case_id}"
        assert ok(http.get(f"{nw}{base}/owner", headers=owner.auth))["owner"] is not None

        # FibreFix joins; the hosted customer accepts it through the portal
        link = ok(http.post(f"{nw}{base}/invites", headers=owner.auth, json={}), 201)["link"]
        cli(fibrefix.data, "join", link)
        portal = ok(
            http.post(
                f"{nw}{base}/portal-links",
                headers=owner.auth,
                json={"party": "customer", "identity": CUSTOMER, "hours": 2},
            ),
            201,
        )
        as_customer = {"Authorization": f"Portal {portal['token']}"}

        def accept_pending_as_customer() -> None:
            for proposal in view(northwind, case_id)["open_proposals"]:
                ok(
                    http.post(
                        f"{nw}/api/v1/portal/proposals/{proposal}/accept", headers=as_customer
                    )
                )

        accept_pending_as_customer()
        eventually(
            lambda: "fibrefix-ltd" in view(fibrefix, case_id)["parties"],
            "FibreFix to be a party on its own node",
        )

        # an activity FibreFix owns is agreed: Northwind proposes, FibreFix and the customer accept
        plan = ok(
            http.post(
                f"{nw}{base}/proposals",
                headers=owner.auth,
                json={
                    "changes": [
                        {
                            "op": "activity.put",
                            "activity": "visit",
                            "title": "Repair the street cabinet",
                            "owner": "fibrefix-ltd",
                            "kind": "task",
                            "due": future(2),
                        }
                    ]
                },
            ),
            201,
        )["events"][0]
        eventually(
            lambda: plan in view(fibrefix, case_id)["open_proposals"],
            "the plan to reach FibreFix",
        )
        ok(http.post(f"{fibrefix.url}{base}/proposals/{plan}/accept", headers=fibrefix.auth))
        accept_pending_as_customer()
        eventually(
            lambda: view(fibrefix, case_id)["agreement"]["proposal"] == plan,
            "the agreement on FibreFix's node",
        )
        # so far the case waits on the others: our acknowledgement was the last word
        assert TITLE in inbox(nw, "agent", "waiting")

        # FibreFix, on its own node: a message, and its activity done
        posted = ok(
            http.post(
                f"{fibrefix.url}{base}/messages", headers=fibrefix.auth, json={"text": MESSAGE}
            ),
            201,
        )["events"][0]
        done = ok(
            http.post(
                f"{fibrefix.url}{base}/activities/visit/progress",
                headers=fibrefix.auth,
                json={"state": "done", "note": "New splitter fitted; line tested."},
            )
        )["events"][0]

        # Northwind: every consumer sees both, with no sync and nothing announced there
        def notices(*words: str) -> list[str]:
            found = ok(http.get(f"{nw}/api/v1/notifications", headers=owner.auth))
            return [
                n["text"]
                for n in found
                if n["case"] == case_id and all(word in n["text"] for word in words)
            ]

        wrote = ("FibreFix Ltd wrote", "water-damaged")
        marked = ("FibreFix Ltd marked “Repair the street cabinet” done",)
        eventually(
            lambda: bool(notices(*wrote) and notices(*marked)),
            "the owner's notifications of FibreFix's message and work",
        )
        eventually(
            lambda: (
                TITLE in inbox(nw, "agent", "mine") and TITLE not in inbox(nw, "agent", "waiting")
            ),
            "the case to need its owner in the inbox",
        )
        assert "waiting on customer" not in inbox(nw, "agent", "mine")

        def hooks(kind: str, event: str) -> list[Received]:
            return [r for r in receiver.delivered() if hooks_of([r], kind, event)]

        eventually(
            lambda: bool(hooks("message.received", posted) and hooks("activity.done", done)),
            "the message.received and activity.done webhooks",
        )

        def mails(*words: str) -> list[str]:
            return [t for t in sink.texts_to(CUSTOMER) if all(word in t for word in words)]

        told = ("FibreFix Ltd wrote on your case", MESSAGE)
        finished = ("FibreFix Ltd has done “Repair the street cabinet”", "New splitter fitted")
        eventually(
            lambda: bool(mails(*told) and mails(*finished)),
            "the customer's mail about FibreFix's message and work",
        )

        # once each: after two more idle passes of the worker (1 s apart), nothing more
        threading.Event().wait(2.5)
        for kind, event in (("message.received", posted), ("activity.done", done)):
            got = [r for r in receiver.requests if hooks_of([r], kind, event)]
            assert len(got) == 1, (kind, got)
            request = got[0]
            body = orjson.loads(request.body)
            assert request.headers["Accord-Webhook-Id"] == body["id"]
            stamp = int(request.headers["Accord-Webhook-Timestamp"])  # the node's real clock
            assert request.headers["Accord-Webhook-Signature"] == sign(
                hook["secret"], stamp, request.body
            )
            assert body["data"]["by"]["party"] == "fibrefix-ltd", body
        assert len(hooks_of(receiver.delivered(), "message.received", posted)) == 1
        assert {orjson.loads(r.body)["id"] for r in receiver.requests} == {
            r.headers["Accord-Webhook-Id"] for r in receiver.requests
        }
        deliveries = ok(
            http.get(f"{nw}/api/v1/webhooks/{hook['id']}/deliveries", headers=as_admin)
        )["deliveries"]
        keys = [d["idempotency_key"] for d in deliveries]
        assert len(keys) == len(set(keys)) == len(receiver.requests)
        assert all(d["status"] == "delivered" for d in deliveries), deliveries
        assert len(notices(*wrote)) == len(notices(*marked)) == 1
        assert len(mails(*told)) == len(mails(*finished)) == 1, sink.texts_to(CUSTOMER)
        assert view(northwind, case_id)["activities"]["done"][0]["activity"] == "visit"
    for peer in (northwind, fibrefix):
        peer.node.close()
