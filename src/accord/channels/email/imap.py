"""IMAP polling: mail that lands in a mailbox we don't receive by SMTP.

For each active mailbox with an IMAP account, the poller reads messages with a UID
above the last one it stored, oldest first, hands each to ``MailChannel.receive`` and
records the UID only after the message is stored — so a poller killed half-way reads
the same message again next time, and the dedupe key stores it once. When the server's
UIDVALIDITY changes (the folder was rebuilt) it starts from the beginning; dedupe again
keeps that harmless. Messages are read with ``BODY.PEEK[]`` and then flagged ``\\Seen``,
never deleted: the mailbox stays the customer's mail as they sent it.

Between polls it waits with IMAP IDLE where the server offers it (new mail is read at
once), else it sleeps ``poll_seconds``. With several Accord processes on PostgreSQL
only one polls a given mailbox at a time: it holds a PostgreSQL advisory lock on the
mailbox for the whole pass.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from accord.channels.blobs import StorageFull
from accord.channels.email.mailboxes import Mailbox
from accord.channels.email.mailchannel import Arrival, MailChannel

log = logging.getLogger("accord.channels.email")
BATCH = 50
IMAP_TIMEOUT = 30.0
LOCK_SPACE = 0x6D61696C  # "mail": advisory-lock key space of mailbox ids


class ImapError(Exception):
    """Polling a mailbox failed (login, network, server); the next pass tries again."""


class ImapPoller:
    def __init__(self, channel: MailChannel) -> None:
        self.channel = channel
        self.mailboxes = channel.mailboxes

    def poll(self, mailbox: Mailbox) -> int:
        """Read and store what is new in ``mailbox``; returns how many messages were read."""
        if mailbox.imap is None:
            return 0
        with self._exclusive(mailbox) as ours:
            if not ours:
                return 0
            try:
                with self._connect(mailbox) as client:
                    return self._read_new(client, mailbox)
            except (IMAPClientError, OSError) as exc:
                if isinstance(exc, StorageFull):
                    raise
                raise ImapError(f"IMAP {mailbox.imap.host}:{mailbox.imap.port}: {exc}") from exc

    def poll_all(self) -> dict[str, int | str]:
        """One pass over every mailbox with IMAP: address → messages read, or the error."""
        outcome: dict[str, int | str] = {}
        for mailbox in self.mailboxes.all(active_only=True):
            if mailbox.imap is None:
                continue
            try:
                outcome[mailbox.address] = self.poll(mailbox)
            except (ImapError, StorageFull) as exc:
                log.warning("polling %s failed: %s", mailbox.address, exc)
                outcome[mailbox.address] = str(exc)
        return outcome

    def run(self, stop: threading.Event, *, idle: bool = True) -> None:
        """Poll until ``stop`` is set: IDLE on the first mailbox that offers it, else sleep."""
        while not stop.is_set():
            self.poll_all()
            boxes = [m for m in self.mailboxes.all(active_only=True) if m.imap is not None]
            wait = min([m.poll_seconds for m in boxes] or [60])
            if idle and len(boxes) == 1:
                try:
                    self._idle(boxes[0], stop, wait)
                    continue
                except (ImapError, IMAPClientError, OSError) as exc:
                    log.info("IDLE on %s unavailable (%s); polling", boxes[0].address, exc)
            stop.wait(wait)

    def _read_new(self, client: IMAPClient, mailbox: Mailbox) -> int:
        selected = client.select_folder(mailbox.imap_folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        with self.channel.db.read() as conn:
            known, last = self.mailboxes.imap_position(conn, mailbox.id)
        if known != uidvalidity:
            if known is not None:
                log.warning("%s: UIDVALIDITY changed; reading the folder again", mailbox.address)
            last = 0
        uids = sorted(u for u in client.search(["UID", f"{last + 1}:*"]) if u > last)
        read = 0
        for start in range(0, len(uids), BATCH):
            chunk = uids[start : start + BATCH]
            fetched = client.fetch(chunk, [b"BODY.PEEK[]"])
            present = [u for u in chunk if fetched.get(u, {}).get(b"BODY[]") is not None]
            # One transaction for the chunk (a group commit); flagged and passed only once
            # it has committed, so a process killed before then reads the chunk again.
            results = self.channel.receive_many(
                [Arrival(bytes(fetched[u][b"BODY[]"]), mailbox=mailbox) for u in present]
            )
            for uid, result in zip(present, results, strict=True):
                if isinstance(result, Exception):  # the mail's own fault: left in the folder
                    log.warning("IMAP %s: message UID %d refused: %s", mailbox.address, uid, result)
                read += 1
            if present:
                client.add_flags(present, [b"\\Seen"])
            self.mailboxes.set_imap_position(mailbox.id, uidvalidity, chunk[-1])
        if read:
            log.info("IMAP %s: %d new message(s)", mailbox.address, read)
        return read

    def _idle(self, mailbox: Mailbox, stop: threading.Event, wait: int) -> None:
        with self._connect(mailbox) as client:
            if b"IDLE" not in client.capabilities():
                raise ImapError("the server does not offer IDLE")
            client.select_folder(mailbox.imap_folder, readonly=True)
            client.idle()
            try:
                remaining = float(wait)
                while remaining > 0 and not stop.is_set():
                    if client.idle_check(timeout=min(remaining, 5.0)):
                        break
                    remaining -= 5.0
            finally:
                client.idle_done()

    @contextmanager
    def _connect(self, mailbox: Mailbox) -> Iterator[IMAPClient]:
        server = mailbox.imap
        assert server is not None
        context = ssl.create_default_context()
        client = IMAPClient(
            server.host,
            port=server.port,
            ssl=server.security == "tls",
            ssl_context=context if server.security == "tls" else None,
            timeout=IMAP_TIMEOUT,
        )
        try:
            if server.security == "starttls":
                client.starttls(context)
            client.login(server.username, server.password)
            yield client
        finally:
            try:
                client.logout()
            except (IMAPClientError, OSError):
                client.shutdown()

    @contextmanager
    def _exclusive(self, mailbox: Mailbox) -> Iterator[bool]:
        """On PostgreSQL, only the holder of the mailbox's advisory lock polls it."""
        db = self.channel.db
        if db.is_sqlite:
            yield True
            return
        with db.writer.connect() as conn:
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:space, :id)"),
                {"space": LOCK_SPACE, "id": mailbox.id},
            ).scalar()
            try:
                yield bool(got)
            finally:
                if got:
                    conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:space, :id)"),
                        {"space": LOCK_SPACE, "id": mailbox.id},
                    )
                conn.commit()
