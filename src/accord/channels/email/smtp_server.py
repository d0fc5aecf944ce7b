"""The SMTP listener inside ``accord serve --smtp-port``: mail for our mailboxes, in.

aiosmtpd runs the protocol on its own thread and event loop. A recipient is accepted
only if it is one of our mailboxes or their direct lines (we are nobody's relay), at
most MAX_RECIPIENTS per message. ``250 OK`` is answered only after the message is
stored (the whole pipeline ran and committed), so a message is never lost: if Accord
stops or fails first, the sending server keeps it and tries again — and the dedupe key
makes that retry harmless. A full disk answers ``452`` (try later), an unexpected error
``451``; a message over the largest mailbox's size limit is refused with ``552`` in the
protocol, before it is read, and one over its own mailbox's smaller limit with ``552``
once read (nothing of it is stored).

Mail from sessions that arrive together is stored together: while one burst is being
stored (one transaction, one commit: ``MailChannel.receive_many``), the mails that arrive
wait and then go as the next burst of at most BURST, so a busy listener pays one commit
for many mails and an idle one waits for nobody. Each sender still hears ``250`` only
once its own burst has committed.

A mail that fails on every attempt (poison) is kept as ``failed`` for a member and
answered ``250``, never ``451`` forever. The envelope sender (``MAIL FROM``) goes with
the mail: the null sender ``<>`` is a bounce, never a case or an acknowledgement. Lines
longer than RFC 5321's 1,000 bytes and bare-LF line ends are taken as they come (real
mail has both); the size limit still bounds what one message may hold.

Put it behind the MTA that owns port 25 (Postfix relaying our domains to this port), or
let a relay deliver to it directly; it speaks plain SMTP on loopback by default.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from accord.channels.blobs import StorageFull
from accord.channels.email.mailboxes import DEFAULT_MAX_MESSAGE
from accord.channels.email.mailchannel import (
    Arrival,
    MailChannel,
    MessageTooLarge,
    NoMailbox,
)
from accord.channels.email.parse import MailParseError
from accord.channels.intake import Receipt

log = logging.getLogger("accord.channels.email")
MAX_RECIPIENTS = 100
BURST = 50
"""The most mails stored in one transaction."""


class Bursts:
    """Mails waiting to be stored, gathered into bursts (on the listener's event loop)."""

    def __init__(self, channel: MailChannel, *, limit: int = BURST) -> None:
        self.channel = channel
        self.limit = limit
        self.waiting: list[tuple[Arrival, asyncio.Future[Receipt]]] = []
        self.storing = False

    async def store(self, arrival: Arrival) -> Receipt:
        """``arrival`` stored with whatever arrived with it; its receipt, or its error."""
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self.waiting.append((arrival, future))
        if not self.storing:
            self.storing = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                burst, self.waiting = self.waiting[: self.limit], self.waiting[self.limit :]
                arrivals = [a for a, _ in burst]
                try:
                    results = await loop.run_in_executor(None, self.channel.receive_many, arrivals)
                except Exception as exc:  # the whole burst: nothing of it was kept
                    for _, future in burst:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(burst, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self.storing = False


class _Handler:
    def __init__(self, channel: MailChannel) -> None:
        self.channel = channel
        self.bursts = Bursts(channel)

    async def handle_RCPT(
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        _options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        loop = asyncio.get_running_loop()
        mailbox = await loop.run_in_executor(None, self.channel.mailboxes.for_recipient, address)
        if mailbox is None:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw).encode("utf-8", "surrogateescape")
        arrival = Arrival(
            raw, recipients=tuple(envelope.rcpt_tos), envelope_sender=envelope.mail_from
        )
        try:
            receipt = await self.bursts.store(arrival)
        except StorageFull:
            log.error("SMTP: no space left to store a message from %s", _peer(session))
            return "452 4.3.1 Insufficient system storage, try again later"
        except MailParseError as exc:
            return f"554 5.6.0 Not a mail message: {str(exc)[:100]}"
        except MessageTooLarge as exc:  # its own mailbox's limit, below the protocol's
            return f"552 5.3.4 Message too big for this mailbox: {exc.message[:150]}"
        except NoMailbox:
            return "550 5.1.1 No such mailbox here"
        except Exception:
            log.exception("SMTP: storing a message from %s failed", _peer(session))
            return "451 4.3.0 Temporary failure storing the message, try again later"
        log.info(
            "SMTP: message from %s: %s (case %s)", _peer(session), receipt.status, receipt.case_id
        )
        return "250 2.0.0 OK: stored"


def _peer(session: Session) -> str:
    peer: Any = session.peer
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class _Controller(Controller):
    """aiosmtpd's controller whose protocol takes lines longer than 1,000 bytes (and so
    bare-LF line ends, which its reader sees as one long line) up to ``line_length_limit``."""

    def __init__(self, handler: Any, *, line_length_limit: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.line_length_limit = line_length_limit

    def factory(self) -> SMTP:
        lenient = type("LenientSMTP", (SMTP,), {"line_length_limit": self.line_length_limit})
        made: SMTP = lenient(self.handler, **self.SMTP_kwargs)
        return made


class SmtpListener:
    """Start and stop the listener (on its own thread)."""

    def __init__(
        self,
        channel: MailChannel,
        *,
        host: str = "127.0.0.1",
        port: int = 2525,
        max_message_bytes: int | None = None,
    ) -> None:
        limit = max_message_bytes or max(
            [m.max_message_bytes for m in channel.mailboxes.all(active_only=True)]
            or [DEFAULT_MAX_MESSAGE]
        )
        self.controller = _Controller(
            _Handler(channel),
            line_length_limit=limit + 1024,
            hostname=host,
            port=port,
            data_size_limit=limit,
            enable_SMTPUTF8=True,
            ready_timeout=10.0,
            server_hostname="accord",
        )

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> None:
        self.controller.start()
        log.info("SMTP listener on %s:%d", self.controller.hostname, self.port)

    def stop(self) -> None:
        self.controller.stop()
