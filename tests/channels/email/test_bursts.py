"""Mail that arrives together is stored together (``MailChannel.receive_many`` inside
``Database.batch``): one commit for the burst, each mail a savepoint of its own, nothing
acknowledged or announced before the commit, and a failure that may pass keeps nothing
of the burst so every sender tries again. The SMTP listener's ``Bursts`` gather the
mails that arrive while a burst is being stored."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from accord.channels.email import policy
from accord.channels.email.mailchannel import Arrival, MessageTooLarge
from accord.channels.email.parse import MailParseError
from accord.channels.email.smtp_server import Bursts
from accord.channels.intake import Receipt
from accord.store.tables import cases, channel_messages, notifications
from tests.channels.email.conftest import MailDesk, mail


def _arrivals(desk: MailDesk, *raws: bytes) -> list[Arrival]:
    return [Arrival(raw, recipients=(desk.mailbox.address,)) for raw in raws]


def _inbound(desk: MailDesk) -> list[Any]:
    return [m for m in desk.messages(direction="in")]


def _commits(desk: MailDesk) -> list[int]:
    """How many commits stored inbound messages (the followers' own commits not counted)."""
    counted = [0]
    storing: set[int] = set()

    def executed(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO CHANNEL_MESSAGES"):
            storing.add(id(conn))

    def committed(conn: Any) -> None:
        if id(conn) in storing:
            storing.discard(id(conn))
            counted[0] += 1

    sa.event.listen(desk.node.db.writer, "before_cursor_execute", executed)
    sa.event.listen(desk.node.db.writer, "commit", committed)
    return counted


def test_a_burst_is_one_commit_and_a_reply_in_it_finds_the_case_opened_before_it(
    desk: MailDesk,
) -> None:
    commits = _commits(desk)
    announced: list[tuple[str, bool]] = []

    def listener(case_id: str, _events: list[str]) -> None:
        with desk.node.db.writer.connect() as conn:  # a connection of its own: committed?
            seen = conn.execute(sa.select(cases.c.case_id).where(cases.c.case_id == case_id))
            announced.append((case_id, seen.first() is not None))

    desk.services.negotiation.listeners.insert(0, listener)  # before the followers
    first = mail(message_id="<burst-1@example.com>")
    others = [
        mail(sender=f"Customer {n} <c{n}@example.com>", message_id=f"<burst-o{n}@example.com>")
        for n in range(3)
    ]
    reply = mail(
        subject="Re: Internet keeps dropping",
        body="It dropped again last night.",
        message_id="<burst-2@example.com>",
        in_reply_to="<burst-1@example.com>",
    )
    results = desk.mail.receive_many(_arrivals(desk, first, *others, reply))

    assert commits[0] == 1  # one commit stored the whole burst
    receipts = [r for r in results if isinstance(r, Receipt)]
    assert [r.status for r in receipts] == ["stored"] * 5
    assert receipts[-1].case_id == receipts[0].case_id and not receipts[-1].new_case
    assert len({r.case_id for r in receipts}) == 4
    # the listeners (peers, timers, webhooks) heard of each case only once it was committed
    assert announced and all(committed for _, committed in announced)
    assert {case for case, _ in announced} == {r.case_id for r in receipts}


def test_a_poison_mail_is_kept_as_failed_and_the_rest_of_the_burst_stands(
    desk: MailDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = policy.quiet

    def broken_for_one(parsed: Any) -> str | None:
        if parsed.subject == "poison":
            raise UnicodeEncodeError("ascii", "ü", 0, 1, "a bug that repeats on every attempt")
        return quiet(parsed)

    monkeypatch.setattr(policy, "quiet", broken_for_one)
    good = mail(message_id="<good-1@example.com>")
    poison = mail(sender="Sam <sam@example.com>", subject="poison", message_id="<p@example.com>")
    later = mail(sender="Ann <ann@example.com>", message_id="<good-2@example.com>")
    results = desk.mail.receive_many(_arrivals(desk, good, poison, later))

    assert [r.status for r in results if isinstance(r, Receipt)] == ["stored", "failed", "stored"]
    rows = _inbound(desk)
    assert sorted(r.status for r in rows) == ["failed", "stored", "stored"]
    with desk.node.db.read() as conn:
        told = conn.execute(
            sa.select(notifications).where(notifications.c.kind == "mail.failed")
        ).all()
    assert told


def test_a_mail_refused_for_its_own_fault_is_its_result_and_changes_nothing(
    desk: MailDesk,
) -> None:
    desk.mail.mailboxes.update(desk.mailbox.id, max_message_bytes=4096, max_attachment_bytes=2048)
    good = mail(message_id="<fine@example.com>")
    huge = mail(sender="Big <big@example.com>", body="x" * 10_000, message_id="<big@example.com>")
    results = desk.mail.receive_many(_arrivals(desk, good, huge, b""))

    assert isinstance(results[0], Receipt) and results[0].status == "stored"
    assert isinstance(results[1], MessageTooLarge)
    assert isinstance(results[2], MailParseError)
    assert [r.status for r in _inbound(desk)] == ["stored"]


def test_a_failure_that_may_pass_keeps_nothing_of_the_burst(
    desk: MailDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = policy.quiet
    seen = [0]

    def down_on_the_third(parsed: Any) -> str | None:
        seen[0] += 1
        if seen[0] == 3:
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("the database restarts"))
        return quiet(parsed)

    monkeypatch.setattr(policy, "quiet", down_on_the_third)
    raws = [
        mail(sender=f"Customer {n} <c{n}@example.com>", message_id=f"<t{n}@example.com>")
        for n in range(4)
    ]
    with pytest.raises(sa.exc.OperationalError):
        desk.mail.receive_many(_arrivals(desk, *raws))
    assert _inbound(desk) == []
    with desk.node.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cases)).scalar_one() == 0
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(channel_messages)).scalar_one() == 0
        )
    # the senders' retries, once the database is back, store every mail once
    monkeypatch.setattr(policy, "quiet", quiet)
    results = desk.mail.receive_many(_arrivals(desk, *raws))
    assert [r.status for r in results if isinstance(r, Receipt)] == ["stored"] * 4


