"""Secrets: never in a log line (docs/security.md, issue 22 row 8)."""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from accord.auth.errors import LinkInvalid
from accord.auth.portal import PortalLinks, load_or_create_secret
from accord.channels.connectors.accounts import Accounts
from accord.channels.email.mailboxes import Mailbox, Mailboxes, Server
from accord.cli import app
from accord.integrations.webhooks import Webhooks, verify
from accord.jobs.queue import JobQueue
from accord.node import Node, NodeError, read_key
from accord.store.secrets import legacy_box, status
from accord.store.tables import channel_accounts, mailboxes, node_secrets, webhooks
from tests.clocks import FakeClock
from tests.servers import free_port

PORTAL_TOKEN = "pT0kenAAAAbbbbCCCCddddEEEEffffGGGG"
VERIFY_TOKEN = "vt-s3cret-verify-token"


def _serve_and_log(data: Path) -> str:
    """Run ``accord serve`` on loopback, make the requests, return everything it logged."""
    port = free_port()
    env = {**os.environ, "ACCORD_HOME": str(data)}
    with subprocess.Popen(
        [sys.executable, "-m", "accord", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as server:
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(400):  # /health answers at once; /ready once it has started
                    try:
                        if client.get("/ready", timeout=0.5).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    try:
                        server.wait(timeout=0.05)
                    except subprocess.TimeoutExpired:
                        continue
                    raise RuntimeError("accord serve exited") from None
                client.get(f"/portal/{PORTAL_TOKEN}")
                client.get(f"/portal/{PORTAL_TOKEN}/bundle")
                client.get(
                    "/hooks/7",
                    params={
                        "hub.mode": "subscribe",
                        "hub.verify_token": VERIFY_TOKEN,
                        "hub.challenge": "1158201444",
                    },
                )
        finally:
            server.terminate()
            output, _ = server.communicate(timeout=20)
    return output.decode()


def test_portal_tokens_and_verify_tokens_never_reach_the_log(tmp_path: Path) -> None:
    data = tmp_path / "northwind"
    Node.init(data, name="Northwind Broadband").close()
    logged = _serve_and_log(data)
    assert "Uvicorn running" in logged or "/portal" in logged or "GET" in logged, logged
    assert PORTAL_TOKEN not in logged
    assert VERIFY_TOKEN not in logged


def test_the_log_filter_redacts_a_uvicorn_access_line() -> None:
    from accord.ops.logs import RedactSecrets

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5000",
            "GET",
            f"/hooks/7?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1",
            "1.1",
            200,
        ),
        None,
    )
    assert RedactSecrets().filter(record)
    shown = record.getMessage()
    assert VERIFY_TOKEN not in shown
    assert "hub.verify_token=[redacted]" in shown and "hub.challenge=1" in shown
    portal = logging.LogRecord(
        "accord", logging.INFO, __file__, 1, "%s", (f"/portal/{PORTAL_TOKEN}/x",), None
    )
    RedactSecrets().filter(portal)
    assert portal.getMessage() == "/portal/[redacted]/x"


# -- the data directory is the node user's alone (issue 22, row 6) -------------------------


def test_init_makes_the_data_private_and_open_warns_when_it_is_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from accord.channels.blobs import node_blobs

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    data = tmp_path / "northwind"
    Node.init(data, name="Northwind Broadband").close()
    assert mode(data) == 0o700
    assert mode(data / "node.key") == 0o600
    assert mode(data / "accord.db") == 0o600
    blobs = node_blobs(data, durable=False)
    assert mode(blobs.path(blobs.put(b"an attachment"))) == 0o600
    with caplog.at_level(logging.WARNING, logger="accord.node"):
        Node.open(data).close()
    assert not any("readable by other" in r.getMessage() for r in caplog.records)
    # As a careless restore or `cp -r` leaves it: another local user could read it all.
    data.chmod(0o755)
    (data / "accord.db").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="accord.node"):
        Node.open(data).close()
    (warning,) = [r.getMessage() for r in caplog.records if "readable by other" in r.getMessage()]
    assert "accord.db (0644)" in warning and "chmod 700" in warning


# -- secrets at rest are sealed with a key kept apart from the database (issue 22, row 6) ---

CASE = "sha256:" + "ab" * 32
SMTP_PASSWORD = "relay-Pa55word-kept-secret"
BOT_TOKEN = "123456:telegram-bot-token-kept-secret"


