"""A node with members, a mailbox and an application for the page tests; a customer's
mail to open a case the way most cases arrive."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from accord.api.app import create_app
from accord.channels.email.mailboxes import Mailbox
from accord.node import Node
from tests.clocks import TickingClock, cheap_passwords

PASSWORD = "correct horse battery"


@dataclass
class Desk:
    node: Node
    app: FastAPI
    services: Any

    def mail(
        self,
        subject: str,
        text: str,
        *,
        sender: str = "dana@example.net",
        name: str = "Dana Whitfield",
    ) -> str:
        """A customer's mail into the inbound pipeline; returns the case it landed on."""
        message = EmailMessage()
        message["From"] = f"{name} <{sender}>"
        message["To"] = "support@northwind.example"
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="example.net")
        message.set_content(text)
        receipt = self.services.mail.receive(
            message.as_bytes(), recipients=["support@northwind.example"]
        )
        assert receipt.case_id, receipt
        return str(receipt.case_id)


def make_desk(root: Path, **options: Any) -> Desk:
    node = Node.init(root, name="Northwind Broadband")
    options.setdefault("rate_limit", 0)
    now = options.pop("now", None) or TickingClock()
    passwords = options.pop("passwords", None) or cheap_passwords()
    app = create_app(node, now=now, passwords=passwords, **options)
    services = app.state.services
    services.members.create("tom", PASSWORD, role="agent", display_name="Tom Baker")
    services.members.create("ann", PASSWORD, role="admin", display_name="Ann Lee")
    services.ownership.add_team("Broadband")
    services.ownership.set_profile("tom", team="Broadband", availability="online")
    services.ownership.set_profile("ann", team="Broadband", availability="away")
    services.mail.mailboxes.add(
        Mailbox(
            id=0,
            address="support@northwind.example",
            display_name="Northwind",
            smtp=None,
            imap=None,
        )
    )
    return Desk(node, app, services)


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    made = make_desk(tmp_path / "northwind")
    yield made
    made.services.close()
    made.node.close()
