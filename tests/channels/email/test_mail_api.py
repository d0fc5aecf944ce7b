"""The email endpoints through the REST API and the typed client: scopes, write-only
passwords, an MTA handing in mail with a narrow token, replies, the log, raw mail."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from accord.api.app import create_app
from accord.client import AccordClient
from accord.client.errors import AccordAPIError
from accord.node import Node
from tests.channels.email.conftest import free_port, mail
from tests.clocks import TickingClock, cheap_passwords


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A node served over HTTP on loopback: (base URL, tokens by who holds them)."""
    node = Node.init(tmp_path / "node", name="Northwind", database=database_url)
    app = create_app(node, rate_limit=0, now=TickingClock(), passwords=cheap_passwords())
    services = app.state.services
    admin = services.members.create(
        "ada", "correct horse battery", role="admin", display_name="Ada"
    )
    agent = services.members.create(
        "tom", "correct horse battery", role="agent", display_name="Tom"
    )
    services.ownership.set_profile("tom", availability="online")
    tokens = {
        "admin": services.tokens.create(admin.id, "a", ["channels:admin", "cases:read"]).token,
        "agent": services.tokens.create(agent.id, "t", ["cases:read", "cases:write"]).token,
        "mta": services.tokens.create(admin.id, "mta", ["inbound:write"]).token,
    }
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{port}", tokens
    server.should_exit = True
    thread.join(timeout=10)
    services.close()
    node.close()


@pytest.fixture
def clients(api: tuple[str, dict[str, str]]) -> Iterator[dict[str, AccordClient]]:
    base, tokens = api
    made = {who: AccordClient(base, token=token) for who, token in tokens.items()}
    yield made
    for client in made.values():
        client.close()


def test_mailboxes_need_channels_admin_and_never_show_passwords(
    clients: dict[str, AccordClient],
) -> None:
    admin, agent = clients["admin"], clients["agent"]
    made = admin.add_mailbox(
        "Support@Northwind.example",
        "Northwind Support",
        smtp={"host": "smtp.example.com", "port": 587, "username": "u", "password": "s3cret-pw"},
    )
    assert made["address"] == "support@northwind.example"
    assert made["smtp"]["password_set"] is True and "s3cret-pw" not in str(made)
    listed = admin.mailboxes()["mailboxes"]
    assert "s3cret-pw" not in str(listed) and len(listed) == 1
    with pytest.raises(AccordAPIError) as refused:
        agent.mailboxes()
    assert refused.value.status == 403
    with pytest.raises(AccordAPIError) as bad:
        admin.add_mailbox("support+x@northwind.example", "No plus")
    assert bad.value.status == 422
    changed = admin.change_mailbox(made["id"], poll_seconds=30, active=False)
    assert changed["poll_seconds"] == 30 and changed["active"] is False
    assert changed["smtp"]["password_set"] is True  # untouched by the change
    admin.remove_mailbox(made["id"])
    assert admin.mailbox(made["id"])["active"] is False


def test_an_mta_hands_in_mail_and_a_member_replies(
    clients: dict[str, AccordClient],
) -> None:
    admin, agent, mta = clients["admin"], clients["agent"], clients["mta"]
    admin.add_mailbox("support@northwind.example", "Northwind Support")
    raw = mail(message_id="<api1@example.com>")
    receipt = mta.inbound_mail(
        base64.b64encode(raw).decode(), recipients=["support@northwind.example"]
    )
    assert receipt["status"] == "stored" and receipt["new_case"] is True
    again = mta.inbound_mail(base64.b64encode(raw).decode())
    assert again["status"] == "duplicate"
    with pytest.raises(AccordAPIError) as narrow:
        mta.mail_messages()  # the MTA's token can hand in mail and nothing else
    assert narrow.value.status == 403
    with pytest.raises(AccordAPIError) as garbled:
        mta.inbound_mail("not base64!!")
    assert garbled.value.status == 422

    case_id = receipt["case"]
    reply = agent.reply_by_mail(case_id, "We reset your line.")
    assert reply["message"] and reply["events"]
    log = agent.case_mail(case_id)["messages"]
    assert [(m["direction"], m["kind"]) for m in log] == [
        ("in", "message"),
        ("out", "acknowledgement"),
        ("out", "reply"),
    ]
    assert agent.mail_messages(status="queued", direction="out")["messages"]
    assert agent.raw_mail(log[0]["id"]) == raw
    one = agent.mail_message(reply["message"])
    assert one["status"] == "queued" and one["recipients"] == ["priya@example.com"]
    with pytest.raises(AccordAPIError) as not_failed:
        agent.retry_mail(reply["message"])
    assert not_failed.value.status == 409
    with pytest.raises(AccordAPIError) as not_held:
        agent.release_mail(log[0]["id"])
    assert not_held.value.status == 409