def _node_with_secrets(
    data: Path, clock: FakeClock, database: str | None = None
) -> tuple[str, str]:
    """A node holding every kind of secret: a portal link, a webhook, a mailbox password
    and a messaging token. Returns a portal link and the webhook's secret."""
    node = Node.init(data, name="Northwind Broadband", database=database)
    try:
        link = PortalLinks(load_or_create_secret(node.db), now=clock).issue(
            CASE, "customer", "dana@example.net", timedelta(days=7)
        )
        _, secret = _webhooks(node, clock).create(
            "http://127.0.0.1:9/hook", ["message.received"], created_by="admin", allow_private=True
        )
        Mailboxes(node.db, node.key, now=clock).add(
            Mailbox(
                0,
                "support@northwind.example",
                "Northwind",
                smtp=Server("smtp.northwind.example", 587, "starttls", "support", SMTP_PASSWORD),
                imap=None,
            )
        )
        Accounts(node.db, node.key, now=clock).add(
            "telegram", "northwind-bot", {}, {"bot_token": BOT_TOKEN, "secret_token": "s" * 32}
        )
    finally:
        node.close()
    return link, secret


def _webhooks(node: Node, clock: FakeClock, seen: list[httpx.Request] | None = None) -> Webhooks:
    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(204)

    return Webhooks(
        node.db,
        node.cases,
        node.key,
        JobQueue(node.db, now=clock),
        now=clock,
        transport=httpx.MockTransport(answer),
    )


def _signature_holds(node: Node, clock: FakeClock, secret: str) -> bool:
    """Send the node's webhook a delivery; does its signature verify with ``secret``?"""
    seen: list[httpx.Request] = []
    hooks = _webhooks(node, clock, seen)
    with node.db.read() as conn:
        row = conn.execute(sa.select(webhooks)).one()
    body = b'{"type":"message.posted"}'
    code, error = hooks._send(row, body, "delivery-1", clock())
    assert (code, error) == (204, None)
    (request,) = seen
    return verify(
        secret,
        request.headers["Accord-Webhook-Timestamp"],
        request.headers["Accord-Webhook-Signature"],
        body,
        now=clock().timestamp(),
    )


def _raw(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data.glob("accord.db*")))


