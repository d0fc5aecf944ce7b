"""The first search index and the first inbox rows built in bulk (issue 23): on
PostgreSQL the search index is built in one transaction with its GIN index made after the
documents are copied in, and many lagging inbox rows are recomputed in one transaction
with COPY. These tests show the bulk paths give what the case-by-case paths give, that a
case written during a build is indexed again afterwards, and that a process killed
mid-build leaves a state the next run finishes (the GIN index included)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from accord import faults
from accord.api.app import create_app
from accord.node import Node
from accord.service import inbox as inbox_module
from accord.service.negotiation import Actor, Negotiation
from accord.store import search as search_module
from accord.store.search import Search
from tests.clocks import cheap_passwords

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
TOM = Actor(member="Tom Baker", via="web")
ONLY_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[Node, Any]]:
    node = Node.init(tmp_path / "n", name="Northwind", database=database_url)
    app = create_app(node, rate_limit=0, now=lambda: NOW, passwords=cheap_passwords())
    services = app.state.services
    services.members.create("tom", "correct horse battery", role="agent", display_name="Tom Baker")
    try:
        yield node, services
    finally:
        services.close()
        node.close()


def open_cases(services: Any, count: int) -> list[str]:
    made = []
    for i in range(count):
        opened = services.negotiation.open_case(
            TOM,
            title=f"Case {i} about the router",
            party_id=services.party_id,
            party_name="Northwind",
            party_url=None,
            customer={"name": f"Customer {i}"},
        )
        services.negotiation.post_message(TOM, opened.case_id, f"Message {i}: quokka{i}")
        made.append(str(opened.case_id))
    return made


def forget_everything(node: Node) -> None:
    """The derived tables as an upgrade leaves them: nothing indexed, no inbox rows."""
    with node.db.write() as conn:
        for table in ("search_docs", "search_marks", "case_inbox"):
            conn.execute(sa.text(f"DELETE FROM {table}"))


def gin_index(node: Node) -> Any:
    with node.db.read() as conn:
        return conn.execute(sa.text(f"SELECT to_regclass('{search_module.GIN_INDEX}')")).scalar()


def indexed(node: Node) -> tuple[int, int]:
    with node.db.read() as conn:
        docs = conn.execute(sa.text("SELECT count(*) FROM search_docs")).scalar()
        marks = conn.execute(sa.text("SELECT count(*) FROM search_marks")).scalar()
    return int(docs or 0), int(marks or 0)


def inbox_rows(node: Node) -> list[tuple[Any, ...]]:
    with node.db.read() as conn:
        rows = conn.execute(sa.text("SELECT * FROM case_inbox ORDER BY case_id")).all()
    return [tuple(r) for r in rows]


@ONLY_POSTGRES
def test_the_cold_build_indexes_what_the_case_by_case_path_does(
    served: tuple[Node, Any],
) -> None:
    node, services = served
    ids = open_cases(services, 6)
    services.notes.add(ids[0], "Tom Baker", "Prefers Ünïcode mornings")
    forget_everything(node)
    cold = Search(node.db)
    assert cold.catch_up() == 6
    assert gin_index(node) is not None
    with node.db.read() as conn:
        built = sorted(conn.execute(sa.text("SELECT case_id, kind, body, folded FROM search_docs")))
        marks = sorted(conn.execute(sa.text("SELECT * FROM search_marks")))
    assert [h.case_id for h in cold.search("quokka3")] == [ids[3]]
    assert [h.case_id for h in cold.search("unicode morn")] == [ids[0]]
    assert Search(node.db).catch_up() == 0  # nothing indexed twice
    # the same cases one batch at a time (marks present: the ordinary path)
    with node.db.write() as conn:
        conn.execute(sa.text("DELETE FROM search_docs"))
        conn.execute(sa.text("UPDATE search_marks SET events = -1, pos = 0, notes = 0"))
    assert Search(node.db).catch_up() == 6
    with node.db.read() as conn:
        again = sorted(conn.execute(sa.text("SELECT case_id, kind, body, folded FROM search_docs")))
        marks_again = sorted(conn.execute(sa.text("SELECT * FROM search_marks")))
    assert again == built and marks_again == marks


@ONLY_POSTGRES
def test_a_case_written_during_the_cold_build_is_indexed_after_it(
    served: tuple[Node, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    node, services = served
    ids = open_cases(services, 3)
    forget_everything(node)
    other = Negotiation(node.cases, node.key, now=lambda: NOW)  # another writer

    def write_meanwhile(name: str) -> None:
        if name == "search.cold-build.copied":  # marks taken, documents copied, not committed
            other.post_message(TOM, ids[1], "Written during the build: wombat")

    monkeypatch.setattr(faults, "point", write_meanwhile)
    search = Search(node.db)
    search.catch_up()
    assert [h.case_id for h in search.search("wombat")] == [ids[1]]
    assert [h.case_id for h in search.search("quokka1")] == [ids[1]]  # indexed once
    with node.db.read() as conn:
        per_case = conn.execute(
            sa.text("SELECT count(*) FROM search_docs WHERE case_id = :c"), {"c": ids[1]}
        ).scalar()
    assert per_case == 3  # title, first message, the one written meanwhile
    assert search.catch_up() == 0


def _run_killed(node: Node, fault: str, code: str) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from datetime import UTC, datetime\n"
        "from accord.node import Node\n"
        f"node = Node.open(Path(sys.argv[1]), database=sys.argv[2])\n{code}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(node.data_dir), node.db.url],
        env={**os.environ, faults.VARIABLE: fault},
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr.decode()


@ONLY_POSTGRES
@pytest.mark.parametrize("fault", ["search.cold-build.copied", "search.cold-build.indexed"])
def test_a_cold_build_killed_midway_is_finished_by_the_next_run(
    served: tuple[Node, Any], fault: str
) -> None:
    node, services = served
    ids = open_cases(services, 4)
    forget_everything(node)
    _run_killed(node, fault, "from accord.store.search import Search\nSearch(node.db).catch_up()")
    assert indexed(node) == (0, 0)  # the build's transaction is gone with it
    assert gin_index(node) is not None  # and its DROP INDEX with it
    with node.db.read() as conn:
        case_index = sa.text(f"SELECT to_regclass('{search_module.CASE_INDEX}')")
        assert conn.execute(case_index).scalar() is not None
    search = Search(node.db)
    assert search.catch_up() == 4
    assert [h.case_id for h in search.search("quokka2")] == [ids[2]]


@ONLY_POSTGRES
def test_a_missing_gin_index_is_made_again(served: tuple[Node, Any]) -> None:
    node, services = served
    ids = open_cases(services, 2)
    assert Search(node.db).catch_up() >= 0
    with node.db.write() as conn:
        conn.execute(sa.text(f"DROP INDEX {search_module.GIN_INDEX}"))
    search = Search(node.db)  # a process started after the index went missing
    search.catch_up()
    assert gin_index(node) is not None
    assert [h.case_id for h in search.search("quokka1")] == [ids[1]]


def test_inbox_rows_in_bulk_equal_rows_one_batch_at_a_time(
    served: tuple[Node, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On both backends (SQLite keeps its batches; the test shows they agree)."""
    node, services = served
    ids = open_cases(services, 7)
    services.notes.add(ids[0], "Tom Baker", "a note")
    forget_everything(node)
    monkeypatch.setattr(inbox_module, "BULK_MIN", 1)
    monkeypatch.setattr(inbox_module, "BULK_CHUNK", 3)  # several chunks in one transaction
    fresh = inbox_module.Inbox(node.cases, node.key.public, now=lambda: NOW)
    assert fresh.refresh() == 7
    bulk = inbox_rows(node)
    assert len(bulk) == 7
    with node.db.write() as conn:
        conn.execute(sa.text("DELETE FROM case_inbox"))
    monkeypatch.setattr(inbox_module, "BULK_MIN", 10**9)
    batched = inbox_module.Inbox(node.cases, node.key.public, now=lambda: NOW)
    assert batched.refresh() == 7
    assert inbox_rows(node) == bulk
    with node.db.read() as conn:  # every case numbered once
        numbers = conn.execute(sa.text("SELECT count(*), count(DISTINCT number) FROM case_refs"))
        assert tuple(numbers.one()) == (7, 7)


@ONLY_POSTGRES
def test_a_bulk_inbox_refresh_killed_midway_is_finished_by_the_next(
    served: tuple[Node, Any],
) -> None:
    node, services = served
    open_cases(services, 5)
    forget_everything(node)
    assert inbox_module.Inbox(node.cases, node.key.public, now=lambda: NOW).refresh() == 5
    expected = inbox_rows(node)
    forget_everything(node)
    code = (
        "from accord.service import inbox\n"
        "inbox.BULK_MIN = 1\n"
        "box = inbox.Inbox(node.cases, node.key.public, now=lambda: datetime.now(UTC))\n"
        "box.refresh()"
    )
    _run_killed(node, "inbox.bulk-refresh.written", code)
    assert inbox_rows(node) == []  # nothing half-written
    again = inbox_module.Inbox(node.cases, node.key.public, now=lambda: NOW)
    assert again.refresh() == 5
    assert inbox_rows(node) == expected
