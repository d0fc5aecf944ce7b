"""Imports from Zendesk, Request Tracker and CSV: what they make, and that a second import
of the same export changes nothing (on SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from accord.customers.directory import Customers
from accord.importing.csv_files import read_csv
from accord.importing.records import ImportFormatError
from accord.importing.rt import parse_fields, read_rt
from accord.importing.writer import Importer, Report
from accord.importing.zendesk import read_zendesk
from accord.node import Node
from accord.service.notes import Notes
from accord.store.tables import case_customers, customer_identities, customers, events, notes
from tests.clocks import START

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Node]:
    made = Node.init(tmp_path / "node", name="Northwind Broadband", database=database_url)
    yield made
    made.close()


def _snapshot(node: Node) -> dict[str, Any]:
    """Every row an import can touch, to show a re-import changes nothing."""
    with node.db.read() as conn:
        return {
            table.name: sorted(tuple(str(v) for v in r) for r in conn.execute(sa.select(table)))
            for table in (customers, customer_identities, case_customers, notes, events)
        }


def _messages(node: Node, case_id: str) -> list[tuple[str, str | None, str, str]]:
    """(member, for_party, time, text) of each message of the case, oldest first."""
    found = [e for e in node.cases.events(case_id) if e.type == "message.posted"]
    return [
        (e.author.member, e.author.for_party, e.time, e.body["text"])
        for e in sorted(found, key=lambda e: e.time)
    ]


def _case_of(node: Node, source: str, key: str) -> str:
    with node.db.read() as conn:
        return str(
            conn.execute(
                sa.text(
                    "SELECT local_id FROM import_keys WHERE source=:s AND kind='case' "
                    "AND external_id=:k"
                ),
                {"s": source, "k": key},
            ).scalar_one()
        )


def _customer_of(node: Node, case_id: str) -> tuple[str, list[tuple[str, str]]]:
    with node.db.read() as conn:
        customer_id = conn.execute(
            sa.select(case_customers.c.customer_id).where(case_customers.c.case_id == case_id)
        ).scalar_one()
    found = Customers(node.db, now=lambda: None).get(int(customer_id))  # type: ignore[arg-type,return-value]
    return found.name, [(i.kind, i.value) for i in found.identities]


def test_zendesk_export_becomes_customers_cases_messages_and_notes(node: Node) -> None:
    report = Importer(node).run("zendesk:northwind", read_zendesk(FIXTURES / "zendesk"))
    assert report.failed == []
    assert report.counts["cases_created"] == 3
    assert report.counts["customers_created"] == 3  # the three end users; agents are not
    assert report.counts["messages_added"] == 3 + 3 + 1
    assert report.counts["notes_added"] == 1
    assert report.counts["cases_closed"] == 1
    assert ("ticket 5104", "deleted in Zendesk") in report.skipped

    priya = _case_of(node, "zendesk:northwind", "5101")
    state = node.cases.state(priya)
    assert state is not None
    assert state["title"] == "My 12-month term is over — can I have the new price?"
    assert state["opened"]["time"] == "2026-11-02T09:15:00Z"
    messages = _messages(node, priya)
    assert [(m[0], m[1], m[2]) for m in messages] == [
        ("Priya Shah", "customer", "2026-11-02T09:15:00Z"),
        ("Tom Baker", None, "2026-11-02T14:30:00Z"),
        ("Priya Shah", "customer", "2026-11-03T16:40:00Z"),
    ]
    assert messages[0][3].endswith("[attachments not imported, still in zendesk: bill-october.pdf]")
    assert "£20/month" in messages[1][3]
    # The private comment is a node-private note, never in the shared log.
    (note,) = Notes(node.cases).list(priya)
    assert note.member == "Tom Baker" and "eligible for the 2026 tariff" in note.text
    assert all("eligible" not in str(e.body) for e in node.cases.events(priya))
    assert _customer_of(node, priya) == (
        "Priya Shah",
        [("email", "priya.shah@example.com"), ("phone", "+447700900123")],
    )
    assert not state["resolved"]

    jose = _case_of(node, "zendesk:northwind", "5102")  # comments from comments/5102.json
    assert [m[1] for m in _messages(node, jose)] == ["customer", None, "customer"]
    closed = node.cases.state(jose)
    assert closed is not None and closed["status"]["label"] == "closed"
    assert list(closed["satisfied"]) == ["northwind-broadband"]  # the customer's is theirs
    assert not closed["resolved"]
    # Every event verifies: the imported cases are ordinary signed cases.
    for case_id in report.cases:
        node.cases.events(case_id, verify=True)


def test_reimporting_the_same_zendesk_export_changes_nothing(node: Node) -> None:
    Importer(node).run("zendesk", read_zendesk(FIXTURES / "zendesk"))
    before = _snapshot(node)
    again = Importer(node).run("zendesk", read_zendesk(FIXTURES / "zendesk"))
    assert not again.changed and again.failed == []
    assert again.counts["cases_unchanged"] == 3
    assert again.counts["customers_known"] >= 3
    assert _snapshot(node) == before


def test_a_later_export_adds_only_the_new_correspondence(node: Node, tmp_path: Path) -> None:
    folder = tmp_path / "zendesk"
    shutil.copytree(FIXTURES / "zendesk", folder)
    Importer(node).run("zendesk", read_zendesk(folder))
    lines = (folder / "tickets.json").read_text().splitlines()
    ticket = orjson.loads(lines[0])
    ticket["comments"].append(
        {
            "id": 9900105,
            "type": "Comment",
            "author_id": 361002,
            "body": "Yes: a 1-month rolling term at £22/month.",
            "public": True,
            "attachments": [],
            "created_at": "2026-11-04T09:00:00Z",
        }
    )
    lines[0] = orjson.dumps(ticket).decode()
    (folder / "tickets.json").write_text("\n".join(lines) + "\n")
    later = Importer(node).run("zendesk", read_zendesk(folder))
    assert later.counts["cases_updated"] == 1 and later.counts["cases_unchanged"] == 2
    assert later.counts["messages_added"] == 1 and later.counts["cases_created"] == 0
    case_id = _case_of(node, "zendesk", "5101")
    assert _messages(node, case_id)[-1][3] == "Yes: a 1-month rolling term at £22/month."


def test_a_dry_run_reports_exactly_and_changes_nothing(node: Node) -> None:
    before = _snapshot(node)
    dry = Importer(node).run("zendesk", read_zendesk(FIXTURES / "zendesk"), dry_run=True)
    assert _snapshot(node) == before
    real = Importer(node).run("zendesk", read_zendesk(FIXTURES / "zendesk"))
    assert dry.to_json() | {"dry_run": False} == real.to_json()


def test_request_tracker_tickets_and_history(node: Node) -> None:
    report = Importer(node).run("rt", read_rt(FIXTURES / "rt"))
    assert report.failed == []
    assert ("ticket 43", "deleted in RT") in report.skipped
    assert report.counts["cases_created"] == 2
    assert report.counts["customers_created"] == 2
    assert report.counts["notes_added"] == 1
    assert report.counts["cases_closed"] == 1
    case_id = _case_of(node, "rt", "41")
    messages = _messages(node, case_id)
    assert [(m[0], m[1], m[2]) for m in messages] == [
        ("priya.shah@example.com", "customer", "2026-12-03T17:05:00Z"),
        ("tom", None, "2026-12-04T09:00:00Z"),
        ("priya.shah@example.com", "customer", "2026-12-06T18:20:00Z"),
    ]
    # Multi-line content keeps its lines (and its blank lines), without RT's indent.
    assert messages[0][3] == (
        "The engineer didn't come today.\n\nI waited in all afternoon. When will they come?"
        "\n\nPriya"
    )
    assert messages[1][3].endswith("[attachments not imported, still in rt: credit-note.pdf]")
    (note,) = Notes(node.cases).list(case_id)
    assert note.text.startswith("Fibrefix says the van broke down")
    state = node.cases.state(case_id)
    assert state is not None and state["status"]["label"] == "closed"
    again = Importer(node).run("rt", read_rt(FIXTURES / "rt"))
    assert not again.changed


def test_the_same_person_in_two_systems_is_one_customer(node: Node) -> None:
    Importer(node).run("zendesk", read_zendesk(FIXTURES / "zendesk"))
    report = Importer(node).run("rt", read_rt(FIXTURES / "rt"))
    assert report.counts["customers_matched"] == 1  # Priya, by her email
    assert report.counts["customers_created"] == 1  # Fibrefix's NOC
    zendesk_case = _case_of(node, "zendesk", "5101")
    rt_case = _case_of(node, "rt", "41")
    assert _customer_of(node, zendesk_case)[0] == _customer_of(node, rt_case)[0] == "Priya Shah"


def test_csv_customers_cases_and_messages(node: Node) -> None:
    export = read_csv(
        FIXTURES / "csv" / "customers.csv",
        FIXTURES / "csv" / "cases.csv",
        FIXTURES / "csv" / "messages.csv",
    )
    assert ("cases.csv line 4", "no customer: give customer_id or customer_email") in export.skipped
    assert ("messages of case K-999", "no such case in the cases file") in export.skipped
    report = Importer(node).run("csv", export)
    assert report.failed == []
    assert ("customer C-3", "not an email: 'not-an-address'") in report.skipped
    assert report.counts["customers_created"] == 4  # three rows and Grace from cases.csv
    assert report.counts["cases_created"] == 2 and report.counts["cases_closed"] == 1
    grace = _case_of(node, "csv", "K-101")
    assert _messages(node, grace)[0][2] == "2026-11-20T14:30:00Z"  # +01:00 read as such
    assert _messages(node, grace)[1][3] == 'Any news? It needs "GH Ltd" on it.'
    priya = _case_of(node, "csv", "K-100")
    name, identities = _customer_of(node, priya)
    assert name == "Priya Shah" and ("email", "priya@shah-family.example") in identities
    assert len(Notes(node.cases).list(priya)) == 1
    assert not Importer(node).run("csv", export).changed


def test_an_imported_closed_case_is_not_offered_as_open(node: Node) -> None:
    Importer(node).run("zendesk", read_zendesk(FIXTURES / "zendesk"))
    customers_ = Customers(node.db, now=lambda: None)  # type: ignore[arg-type,return-value]
    with node.db.read() as conn:
        jose = customers_.find(conn, "email", "jose.alvarez@example.org")
        assert jose is not None
        assert customers_.open_cases(conn, jose) == []
        priya = customers_.find(conn, "email", "priya.shah@example.com")
        assert priya is not None
        assert [t for _, t in customers_.open_cases(conn, priya)] == [
            "My 12-month term is over — can I have the new price?"
        ]


def test_a_ticket_that_cannot_be_stored_is_reported_and_the_rest_go_on(
    node: Node, tmp_path: Path
) -> None:
    folder = tmp_path / "zendesk"
    shutil.copytree(FIXTURES / "zendesk", folder)
    lines = (folder / "tickets.json").read_text().splitlines()
    broken = orjson.loads(lines[2])
    broken["created_at"] = "yesterday"
    lines[2] = orjson.dumps(broken).decode()
    lines.insert(1, "[1, 2]")
    (folder / "tickets.json").write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportFormatError, match="expected JSON objects"):
        read_zendesk(folder)
    lines.pop(1)
    (folder / "tickets.json").write_text("\n".join(lines) + "\n")
    export = read_zendesk(folder)
    report: Report = Importer(node).run("zendesk", export)
    assert any("5103" in r or "record 3" in r for r, _ in report.skipped)
    assert report.counts["cases_created"] == 2


def test_formats_are_checked_with_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match=r"no tickets\.json"):
        read_zendesk(tmp_path)
    with pytest.raises(ImportFormatError, match=r"no ticket-<N>\.txt"):
        read_rt(tmp_path)
    # A ticket file RT did not answer with 200 is skipped with RT's words, not imported.
    (tmp_path / "ticket-1.txt").write_text("RT/4.4.7 401 Credentials required\n")
    assert read_rt(tmp_path).skipped == [
        ("ticket 1", "ticket-1.txt: RT answered 401 Credentials required")
    ]
    (tmp_path / "ticket-1.txt").write_text("<html>login</html>\n")
    assert read_rt(tmp_path).skipped == [
        ("ticket 1", "ticket-1.txt: not an RT REST 1.0 answer (no 'RT/… 200 Ok' line)")
    ]
    assert read_rt(tmp_path).tickets == []
    bad = tmp_path / "cases.csv"
    bad.write_text("id,subject\n1,x\n")
    with pytest.raises(ImportFormatError, match="missing column"):
        read_csv(cases=bad)
    with pytest.raises(ImportFormatError, match="give a customers file"):
        read_csv()


def test_rt_fields_parse_continuations_and_empty_values() -> None:
    (record,) = parse_fields(
        "id: 7\nField:\nContent: one\n         two\n         \n         three\nCreator: x\n"
    )
    assert record == {"id": "7", "Field": "", "Content": "one\ntwo\n\nthree", "Creator": "x"}


def test_a_ticket_closed_after_an_agreement_closes_its_case_on_that_version(
    node: Node, tmp_path: Path
) -> None:
    """The closing satisfaction names the terms version the case is at: terms agreed in
    Accord after the first import do not make the second import's close a no-op."""
    folder = tmp_path / "zendesk"
    shutil.copytree(FIXTURES / "zendesk", folder)
    Importer(node).run("zendesk", read_zendesk(folder))
    case_id = _case_of(node, "zendesk", "5101")
    proposal, _ = node.cases.create_many(
        node.key,
        case_id,
        [
            (
                "proposal.made",
                {
                    "base": 0,
                    "changes": [
                        {
                            "op": "data.put",
                            "key": "price",
                            "value": {"type": "money", "amount": "20.00", "currency": "GBP"},
                        }
                    ],
                },
            ),
            ("message.posted", {"text": "A new price for your line."}),
        ],
        member="Tom Baker",
        time=START,
    )
    node.cases.create_many(
        node.key,
        case_id,
        [("proposal.accepted", {"proposal": proposal.id})],
        member="Priya Shah",
        for_party="customer",
        via="portal",
        session="portal:test",
        time=START,
    )
    agreed = node.cases.state(case_id)
    assert agreed is not None and agreed["terms"]["version"] == 1

    lines = (folder / "tickets.json").read_text().splitlines()
    tickets = [orjson.loads(line) for line in lines]
    for ticket in tickets:
        if ticket["id"] == 5101:
            ticket["status"] = "solved"
    (folder / "tickets.json").write_text(
        "\n".join(orjson.dumps(t).decode() for t in tickets) + "\n"
    )
    later = Importer(node).run("zendesk", read_zendesk(folder))
    assert later.counts["cases_closed"] == 1
    closed = node.cases.state(case_id)
    assert closed is not None and closed["status"] is not None
    assert closed["status"]["label"] == "closed"
    assert closed["satisfied"]["northwind-broadband"]["version"] == 1