def test_the_database_holds_no_secret_in_clear(tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "northwind"
    _link, secret = _node_with_secrets(data, clock)
    node = Node.open(data)
    portal = load_or_create_secret(node.db)
    node.close()
    raw = _raw(data)
    for clear in (
        portal,
        base64.b64encode(portal),
        base64.urlsafe_b64encode(portal).rstrip(b"="),
        portal.hex().encode(),
        secret.encode(),
        SMTP_PASSWORD.encode(),
        BOT_TOKEN.encode(),
    ):
        assert clear not in raw
    assert raw.count(b"enc:v1:") >= 4  # portal, webhook, mailbox, account
    key_file = data / "secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_another_local_user_with_the_database_alone_cannot_forge_a_portal_link(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    data = tmp_path / "northwind"
    _node_with_secrets(data, clock)
    # What another local user copies: the database file, never the key beside it.
    with closing(sqlite3.connect(data / "accord.db")) as db:
        (stored,) = db.execute(
            "SELECT value FROM node_secrets WHERE name = 'portal-links'"
        ).fetchone()
    stored = bytes(stored)
    assert stored.startswith(b"enc:v1:")
    body = stored.rsplit(b":", 1)[1]
    sealed = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
    # Every way the stored value could be taken for the secret: whole, its sealed bytes,
    # their tail past the nonce (as the secret stood in clear before).
    candidates = [stored, sealed, sealed[24:], sealed[-32:]]
    node = Node.open(data)
    try:
        links = PortalLinks(load_or_create_secret(node.db), now=clock)
        for candidate in candidates:
            forged = PortalLinks(candidate, now=clock).issue(
                CASE, "customer", "dana@example.net", timedelta(days=7)
            )
            with pytest.raises(LinkInvalid):
                links.verify(forged)
    finally:
        node.close()


def test_rotation_keeps_portal_links_and_webhook_signatures_working(tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "northwind"
    link, secret = _node_with_secrets(data, clock)
    before = (data / "secrets.key").read_bytes()
    raw_before = _raw(data)
    result = CliRunner().invoke(app, ["secrets", "rotate", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "rotated the secrets key" in result.output
    assert (data / "secrets.key").read_bytes() != before
    assert not (data / "secrets.key.old").exists() and not (data / "secrets.key.new").exists()
    assert stat.S_IMODE((data / "secrets.key").stat().st_mode) == 0o600
    node = Node.open(data)
    try:
        links = PortalLinks(load_or_create_secret(node.db), now=clock)
        assert links.verify(link).party_id == "customer"
        assert _signature_holds(node, clock, secret)
        (box,) = Mailboxes(node.db, node.key, now=clock).all()
        assert box.smtp is not None and box.smtp.password == SMTP_PASSWORD
        (account,) = Accounts(node.db, node.key, now=clock).all()
        assert account.secrets["bot_token"] == BOT_TOKEN
        found = status(node.db, node.secrets)
        assert not found.clear and not found.other_keys and sum(found.sealed.values()) == 4
    finally:
        node.close()
    assert _raw(data) != raw_before
    shown = CliRunner().invoke(app, ["secrets", "status", "--data", str(data)])
    assert shown.exit_code == 0, shown.output
    assert "(key " in shown.output and "webhooks.secret" in shown.output


def test_a_running_node_follows_a_rotation_made_by_another_process(tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "northwind"
    link, secret = _node_with_secrets(data, clock)
    running = Node.open(data)
    try:
        assert CliRunner().invoke(app, ["secrets", "rotate", "--data", str(data)]).exit_code == 0
        assert _signature_holds(running, clock, secret)
        assert PortalLinks(load_or_create_secret(running.db), now=clock).verify(link)
        # What it seals now is sealed with the new key: the next open finds no stray key.
        _webhooks(running, clock).create(
            "http://127.0.0.1:9/other", ["message.received"], created_by="a", allow_private=True
        )
    finally:
        running.close()
    Node.open(data).close()


def test_a_missing_or_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "northwind"
    _node_with_secrets(data, clock)
    key_file = data / "secrets.key"
    kept = key_file.read_bytes()
    key_file.unlink()
    with pytest.raises(NodeError, match=r"secrets key .*secrets.key is missing.*restore"):
        Node.open(data)
    assert not key_file.exists()  # no new key was made over sealed secrets
    key_file.write_bytes(base64.urlsafe_b64encode(bytes(32)))
    with pytest.raises(NodeError, match=r"sealed with key [0-9a-f]{8}.*not the key"):
        Node.open(data)
    key_file.write_text("not a key\n")
    with pytest.raises(NodeError, match="not a secrets key file"):
        Node.open(data)
    result = CliRunner().invoke(app, ["secrets", "status", "--data", str(data)])
    assert result.exit_code == 1 and "not a secrets key file" in result.output
    key_file.write_bytes(kept)
    Node.open(data).close()


def test_the_key_file_can_live_apart_from_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "keys-volume" / "northwind.key"
    monkeypatch.setenv("ACCORD_SECRETS_KEY_FILE", str(elsewhere))
    data = tmp_path / "northwind"
    link, _ = _node_with_secrets(data, FakeClock())
    assert elsewhere.exists() and not (data / "secrets.key").exists()
    node = Node.open(data)
    try:
        assert node.secrets.path == elsewhere
        assert PortalLinks(load_or_create_secret(node.db), now=FakeClock()).verify(link)
    finally:
        node.close()


def test_clear_secrets_of_an_older_version_are_sealed_on_first_open(tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "northwind"
    link, secret = _node_with_secrets(data, clock)
    node = Node.open(data)
    portal = load_or_create_secret(node.db)
    node.close()
    # As an older version left it: the portal secret and the webhook secret in clear, the
    # mailbox and account secrets in the box derived from the node key, no secrets.key.
    old = legacy_box(read_key(data / "node.key"))
    with closing(sqlite3.connect(data / "accord.db")) as db, db:
        db.execute("UPDATE node_secrets SET value = ?", (portal,))
        db.execute("UPDATE webhooks SET secret = ?", (secret,))
        mail = orjson.dumps({"smtp": SMTP_PASSWORD, "imap": ""})
        db.execute("UPDATE mailboxes SET secrets = ?", (bytes(old.encrypt(mail)),))
        bot = orjson.dumps({"bot_token": BOT_TOKEN, "secret_token": "s" * 32})
        db.execute("UPDATE channel_accounts SET secrets = ?", (bytes(old.encrypt(bot)),))
    (data / "secrets.key").unlink()
    assert portal in _raw(data) and secret.encode() in _raw(data)
    for _ in range(2):  # idempotent: the second open finds nothing to seal
        node = Node.open(data)
        try:
            assert PortalLinks(load_or_create_secret(node.db), now=clock).verify(link)
            assert _signature_holds(node, clock, secret)
            (box,) = Mailboxes(node.db, node.key, now=clock).all()
            assert box.smtp is not None and box.smtp.password == SMTP_PASSWORD
            (account,) = Accounts(node.db, node.key, now=clock).all()
            assert account.secrets["bot_token"] == BOT_TOKEN
            assert not status(node.db, node.secrets).clear
        finally:
            node.close()
    raw = _raw(data)
    assert portal not in raw and secret.encode() not in raw


@pytest.mark.parametrize(
    "fault",
    [
        "secrets.rotate.keys-written",
        "secrets.rotate.in-transaction",
        "secrets.rotate.committed",
        "secrets.rotate.swapped",
    ],
)
def test_a_rotation_killed_at_any_point_loses_nothing(tmp_path: Path, fault: str) -> None:
    clock = FakeClock()
    data = tmp_path / "northwind"
    link, secret = _node_with_secrets(data, clock)
    env = {**os.environ, "ACCORD_FAULT": fault}
    killed = subprocess.run(
        [sys.executable, "-m", "accord", "secrets", "rotate", "--data", str(data)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr.decode()
    node = Node.open(data)  # finishes or undoes the rotation
    try:
        assert PortalLinks(load_or_create_secret(node.db), now=clock).verify(link)
        assert _signature_holds(node, clock, secret)
        (box,) = Mailboxes(node.db, node.key, now=clock).all()
        assert box.smtp is not None and box.smtp.password == SMTP_PASSWORD
        found = status(node.db, node.secrets)
        assert not found.clear and not found.other_keys and sum(found.sealed.values()) == 4
    finally:
        node.close()
    assert sorted(p.name for p in data.glob("secrets.key*")) == ["secrets.key"]
    # and a rotation after it works
    assert CliRunner().invoke(app, ["secrets", "rotate", "--data", str(data)]).exit_code == 0


def test_a_backup_holds_the_secrets_key_and_restores_a_working_node(tmp_path: Path) -> None:
    from accord.ops.backup import backup, restore

    clock = FakeClock()
    data = tmp_path / "northwind"
    link, secret = _node_with_secrets(data, clock)
    node = Node.open(data)
    try:
        backup(node, tmp_path / "northwind.tar.gz")
    finally:
        node.close()
    done = restore(tmp_path / "northwind.tar.gz", tmp_path / "restored", verify=False)
    try:
        assert (tmp_path / "restored" / "secrets.key").read_bytes() == (
            data / "secrets.key"
        ).read_bytes()
        assert PortalLinks(load_or_create_secret(done.node.db), now=clock).verify(link)
        assert _signature_holds(done.node, clock, secret)
    finally:
        done.node.close()


def test_sealing_and_rotation_on_both_databases(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock()
    data = tmp_path / "northwind"
    link, secret = _node_with_secrets(data, clock, database_url)

    def every_value() -> bytes:
        node = Node.open(data, database=database_url)
        try:
            with node.db.read() as conn:
                rows = [
                    conn.execute(sa.select(table)).all()
                    for table in (node_secrets, webhooks, mailboxes, channel_accounts)
                ]
        finally:
            node.close()
        return repr(rows).encode()

    before = every_value()
    assert secret.encode() not in before and SMTP_PASSWORD.encode() not in before
    assert BOT_TOKEN.encode() not in before and before.count(b"enc:v1:") >= 4
    rotated = CliRunner().invoke(
        app, ["secrets", "rotate", "--data", str(data), "--database", database_url]
    )
    assert rotated.exit_code == 0, rotated.output
    node = Node.open(data, database=database_url)
    try:
        assert PortalLinks(load_or_create_secret(node.db), now=clock).verify(link)
        assert _signature_holds(node, clock, secret)
        (box,) = Mailboxes(node.db, node.key, now=clock).all()
        assert box.smtp is not None and box.smtp.password == SMTP_PASSWORD
    finally:
        node.close()
    assert every_value() != before
