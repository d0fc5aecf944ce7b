"""A customer's data on request, and its erasure: everything node-private goes, the signed
shared log stays and still verifies, the erasure is recorded, a second one changes
nothing; only customers:admin may do either."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.channels.email.mailboxes import Mailbox
from accord.core.bundle import verify_bundle
from accord.node import Node
from accord.service.negotiation import Actor
from accord.store.tables import channel_messages, customer_identities, customers, notes
from tests.clocks import TickingClock, cheap_passwords

PDF = b"%PDF-1.7 Priya's October bill"


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Any, dict[str, str]]]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    app = create_app(node, rate_limit=0, now=TickingClock(), passwords=cheap_passwords())
    services = app.state.services
    ada = services.members.create("ada", "correct horse battery", role="admin", display_name="Ada")
    tom = services.members.create("tom", "correct horse battery", role="agent", display_name="Tom")
    services.ownership.set_profile("tom", availability="online")
    admin = services.tokens.create(ada.id, "dpo", ["customers:admin", "cases:read"]).token
    agent = services.tokens.create(tom.id, "t", ["cases:read", "cases:write"]).token
    services.mail.mailboxes.add(
        Mailbox(
            id=0, address="support@northwind.example", display_name="Support", smtp=None, imap=None
        )
    )
    with TestClient(app) as client:
        yield client, services, {"admin": f"Bearer {admin}", "agent": f"Bearer {agent}"}
    node.close()


def _priya(services: Any) -> Any:
    mail = EmailMessage()
    mail["From"] = "Priya Shah <priya@example.com>"
    mail["To"] = "support@northwind.example"
    mail["Subject"] = "My bill"
    mail["Message-ID"] = "<bill-1@example.com>"
    mail.set_content("My bill is wrong, see attached.")
    mail.add_attachment(PDF, maintype="application", subtype="pdf", filename="bill.pdf")
    receipt = services.mail.receive(mail.as_bytes(), recipients=["support@northwind.example"])
    services.notes.add(receipt.case_id, "Tom", "Priya is upset about the October bill.")
    services.negotiation.post_message(Actor(member="Tom", via="api"), receipt.case_id, "Looking.")
    return receipt


def test_export_then_erase(desk: tuple[TestClient, Any, dict[str, str]]) -> None:
    client, services, auth = desk
    receipt = _priya(services)
    customer = receipt.customer_id
    assert (
        client.get(
            f"/api/v1/customers/{customer}/export", headers={"Authorization": auth["agent"]}
        ).status_code
        == 403
    )
    response = client.get(
        f"/api/v1/customers/{customer}/export", headers={"Authorization": auth["admin"]}
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = archive.namelist()
    record = orjson.loads(archive.read("customer.json"))
    assert record["name"] == "Priya Shah"
    assert record["identities"][0]["value"] == "priya@example.com"
    case_file = next(n for n in names if n.startswith("cases/") and n.endswith(".json"))
    case = orjson.loads(archive.read(case_file))
    assert "every party of the case keeps its own signed copy" in case["shared"]
    assert case["internal_notes"][0]["text"] == "Priya is upset about the October bill."
    assert case["messages"][0]["from"] == "you"
    bundle = archive.read(next(n for n in names if n.endswith(".bundle.jsonl")))
    assert verify_bundle(bundle).ok
    eml = next(n for n in names if n.endswith(".eml"))
    assert b"bill-1@example.com" in archive.read(eml)
    attachment = next(n for n in names if n.startswith("attachments/"))
    assert hashlib.sha256(archive.read(attachment)).hexdigest() == hashlib.sha256(PDF).hexdigest()
    assert "README.txt" in names

    from accord.store.search import Search

    assert Search(services.node.db).search("upset October")  # the note is findable...
    erased = client.post(
        f"/api/v1/customers/{customer}/erase", headers={"Authorization": auth["admin"]}
    )
    assert erased.status_code == 200
    done = erased.json()
    assert done["by"] == "ada" and done["removed"]["identities"] == 1
    # Her mail, our acknowledgement to her, and her attachment.
    assert done["removed"]["notes"] == 1 and done["removed"]["files"] == 3
    text = orjson.dumps(done).decode()
    assert "priya" not in text.lower()  # the record of the erasure holds no personal data
    node = services.node
    with node.db.read() as conn:
        assert (
            conn.execute(sa.select(customers.c.name)).scalar_one() == f"erased customer {customer}"
        )
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(customer_identities)).scalar_one()
            == 0
        )
        assert conn.execute(sa.select(sa.func.count()).select_from(notes)).scalar_one() == 0
        rows = conn.execute(sa.select(channel_messages)).all()
    assert not [h for h in Search(node.db).search("upset October") if h.kind == "note"]
    assert all(r.sender == "" and r.subject == "" and r.raw_sha256 is None for r in rows)
    blobs = node.data_dir / "blobs"
    assert not any(p.read_bytes() == PDF for p in blobs.rglob("*") if p.is_file())
    # The shared log is kept, and still verifies.
    assert node.cases.events(receipt.case_id, verify=True)
    # Again: nothing more happens, the same record comes back.
    again = client.post(
        f"/api/v1/customers/{customer}/erase", headers={"Authorization": auth["admin"]}
    )
    assert again.json() == done
    listed = client.get("/api/v1/erasures", headers={"Authorization": auth["admin"]}).json()
    assert listed == [done]
    after = zipfile.ZipFile(
        io.BytesIO(
            client.get(
                f"/api/v1/customers/{customer}/export", headers={"Authorization": auth["admin"]}
            ).content
        )
    )
    assert "was erased on" in after.read("README.txt").decode()
    assert not any(n.endswith(".eml") for n in after.namelist())
    # A new mail from the same address is a new, unknown customer.
    mail = EmailMessage()
    mail["From"] = "priya@example.com"
    mail["To"] = "support@northwind.example"
    mail["Subject"] = "Hello again"
    mail.set_content("Hi")
    assert services.mail.receive(
        mail.as_bytes(), recipients=["support@northwind.example"]
    ).new_customer


def test_the_commands(desk: tuple[TestClient, Any, dict[str, str]], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from accord.cli import app

    _, services, _ = desk
    receipt = _priya(services)
    node = services.node
    args = ["--data", str(node.data_dir), "--database", node.db.url]
    runner = CliRunner()
    out = tmp_path / "priya.zip"
    made = runner.invoke(
        app, ["customer", "export", str(receipt.customer_id), "--out", str(out), *args]
    )
    assert made.exit_code == 0, made.output
    assert zipfile.is_zipfile(out)
    refused = runner.invoke(
        app, ["customer", "erase", str(receipt.customer_id), "--by", "ada", *args]
    )
    assert refused.exit_code == 1 and "--yes" in refused.output
    done = runner.invoke(
        app, ["customer", "erase", str(receipt.customer_id), "--by", "ada", "--yes", *args]
    )
    assert done.exit_code == 0 and "erased" in done.output
    listed = runner.invoke(app, ["customer", "erasures", *args], env={"COLUMNS": "200"})
    assert str(receipt.customer_id) in listed.output and "ada" in listed.output
