"""Mailboxes: the addresses Accord answers for, with their SMTP relay and IMAP account.

Passwords are sealed at rest with the node's secrets key, kept apart from the database
(``accord.store.secrets``: XSalsa20-Poly1305, PyNaCl's ``SecretBox``), so a copy of the
database alone does not reveal them; they are never returned by the API, printed by the
CLI or logged — the ``Mailbox`` repr and JSON only say whether a password is set.
"""

from __future__ import annotations

import ipaddress
import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.channels.email.limits import DEFAULT_MAX_ATTACHMENT as DEFAULT_MAX_ATTACHMENT
from accord.channels.email.limits import DEFAULT_MAX_MESSAGE as DEFAULT_MAX_MESSAGE
from accord.core.crypto import NodeKey
from accord.service.errors import Conflict, Invalid, NotFound
from accord.store import secrets as sealed
from accord.store.database import Database
from accord.store.tables import mailboxes

log = logging.getLogger("accord.channels.email")

Security = Literal["none", "starttls", "tls"]
SECURITY: tuple[Security, ...] = ("none", "starttls", "tls")


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    security: Security = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    # a password over a connection with no TLS to a host other than this machine is refused
    # unless an admin allows it here, knowing the password crosses the network in clear
    allow_plaintext: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "username": self.username,
            "password_set": bool(self.password),
            "allow_plaintext": self.allow_plaintext,
        }


@dataclass(frozen=True)
class Mailbox:
    id: int
    address: str  # support@example.com: direct lines are support+<token>@example.com
    display_name: str
    smtp: Server | None
    imap: Server | None
    imap_folder: str = "INBOX"
    poll_seconds: int = 60
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT
    max_message_bytes: int = DEFAULT_MAX_MESSAGE
    active: bool = True
    reply_all: bool = True  # replies copy (Cc) the others the customer's last mail went to

    @property
    def local_part(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.split("@", 1)[1]

    def direct_line(self, token: str) -> str:
        return f"{self.local_part}+{token}@{self.domain}"

    def token_of(self, recipient: str) -> str | None:
        """The direct-line token in ``recipient`` if it is one of this mailbox's lines."""
        local, _, domain = recipient.lower().rpartition("@")
        base, plus, token = local.partition("+")
        if plus and base == self.local_part.lower() and domain == self.domain.lower():
            return token
        return None

    def answers_for(self, recipient: str) -> bool:
        local, _, domain = recipient.lower().rpartition("@")
        return domain == self.domain.lower() and local.partition("+")[0] == self.local_part.lower()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "display_name": self.display_name,
            "smtp": self.smtp.to_json() if self.smtp else None,
            "imap": self.imap.to_json() if self.imap else None,
            "imap_folder": self.imap_folder,
            "poll_seconds": self.poll_seconds,
            "max_attachment_bytes": self.max_attachment_bytes,
            "max_message_bytes": self.max_message_bytes,
            "active": self.active,
            "reply_all": self.reply_all,
        }


def check_address(address: str) -> str:
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain
        or "+" in local
        or any(c.isspace() or c in "<>,;\"'\\" for c in address)
        or len(address) > 254
    ):
        raise Invalid(
            "a mailbox address is a plain address like support@example.com (no '+': Accord "
            "adds '+<token>' for each case's direct line)",
            field="address",
        )
    return address.lower()


def check_server(server: Server | None, name: str) -> None:
    if server is None:
        return
    if not server.host or any(c.isspace() for c in server.host):
        raise Invalid(f"the {name} host is missing or malformed", field=f"{name}.host")
    if not 1 <= server.port <= 65535:
        raise Invalid(f"the {name} port must be 1 to 65535", field=f"{name}.port")
    if server.security not in SECURITY:
        raise Invalid(
            f"{name}.security must be one of {', '.join(SECURITY)}", field=f"{name}.security"
        )
    if (
        server.security == "none"
        and server.password
        and not server.allow_plaintext
        and not _this_machine(server.host)
    ):
        log.warning("refused: a %s password in clear to %s (no TLS)", name, server.host)
        raise Invalid(
            f"the {name} password would cross the network in clear to {server.host}: use "
            f"security starttls or tls, or set {name}.allow_plaintext if you must",
            field=f"{name}.security",
        )


