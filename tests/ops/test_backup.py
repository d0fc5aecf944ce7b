"""Backups taken while the node works restore to a node whose every case verifies, on
either backend; a restore refuses what it must not overwrite or cannot read."""

from __future__ import annotations

import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.channels.blobs import node_blobs
from accord.node import Node
from accord.ops.backup import BackupError, backup, restore
from accord.service.negotiation import Actor, Negotiation
from tests.clocks import cheap_passwords

SUPPORT = Actor(member="Tom Baker", via="api")


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Node]:
    made = Node.init(tmp_path / "node", name="Northwind Broadband", database=database_url)
    yield made
    made.close()


def _busy(node: Node, cases: int) -> list[str]:
    negotiation = Negotiation(node.cases, node.key)
    made = []
    for i in range(cases):
        opened = negotiation.open_case(
            SUPPORT,
            title=f"Case {i}",
            party_id="northwind",
            party_name="Northwind",
            customer={"id": "customer", "name": f"Customer {i}"},
        )
        made.append(opened.case_id)
    return made


def _counts(node: Node) -> dict[str, int]:
    with node.db.read() as conn:
        return {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("cases", "events", "case_snapshots", "node_info")
        }


def test_a_backup_taken_during_writes_restores_and_verifies(node: Node, tmp_path: Path) -> None:
    case_ids = _busy(node, 5)
    node_blobs(node.data_dir, durable=False).put(b"%PDF-1.7 a bill")
    negotiation = Negotiation(node.cases, node.key)
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            outcome = negotiation.post_message(SUPPORT, case_ids[n % 5], f"update {n}")
            written.extend(outcome.event_ids)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 20:
            threading.Event().wait(0.01)
        manifest = backup(node, tmp_path / "backup.tar.gz")
    finally:
        stop.set()
        thread.join()
    assert manifest["rows"]["cases"] == 5 and manifest["blobs"] == 1
    done = restore(tmp_path / "backup.tar.gz", tmp_path / "restored")  # onto SQLite
    try:
        assert done.problems == [] and done.verified == 5
        assert done.node.key.public == node.key.public
        # Consistent: the restored node holds exactly the snapshot's rows, every event
        # of which belongs to a case whose stored state covers it.
        assert done.rows["events"] == manifest["rows"]["events"]
        assert _counts(done.node)["events"] == manifest["rows"]["events"]
        for case_id in case_ids:
            state = done.node.cases.state(case_id)
            assert state is not None
            assert state["events"] == len(done.node.cases.events(case_id, verify=True))
        assert (done.node.data_dir / "blobs").exists()
        # The restored node keeps working: new events, new ids.
        Negotiation(done.node.cases, done.node.key).post_message(SUPPORT, case_ids[0], "after")
    finally:
        done.node.close()


def test_postgresql_to_postgresql_keeps_sequences_going(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    names = [f"accord_b_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    urls = [
        sa.make_url(postgres_admin_url).set(database=n).render_as_string(hide_password=False)
        for n in names
    ]
    try:
        source = Node.init(tmp_path / "a", name="Northwind", database=urls[0])
        _busy(source, 2)
        from accord.auth.members import MemberStore

        MemberStore(source.db, passwords=cheap_passwords()).create(
            "tom", "correct horse battery", role="agent", display_name="Tom"
        )
        backup(source, tmp_path / "b.tar.gz")
        source.close()
        done = restore(tmp_path / "b.tar.gz", tmp_path / "b", database=urls[1])
        assert done.verified == 2
        # A new row after the restored ones gets a fresh id (the sequence moved on).
        made = MemberStore(done.node.db, passwords=cheap_passwords()).create(
            "sara", "correct horse battery", role="lead", display_name="Sara"
        )
        assert made.id == 2
        done.node.close()
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_restore_refuses_what_it_must_not_touch(node: Node, tmp_path: Path) -> None:
    _busy(node, 1)
    archive = tmp_path / "backup.tar.gz"
    backup(node, archive)
    with pytest.raises(BackupError, match="already holds a node"):
        restore(archive, node.data_dir)
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar file")
    with pytest.raises(BackupError, match="is not an Accord backup"):
        restore(tmp_path / "junk.tar.gz", tmp_path / "x")
    # A backup from a newer or older schema says which Accord to restore it with.
    tampered = tmp_path / "old.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            if member.name == "manifest.json":
                assert data is not None
                import io

                import orjson

                manifest = orjson.loads(data.read())
                manifest["revision"] = "0001"
                raw = orjson.dumps(manifest)
                member.size = len(raw)
                dst.addfile(member, io.BytesIO(raw))
            else:
                dst.addfile(member, data)
    with pytest.raises(BackupError, match="restore with the Accord version that made it"):
        restore(tampered, tmp_path / "y")
    assert not (tmp_path / "y" / "node.key").exists()


def test_the_commands(node: Node, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from accord.cli import app

    _busy(node, 2)
    node.close()
    runner = CliRunner()
    made = runner.invoke(
        app,
        [
            "backup",
            str(tmp_path / "n.tar.gz"),
            "--data",
            str(node.data_dir),
            "--database",
            node.db.url,
        ],
    )
    assert made.exit_code == 0, made.output
    assert "backed up Northwind Broadband" in made.output
    restored = runner.invoke(
        app, ["restore", str(tmp_path / "n.tar.gz"), "--data", str(tmp_path / "r")]
    )
    assert restored.exit_code == 0, restored.output
    assert "verified 2 cases" in restored.output
    again = runner.invoke(
        app, ["restore", str(tmp_path / "n.tar.gz"), "--data", str(tmp_path / "r")]
    )
    assert again.exit_code == 1 and "already holds a node" in again.output
