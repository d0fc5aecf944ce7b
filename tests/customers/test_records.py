"""The single customer view: one person writing from several channels ends on one record
and one timeline; merge and split round-trip with nothing lost; every change audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from accord.auth.members import MemberStore
from accord.channels.intake import Inbound, Intake
from accord.customers.directory import Customers
from accord.customers.records import CustomerRecords, identity_value, phone_e164
from accord.node import Node, party_slug
from accord.service.errors import Conflict, Invalid, NotFound
from accord.service.negotiation import Negotiation
from accord.service.ownership import Ownership
from tests.clocks import cheap_passwords

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class Ticking:
    """A clock a minute later at each call: messages keep the order they came in."""

    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        self.at += timedelta(minutes=1)
        return self.at


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Node]:
    made = Node.init(tmp_path / "node", name="Northwind Broadband", database=database_url)
    yield made
    made.close()


@pytest.fixture
def intake(node: Node) -> Intake:
    members = MemberStore(node.db, passwords=cheap_passwords())
    ownership = Ownership(node.cases, node.key, members, now=lambda: NOW)
    members.create("tom", "correct horse battery", role="agent", display_name="Tom Baker")
    ownership.set_profile("tom", availability="online")
    negotiation = Negotiation(node.cases, node.key, now=lambda: NOW)
    return Intake(node, negotiation, ownership, party_id=party_slug(node.name), now=Ticking())


def message(channel: str, kind: str, identity: str, text: str, n: int) -> Inbound:
    return Inbound(
        channel=channel,
        external_id=f"{channel}-{n}",
        content_hash=f"h{n}",
        identity_kind=kind,
        identity=identity,
        sender_name="Priya Shah",
        subject="" if channel != "email" else "My new price",
        text=text,
    )


def test_one_person_on_three_channels_is_one_customer_on_one_timeline(
    node: Node, intake: Intake
) -> None:
    records = CustomerRecords(node.cases, now=lambda: NOW)
    by_mail = intake.receive(
        message("email", "email", "priya@example.com", "Can I have the new price?", 1)
    )
    by_whatsapp = intake.receive(
        message("whatsapp", "phone", "+447700900123", "engineer didn't come", 2)
    )
    assert by_mail.customer_id != by_whatsapp.customer_id  # not known yet: two records
    assert by_mail.customer_id is not None and by_whatsapp.customer_id is not None
    # The member links the phone: it belongs to the WhatsApp record, so a link is refused
    # with the way forward (merge), then the merge makes them one.
    with pytest.raises(Conflict, match="merge the two records") as refused:
        records.link(by_mail.customer_id, "phone", "+44 7700 900123", by="tom")
    assert refused.value.details == {"customer": by_whatsapp.customer_id}
    merged = records.merge(by_mail.customer_id, by_whatsapp.customer_id, by="tom")
    assert {(i["kind"], i["value"]) for i in merged["identities"]} == {
        ("email", "priya@example.com"),
        ("phone", "+447700900123"),
    }
    assert len(merged["cases"]) == 2
    # A web chat visitor id linked once: the next chat message finds her at once.
    records.link(by_mail.customer_id, "web", "visitor-7f3a", by="tom")
    by_chat = intake.receive(message("webchat", "web", "visitor-7f3a", "any news?", 3))
    assert by_chat.customer_id is not None
    assert Customers(node.db, now=lambda: NOW).current  # the record found follows merges
    with node.db.read() as conn:
        assert Customers(node.db, now=lambda: NOW).current(conn, by_chat.customer_id) == (
            by_mail.customer_id
        )
    timeline = records.timeline(by_whatsapp.customer_id)  # any record of the family works
    customer_lines = [(t["via"], t["text"]) for t in timeline if t["customer"]]
    assert customer_lines == [
        ("email", "Can I have the new price?"),
        ("whatsapp", "engineer didn't come"),
        ("webchat", "any news?"),
    ]


def _state(records: CustomerRecords, customer_id: int) -> tuple[Any, ...]:
    found = records.view(customer_id)
    return (
        sorted((i["kind"], i["value"]) for i in found["identities"]),
        sorted(c["case"] for c in found["cases"]),
    )


def test_merge_and_split_round_trip_lose_nothing(node: Node, intake: Intake) -> None:
    records = CustomerRecords(node.cases, now=lambda: NOW)
    a = intake.receive(message("email", "email", "priya@example.com", "one", 1))
    b = intake.receive(message("sms", "phone", "+447700900123", "two", 2))
    assert a.customer_id is not None and b.customer_id is not None
    records.link(b.customer_id, "email", "family@shah.example", by="tom")
    before_a, before_b = _state(records, a.customer_id), _state(records, b.customer_id)

    records.merge(a.customer_id, b.customer_id, by="tom")
    together = _state(records, a.customer_id)
    assert together == (
        sorted(before_a[0] + before_b[0]),
        sorted(before_a[1] + before_b[1]),
    )
    records.unmerge(b.customer_id, by="sara")
    assert _state(records, a.customer_id) == before_a
    assert _state(records, b.customer_id) == before_b

    # Split the family address and the SMS case off to a new record, then merge it back.
    records.merge(a.customer_id, b.customer_id, by="tom")
    assert b.case_id is not None
    new = records.split(
        a.customer_id,
        name="Anil Shah",
        identities=[("email", "FAMILY@shah.example")],
        case_ids=[b.case_id],
        by="tom",
    )
    assert _state(records, new["id"]) == ([("email", "family@shah.example")], [b.case_id])
    rest = _state(records, a.customer_id)
    assert ("email", "family@shah.example") not in rest[0] and b.case_id not in rest[1]
    records.merge(a.customer_id, new["id"], by="tom")
    assert _state(records, a.customer_id) == together
    actions = [(c.action, c.by) for c in records.history(a.customer_id)]
    assert actions == [
        ("link", "tom"),
        ("merge", "tom"),
        ("unmerge", "sara"),
        ("merge", "tom"),
        ("split", "tom"),
        ("merge", "tom"),
    ]


def test_changes_are_checked(node: Node, intake: Intake) -> None:
    records = CustomerRecords(node.cases, now=lambda: NOW)
    a = intake.receive(message("email", "email", "priya@example.com", "one", 1))
    assert a.customer_id is not None
    with pytest.raises(Invalid, match="international form"):
        records.link(a.customer_id, "phone", "07700 900123", by="tom")
    with pytest.raises(Invalid, match="identity kind"):
        records.link(a.customer_id, "fax", "123", by="tom")
    with pytest.raises(Conflict, match="already this customer's"):
        records.link(a.customer_id, "email", "Priya@Example.com", by="tom")
    with pytest.raises(Conflict, match="already one customer"):
        records.merge(a.customer_id, a.customer_id, by="tom")
    with pytest.raises(Conflict, match="not merged"):
        records.unmerge(a.customer_id, by="tom")
    with pytest.raises(NotFound, match="no customer 999"):
        records.view(999)
    with pytest.raises(NotFound, match="no email identity"):
        records.unlink(a.customer_id, "email", "nobody@example.com", by="tom")
    with pytest.raises(Invalid, match="choose the identities or cases"):
        records.split(a.customer_id, name="X", by="tom")
    assert records.history(a.customer_id) == []  # refused changes leave no trace


def test_suggestions_find_shared_phones_and_addresses(node: Node, intake: Intake) -> None:
    records = CustomerRecords(node.cases, now=lambda: NOW)
    a = intake.receive(message("email", "email", "priya.shah+bills@gmail.com", "x", 1))
    b = intake.receive(message("email", "email", "priyashah@googlemail.com", "y", 2))
    c = intake.receive(message("sms", "phone", "+447700900123", "z", 3))
    d = intake.receive(message("email", "email", "someone@else.example", "w", 4))
    assert a.customer_id and b.customer_id and c.customer_id and d.customer_id
    records.link(d.customer_id, "whatsapp", "+44 7700 900123", by="tom")
    found = records.suggestions()
    assert {
        "customers": sorted([a.customer_id, b.customer_id]),
        "reason": ("same email address priyashah@gmail.com"),
    } in found
    assert {
        "customers": sorted([c.customer_id, d.customer_id]),
        "reason": ("same phone number +447700900123"),
    } in found
    records.merge(c.customer_id, d.customer_id, by="tom")
    assert all(
        sorted([c.customer_id, d.customer_id]) != s["customers"] for s in records.suggestions()
    )
    assert [s["name"] for s in records.search("7700")] == ["Priya Shah"]


def test_the_customer_commands(node: Node, intake: Intake) -> None:
    from typer.testing import CliRunner

    from accord.cli import app

    a = intake.receive(message("email", "email", "priya@example.com", "one", 1))
    b = intake.receive(message("whatsapp", "phone", "+447700900123", "two", 2))
    args = ["--data", str(node.data_dir), "--database", node.db.url]

    def accord(*words: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, [*words, *args], env={"COLUMNS": "200"})
        assert result.exit_code == code, result.output
        return result.output

    assert "same phone" not in accord("customer", "suggest")
    shown = accord("customer", "merge", str(a.customer_id), str(b.customer_id), "--by", "tom")
    assert "priya@example.com" in shown and "+447700900123" in shown
    assert "no member 'nobody'" in accord(
        "customer", "unmerge", str(b.customer_id), "--by", "nobody", code=1
    )
    timeline = accord("customer", "timeline", str(a.customer_id))
    assert "whatsapp" in timeline and "email" in timeline
    history = accord("customer", "history", str(a.customer_id))
    assert "merge" in history and "tom" in history
    assert "Priya Shah" in accord("customer", "list", "priya")
    assert "no customer 99" in accord("customer", "show", "99", code=1)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("+44 7700 900123", "+447700900123"),
        ("+44 (0)7700 900123", "+447700900123"),
        ("0044 7700-900123", "+447700900123"),
        ("+1 (202) 555-0143", "+12025550143"),
        ("+49 30 901820", "+4930901820"),
        ("07700 900123", None),  # national form: no country
        ("+44 12", None),  # too short for its country
        ("+999 1234567", None),  # no such country code
        ("call me", None),
    ],
)
def test_phone_numbers_are_normalised_by_libphonenumber(typed: str, stored: str | None) -> None:
    assert phone_e164(typed) == stored
    if stored is None:
        with pytest.raises(Invalid, match="international form"):
            identity_value("phone", typed)
    else:
        assert identity_value("phone", typed) == stored
        assert identity_value("whatsapp", typed) == stored