class _SlowChannel:
    """Stands in for MailChannel: the first burst waits until released."""

    def __init__(self) -> None:
        self.bursts: list[list[bytes]] = []
        self.release = threading.Event()
        self.fail: Exception | None = None

    def receive_many(self, arrivals: Sequence[Arrival]) -> list[Receipt | Exception]:
        self.bursts.append([a.raw for a in arrivals])
        if len(self.bursts) == 1:
            assert self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        return [
            Receipt("stored", n) if a.raw != b"bad" else MailParseError("not a mail")
            for n, a in enumerate(arrivals)
        ]


def test_mails_that_arrive_while_a_burst_is_stored_go_together_as_the_next() -> None:
    async def scenario() -> tuple[list[list[bytes]], list[Any]]:
        channel = _SlowChannel()
        bursts = Bursts(channel, limit=4)  # type: ignore[arg-type]
        first = asyncio.ensure_future(bursts.store(Arrival(b"m0")))
        while not channel.bursts:
            await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(bursts.store(Arrival(f"m{n}".encode()))) for n in (1, 2)]
        bad = asyncio.ensure_future(bursts.store(Arrival(b"bad")))
        more = [asyncio.ensure_future(bursts.store(Arrival(f"m{n}".encode()))) for n in (3, 4)]
        await asyncio.sleep(0.05)
        assert not any(f.done() for f in [first, *rest, bad, *more])  # nothing before its commit
        channel.release.set()
        outcomes = await asyncio.gather(first, *rest, bad, *more, return_exceptions=True)
        return channel.bursts, outcomes

    seen, outcomes = asyncio.run(scenario())
    assert seen == [[b"m0"], [b"m1", b"m2", b"bad", b"m3"], [b"m4"]]  # at most 4 a burst
    assert isinstance(outcomes[3], MailParseError)
    assert all(isinstance(o, Receipt) for n, o in enumerate(outcomes) if n != 3)


def test_a_burst_that_fails_as_a_whole_fails_every_mail_in_it() -> None:
    async def scenario() -> list[Any]:
        channel = _SlowChannel()
        channel.release.set()
        channel.fail = sa.exc.OperationalError("COMMIT", {}, Exception("the disk"))
        bursts = Bursts(channel)  # type: ignore[arg-type]
        waits = [bursts.store(Arrival(f"m{n}".encode())) for n in range(3)]
        return await asyncio.gather(*waits, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, sa.exc.OperationalError) for o in outcomes)