def _this_machine(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_display_name(name: str) -> None:
    """A display name goes into ``From:`` headers: no line breaks or control characters."""
    if any(unicodedata.category(c) == "Cc" for c in name):
        log.warning("refused: a mailbox display name with control characters (%r)", name[:80])
        raise Invalid(
            "the display name may not contain line breaks or other control characters",
            field="display_name",
        )


class Mailboxes:
    def __init__(self, db: Database, key: NodeKey, *, now: Callable[[], datetime]) -> None:
        self.db = db
        self.box = sealed.of(db)
        self.now = now
        self._opened: dict[bytes, dict[str, str]] = {}  # ciphertext -> secrets, per process

    def add(self, mailbox: Mailbox) -> Mailbox:
        address = check_address(mailbox.address)
        self._check(mailbox)
        with self.db.write() as conn:
            exists = conn.execute(
                sa.select(mailboxes.c.id).where(mailboxes.c.address == address)
            ).first()
            if exists is not None:
                raise Conflict(f"a mailbox for {address} exists already", field="address")
            new_id = conn.execute(
                mailboxes.insert()
                .values(
                    address=address,
                    display_name=mailbox.display_name,
                    created_at=self.now(),
                    **self._columns(mailbox),
                )
                .returning(mailboxes.c.id)
            ).scalar_one()
        return self.get(int(new_id))

    def update(self, mailbox_id: int, **changes: Any) -> Mailbox:
        current = self.get(mailbox_id)
        changed = replace(current, **changes)
        self._check(changed)
        with self.db.write() as conn:
            conn.execute(
                mailboxes.update()
                .where(mailboxes.c.id == mailbox_id)
                .values(display_name=changed.display_name, **self._columns(changed))
            )
        return self.get(mailbox_id)

    def remove(self, mailbox_id: int) -> None:
        self.get(mailbox_id)
        with self.db.write() as conn:
            conn.execute(
                mailboxes.update().where(mailboxes.c.id == mailbox_id).values(active=False)
            )

    def get(self, mailbox_id: int) -> Mailbox:
        with self.db.read() as conn:
            row = conn.execute(sa.select(mailboxes).where(mailboxes.c.id == mailbox_id)).first()
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        return self._mailbox(row)

    def all(self, *, active_only: bool = False) -> list[Mailbox]:
        query = sa.select(mailboxes).order_by(mailboxes.c.id)
        if active_only:
            query = query.where(mailboxes.c.active.is_(True))
        with self.db.read() as conn:
            return [self._mailbox(r) for r in conn.execute(query)]

    def for_recipient(self, recipient: str) -> Mailbox | None:
        """The active mailbox that ``recipient`` (or its direct line) belongs to."""
        return next((m for m in self.all(active_only=True) if m.answers_for(recipient)), None)

    def default(self) -> Mailbox | None:
        active = self.all(active_only=True)
        return active[0] if active else None

    def imap_position(self, conn: Connection, mailbox_id: int) -> tuple[int | None, int]:
        row = conn.execute(
            sa.select(mailboxes.c.imap_uidvalidity, mailboxes.c.imap_last_uid).where(
                mailboxes.c.id == mailbox_id
            )
        ).one()
        return row.imap_uidvalidity, int(row.imap_last_uid or 0)

    def set_imap_position(self, mailbox_id: int, uidvalidity: int, last_uid: int) -> None:
        with self.db.write() as conn:
            conn.execute(
                mailboxes.update()
                .where(mailboxes.c.id == mailbox_id)
                .values(imap_uidvalidity=uidvalidity, imap_last_uid=last_uid)
            )

    def _check(self, mailbox: Mailbox) -> None:
        check_display_name(mailbox.display_name)
        check_server(mailbox.smtp, "smtp")
        check_server(mailbox.imap, "imap")
        if not 1024 <= mailbox.max_attachment_bytes <= mailbox.max_message_bytes:
            raise Invalid(
                "max_attachment_bytes must be at least 1024 and at most max_message_bytes",
                field="max_attachment_bytes",
            )
        if mailbox.max_message_bytes > 1024**3:
            raise Invalid("max_message_bytes is at most 1 GiB", field="max_message_bytes")
        if not 5 <= mailbox.poll_seconds <= 86_400:
            raise Invalid("poll_seconds must be 5 to 86400", field="poll_seconds")
        if not mailbox.imap_folder or len(mailbox.imap_folder) > 200:
            raise Invalid("imap_folder must be 1 to 200 characters", field="imap_folder")

    def _columns(self, m: Mailbox) -> dict[str, Any]:
        settings = {
            "smtp": _server_settings(m.smtp),
            "imap": _server_settings(m.imap),
            "imap_folder": m.imap_folder,
            "poll_seconds": m.poll_seconds,
            "max_attachment_bytes": m.max_attachment_bytes,
            "max_message_bytes": m.max_message_bytes,
            "reply_all": m.reply_all,
        }
        secrets = {
            "smtp": m.smtp.password if m.smtp else "",
            "imap": m.imap.password if m.imap else "",
        }
        return {
            "settings": orjson.dumps(settings),
            "secrets": self.box.seal(orjson.dumps(secrets)),
            "active": m.active,
        }

    def _secrets(self, sealed: bytes) -> dict[str, str]:
        """Decrypted once per ciphertext: every inbound mail looks its mailbox up. A
        changed password is a new ciphertext (a fresh nonce), so nothing goes stale."""
        found = self._opened.get(sealed)
        if found is None:
            if len(self._opened) > 1000:
                self._opened.clear()
            found = self._opened[sealed] = orjson.loads(self.box.open(sealed))
        return found

    def _mailbox(self, row: Any) -> Mailbox:
        settings = orjson.loads(row.settings)
        secrets = self._secrets(bytes(row.secrets))
        return Mailbox(
            id=int(row.id),
            address=row.address,
            display_name=row.display_name,
            smtp=_server(settings["smtp"], secrets.get("smtp", "")),
            imap=_server(settings["imap"], secrets.get("imap", "")),
            imap_folder=settings["imap_folder"],
            poll_seconds=int(settings["poll_seconds"]),
            max_attachment_bytes=int(settings["max_attachment_bytes"]),
            max_message_bytes=int(settings["max_message_bytes"]),
            active=bool(row.active),
            reply_all=bool(settings.get("reply_all", True)),
        )


def _server_settings(server: Server | None) -> dict[str, Any] | None:
    if server is None:
        return None
    return {
        "host": server.host,
        "port": server.port,
        "security": server.security,
        "username": server.username,
        **({"allow_plaintext": True} if server.allow_plaintext else {}),
    }


def _server(settings: dict[str, Any] | None, password: str) -> Server | None:
    if settings is None:
        return None
    return Server(
        host=settings["host"],
        port=int(settings["port"]),
        security=settings["security"],
        username=settings["username"],
        password=password,
        allow_plaintext=bool(settings.get("allow_plaintext", False)),
    )
